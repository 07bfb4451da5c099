// The daemon client (src/store/daemon-*.ts) against a real nix-daemon serving a chroot store.
//
// Timings are reported with t.diagnostic, never asserted. Per-operation latencies measured
// inside node:test come out several times higher than the same code run standalone (the test
// harness makes promise-heavy code slower), so read them as upper bounds.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  addPath,
  addTestClosure,
  cleanup,
  makeSigningKey,
  makeTempDir,
  signPaths,
  startNixHost,
  treeFile,
  type NixHost,
  type TestClosure,
} from '../support/nix-host.ts';
import { DaemonConnection, DaemonError, type PathInfo } from '../../src/store/daemon-connection.ts';
import { DaemonPool } from '../../src/store/daemon-pool.ts';

const LARGE = 200 * 1024 * 1024;
const MiB = 1024 * 1024;

let dir: string;
let host: NixHost;
let closure: TestClosure;
let nixVersion: string;
const opened: DaemonConnection[] = [];
const pools: DaemonPool[] = [];

async function connect(): Promise<DaemonConnection> {
  const c = await DaemonConnection.connect(host.socket, { timeoutMs: 5000 });
  opened.push(c);
  return c;
}

function pool(opts: { size?: number } = {}): DaemonPool {
  const p = new DaemonPool({ socketPath: host.socket, connectTimeoutMs: 5000, ...opts });
  pools.push(p);
  return p;
}

const hashPart = (p: string): string => p.slice('/nix/store/'.length, '/nix/store/'.length + 32);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Consume a NAR stream, returning its SHA-256 and length. */
async function hashStream(s: NodeJS.ReadableStream): Promise<{ sha256: Buffer; size: number }> {
  const h = createHash('sha256');
  let size = 0;
  for await (const b of s as AsyncIterable<Buffer>) {
    h.update(b);
    size += b.length;
  }
  return { sha256: h.digest(), size };
}

function compareWithCli(
  info: PathInfo | null,
  cli: {
    path: string;
    narHash: string;
    narSize: number;
    references: string[];
    deriver?: string;
    signatures?: string[];
    ca?: string;
    registrationTime?: number;
    ultimate?: boolean;
  },
): void {
  assert.ok(info, `no info for ${cli.path}`);
  assert.equal(info.path, cli.path);
  assert.equal(`sha256-${info.narHash.toString('base64')}`, cli.narHash);
  assert.equal(info.narSize, cli.narSize);
  assert.deepEqual([...info.references].sort(), [...cli.references].sort());
  assert.equal(info.deriver, cli.deriver ?? null);
  assert.deepEqual(info.sigs, cli.signatures ?? []);
  assert.equal(info.ca, cli.ca ?? null);
  assert.equal(info.ultimate, cli.ultimate ?? false);
  if (cli.registrationTime !== undefined) assert.equal(info.registrationTime, cli.registrationTime);
}

before(
  async () => {
    dir = await makeTempDir('pnx-daemon');
    host = await startNixHost(dir);
    closure = await addTestClosure(host, { largeSize: LARGE });
    nixVersion = (await host.run('nix', ['--version'], { check: true })).stdout.trim().split(' ').pop()!;
  },
  { timeout: 120_000 },
);

after(
  async () => {
    for (const c of opened) c.close();
    await Promise.all(pools.map((p) => p.close()));
    await cleanup(dir);
  },
  { timeout: 30_000 },
);

