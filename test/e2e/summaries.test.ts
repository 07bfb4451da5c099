import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { encodeNix32 } from '../../src/nix/nix32.ts';
import { PROBE_HASH_PART } from '../../src/peers/peer-client.ts';
import { skippedWithoutNetns } from '../support/netns.ts';
import { addPath, nixEnv, run } from '../support/nix-host.ts';
import { createPnLan, hashPart as H, SUBST, upPeers, waitFor, type PnHost, type PnLan } from '../support/peernix-lan.ts';

// Store summaries between two real Peernix hosts that find each other by mDNS: A's misses ask B
// nothing (B's own request log is the witness), a path added on B is found by A's Nix within 2 s,
// and B's link cut without a goodbye doesn't slow A's misses.


describe('store summaries between two hosts', { timeout: 300_000 }, () => {
  if (skippedWithoutNetns()) return;
  let pl: PnLan;
  let A: PnHost;
  let B: PnHost;
  const randomHashPart = () => encodeNix32(randomBytes(20));
  /** narinfo requests B's share listener logged (its debug log has a line per request), health probes aside. */
  const narinfoRequestsOnB = () => (B.pn!.logs().match(/ GET \/[0-9a-z]{32}\.narinfo /g) ?? []).filter((l) => !l.includes(PROBE_HASH_PART)).length;
  const timedNarinfo = async (hashPart: string) => {
    const r = await pl.curl(A, ['-o', '/dev/null', '-w', '%{http_code} %{time_total}', `${SUBST}/${hashPart}.narinfo`]);
    const [code, secs] = r.stdout.split(' ');
    return { code: Number(code), ms: Number(secs) * 1000 };
  };

  before(async () => {
    pl = await createPnLan('pn-sum', ['host-a', 'host-b']);
    [A, B] = pl.hosts;
    await addPath(B.nix, 'already-on-b', { type: 'file', contents: 'there from the start\n' });
    await pl.start(A);
    await pl.start(B);
    await waitFor('A to follow B’s summary', async () => {
      const s = await pl.status(A);
      return upPeers(s).includes('host-b') && s.peers.find((p) => p.name === 'host-b')?.summary?.state === 'ok';
    }, 30_000);
  });

  after(async () => {
    await pl?.teardown();
  });

  it('misses on A ask B nothing', async () => {
    const before = narinfoRequestsOnB();
    const times: number[] = [];
    for (let i = 0; i < 50; i++) {
      const r = await timedNarinfo(randomHashPart());
      assert.equal(r.code, 404);
      times.push(r.ms);
    }
    const asked = narinfoRequestsOnB() - before;
    times.sort((a, b) => a - b);
    const view = (await pl.status(A)).peers.find((p) => p.name === 'host-b')!.summary!;
    console.log(`50 misses on A: ${asked} narinfo requests reached B (false positives allowed: ≤ 2); p50 ${times[25].toFixed(2)} ms, max ${times[49].toFixed(2)} ms; B's summary as A sees it: ${JSON.stringify(view)}`);
    assert.ok(asked <= 2, `${asked} of 50 misses were asked of B`);
    assert.equal(view.state, 'ok');
    assert.ok(view.paths >= 1 && view.bytes > 0 && view.generation !== null);
  });

  it('a path added on B is found by A’s Nix within 2 s', async () => {
    const path = await addPath(B.nix, 'added-later', { type: 'file', contents: `added at ${Date.now()}\n` });
    const added = Date.now();
    const found = await waitFor('A to answer the new path', async () => ((await timedNarinfo(H(path))).code === 200 ? Date.now() : null), 5000);
    console.log(`nix-store --add on B → A answers its narinfo: ${found - added} ms`);
    assert.ok(found - added <= 2000, `${found - added} ms`);
    const r = await A.lan.run('nix', ['copy', '--from', SUBST, '--to', `${pl.dir}/client-a`, path, '--option', 'trusted-public-keys', B.key.publicKey, '--option', 'require-sigs', 'true'], {
      env: nixEnv({ XDG_CACHE_HOME: `${pl.dir}/client-a-xdg` }),
      timeoutMs: 60_000,
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await run('nix-store', ['--store', `${pl.dir}/client-a`, '--check-validity', path])).code, 0);
  });

  it('B’s link cut without a goodbye: A’s misses stay fast', async () => {
    const veth = B.lan.ns.replace(/n(\d+)$/, 'v$1');
    const down = await run('ip', ['link', 'set', veth, 'down']);
    assert.equal(down.code, 0, down.stderr);
    const times: number[] = [];
    const end = Date.now() + 10_000;
    while (Date.now() < end) {
      times.push((await timedNarinfo(randomHashPart())).ms);
      await new Promise((r) => setTimeout(r, 100));
    }
    times.sort((a, b) => a - b);
    console.log(`${times.length} misses in the 10 s after B's link was cut: p50 ${times[times.length >> 1].toFixed(2)} ms, slowest ${times.at(-1)!.toFixed(2)} ms`);
    assert.ok(times.at(-1)! <= 50, `slowest miss ${times.at(-1)} ms`);
  });
});
