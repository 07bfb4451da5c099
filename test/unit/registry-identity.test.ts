// The registry's admission, eviction and identity rules, with the health probe and the identity
// challenge answered by stand-ins (the real challenge is tested in identity-proof.test.ts and end to
// end in field-discovery.test.ts) — except for the records that would move or re-key a proven peer,
// which are judged against real HTTP peers on loopback with the real challenge.

import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { createIdentityHandler } from '../../src/cache/identity-route.ts';
import { shareRouteOnly } from '../support/share-route.ts';
import { generateKeyPair, parseSecretKey, type SecretKey } from '../../src/nix/signing.ts';
import { proveIdentity, type ProofResult } from '../../src/wire/identity-proof.ts';
import { PeerClient } from '../../src/peers/peer-client.ts';
import { PeerRegistry, type Peer, type PeerInfo } from '../../src/peers/registry.ts';

const KEY = `real-1:${Buffer.alloc(32, 1).toString('base64')}`;
const ID = 'a1b2c3d4e5f6a7b8c9d0e1f2';

// Who can prove what: url → result. Everything not listed answers health probes but cannot prove.
function setup(proofs: Map<string, ProofResult>, maxPeers = 64) {
  const alive = new Set<string>();
  const client = { probe: async (url: string) => (alive.has(url) || url.includes('fake') || proofs.has(url) ? 1 : null) } as unknown as PeerClient;
  let challenges = 0;
  const registry = new PeerRegistry({
    client,
    maxPeers,
    isTrusted: (k) => k === KEY,
    proveIdentity: async (p) => {
      challenges++;
      return proofs.get(p.url) ?? 'failed';
    },
    identityRetryMs: 0,
  });
  return { registry, alive, challenges: () => challenges };
}

const settle = async () => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
};

function mdns(id: string, url: string, key: string, publicKey: string | null = KEY): PeerInfo {
  const u = new URL(url);
  return { id, name: 'laptop', url, address: u.hostname, port: Number(u.port), platform: null, publicKey, source: 'mdns', key };
}

