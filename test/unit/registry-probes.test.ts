import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { PeerClient } from '../../src/peers/peer-client.ts';
import { PeerRegistry, type PeerInfo } from '../../src/peers/registry.ts';
import { FakeClock } from '../support/fake-clock.ts';

// Health probes by the registry's own timer, on a FakeClock: an announced host that has never
// answered is probed less and less often (seconds → minutes), and only a few such hosts per round;
// a peer that has answered as a cache (proved its identity) keeps being probed, an up one every 10 s,
// or less often in a large mesh so that all up peers together take about one probe every 3 s; one that answers
// probes without proving it is backed off like a silent one; a probe that failed while our loop was stalled
// moves no peer.

const settle = async () => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
};

function announced(i: number): PeerInfo {
  return {
    id: `id-${i}`,
    name: `host-${i}`,
    url: `http://10.9.0.${i}:9999`,
    address: `10.9.0.${i}`,
    port: 9999,
    platform: null,
    publicKey: null,
    source: 'mdns',
    key: `svc-${i}`,
  };
}

function setup(answers: (url: string) => boolean, onProbe: (clock: FakeClock) => void = () => {}, proves: (url: string) => boolean = answers) {
  const clock = new FakeClock();
  const probes = new Map<string, number>();
  const client = {
    probe: async (url: string) => {
      probes.set(url, (probes.get(url) ?? 0) + 1);
      onProbe(clock);
      return answers(url) ? 1 : null;
    },
  } as unknown as PeerClient;
  // A host that answers probes has also proved its identity (a Peernix): only that makes it a cache
  // rather than any HTTP server an announcement points at.
  const registry = new PeerRegistry({
    client,
    isTrusted: () => false,
    proveIdentity: async (p) => (proves(p.url) ? 'verified' : 'unsupported'),
    clock,
    healthIntervalMs: 2000,
  });
  return { clock, registry, probes };
}

/** Runs the registry's timer for `ms` of fake time, letting each round's probes finish. */
async function run(clock: FakeClock, ms: number): Promise<void> {
  for (let t = 0; t < ms; t += 1000) {
    clock.advance(1000);
    await settle();
  }
}

describe('registry probes', () => {
  it('backs off an announced host that never answered, and keeps probing one that did every 10 s', async () => {
    const { clock, registry, probes } = setup((url) => url.endsWith('.1:9999'));
    registry.upsert(announced(1));
    registry.upsert(announced(2));
    await settle();
    registry.start();
    await run(clock, 10 * 60_000);
    registry.stop();
    const good = probes.get(announced(1).url)!;
    const silent = probes.get(announced(2).url)!;
    // Ten minutes with an up peer probed every 10 s: 60 probes. The silent host: at 2, 4, 8, … s, then every 5 min.
    assert.ok(good >= 55 && good <= 65, `answering peer probed ${good} times`);
    assert.ok(silent <= 12, `silent host probed ${silent} times in ten minutes`);
    assert.ok(silent >= 6, `silent host still probed now and then (${silent})`);
  });

  it('backs off a host that answers probes but never proves it is a cache (an announcement pointing at any web server)', async () => {
    const { clock, registry, probes } = setup(
      () => true,
      () => {},
      () => false,
    );
    registry.upsert(announced(3));
    await settle();
    registry.start();
    await run(clock, 10 * 60_000);
    registry.stop();
    const pointed = probes.get(announced(3).url)!;
    assert.ok(pointed <= 12, `a web server an announcement points at was probed ${pointed} times in ten minutes`);
  });

  it('idle cost: 30 up peers take about one probe every 3 s in all, each at most every 60 s; a peer that stops answering is probed every round', async () => {
    let down = '';
    const { clock, registry, probes } = setup((url) => url !== down);
    for (let i = 1; i <= 30; i++) registry.upsert(announced(i));
    await settle();
    registry.start();
    await run(clock, 120_000); // all up, their first scaled probes spread out
    probes.clear();
    await run(clock, 10 * 60_000);
    const perPeer = [...probes.values()];
    const total = perPeer.reduce((a, b) => a + b, 0);
    assert.equal(perPeer.length, 30, 'every peer still probed');
    assert.ok(total <= 330 && total >= 270, `${total} probes of 30 up peers in 600 s`);
    assert.ok(Math.min(...perPeer) >= 9, `each probed at least every 60 s (${Math.min(...perPeer)} in 600 s)`);
    // One stops answering: found at its next probe, then probed every round until it is gone.
    down = announced(7).url;
    probes.clear();
    await run(clock, 70_000);
    assert.notEqual(registry.get('id-7')?.state, 'up');
    assert.ok((probes.get(down) ?? 0) >= 3, `the failing peer was probed ${probes.get(down)} times`);
    registry.stop();
  });

  it('probes at most a few never-answering hosts per round', async () => {
    const { clock, registry, probes } = setup(() => false);
    for (let i = 1; i <= 40; i++) registry.upsert(announced(i));
    await settle();
    probes.clear(); // the probe each gets when admitted
    registry.start();
    await run(clock, 2000);
    const round = [...probes.values()].reduce((a, b) => a + b, 0);
    registry.stop();
    assert.ok(round > 0 && round <= 8, `${round} probes in one round of 40 silent hosts`);
  });

  it('a probe that failed while our loop was stalled does not move the peer', async () => {
    let stall = false;
    const { clock, registry } = setup(
      () => !stall,
      (c) => {
        if (!stall) return;
        c.jump(900); // the probe's 800 ms timeout ran out while we were away
        c.advance(1);
      },
    );
    registry.upsert(announced(1));
    await settle();
    const p = registry.get('id-1')!;
    assert.equal(p.state, 'up');
    stall = true;
    for (let i = 0; i < 5; i++) {
      await registry.probeRound();
      await settle();
    }
    assert.equal(p.state, 'up', 'no flapping for our own stalls');
    assert.equal(p.failures, 0);
    const down = setup(() => false);
    down.registry.upsert(announced(1));
    await settle();
    for (let i = 0; i < 3; i++) await down.registry.checkAll();
    assert.equal(down.registry.get('id-1')!.state, 'gone', 'failed probes while awake do count');
  });

  it('a peer in steady contact (its summary answers every 45 s) is not probed while the answers come, after its first few probes; once they stop, it is probed and goes', async () => {
    let down = false;
    const { clock, registry, probes } = setup(() => !down);
    registry.upsert(announced(1));
    await settle();
    registry.start();
    const url = announced(1).url;
    // Its first probes come as for any up peer (their quickest times the link check), contact or not;
    // then, with long-poll answers every 45 s, none at all.
    let first = 0;
    for (let t = 0; t < 11 * 60_000; t += 45_000) {
      registry.reportContact('id-1', 45_000);
      await run(clock, 45_000);
      if (t === 45_000) {
        first = probes.get(url) ?? 0;
        probes.clear();
      }
    }
    assert.ok(first >= 3, `probed ${first} times in its first 90 s`);
    assert.equal(probes.get(url) ?? 0, 0, `probed ${probes.get(url)} times while in contact`);
    // The answers stop (a dead link): probed once they are late, and gone within a minute.
    down = true;
    await run(clock, 60_000);
    assert.ok((probes.get(url) ?? 0) >= 3, `probed ${probes.get(url)} times after contact stopped`);
    assert.equal(registry.get('id-1')!.state, 'gone');
    registry.stop();
  });
});