describe('DaemonConnection (real nix-daemon)', () => {
  test('handshake', { timeout: 10_000 }, async () => {
    const c = await connect();
    if (nixVersion.startsWith('2.8.')) {
      assert.equal(c.protocolVersion, 0x122); // 1.34
      assert.equal(c.trusted, null); // flag only exists from 1.35
    }
    assert.equal(c.daemonVersion, nixVersion);
    assert.deepEqual(c.features, []);
    assert.equal(c.closed, false);
    c.close();
    await c.whenClosed();
    assert.equal(c.closed, true);
  });

  test('queryPathFromHashPart: hit and miss', { timeout: 10_000 }, async () => {
    const c = await connect();
    for (const p of closure.paths) assert.equal(await c.queryPathFromHashPart(hashPart(p)), p);
    assert.equal(await c.queryPathFromHashPart('0'.repeat(32)), null);
    c.close();
  });

  test('queryPathInfo matches `nix path-info --json`, including ca and signatures', { timeout: 30_000 }, async () => {
    const added = await addPath(host, 'ca-file.txt', treeFile('content-addressed\n'));
    const c = await connect();
    const all = [...closure.paths, added];
    const cli = await host.pathInfoJson(all);
    for (const j of cli) compareWithCli(await c.queryPathInfo(j.path), j);
    assert.match((await c.queryPathInfo(added))!.ca!, /^fixed:r:sha256:/);
    assert.equal((await c.queryPathInfo(closure.top))!.deriver, closure.derivers[closure.top]);
    assert.ok((await c.queryPathInfo(closure.top))!.references.includes(closure.top), 'self-reference');

    const key = await makeSigningKey(host, dir, 'peernix-test-1');
    await signPaths(host, key.secretKeyFile, [closure.top]);
    const c2 = await connect();
    const signed = await c2.queryPathInfo(closure.top);
    assert.equal(signed!.sigs.length, 1);
    assert.match(signed!.sigs[0], /^peernix-test-1:[A-Za-z0-9+/]+=*$/);
    compareWithCli(signed, (await host.pathInfoJson([closure.top]))[0]);
    c.close();
    c2.close();
  });

  test('invalid paths: null / false', { timeout: 10_000 }, async () => {
    const c = await connect();
    const missing = `/nix/store/${'1'.repeat(32)}-missing`;
    assert.equal(await c.queryPathInfo(missing), null);
    assert.equal(await c.isValidPath(missing), false);
    assert.equal(await c.isValidPath(closure.top), true);
    // Right hash, wrong name.
    assert.equal(await c.isValidPath(`${closure.top.slice(0, 44)}wrong-name`), false);
    assert.equal(await c.queryPathInfo(`${closure.top.slice(0, 44)}wrong-name`), null);
    c.close();
  });

  test('a daemon-side error leaves the connection usable', { timeout: 10_000 }, async () => {
    const c = await connect();
    const [bad, good] = await Promise.allSettled([c.queryPathFromHashPart('abc'), c.queryPathInfo(closure.lib)]);
    assert.equal(bad.status, 'rejected');
    const err = (bad as PromiseRejectedResult).reason;
    assert.ok(err instanceof DaemonError);
    assert.equal(err.fatal, false);
    assert.match(err.message, /invalid hash part/);
    assert.doesNotMatch(err.message, /\x1b/);
    assert.equal(good.status, 'fulfilled');
    assert.equal(c.closed, false);
    assert.equal(await c.queryPathFromHashPart(hashPart(closure.data)), closure.data);
    c.close();
  });

  test('1000 pipelined queryPathInfo on one connection', { timeout: 30_000 }, async (t) => {
    const c = await connect();
    const missing = `/nix/store/${'2'.repeat(32)}-nope`;
    const paths = Array.from({ length: 1000 }, (_, i) => (i % 5 === 4 ? missing : closure.paths[i % closure.paths.length]));
    const t0 = performance.now();
    const infos = await Promise.all(paths.map((p) => c.queryPathInfo(p)));
    const ms = performance.now() - t0;
    infos.forEach((info, i) => {
      if (paths[i] === missing) assert.equal(info, null);
      else assert.equal(info!.path, paths[i]);
    });
    t.diagnostic(`1000 pipelined queryPathInfo: ${ms.toFixed(1)} ms (${((ms * 1000) / 1000).toFixed(1)} µs/op)`);
    assert.equal(c.pending, 0);
    c.close();
  });

  test('narFromPath is byte-identical to the store dump, for every path', { timeout: 60_000 }, async (t) => {
    for (const p of closure.paths) {
      const c = await connect();
      const info = await c.queryPathInfo(p);
      const t0 = performance.now();
      const got = await hashStream(c.narFromPath(p, info!.narSize));
      const ms = performance.now() - t0;
      const want = await host.dumpHash(p);
      assert.equal(got.size, want.size, p);
      assert.ok(got.sha256.equals(want.sha256), p);
      assert.ok(got.sha256.equals(info!.narHash), p);
      assert.equal(c.closed, true, 'connection is used up by a NAR transfer');
      if (p === closure.large) {
        t.diagnostic(`narFromPath ${(got.size / MiB).toFixed(0)} MiB with sha256: ${ms.toFixed(0)} ms = ${(got.size / MiB / (ms / 1000)).toFixed(0)} MiB/s`);
      }
    }
  });

  test('narFromPath throughput without hashing (200 MiB)', { timeout: 60_000 }, async (t) => {
    const runs: number[] = [];
    for (let i = 0; i < 3; i++) {
      const c = await connect();
      const info = await c.queryPathInfo(closure.large);
      const t0 = performance.now();
      let n = 0;
      await pipeline(
        c.narFromPath(closure.large, info!.narSize),
        new Writable({
          write(chunk: Buffer, _e, cb) {
            n += chunk.length;
            cb();
          },
        }),
      );
      runs.push(performance.now() - t0);
      assert.equal(n, info!.narSize);
    }
    const best = Math.min(...runs);
    t.diagnostic(`narFromPath 200 MiB, no hashing: runs ${runs.map((r) => r.toFixed(0)).join('/')} ms, best ${(LARGE / MiB / (best / 1000)).toFixed(0)} MiB/s`);
  });

  test('16 concurrent 200 MiB NARs with slow consumers stay within bounded memory', { timeout: 120_000 }, async (t) => {
    globalThis.gc?.();
    const base = process.memoryUsage().rss;
    let peak = base;
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss);
    }, 20);
    try {
      const conns = await Promise.all(Array.from({ length: 16 }, () => connect()));
      const infos = await Promise.all(conns.map((c) => c.queryPathInfo(closure.large)));
      const streams = conns.map((c, i) => c.narFromPath(closure.large, infos[i]!.narSize));
      // Phase 1: nobody reads for a while; the daemons must be held back, not buffered.
      await sleep(1500);
      const stalledPeak = peak;
      // Phase 2: slow-ish consumers that hash everything.
      const results = await Promise.all(
        streams.map(async (s) => {
          const h = createHash('sha256');
          let size = 0;
          let sinceNap = 0;
          await pipeline(
            s,
            new Writable({
              highWaterMark: 64 * 1024,
              write(chunk: Buffer, _e, cb) {
                h.update(chunk);
                size += chunk.length;
                sinceNap += chunk.length;
                if (sinceNap >= 16 * MiB) {
                  sinceNap = 0;
                  setTimeout(cb, 5);
                } else cb();
              },
            }),
          );
          return { sha256: h.digest(), size };
        }),
      );
      for (const r of results) {
        assert.equal(r.size, infos[0]!.narSize);
        assert.ok(r.sha256.equals(infos[0]!.narHash));
      }
      const stalled = (stalledPeak - base) / MiB;
      const overall = (peak - base) / MiB;
      t.diagnostic(
        `RSS growth: ${stalled.toFixed(1)} MiB while stalled, ${overall.toFixed(1)} MiB peak while streaming 16 x 200 MiB (base ${(base / MiB).toFixed(0)} MiB)`,
      );
      assert.ok(stalled < 64, `stalled RSS growth ${stalled} MiB`);
      assert.ok(overall < 150, `peak RSS growth ${overall} MiB`);
    } finally {
      clearInterval(sampler);
    }
  });

  test('destroying a NAR stream early closes the connection', { timeout: 20_000 }, async () => {
    const c = await connect();
    const info = await c.queryPathInfo(closure.large);
    const s = c.narFromPath(closure.large, info!.narSize);
    let n = 0;
    for await (const b of s as AsyncIterable<Buffer>) {
      n += b.length;
      if (n > 4 * MiB) break; // for-await destroys the stream
    }
    await c.whenClosed();
    assert.equal(c.closed, true);
  });

  test('narFromPath of a path deleted after its info was read fails instead of hanging', { timeout: 20_000 }, async () => {
    const p = await addPath(host, 'gone-soon', treeFile('x'.repeat(100_000)));
    const c = await connect();
    const info = await c.queryPathInfo(p);
    const del = await host.nixStore(['--delete', p]);
    assert.equal(del.code, 0, del.stderr);
    // Nix 2.8 sends STDERR_LAST, the start of a NAR, then an error frame in-band, then hangs up.
    await assert.rejects(hashStream(c.narFromPath(p, info!.narSize)), /of \d+ bytes/);
    assert.equal(c.closed, true);
  });

  test('addTempRoot protects a path from GC while the connection lives', { timeout: 30_000 }, async () => {
    const p = await addPath(host, 'gc-victim', treeFile('delete me\n'));
    const c = await connect();
    await c.addTempRoot(p);
    const del1 = await host.nixStore(['--delete', p]);
    assert.notEqual(del1.code, 0, 'delete must fail while the temp root is held');
    assert.match(del1.stderr, /still alive/);
    assert.equal(await c.isValidPath(p), true);
    c.close();
    await c.whenClosed();
    // The daemon's per-connection process notices the hang-up and releases its temproots lock.
    const deadline = Date.now() + 10_000;
    let del2 = await host.nixStore(['--delete', p]);
    while (del2.code !== 0 && Date.now() < deadline) {
      await sleep(100);
      del2 = await host.nixStore(['--delete', p]);
    }
    assert.equal(del2.code, 0, del2.stderr);
    const c2 = await connect();
    assert.equal(await c2.isValidPath(p), false);
    c2.close();
  });

  test('dedicated connection: temp root, info and NAR pipelined', { timeout: 30_000 }, async () => {
    const pl = pool();
    const c = await pl.openDedicated();
    const root = c.addTempRoot(closure.lib);
    const infoP = c.queryPathInfo(closure.lib);
    const info = await infoP;
    await root;
    const got = await hashStream(c.narFromPath(closure.lib, info!.narSize));
    assert.ok(got.sha256.equals(info!.narHash));
    assert.equal(c.closed, true);
  });

  test('connecting to a missing socket gives a clear error', { timeout: 10_000 }, async () => {
    const missing = `${dir}/no-such-socket`;
    await assert.rejects(
      DaemonConnection.connect(missing),
      (e: unknown) => e instanceof DaemonError && e.fatal && e.code === 'ENOENT' && e.message.includes(missing),
    );
    const p = new DaemonPool({ socketPath: missing });
    pools.push(p);
    await assert.rejects(p.isValidPath(closure.top), (e: unknown) => e instanceof DaemonError && e.message.includes(missing));
    const h = await p.health();
    assert.equal(h.ok, false);
    assert.equal(h.version, null);
    assert.ok(h.error?.includes(missing));
  });
});