describe('registry identity', () => {
  it("an impostor that took a departed peer's id is not trusted, and yields when the real one proves itself", async (t) => {
    const realUrl = 'http://10.0.0.2:9999';
    const fakeUrl = 'http://10.0.0.66:9999';
    const { registry } = setup(new Map([[realUrl, 'verified']]));
    registry.upsert(mdns(ID, realUrl, 'laptop-aaaa._peernix._tcp.local'));
    await settle();
    const first = registry.views()[0];
    assert.deepEqual([first.url, first.verified, first.trusted], [realUrl, true, true]);

    registry.remove(ID, 'goodbye', 'laptop-aaaa._peernix._tcp.local');
    registry.upsert(mdns(ID, fakeUrl, 'laptop-evil._peernix._tcp.local'));
    await settle();
    const squatted = registry.views();
    t.diagnostic(`while squatted: ${JSON.stringify(squatted.map((v) => [v.url, v.state, v.verified, v.trusted]))}`);
    assert.deepEqual(
      squatted.map((v) => [v.url, v.verified, v.trusted]),
      [[fakeUrl, false, false]],
    );

    registry.upsert(mdns(ID, realUrl, 'laptop-aaaa._peernix._tcp.local')); // back from sleep
    await settle();
    const back = registry.views();
    t.diagnostic(`after return: ${JSON.stringify(back.map((v) => [v.url, v.state, v.verified, v.trusted]))}`);
    assert.deepEqual(
      back.map((v) => [v.id, v.url, v.state, v.verified, v.trusted]),
      [[ID, realUrl, 'up', true, true]],
    );
  });

  it('an impostor cannot displace a proven, live peer, and its goodbye does not remove it', async () => {
    const realUrl = 'http://10.0.0.2:9999';
    const { registry } = setup(new Map([[realUrl, 'verified']]));
    registry.upsert(mdns(ID, realUrl, 'laptop-aaaa._peernix._tcp.local'));
    await settle();
    registry.upsert(mdns(ID, 'http://10.0.0.66:9999', 'laptop-evil._peernix._tcp.local'));
    await settle();
    registry.remove(ID, 'goodbye', 'laptop-evil._peernix._tcp.local');
    await settle();
    assert.deepEqual(
      registry.views().map((v) => [v.url, v.state, v.verified]),
      [[realUrl, 'up', true]],
    );
    assert.equal(registry.isProvenService('laptop-aaaa._peernix._tcp.local'), true);
    assert.equal(registry.isProvenService('laptop-evil._peernix._tcp.local'), false);
  });

  it('a key is trusted only once proven; peers that cannot prove stay usable but unverified; static peers are as configured', async (t) => {
    const { registry } = setup(new Map([['http://10.0.0.3:9999', 'unsupported']]));
    registry.upsert(mdns('other-implementation-1', 'http://10.0.0.3:9999', 'other._peernix._tcp.local'));
    registry.upsert({
      id: 'http://build:9999',
      name: 'build:9999',
      url: 'http://build:9999',
      address: 'build',
      port: 9999,
      platform: null,
      publicKey: null,
      source: 'static',
    });
    await settle();
    const views = Object.fromEntries(registry.views().map((v) => [v.source, { verified: v.verified, trusted: v.trusted }]));
    t.diagnostic(`views: ${JSON.stringify(views)}`);
    assert.deepEqual(views, { mdns: { verified: false, trusted: false }, static: { verified: true, trusted: false } });
    assert.equal(registry.live().length, 1); // the unverified mDNS peer is still asked (static "build" does not answer here)
  });

  it('a full table of unproven fakes makes room for a genuine peer, which then stays', async (t) => {
    const realUrl = 'http://10.0.0.2:9999';
    const { registry } = setup(new Map([[realUrl, 'verified']]), 64);
    for (let i = 0; i < 64; i++)
      registry.upsert(mdns(`fake-peer-${String(i).padStart(8, '0')}`, `http://10.0.0.66:${1000 + i}/fake`, `fake-${i}._peernix._tcp.local`, null));
    await settle();
    assert.equal(registry.all().length, 64);
    registry.upsert(mdns(ID, realUrl, 'laptop-aaaa._peernix._tcp.local'));
    await settle();
    for (let i = 64; i < 500; i++)
      registry.upsert(mdns(`fake-peer-${String(i).padStart(8, '0')}`, `http://10.0.0.66:${1000 + i}/fake`, `fake-${i}._peernix._tcp.local`, null));
    await settle();
    const real = registry.get(ID);
    t.diagnostic(`after 500 fakes: ${registry.all().length} peers, genuine ${real ? `${real.state} verified=${real.verified}` : 'missing'}`);
    assert.equal(registry.all().length, 64);
    assert.ok(real && real.verified && real.state === 'up');
  });
});

// ---- a proven peer's own service records, judged by real challenges over real HTTP ----

const realKey = parseSecretKey(generateKeyPair('real-1').secretKeyText);
const hostileKey = parseSecretKey(generateKeyPair('real-1').secretKeyText); // same name, another key
const SERVICE = 'laptop-aaaa._peernix._tcp.local';

interface LoopbackPeer {
  url: string;
  address: string;
  port: number;
  identityAsks: number;
  /** false: the identity route answers 503 (a share listener still starting). */
  ready: boolean;
  /** Health probes (/nix-cache-info) held unanswered while true; their sockets, to end them. */
  hold: boolean;
  /** How long the identity route takes to answer. */
  identityDelayMs: number;
  held: Set<import('node:net').Socket>;
  close(): Promise<void>;
}

const opened: Server[] = [];
after(() => Promise.all(opened.map((s) => new Promise((r) => (s.closeAllConnections(), s.close(r))))));

// A peer's share listener as far as the registry sees it: /nix-cache-info, a 404 for the probe's
// narinfo, and the real identity route signing with `key` for instance `id`.
async function loopbackPeer(address: string, key: SecretKey, id = ID): Promise<LoopbackPeer> {
  const identity = shareRouteOnly('identity', createIdentityHandler({ instanceId: id, key }));
  const peer = { url: '', address, port: 0, identityAsks: 0, ready: true, hold: false, identityDelayMs: 0, held: new Set() } as LoopbackPeer;
  const server = createServer((req, res) => {
    if (req.url?.startsWith('/peernix/identity?')) {
      peer.identityAsks++;
      if (!peer.ready) return void res.writeHead(503).end('starting\n');
      if (peer.identityDelayMs > 0) return void setTimeout(() => identity(req, res), peer.identityDelayMs);
      if (identity(req, res)) return;
    }
    if (req.url === '/nix-cache-info' && peer.hold) return void peer.held.add(req.socket);
    if (req.url === '/nix-cache-info') return void res.writeHead(200).end('StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 30\n');
    res.writeHead(404).end('not found\n');
  });
  opened.push(server);
  await new Promise<void>((r) => server.listen(0, address, r));
  peer.port = (server.address() as AddressInfo).port;
  peer.url = `http://${address}:${peer.port}`;
  peer.close = () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r())));
  return peer;
}

