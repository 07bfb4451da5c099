import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { PeernixEvent, Snapshot } from '../../src/base/api.ts';
import { skippedWithoutNetns } from '../support/netns.ts';
import { nixEnv, run } from '../support/nix-host.ts';
import { createPnLan, hashPart as H, SUBST, upPeers, waitFor, type PnHost, type PnLan } from '../support/peernix-lan.ts';

// One large NAR from several holders at once (issue #24, peers/swarm-nar.ts). Four hosts in
// namespaces: A has nothing; B, C and D hold the same two NARs, Python's standard library (about
// 53 MB that compress about 3×) and 48 MiB of random bytes, and each sends through a tbf-shaped
// link. A real Nix on A substitutes each through A with signatures required:
// - the library split across the holders, its pieces compressed (each piece states what A measured
//   of that holder's link, so the holder compresses it from the first byte);
// - the random bytes while one holder's link is cut (`ip link set eth0 down`) once A is taking
//   bytes from more than one holder: its share is carried by the others.
// Both must arrive byte-exact.

const MiB = 1024 * 1024;
const PYTHON_LIB = '/usr/lib/python3.11';

describe('one NAR from several holders at once', { timeout: 600_000 }, () => {
  if (skippedWithoutNetns()) return;
  let pl: PnLan;
  let A: PnHost, B: PnHost, C: PnHost, D: PnHost;
  let narPath: string;
  let libPath: string;

  /** sha256 of `nix-store --dump` of a path in a chroot store (--dump reads the filesystem, not --store). */
  const dumpSha = async (root: string, path: string) => {
    const r = await run('bash', ['-c', `set -o pipefail; nix-store --dump '${root}${path}' | sha256sum`]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.split(' ')[0];
  };
  /** A's snapshot through its loopback API with curl: quick enough to poll during a transfer of seconds. */
  const snapshot = async (): Promise<Snapshot> => {
    const r = await pl.curl(A, ['-f', `${SUBST}/peernix/api/snapshot`, '-H', 'host: 127.0.0.1:9998']);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as Snapshot;
  };

  before(async () => {
    pl = await createPnLan('pn-swarm', ['host-a', 'host-b', 'host-c', 'host-d']);
    [A, B, C, D] = pl.hosts;
    const file = `${pl.dir}/random.bin`;
    assert.equal((await run('sh', ['-c', `head -c ${48 * MiB} /dev/urandom > '${file}'`])).code, 0);
    narPath = (await B.nix.nixStore(['--add', file], { check: true })).stdout.trim();
    for (const h of [C, D]) assert.equal((await h.nix.nixStore(['--add', file], { check: true })).stdout.trim(), narPath);
    libPath = (await B.nix.nixStore(['--add', PYTHON_LIB], { check: true })).stdout.trim();
    for (const h of [C, D]) assert.equal((await h.nix.nixStore(['--add', PYTHON_LIB], { check: true })).stdout.trim(), libPath);
    for (const h of [B, C, D]) {
      // Each holder's link, not the CPU, sets its pace: slow enough that the cut lands mid-NAR.
      const tc = await h.lan.run('tc', ['qdisc', 'add', 'dev', 'eth0', 'root', 'tbf', 'rate', '20mbit', 'burst', '32kb', 'latency', '100ms']);
      assert.equal(tc.code, 0, tc.stderr);
    }
    for (const h of [B, C, D, A]) await pl.start(h);
    await waitFor('A to see B, C and D', async () => upPeers(await pl.status(A)).join() === 'host-b,host-c,host-d', 30_000);
  });

  after(async () => {
    await pl?.teardown();
  });

  /** `nix copy` of a path from A's substituter with signatures required, and the transfer A recorded. */
  const copyThroughA = (path: string) =>
    A.lan.run(
      'nix',
      ['copy', '--from', SUBST, '--to', `${pl.dir}/client`, path, '--option', 'trusted-public-keys', pl.trustedKeys, '--option', 'require-sigs', 'true'],
      { env: nixEnv({ XDG_CACHE_HOME: `${pl.dir}/xdg-client` }), timeoutMs: 240_000 },
    );
  const transferOf = (s: Snapshot, path: string) =>
    s.events.find((e): e is Extract<PeernixEvent, { type: 'transfer' }> => e.type === 'transfer' && e.direction === 'in' && e.storePath === path)!;

  it('a compressible NAR arrives byte-exact from several holders, its pieces compressed', async (tc) => {
    const info = await pl.curl(A, [`${SUBST}/${H(libPath)}.narinfo`]);
    const narSize = Number(/^NarSize: (\d+)$/m.exec(info.stdout)?.[1]);
    assert.ok(narSize > 32 * MiB, info.stdout);
    const t0 = performance.now();
    const r = await copyThroughA(libPath);
    const seconds = (performance.now() - t0) / 1000;
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await dumpSha(`${pl.dir}/client`, libPath), await dumpSha(B.nix.root, libPath), 'NAR bytes identical');
    const t = transferOf(await snapshot(), libPath);
    const split = new RegExp(`NAR ${libPath} from (\\d) holders at once: ([^\\n]*)`).exec(A.pn!.logs());
    tc.diagnostic(
      `NAR ${narSize} bytes in ${seconds.toFixed(1)} s (links 20 Mbit/s each) from ${t.peerName}, ${t.wireBytes} bytes on the wire; ${split?.[0] ?? 'no split logged'}`,
    );
    assert.equal(t.bytes, narSize);
    assert.ok(split && Number(split[1]) >= 2, 'split across holders');
    // Raw, the split's first pieces from each holder (no link figure yet) and raw trials; the rest compressed.
    assert.ok(t.wireBytes! < narSize * 0.75, `${t.wireBytes} bytes on the wire for ${narSize} of NAR`);
    const ranged = [B, C, D].filter((h) => /GET \/nar\/[0-9a-z]+-[0-9a-z]+\.nar 206/.test(h.pn!.logs()));
    assert.ok(ranged.length >= 2, 'holders answered ranges');
  });

  it('arrives byte-exact from three holders, one of whose links is cut mid-way', async (tc) => {
    const info = await pl.curl(A, [`${SUBST}/${H(narPath)}.narinfo`]);
    const narSize = Number(/^NarSize: (\d+)$/m.exec(info.stdout)?.[1]);
    assert.ok(narSize > 32 * MiB, info.stdout);
    // Bytes from each holder so far (the library's): this NAR's are counted from here.
    const before = new Map((await snapshot()).peers.map((p) => [p.name, p.bytesFrom]));
    const t0 = performance.now();
    const copying = copyThroughA(narPath);
    // Once two holders are sending, cut the link of one of them.
    let victim: PnHost | null = null;
    await waitFor(
      'A to take bytes from two holders at once',
      async () => {
        const sending = (await snapshot()).peers.filter((p) => p.bytesFrom - (before.get(p.name) ?? 0) > 256 * 1024);
        if (sending.length < 2) return false;
        victim = [B, C, D].find((h) => h.name === sending[1].name) ?? null;
        return victim !== null;
      },
      60_000,
    );
    const cut = victim as unknown as PnHost;
    const down = await cut.lan.run('ip', ['link', 'set', 'eth0', 'down']);
    assert.equal(down.code, 0, down.stderr);
    const cutAt = ((await snapshot()).peers.find((p) => p.name === cut.name)?.bytesFrom ?? 0) - (before.get(cut.name) ?? 0);
    const r = await copying;
    const seconds = (performance.now() - t0) / 1000;
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await dumpSha(`${pl.dir}/client`, narPath), await dumpSha(B.nix.root, narPath), 'NAR bytes identical');

    const t = transferOf(await snapshot(), narPath);
    const split = new RegExp(`NAR ${narPath} from (\\d) holders at once: ([^\\n]*)`).exec(A.pn!.logs());
    tc.diagnostic(
      `NAR ${narSize} bytes in ${seconds.toFixed(1)} s (links 20 Mbit/s each); ${cut.name}'s link cut after it sent ${cutAt} bytes; transfer ${t.outcome} from ${t.peerName}, ${t.wireBytes} bytes on the wire; ${split?.[0] ?? 'no split logged'}`,
    );
    assert.equal(t.bytes, narSize);
    assert.equal(t.outcome, 'resumed', "the cut holder's share moved to the others");
    assert.ok(split, 'A logged the split');
    assert.ok(Number(split[1]) >= 2);
    assert.match(A.pn!.logs(), new RegExp(`${cut.name}'s share failed`));
    // The window shows it as a fallback from the cut holder to the ones that took its share over.
    const fb = (await snapshot()).events.find((e) => e.type === 'fallback' && e.storePath === narPath && e.from === cut.name);
    assert.ok(fb?.type === 'fallback', 'a fallback event for the moved share');
    assert.equal(fb.from, cut.name);
    assert.equal(fb.reason, 'peer-failed');
    assert.equal(fb.outcome, 'served');
    assert.ok(fb.to && !fb.to.includes(cut.name) && fb.to.split(' + ').every((n) => [B, C, D].some((h) => h.name === n)), fb.to ?? 'nobody');
    // Pieces are bounded ranges: the holders answered 206s.
    const ranged = [B, C, D].filter((h) => h !== cut && /GET \/nar\/[0-9a-z]+-[0-9a-z]+\.nar 206/.test(h.pn!.logs()));
    assert.ok(ranged.length >= 1, 'a surviving holder served ranges');
  });
});