describe('DaemonPool (real nix-daemon)', () => {
  test('spreads queries, measures latency', { timeout: 60_000 }, async (t) => {
    const p = pool({ size: 4 });
    assert.deepEqual(await p.health(), { ok: true, version: nixVersion, error: null });
    // Warm up.
    await Promise.all(closure.paths.map((x) => p.queryPathInfo(x)));
    const N = 2000;
    let t0 = performance.now();
    for (let i = 0; i < N; i++) assert.ok(await p.queryPathInfo(closure.paths[i % closure.paths.length]));
    const seq = ((performance.now() - t0) * 1000) / N;
    t0 = performance.now();
    const all = await Promise.all(Array.from({ length: 10 * N }, (_, i) => p.queryPathInfo(closure.paths[i % closure.paths.length])));
    const par = ((performance.now() - t0) * 1000) / (10 * N);
    assert.ok(all.every(Boolean));
    t0 = performance.now();
    for (let i = 0; i < N; i++) await p.queryPathFromHashPart(hashPart(closure.paths[i % closure.paths.length]));
    const seqHash = ((performance.now() - t0) * 1000) / N;
    t.diagnostic(
      `pool queryPathInfo: sequential ${seq.toFixed(1)} µs/op, ${10 * N} concurrent ${par.toFixed(1)} µs/op; sequential queryPathFromHashPart ${seqHash.toFixed(1)} µs/op`,
    );
    assert.equal(await p.queryPathFromHashPart('3'.repeat(32)), null);
    assert.equal(await p.isValidPath(closure.top), true);
  });

  test('retries once when a connection dies under a call', { timeout: 30_000 }, async () => {
    const p = pool({ size: 2 });
    await Promise.all([p.isValidPath(closure.top), p.isValidPath(closure.lib)]);
    // Kill the daemon processes serving the pooled connections; the main daemon stays up.
    assert.ok(host.killConnections() >= 2);
    // The pool has not noticed yet (or just has); either way the call must succeed.
    assert.equal(await p.isValidPath(closure.top), true);
    const infos = await Promise.all(closure.paths.map((x) => p.queryPathInfo(x)));
    assert.ok(infos.every(Boolean));
  });

  test('survives the daemon being killed and restarted', { timeout: 60_000 }, async () => {
    const p = pool({ size: 3 });
    await Promise.all(closure.paths.map((x) => p.queryPathInfo(x)));
    host.kill('SIGKILL');
    await sleep(100);
    // While it is down: clean, prompt failures naming the socket.
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      await assert.rejects(p.queryPathInfo(closure.top), (e: unknown) => e instanceof DaemonError && e.fatal && e.message.includes(host.socket));
      assert.ok(performance.now() - t0 < 2000);
    }
    const down = await p.health();
    assert.equal(down.ok, false);
    assert.match(down.error!, /refused|does not exist/);
    await host.start();
    assert.equal((await p.queryPathInfo(closure.top))!.path, closure.top);
    assert.deepEqual(await p.health(), { ok: true, version: nixVersion, error: null });
    // Graceful stop and start too.
    await host.stop();
    await assert.rejects(p.isValidPath(closure.top), DaemonError);
    await host.start();
    assert.equal(await p.isValidPath(closure.top), true);
  });

  test('close() rejects further calls and closes dedicated connections', { timeout: 20_000 }, async () => {
    const p = new DaemonPool({ socketPath: host.socket });
    await p.isValidPath(closure.top);
    const d = await p.openDedicated();
    // May complete or be rejected, depending on timing; either is fine, hanging is not.
    const pendingCall = p.queryPathInfo(closure.top).catch((e: unknown) => e);
    await p.close();
    await pendingCall;
    assert.equal(d.closed, true);
    await assert.rejects(p.isValidPath(closure.top), (e: unknown) => e instanceof DaemonError && /closed/.test(e.message));
    await assert.rejects(p.openDedicated(), DaemonError);
    assert.equal((await p.health()).ok, false);
  });
});
