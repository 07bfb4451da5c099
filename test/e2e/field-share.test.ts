import { format } from 'node:util';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { addPath, childPids, cleanup, makeTempDir, run, startNixHost, type NixHost } from '../support/nix-host.ts';
import { get, narinfoField } from '../support/http.ts';
import { BUILT_MAIN, PROJECT_ROOT, startPeernixProcess, type PeernixProcess } from '../support/peernix-process.ts';
import { waitFor } from '../support/wait.ts';
import { DEFAULT_LIMITS } from '../../src/cache/limits.ts';

// The field issue's share-listener items, against `peernix serve` on a real nix-daemon: a flood of
// stalled clients, foreign Host names on the substituter, client aborts in the log, memory under 100
// concurrent downloads, and ranges that start near the end of a big NAR.

const H = (p: string) => p.slice('/nix/store/'.length, '/nix/store/'.length + 32);
const MB = 1024 * 1024;
// Short enough for a test, long enough that a busy 2-core machine never starves a reading client that long.
const STALL_MS = 8000;
const QUEUE_WAIT_MS = 2000;

const rssMb = (pid: number) => Number(/^VmRSS:\s+(\d+) kB$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
const fdCount = (pid: number) => fs.readdirSync(`/proc/${pid}/fd`).length;
const rchar = (pid: number) => Number(/^rchar: (\d+)$/m.exec(fs.readFileSync(`/proc/${pid}/io`, 'utf8'))![1]);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` every `ms` until stopped; returns the largest value seen. */
function sampleMax(fn: () => number, ms = 100): { stop(): number } {
  let max = fn();
  const t = setInterval(() => {
    try {
      max = Math.max(max, fn());
    } catch {
      // the process may be gone at the very end
    }
  }, ms);
  t.unref(); // a failed test must not keep the runner alive
  return {
    stop() {
      clearInterval(t);
      return max;
    },
  };
}

/** A client that sends one GET, reads the response headers, and then never reads again. */
const openSockets = new Set<Socket>();
function stalledClient(port: number, localAddress: string, path: string): Promise<{ status: number; afterMs: number; socket: Socket; why?: string }> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const s = connect({ host: '127.0.0.1', port, localAddress });
    openSockets.add(s);
    let head = '';
    let error = '';
    s.setNoDelay(true);
    s.on('error', (e) => (error = e.message));
    s.on('data', (c: Buffer) => {
      head += c.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      s.pause();
      s.removeAllListeners('data');
      resolve({ status: Number(head.slice(9, 12)), afterMs: Date.now() - t0, socket: s });
    });
    s.on('close', () => {
      openSockets.delete(s);
      resolve({ status: 0, afterMs: Date.now() - t0, socket: s, why: `closed before headers after ${Date.now() - t0} ms: ${error || 'by the server'}` });
    });
    s.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
  });
}

/** Downloads a URL as fast as it comes, keeping only its digest. */
function download(
  url: string,
  headers: Record<string, string> = {},
  localAddress?: string,
): Promise<{ status: number; bytes: number; sha256: string; complete: boolean }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false, headers, localAddress }, (res) => {
      const h = createHash('sha256');
      let bytes = 0;
      res.on('data', (c: Buffer) => {
        bytes += c.length;
        h.update(c);
      });
      const done = () => resolve({ status: res.statusCode!, bytes, sha256: h.digest('hex'), complete: res.complete });
      res.on('end', done);
      res.on('error', done);
      res.on('aborted', () => {});
    });
    req.on('error', reject);
    req.setTimeout(120_000, () => req.destroy(new Error(`timeout: ${url}`)));
    req.end();
  });
}

/** nix-store --dump of a store path's files, whole (the test paths are at most 50 MB). */
function nixDump(host: NixHost, storePath: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn('nix-store', ['--dump', host.root + storePath], { stdio: ['ignore', 'pipe', 'inherit'], env: host.env });
    const parts: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => parts.push(c));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(Buffer.concat(parts)) : reject(new Error(`nix-store --dump exited ${code}`))));
  });
}

function logLines(pn: PeernixProcess, from: number, level: string): string[] {
  return pn
    .logs()
    .slice(from)
    .split('\n')
    .filter((l) => l.split(/\s+/)[1] === level);
}

describe('field: the share listener holds up on a real LAN', { timeout: 900_000 }, () => {
  let dir: string;
  let host: NixHost;
  let pn: PeernixProcess;
  let share: string;
  let sharePort: number;
  let subst: string;
  let stallTarget: string;
  let memTarget: string;
  let tree: string;
  const narUrl: Record<string, string> = {};

  before(async () => {
    dir = await makeTempDir('pn-field');
    host = await startNixHost(`${dir}/host`);
    stallTarget = await addPath(host, 'stall-target', { type: 'file', size: 50 * MB, seed: 'stall' });
    memTarget = await addPath(host, 'mem-target', { type: 'file', size: 50 * MB, seed: 'mem' });
    tree = await addPath(host, 'tree', {
      type: 'directory',
      entries: {
        a: { type: 'file', contents: 'hello\n' },
        big: { type: 'file', size: 3 * MB + 5, seed: 'big' },
        bin: {
          type: 'directory',
          entries: { run: { type: 'file', contents: '#!/bin/sh\n', executable: true }, mid: { type: 'file', size: 300_001, seed: 'mid' } },
        },
        link: { type: 'symlink', target: 'a' },
        z: { type: 'file', size: 1_000_003, seed: 'z' },
      },
    });
    // As users run it: bin/peernix (which sets the malloc threshold) on the freshly built bundle, since
    // its memory is what the figures are about.
    const build = await run(process.execPath, ['scripts/build.ts'], { cwd: PROJECT_ROOT });
    assert.equal(build.code, 0, build.stderr);
    pn = await startPeernixProcess(
      [
        '--store',
        host.storeUri,
        '--share-listen',
        '127.0.0.1:0',
        '--listen',
        '127.0.0.1:0',
        '--state-dir',
        `${dir}/state`,
        '--no-mdns',
        '--log-level',
        'debug',
      ],
      {
        env: { PEERNIX_LIMITS: `stallMs=${STALL_MS},narQueueWaitMs=${QUEUE_WAIT_MS}`, MALLOC_MMAP_THRESHOLD_: undefined },
        main: BUILT_MAIN,
        wrap: (_node, args) => [`${PROJECT_ROOT}bin/peernix`, args.slice(1)],
      },
    );
    share = pn.shareUrl!;
    sharePort = Number(new URL(share).port);
    subst = pn.substituterUrl;
    for (const p of [stallTarget, memTarget, tree]) {
      const r = await get(`${share}/${H(p)}.narinfo`);
      assert.equal(r.status, 200);
      narUrl[p] = `/${narinfoField(r.body.toString(), 'URL')}`;
    }
  });

  after(async () => {
    for (const s of openSockets) s.destroy();
    await pn?.stop();
    await host?.stop();
    if (dir) await cleanup(dir);
  });

  it('(b) the substituter refuses a foreign Host on every route', async (t) => {
    const port = new URL(subst).port;
    const routes = ['/nix-cache-info', `/${H(tree)}.narinfo`, narUrl[tree], '/nothing-here'];
    const statuses: string[] = [];
    for (const route of routes) {
      for (const hostHeader of [`evil.example:${port}`, `rebound.attacker.test:${port}`, `127.0.0.1:${Number(port) + 1}`]) {
        const r = await get(`${subst}${route}`, { Host: hostHeader });
        statuses.push(`${route} Host ${hostHeader}: ${r.status}`);
        assert.equal(r.status, 403, `${route} with Host ${hostHeader}`);
      }
      for (const hostHeader of [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`]) {
        const r = await get(`${subst}${route}`, { Host: hostHeader });
        statuses.push(`${route} Host ${hostHeader}: ${r.status}`);
        assert.equal(r.status, route === '/nothing-here' ? 404 : 200, `${route} with Host ${hostHeader}`);
      }
    }
    t.diagnostic(format(statuses.join('\n')));
  });

  it('(e) range starts give exactly the matching slice of nix-store --dump and skip file contents unread', async (t) => {
    const pid = pn.proc.pid!;
    let checked = 0;
    for (const [p, base] of [
      [tree, share],
      [tree, subst],
      [memTarget, share],
    ] as const) {
      const whole = await nixDump(host, p);
      const starts = [whole.length - 1, 0, 1, 7, 8, 9, whole.length - 8];
      for (let i = 0; i < 12; i++) starts.push(Math.floor(Math.random() * whole.length));
      for (const start of starts) {
        const r = await get(`${base}${narUrl[p]}`, { Range: `bytes=${start}-` });
        assert.equal(r.status, start === 0 ? 200 : 206, `from ${start}`);
        assert.ok(r.body.equals(whole.subarray(start)), `${p} from ${start} via ${base}`);
        checked++;
      }
      const last = await get(`${base}${narUrl[p]}`, { Range: 'bytes=-1' });
      assert.equal(last.status, 206);
      assert.equal(last.headers['content-range'], `bytes ${whole.length - 1}-${whole.length - 1}/${whole.length}`);
      assert.ok(last.body.equals(whole.subarray(-1)));
    }
    // The last byte of a 50 MB NAR: what the process reads (read(2)/pread(2) bytes, page cache or not).
    const readFor = async (range: string) => {
      const before = rchar(pid);
      const r = await get(`${share}${narUrl[memTarget]}`, { Range: range });
      assert.equal(r.status, 206);
      return rchar(pid) - before;
    };
    const lastByte = await readFor('bytes=-1');
    const lastMb = await readFor(`bytes=-${MB}`);
    t.diagnostic(`${checked} range starts byte-identical; bytes read for "bytes=-1" of a 50 MB NAR: ${lastByte}; for its last MiB: ${lastMb}`);
    assert.ok(lastByte < 256 * 1024, `read ${lastByte} bytes to send one`);
    assert.ok(lastMb < 2 * MB, `read ${lastMb} bytes to send 1 MiB`);
  });

  it('(c) client aborts are no warnings', async (t) => {
    const from = pn.logs().length;
    const abortOne = () =>
      new Promise<void>((resolve, reject) => {
        const req = request(`${share}${narUrl[memTarget]}`, { agent: false }, (res) => {
          res.once('data', () => {
            req.destroy();
            resolve();
          });
        });
        req.on('error', () => {});
        req.on('close', () => resolve());
        req.setTimeout(30_000, () => reject(new Error('no data')));
        req.end();
      });
    for (let batch = 0; batch < 15; batch++) await Promise.all(Array.from({ length: 10 }, abortOne));
    // Every cut transfer is logged once, at whatever level the server thinks it deserves.
    const cuts = () => ['debug', 'info', 'warn', 'error'].flatMap((lvl) => logLines(pn, from, lvl)).filter((l) => /cut after \d+ bytes/.test(l)).length;
    await waitFor('every abort noticed', async () => cuts() >= 150, 20_000).catch(() => {});
    await sleep(500);
    const warns = logLines(pn, from, 'warn');
    const debugAborts = logLines(pn, from, 'debug').filter((l) => /cut after \d+ bytes: the client left/.test(l)).length;
    t.diagnostic(`150 aborts: ${warns.length} warn lines, ${logLines(pn, from, 'error').length} error lines, ${debugAborts} debug "client left" lines`);
    assert.deepEqual(warns, []);
    assert.equal(debugAborts, 150);
  });

  it('(d) RSS stays under 200 MB with 100 concurrent 50 MB downloads and goes back down after', async (t) => {
    const pid = pn.proc.pid!;
    await sleep(1000);
    const idle = rssMb(pid);
    t.diagnostic(`idle RSS ${idle.toFixed(0)} MB`);
    const figures: string[] = [];
    let worstPeak = 0;
    let lastAfter = 0;
    for (let round = 1; round <= 3; round++) {
      const rss = sampleMax(() => rssMb(pid), 50);
      const t0 = Date.now();
      // Four client addresses, 25 downloads each: four Nix clients at full tilt.
      const logFrom = pn.logs().length;
      // Every download settles before the round is judged: one that failed must not leave 99 others
      // still holding the server's streams for the next test.
      const results = await Promise.all(
        Array.from({ length: 100 }, (_, i) =>
          download(`${share}${narUrl[memTarget]}`, {}, `127.0.0.${1 + (i % 4)}`).catch((e: Error) => ({
            status: 0,
            bytes: 0,
            sha256: '',
            complete: false,
            why: e.message,
          })),
        ),
      );
      const ms = Date.now() - t0;
      const peak = rss.stop();
      await sleep(3000);
      lastAfter = rssMb(pid);
      worstPeak = Math.max(worstPeak, peak);
      const ok = results.filter((r) => r.status === 200 && r.complete && r.bytes > 50 * MB).length;
      const cut = results.filter((r) => r.status === 200 && !r.complete);
      if (cut.length)
        t.diagnostic(
          // Which cut fired, by the server's own account: the wire-stall watch, Node's idle timeout, or the source.
          `cut: ${cut.map((r) => r.bytes).join(', ')} bytes; log: ${logLines(pn, logFrom, 'warn')
            .concat(logLines(pn, logFrom, 'debug').filter((l) => /: cut, |cut after/.test(l)))
            .slice(-10)
            .join(' | ')}`,
        );
      const busy = results.filter((r) => r.status === 503).length;
      const failed = results.filter((r) => r.status === 0);
      if (failed.length)
        t.diagnostic(
          `${failed.length} downloads failed before an answer: ${[...new Set(failed.map((r) => ('why' in r ? r.why : '')))].join('; ')}; server log: ${logLines(
            pn,
            logFrom,
            'warn',
          )
            .concat(
              logLines(pn, logFrom, 'error'),
              logLines(pn, logFrom, 'debug').filter((l) => !/cut after \d+ bytes: the client left/.test(l)),
            )
            .slice(-15)
            .join(' | ')}`,
        );
      figures.push(`round ${round}: ${ok}×200 complete, ${busy}×503 in ${ms} ms, peak RSS ${peak.toFixed(0)} MB, 3 s later ${lastAfter.toFixed(0)} MB`);
      t.diagnostic(format(figures.at(-1)));
      assert.equal(ok + busy, 100);
      assert.ok(ok >= DEFAULT_LIMITS.narStreams, `${ok} complete`);
    }
    assert.ok(worstPeak < 200, `peak RSS ${worstPeak} MB`);
    assert.ok(lastAfter < idle + 0.5 * (worstPeak - idle) + 10, `RSS ${lastAfter} MB after, idle ${idle} MB, peak ${worstPeak} MB`);
  });

  it('(a) 300 stalled clients: bounded daemons, fds and RSS; 503 after the queue; stalls cut and everything freed', async (t) => {
    const pid = pn.proc.pid!;
    const daemonPid = host.pid()!;
    const peakSeen = { daemons: 0, fds: 0, rss: 0 };
    const idleDaemons = childPids(daemonPid).length;
    const idleFds = fdCount(pid);
    const daemons = sampleMax(() => childPids(daemonPid).length);
    const fds = sampleMax(() => fdCount(pid));
    const rss = sampleMax(() => rssMb(pid));
    const logFrom = pn.logs().length;
    const t0 = Date.now();
    // Ten client addresses, 30 clients each: the overall cap binds, not the per-address one.
    const clients = await Promise.all(Array.from({ length: 300 }, (_, i) => stalledClient(sharePort, `127.0.0.${1 + (i % 10)}`, narUrl[stallTarget])));
    const headersIn = Date.now() - t0;
    const ok = clients.filter((c) => c.status === 200);
    const busy = clients.filter((c) => c.status === 503);
    // Turned away after the queue wait, by the server's own account (its log), not by a stopwatch here.
    const busyLate = logLines(pn, logFrom, 'debug').filter((l) => /all NAR streams busy after waiting in the queue, 503/.test(l));
    // The stalled transfers are cut after STALL_MS without a byte taken; their daemon processes go.
    let freedAfter = -1;
    try {
      await waitFor('the stalled transfers cut and their daemon connections closed', async () => childPids(daemonPid).length <= idleDaemons, STALL_MS + 20_000);
      freedAfter = Date.now() - t0;
    } finally {
      const peak = { daemons: daemons.stop(), fds: fds.stop(), rss: rss.stop() };
      t.diagnostic(
        format(
          `300 stalled clients: ${ok.length}×200, ${busy.length}×503 (${busyLate.length} after waiting in the queue), all headers in ${headersIn} ms; ` +
            `peak nix-daemon children ${peak.daemons} (idle ${idleDaemons}), peak fds ${peak.fds} (idle ${idleFds}), peak RSS ${peak.rss.toFixed(0)} MB; ` +
            `daemon children now ${childPids(daemonPid).length}, freed after ${freedAfter} ms`,
        ),
      );
      Object.assign(peakSeen, peak);
      for (const c of clients) c.socket.destroy();
    }
    const peak = peakSeen;
    assert.deepEqual(
      clients.filter((c) => c.status === 0).map((c) => c.why),
      [],
    );
    assert.equal(ok.length + busy.length, 300);
    const { narStreams } = DEFAULT_LIMITS;
    assert.equal(ok.length, narStreams, 'streams at once');
    assert.equal(busy.length, 300 - narStreams, 'turned away');
    // Some waited in the queue and were turned away after its wait; others found it full and were
    // turned away at once. (More than narQueue may wait in all: the bound is on those waiting at
    // once, and clients arriving over seconds on a loaded machine take the places of those that left.)
    assert.ok(busyLate.length > 0, 'some turned away after the queue wait');
    assert.ok(busy.length - busyLate.length > 0, `${busy.length - busyLate.length} turned away at once: the queue was full`);
    assert.ok(peak.daemons <= narStreams + idleDaemons + 4, `peak ${peak.daemons} nix-daemon children`);
    assert.ok(peak.fds < 600, `peak ${peak.fds} fds`);
    assert.ok(peak.rss < 300, `peak RSS ${peak.rss} MB`);
    // No temp root is left: the path can be deleted (it is referenced by nothing).
    const del = await host.nixStore(['--delete', stallTarget]);
    t.diagnostic(`nix-store --delete after the cut: exit ${del.code}`);
    assert.equal(del.code, 0, del.stderr);
    await waitFor('fds back near idle', async () => fdCount(pid) <= idleFds + 10, 20_000);

    // A normal Nix opens at most 25 connections at once: it never sees a 503.
    const want = createHash('sha256')
      .update(await nixDump(host, memTarget))
      .digest('hex');
    const normal = await Promise.all(Array.from({ length: 25 }, () => download(`${share}${narUrl[memTarget]}`)));
    const statuses = normal.map((r) => r.status);
    t.diagnostic(`25 concurrent downloads from one address: ${statuses.filter((s) => s === 200).length}×200, ${statuses.filter((s) => s === 503).length}×503`);
    assert.deepEqual(statuses, Array(25).fill(200));
    for (const r of normal) assert.ok(r.complete && r.sha256 === want);
  });
});
