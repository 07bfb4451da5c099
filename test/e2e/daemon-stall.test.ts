import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import {
  addPath,
  addTestClosure,
  childPids,
  cleanup,
  makeSigningKey,
  makeTempDir,
  nixEnv,
  run,
  startNixHost,
  type NixHost,
  type TestClosure,
} from '../support/nix-host.ts';
import { MAIN, startPeernixProcess, type PeernixProcess } from '../support/peernix-process.ts';
import { waitFor } from '../support/wait.ts';
import { LocalStore } from '../../src/store/local-store.ts';
import { isDaemonStall } from '../../src/store/daemon-pool.ts';
import type { Snapshot } from '../../src/base/api.ts';

// A nix-daemon stopped (SIGSTOP) in the middle of a NAR stalls only what needs it (#26): narinfo hits
// and misses keep being answered, a NAR asked meanwhile fails cleanly, the status and an event say the
// daemon is stalled, and after SIGCONT the NAR in flight completes and the next ones work, judged by
// an unmodified Nix with signatures required. Each lookup gets a bounded wait: an answer within it is
// the evidence; no duration is asserted.

const LOOKUP_BOUND_MS = 3_000;
const BIG = 64 * 1024 * 1024;
const H = (p: string) => p.slice('/nix/store/'.length, '/nix/store/'.length + 32);

/** A GET answered within the bound, or a failure naming the URL. */
async function lookup(url: string): Promise<number> {
  const r = await fetch(url, { signal: AbortSignal.timeout(LOOKUP_BOUND_MS) }).catch((e: Error) => {
    throw new Error(`${url}: no answer within ${LOOKUP_BOUND_MS} ms (${e.message})`);
  });
  await r.arrayBuffer();
  return r.status;
}

/** A NAR read whose reader can hold it still, so the daemon worker streaming it is mid-NAR. */
function openNar(url: string) {
  const hash = createHash('sha256');
  let size = 0;
  let res: import('node:http').IncomingMessage | null = null;
  let firstBytes!: () => void;
  const started = new Promise<void>((r) => (firstBytes = r));
  const done = new Promise<{ status: number; size: number; sha256: string; complete: boolean }>((resolve) => {
    const req = request(url, { agent: false }, (r) => {
      res = r;
      r.on('data', (b: Buffer) => {
        hash.update(b);
        size += b.length;
        firstBytes();
      });
      r.on('end', () => resolve({ status: r.statusCode!, size, sha256: hash.digest('hex'), complete: r.complete }));
      r.on('error', () => resolve({ status: r.statusCode!, size, sha256: '', complete: false }));
      r.on('aborted', () => {});
    });
    req.on('error', () => resolve({ status: 0, size, sha256: '', complete: false }));
    req.end();
  });
  return {
    started,
    done,
    pause: () => res?.pause(),
    resume: () => res?.resume(),
  };
}

function daemonProcesses(host: NixHost): number[] {
  const pid = host.pid();
  assert.ok(pid, 'the daemon runs');
  return [pid, ...childPids(pid)];
}