async function until<T>(what: string, f: () => T | null | undefined | false, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const turn = () => new Promise((r) => setImmediate(r));

// A started registry with a real client and the real challenge (counted per url and key).
function liveRegistry(identityRetryMs: number, healthTimeoutMs = 1000) {
  const client = new PeerClient({ connectMs: 300, narInfoMs: 1000 }, 'peernix-test');
  const asked: string[] = [];
  let started = 0;
  let answered = 0; // challenges whose result the registry has been handed
  const registry = new PeerRegistry({
    client,
    isTrusted: (k) => k === realKey.publicKey.text,
    healthIntervalMs: 100,
    healthTimeoutMs,
    health: { goneAfterProbes: 2 },
    identityRetryMs,
    proveIdentity: (p) => {
      asked.push(`${p.url} ${p.publicKey === realKey.publicKey.text ? 'real key' : 'other key'}`);
      started++;
      return proveIdentity({
        address: p.address,
        port: p.port,
        instanceId: p.id,
        publicKey: p.publicKey,
        agent: client.lookupPool.http,
        timeoutMs: 1500,
      }).finally(() => answered++);
    },
  });
  // Evidence that the registry had its chance to act: when each timer round began (on its clock,
  // performance.now), and how many of its health probes have ended.
  const rounds: number[] = [];
  const probeRound = registry.probeRound.bind(registry);
  registry.probeRound = () => (rounds.push(performance.now()), probeRound());
  const probesEnded = new Map<string, number>();
  const probe = client.probe.bind(client);
  client.probe = (url, ...rest) => probe(url, ...rest).finally(() => probesEnded.set(url, (probesEnded.get(url) ?? 0) + 1));
  /** Resolves once a round has begun at least `ms` after now, and the work it started had a turn. */
  const roundAfter = async (ms: number) => {
    const at = performance.now() + ms;
    await until(`a round ${ms} ms on`, () => rounds.some((r) => r >= at));
    await turn();
  };
  /** Resolves once every challenge asked so far has ended and the registry took its result. */
  const challengesEnded = async () => {
    const n = started;
    await until(`${n} challenges to end`, () => answered >= n);
    await turn();
  };
  // What a listener sees: each event, with the peer's URL and verified state at that moment.
  const events: string[] = [];
  for (const name of ['up', 'down', 'moved', 'removed'] as const) {
    registry.on(name, (p: Peer) => events.push(`${name} ${p.url} verified=${p.verified}`));
  }
  const states: string[] = [];
  registry.on('changed', () => {
    const p = registry.get(ID);
    const last = p ? `${p.url} ${p.state} verified=${p.verified} key=${p.publicKey === realKey.publicKey.text ? 'real' : 'other'}` : 'none';
    if (states.at(-1) !== last) states.push(last);
  });
  registry.start();
  const stop = () => {
    registry.stop();
    client.close();
  };
  return { registry, asked, events, states, stop, roundAfter, challengesEnded, probesEnded };
}

function record(peer: { url: string; address: string; port: number }, publicKey = realKey.publicKey.text): PeerInfo {
  return { id: ID, name: 'laptop', url: peer.url, address: peer.address, port: peer.port, platform: null, publicKey, source: 'mdns', key: SERVICE };
}

async function provenAt(r: ReturnType<typeof liveRegistry>, peer: LoopbackPeer): Promise<void> {
  r.registry.upsert(record(peer));
  await until('the peer to be up and proven', () => {
    const p = r.registry.get(ID);
    return p?.url === peer.url && p.state === 'up' && p.verified;
  });
  r.events.length = 0;
  r.states.length = 0;
  r.asked.length = 0;
}

const view = (r: ReturnType<typeof liveRegistry>) =>
  r.registry.views().map((v) => [v.url, v.state, v.verified, v.trusted, v.publicKey === realKey.publicKey.text ? 'real key' : 'other key']);

describe("registry: a peer's new address or key", { timeout: 120_000 }, () => {
  it('a hostile address for a proven peer is challenged, retried and never applied; the peer keeps its address and proof; a flood of such records is one claim; a goodbye still removes it', async (t) => {
    const real = await loopbackPeer('127.0.0.2', realKey);
    const hostile = await loopbackPeer('127.0.0.66', hostileKey); // signs with a key of its own
    const r = liveRegistry(300);
    try {
      await provenAt(r, real);
      r.registry.upsert(record(hostile)); // an A record naming the hostile host for the peer's host name
      await until('the hostile claim to be challenged three times', () => hostile.identityAsks >= 3);
      t.diagnostic(`hostile address: challenged ${hostile.identityAsks} times; view ${JSON.stringify(view(r))}; events ${JSON.stringify(r.events)}`);
      assert.deepEqual(view(r), [[real.url, 'up', true, true, 'real key']]);
      assert.deepEqual(
        r.registry.live().map((p) => p.url),
        [real.url],
        'lookups go to the proven address',
      );
      assert.equal(r.events.length, 0, 'no moved, down or removed');
      assert.ok(
        r.states.every((s) => s.startsWith(`${real.url} up verified=true`)),
        JSON.stringify(r.states),
      );

      // 200 more such records (another port each) while it is claimed: one claim, not 200 challenges.
      // The claim asks the latest record's address once the challenge out at the time has ended (the
      // first record's, unless one of the earlier claim's was out); the others are never asked.
      const before = r.asked.length;
      const flood = Array.from({ length: 200 }, (_, i) => `http://127.0.0.66:${20000 + i}`);
      for (const [i, url] of flood.entries()) r.registry.upsert(record({ url, address: '127.0.0.66', port: 20000 + i }));
      await until("the flood's latest address to be challenged", () => r.asked.includes(`${flood[199]} real key`));
      await r.roundAfter(300); // and the claim's retry was due at least once since
      const burst = r.asked.slice(before);
      const floodAsked = new Set(burst.map((a) => a.split(' ')[0]).filter((u) => flood.includes(u)));
      t.diagnostic(`200 hostile records: ${burst.length} challenges since, at ${[...floodAsked].join(' ')} (retry every 300 ms)`);
      assert.ok(
        [...floodAsked].every((u) => u === flood[0] || u === flood[199]),
        `challenged ${floodAsked.size} of the flood's addresses`,
      );
      assert.deepEqual(view(r), [[real.url, 'up', true, true, 'real key']]);
      assert.equal(r.events.length, 0);

      // A goodbye from the service removes the peer as before, and its pending claim with it.
      r.registry.remove(ID, 'goodbye', SERVICE);
      const askedAtGoodbye = r.asked.length;
      await r.challengesEnded(); // each ends within its 1.5 s timeout
      await r.roundAfter(300); // a claim still pending would have been asked again in this round
      t.diagnostic(`after goodbye: ${r.registry.all().length} peers; events ${JSON.stringify(r.events)}; challenges since ${r.asked.length - askedAtGoodbye}`);
      assert.equal(r.registry.all().length, 0);
      assert.deepEqual(r.events, [`down ${real.url} verified=true`, `removed ${real.url} verified=true`]);
      assert.equal(r.asked.length - askedAtGoodbye, 0, 'the claim went with the peer');
    } finally {
      r.stop();
      await Promise.all([real.close(), hostile.close()]);
    }
  });

  it('a proven peer that really moved proves it at its new address and moves at once, verified throughout', async (t) => {
    const oldAddr = await loopbackPeer('127.0.0.2', realKey);
    const newAddr = await loopbackPeer('127.0.0.3', realKey); // the same peer after a DHCP renewal
    const r = liveRegistry(60_000); // a retry would come far too late: the first challenge must do
    try {
      await provenAt(r, oldAddr);
      r.registry.upsert(record(newAddr));
      await until('the peer to move', () => r.registry.get(ID)?.url === newAddr.url && r.registry.get(ID)?.state === 'up');
      t.diagnostic(`moved: challenges ${JSON.stringify(r.asked)}; events ${JSON.stringify(r.events)}; states ${JSON.stringify(r.states)}`);
      assert.deepEqual(r.asked, [`${newAddr.url} real key`], 'one challenge, at the new address');
      assert.deepEqual(
        r.events.filter((e) => e.startsWith('moved')),
        [`moved ${newAddr.url} verified=true`],
      );
      assert.ok(!r.events.some((e) => e.startsWith('removed')), JSON.stringify(r.events));
      assert.ok(
        r.states.every((s) => s.includes('verified=true')),
        `verified throughout: ${JSON.stringify(r.states)}`,
      );
      assert.deepEqual(view(r), [[newAddr.url, 'up', true, true, 'real key']]);
      assert.deepEqual(
        r.registry.live().map((p) => p.url),
        [newAddr.url],
      );
    } finally {
      r.stop();
      await Promise.all([oldAddr.close(), newAddr.close()]);
    }
  });

  it('a hostile TXT record with another key for a proven peer leaves its key and proof alone', async (t) => {
    const real = await loopbackPeer('127.0.0.2', realKey);
    const r = liveRegistry(300);
    try {
      await provenAt(r, real);
      r.registry.upsert(record(real, hostileKey.publicKey.text)); // same service, same address, another key
      await until('the claimed key to be challenged twice', () => r.asked.filter((a) => a === `${real.url} other key`).length >= 2);
      t.diagnostic(`hostile key: challenges ${JSON.stringify(r.asked)}; view ${JSON.stringify(view(r))}; events ${JSON.stringify(r.events)}`);
      assert.equal(r.registry.get(ID)?.publicKey, realKey.publicKey.text);
      assert.deepEqual(view(r), [[real.url, 'up', true, true, 'real key']]);
      assert.equal(r.events.length, 0);
      assert.ok(
        r.states.every((s) => s.includes('verified=true key=real')),
        JSON.stringify(r.states),
      );
    } finally {
      r.stop();
      await real.close();
    }
  });

  it('once the proven peer is gone, its pending claim is asked at once: proven, it takes over verified; unproven, it takes over unverified and untrusted', async (t) => {
    const oldAddr = await loopbackPeer('127.0.0.2', realKey);
    const newAddr = await loopbackPeer('127.0.0.3', realKey);
    newAddr.ready = false; // its share listener is still starting: the first challenge fails
    const r = liveRegistry(60_000); // no timed retry within the test: only the holder going may trigger one
    try {
      await provenAt(r, oldAddr);
      r.registry.upsert(record(newAddr));
      await until('the claim to be challenged', () => newAddr.identityAsks === 1 && r.asked.length === 1);
      await r.challengesEnded(); // it failed (503), and the registry took that result
      t.diagnostic(`claim not yet proven: view ${JSON.stringify(view(r))}; events ${JSON.stringify(r.events)}`);
      assert.deepEqual(view(r), [[oldAddr.url, 'up', true, true, 'real key']], 'the live, proven holder is kept');
      assert.equal(r.events.length, 0);

      newAddr.ready = true;
      await oldAddr.close(); // the old address stops answering
      await until('the claim to take over', () => r.registry.get(ID)?.url === newAddr.url && r.registry.get(ID)?.state === 'up');
      t.diagnostic(`after the holder went: challenges ${JSON.stringify(r.asked)}; events ${JSON.stringify(r.events)}; states ${JSON.stringify(r.states)}`);
      // The second challenge came when the holder went (a timed retry would take 60 s); a third may
      // follow when the moved peer's first probe passes (a peer back from gone proves itself again).
      assert.ok(r.asked.length >= 2 && r.asked.every((a) => a === `${newAddr.url} real key`), JSON.stringify(r.asked));
      const goneAt = r.states.findIndex((s) => s.startsWith(`${oldAddr.url} gone`));
      const movedAt = r.states.findIndex((s) => s.startsWith(newAddr.url));
      assert.ok(goneAt !== -1 && goneAt < movedAt, `gone before the move: ${JSON.stringify(r.states)}`);
      assert.ok(r.states[movedAt].includes('verified=true'), 'proven when it took over');
      assert.deepEqual(
        r.events.filter((e) => e.startsWith('moved')),
        [`moved ${newAddr.url} verified=true`],
      );
      assert.deepEqual(view(r), [[newAddr.url, 'up', true, true, 'real key']]);

      // An unproven claim pending when the (proven) holder goes takes over as an unproven record
      // would: used, but neither verified nor trusted; the real peer's next record wins it back.
      const hostile = await loopbackPeer('127.0.0.66', hostileKey);
      try {
        r.events.length = 0;
        r.states.length = 0;
        r.registry.upsert(record(hostile));
        await until('the hostile claim to be challenged', () => hostile.identityAsks === 1);
        await r.challengesEnded(); // it failed (another key), and the registry took that result
        assert.deepEqual(view(r), [[newAddr.url, 'up', true, true, 'real key']]);
        await newAddr.close();
        await until('the hostile claim to take over the gone holder', () => r.registry.get(ID)?.url === hostile.url && r.registry.get(ID)?.state === 'up');
        t.diagnostic(`unproven claim after the holder went: view ${JSON.stringify(view(r))}; events ${JSON.stringify(r.events)}`);
        assert.deepEqual(view(r), [[hostile.url, 'up', false, false, 'real key']]);
        assert.deepEqual(
          r.events.filter((e) => e.startsWith('moved')),
          [`moved ${hostile.url} verified=false`],
        );
        const back = await loopbackPeer('127.0.0.4', realKey);
        try {
          r.registry.upsert(record(back));
          await until(
            'the real peer to win it back',
            () => r.registry.get(ID)?.url === back.url && r.registry.get(ID)?.verified && r.registry.get(ID)?.state === 'up',
          );
          t.diagnostic(`real peer back: view ${JSON.stringify(view(r))}`);
          assert.deepEqual(view(r), [[back.url, 'up', true, true, 'real key']]);
        } finally {
          await back.close();
        }
      } finally {
        await hostile.close();
      }
    } finally {
      r.stop();
      await Promise.all([oldAddr.close(), newAddr.close()]);
    }
  });

  it('probes of the address a peer moved from, answered late, do not count against it', async (t) => {
    const oldAddr = await loopbackPeer('127.0.0.2', realKey);
    const newAddr = await loopbackPeer('127.0.0.3', realKey);
    const r = liveRegistry(60_000, 5000);
    try {
      await provenAt(r, oldAddr);
      oldAddr.hold = true; // the old address goes quiet while probes to it are out
      await until('three probes held at the old address', () => oldAddr.held.size >= 3);
      r.registry.upsert(record(newAddr));
      await until('the peer to move and pass a probe there', () => r.registry.get(ID)?.url === newAddr.url && r.registry.get(ID)?.state === 'up');
      const stale = oldAddr.held.size;
      const endedBefore = r.probesEnded.get(oldAddr.url) ?? 0;
      for (const s of oldAddr.held) s.destroy(); // now they fail
      await until('the held probes to end', () => (r.probesEnded.get(oldAddr.url) ?? 0) >= endedBefore + stale);
      await turn(); // and the registry took their results
      t.diagnostic(`${stale} probes of the old address failed after the move; states ${JSON.stringify(r.states)}; events ${JSON.stringify(r.events)}`);
      assert.ok(stale >= 3);
      assert.deepEqual(view(r), [[newAddr.url, 'up', true, true, 'real key']]);
      assert.ok(!r.events.some((e) => e.startsWith('down')), JSON.stringify(r.events));
    } finally {
      r.stop();
      await Promise.all([oldAddr.close(), newAddr.close()]);
    }
  });

  it('an unproven peer that moves while its challenge is out is asked at its new address as soon as that challenge ends', async (t) => {
    const slow = await loopbackPeer('127.0.0.66', hostileKey);
    slow.identityDelayMs = 500; // a claim that takes a while to fail
    const real = await loopbackPeer('127.0.0.2', realKey);
    const r = liveRegistry(60_000); // a timed retry would come far too late
    try {
      r.registry.upsert(record(slow));
      await until('the first challenge to be out', () => slow.identityAsks === 1);
      r.registry.upsert(record(real)); // an unproven peer's record applies at once, as before
      await until(
        'the peer to be proven at its new address',
        () => r.registry.get(ID)?.url === real.url && r.registry.get(ID)?.verified && r.registry.get(ID)?.state === 'up',
        10_000,
      );
      t.diagnostic(`challenges ${JSON.stringify(r.asked)}; view ${JSON.stringify(view(r))}`);
      assert.deepEqual(r.asked, [`${slow.url} real key`, `${real.url} real key`]);
      assert.deepEqual(view(r), [[real.url, 'up', true, true, 'real key']]);
    } finally {
      r.stop();
      await Promise.all([slow.close(), real.close()]);
    }
  });
});