describe('a stalled nix-daemon stalls only what needs it', { timeout: 300_000 }, () => {
  let dir: string;
  let host: NixHost;
  let closure: TestClosure;
  let big: string;
  let other: string;
  let key: { secretKeyFile: string; publicKey: string };
  let pn: PeernixProcess;
  let stopped: number[] = [];
  const resume = () => {
    for (const pid of stopped) {
      try {
        process.kill(pid, 'SIGCONT');
      } catch {
        // gone
      }
    }
    stopped = [];
  };
  const cli = (args: string[]) =>
    run(process.execPath, [MAIN, ...args, '--listen', new URL(pn.substituterUrl).host, '--state-dir', `${dir}/state`], { timeoutMs: 30_000 });
  const status = async (): Promise<Snapshot> => JSON.parse((await cli(['status', '--json'])).stdout) as Snapshot;

  before(async () => {
    dir = await makeTempDir('pn-dstall');
    host = await startNixHost(`${dir}/host`);
    closure = await addTestClosure(host);
    big = await addPath(host, 'stall-big', { type: 'file', size: BIG, seed: 'stall-big' });
    other = await addPath(host, 'stall-other', { type: 'file', size: 4 * 1024 * 1024, seed: 'stall-other' });
    key = await makeSigningKey(host, dir, 'peernix-stall-1');
    // NARs from the daemon, so the one in flight really waits on the stopped worker.
    pn = await startPeernixProcess([
      '--store',
      host.storeUri,
      '--share-listen',
      '127.0.0.1:0',
      '--listen',
      '127.0.0.1:0',
      '--secret-key-file',
      key.secretKeyFile,
      '--state-dir',
      `${dir}/state`,
      '--no-mdns',
      '--nar-source',
      'daemon',
    ]);
  });

  after(async () => {
    resume();
    await pn?.stop();
    await host?.stop();
    if (dir) await cleanup(dir);
  });

  it('lookups answer while a NAR waits on the stopped daemon; after SIGCONT the NAR completes and Nix substitutes', async (t) => {
    const share = pn.shareUrl!;
    const subst = pn.substituterUrl.replace(/\/$/, '');
    const narinfo = await fetch(`${share}/${H(big)}.narinfo`).then((r) => r.text());
    const narUrl = `${share}/${/^URL: (\S+)$/m.exec(narinfo)![1]}`;
    const otherInfo = await fetch(`${share}/${H(other)}.narinfo`).then((r) => r.text());
    const otherUrl = `${share}/${/^URL: (\S+)$/m.exec(otherInfo)![1]}`;

    const first = openNar(narUrl);
    await first.started;
    first.pause();
    stopped = daemonProcesses(host);
    for (const pid of stopped) process.kill(pid, 'SIGSTOP');
    first.resume();

    // A second NAR needs the daemon too: it may only wait, then fail cleanly.
    const second = openNar(otherUrl);
    let secondEnded = false;
    void second.done.then(() => (secondEnded = true));

    let rounds = 0;
    let roundsAfterSecond = 0;
    while (roundsAfterSecond < 4) {
      const hit = closure.paths[rounds % closure.paths.length];
      const miss = `${String(rounds % 10).repeat(31)}a`;
      assert.equal(await lookup(`${share}/${H(hit)}.narinfo`), 200, 'hit on the share listener');
      assert.equal(await lookup(`${share}/${miss}.narinfo`), 404, 'miss on the share listener');
      assert.equal(await lookup(`${subst}/${H(hit)}.narinfo`), 200, 'hit on the substituter listener');
      rounds++;
      if (secondEnded) roundsAfterSecond++;
      await new Promise((r) => setTimeout(r, 250));
    }
    const secondResult = await second.done;
    assert.notEqual(secondResult.status, 200, 'a NAR that needs the stopped daemon fails rather than passing for whole');
    t.diagnostic(`${rounds} rounds of lookups answered during the stall; the NAR asked meanwhile ended with ${secondResult.status}`);

    const stalled = await waitFor(
      'the status to call the daemon stalled',
      async () => {
        const s = await status();
        return s.status.daemon.stalled ? s : null;
      },
      30_000,
    );
    assert.equal(stalled.status.daemon.ok, false);
    const text = (await cli(['status'])).stdout;
    assert.match(text, /nix-daemon: +stalled/);
    assert.ok(
      stalled.events.some((e) => e.type === 'daemon' && e.state === 'stalled'),
      'an event says the daemon stalled',
    );
    assert.equal(await lookup(`${share}/${H(closure.top)}.narinfo`), 200, 'still answered once the status knows');

    resume();
    const whole = await first.done;
    const expect = await host.dumpHash(big);
    assert.equal(whole.status, 200);
    assert.equal(whole.size, expect.size);
    assert.equal(whole.sha256, expect.sha256.toString('hex'), 'the NAR in flight completed with the right bytes');

    const again = openNar(otherUrl);
    const next = await again.done;
    assert.equal(next.status, 200, 'the next NAR works');
    assert.equal(next.sha256, (await host.dumpHash(other)).sha256.toString('hex'));

    const copied = await run(
      'nix',
      ['copy', '--from', share, '--to', `${dir}/client`, closure.top, '--option', 'trusted-public-keys', key.publicKey, '--option', 'require-sigs', 'true'],
      { baseEnv: nixEnv({ XDG_CACHE_HOME: `${dir}/client-xdg` }), timeoutMs: 120_000 },
    );
    assert.equal(copied.code, 0, copied.stderr);

    const ok = await waitFor(
      'the status to see the daemon again',
      async () => {
        const s = await status();
        return s.status.daemon.ok ? s : null;
      },
      30_000,
    );
    assert.ok(
      ok.events.some((e) => e.type === 'daemon' && e.state === 'ok'),
      'an event says the daemon answers again',
    );
  });
});

// Where the store database can't be read, lookups go through the daemon: on connections of their own,
// with deadlines, never queued behind a stalled one.
describe('lookups through the daemon when its workers stall', { timeout: 120_000 }, () => {
  let dir: string;
  let host: NixHost;
  let closure: TestClosure;
  let store: LocalStore;
  let stopped: number[] = [];
  const resume = () => {
    for (const pid of stopped) {
      try {
        process.kill(pid, 'SIGCONT');
      } catch {
        // gone
      }
    }
    stopped = [];
  };

  before(async () => {
    dir = await makeTempDir('pn-dstall2');
    host = await startNixHost(`${dir}/host`);
    closure = await addTestClosure(host);
    store = new LocalStore({
      location: { socketPath: host.socket, root: host.root },
      useDb: false,
      narSource: 'daemon',
      callTimeoutMs: 2_000,
    });
  });

  after(async () => {
    resume();
    await store?.close();
    await host?.stop();
    if (dir) await cleanup(dir);
  });

  it('a stopped worker costs lookups nothing; a stopped daemon makes them fail promptly, not wait', async () => {
    // Warm the pool, then stop every worker process there is (the pooled lookups' and a NAR's).
    for (const p of closure.paths) assert.equal((await store.pathInfoByHashPart(H(p)))?.path, p);
    const info = (await store.pathInfoByHashPart(H(closure.top)))!;
    const nar = await store.openNar(H(closure.top), info.narHash);
    assert.ok(typeof nar !== 'string');
    const body = nar.stream();
    const pid = host.pid()!;
    stopped = childPids(pid);
    assert.ok(stopped.length >= 2, 'workers for the pool and the NAR');
    for (const w of stopped) process.kill(w, 'SIGSTOP');

    const bounded = <T>(p: Promise<T>) =>
      Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('lookup not answered within 8 s')), 8_000).unref())]);
    // The first lookup on each stalled connection waits for its deadline at most; then the pool has
    // fresh workers, and every lookup after that is answered by them.
    let answered = 0;
    let timedOut = 0;
    for (let round = 0; round < 3; round++) {
      for (const p of closure.paths) {
        try {
          assert.equal((await bounded(store.pathInfoByHashPart(H(p))))?.path, p);
          answered++;
        } catch (e) {
          assert.ok(isDaemonStall(e), `only a stall deadline may fail a lookup: ${(e as Error).message}`);
          timedOut++;
        }
      }
      assert.equal(await bounded(store.pathInfoByHashPart('0'.repeat(32))), null, 'a miss, answered');
    }
    assert.ok(answered >= 2 * closure.paths.length, `answered ${answered}, timed out ${timedOut}`);
    assert.equal((await store.health()).ok, true, 'fresh workers answer the health check');

    // Now the whole daemon: no fresh worker can be had. Lookups fail at their deadline, as a stall.
    stopped.push(pid);
    process.kill(pid, 'SIGSTOP');
    for (const w of childPids(pid)) if (!stopped.includes(w)) stopped.push(w), process.kill(w, 'SIGSTOP');
    for (let i = 0; i < 3; i++) {
      await assert.rejects(bounded(store.pathInfoByHashPart(`${i}${'1'.repeat(31)}`)), (e) => isDaemonStall(e));
    }
    const h = await bounded(store.health());
    assert.equal(h.ok, false);
    assert.equal(h.stalled, true);

    resume();
    const hash = createHash('sha256');
    for await (const b of body) hash.update(b as Buffer);
    assert.ok(hash.digest().equals(info.narHash), 'the NAR in flight completed after SIGCONT');
    nar.release();
    assert.equal((await store.pathInfoByHashPart(H(closure.top)))?.path, closure.top, 'lookups work again');
    assert.equal((await store.health()).ok, true);
  });
});
