// Benchmark for `peernix serve` against nginx serving a flat-file cache of the same closure
// (`nix copy --to file://…?compression=none`), the speed limit for serving the same bytes.
//
//   npm run bench            (needs nginx-light: scripts/install-system-deps.sh bench)
//
// Prints narinfo hit/miss latency (sequential, one keep-alive connection per server, p50/p99), NAR throughput
// with 1 and 16 connections (curl to /dev/null), and Peernix's peak RSS while 16 NARs of 200 MB
// stream at once. Each figure is the median of RUNS runs, measured in one go for both servers.
// Narinfo latency is also measured against bare-node-cache.ts (narinfos from memory, no checks): the
// floor of any Node server on this machine, and against a second `peernix serve` run as a non-root
// user (created for the run if missing, with no nix on PATH) on the same root-owned store and daemon,
// as the desktop app runs. A third `peernix serve` with worker threads on its share port
// (--share-threads, BENCH_SHARE_THREADS or 1; app/share-loops.ts) is measured in the same turns as the
// default (the main thread alone) and nginx: what the threads gain, in one run.
// Each NAR figure also has the server's CPU time per GiB sent (its threads' run time, nginx's workers
// included): on a machine shared with other work the throughput swings with the load, its CPU cost less.
// Less, not little: over loopback the receiving side's kernel work is often done, and counted, in the
// sender's thread, so one connection's figure scatters (nginx's read 0.07 and 0.30 s/GiB in two runs).
// BENCH_BASE_MAIN=path/to/another/build/cli/peernix.js: that build too (say, the commit before a change),
// in the same turns, so a change is judged against its base at the same moments.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { addPath, addTestClosure, cleanup, makeTempDir, run, startNixHost } from '../test/support/nix-host.ts';
import { asUser, ensureUser, releaseUser, type OsUser } from '../test/support/os-user.ts';
import { BUILT_MAIN, startPeernixProcess } from '../test/support/peernix-process.ts';
import { curlThroughput, fetchOk, latencyInTurns, median, peakRssMiB, percentile, row, sequentialLatency } from './lib.ts';

const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const NARINFO_REQUESTS = Number(process.env.BENCH_NARINFO ?? 2000);
const BIG = 200 * 1024 * 1024;
const NIX32 = '0123456789abcdfghijklmnpqrsvwxyz';

async function main() {
  const dir = await makeTempDir('pn-bench');
  let nginx: ChildProcess | null = null;
  let bare: ChildProcess | null = null;
  let pn: Awaited<ReturnType<typeof startPeernixProcess>> | null = null;
  let pnUser: Awaited<ReturnType<typeof startPeernixProcess>> | null = null;
  let pnThreads: Awaited<ReturnType<typeof startPeernixProcess>> | null = null;
  let pnBefore: Awaited<ReturnType<typeof startPeernixProcess>> | null = null;
  let user: OsUser | undefined;
  const host = await startNixHost(`${dir}/host`);
  try {
    process.stderr.write('preparing the closure (200 MB NAR + 300 small files)…\n');
    const closure = await addTestClosure(host, { largeSize: 1024 * 1024 });
    const big = await addPath(host, 'bench-200mb', { type: 'file', size: BIG, seed: 'bench' });
    const paths = [...closure.paths, big];
    const cache = `${dir}/flat`;
    await run('nix', ['copy', '--store', host.root, '--to', `file://${cache}?compression=none`, ...paths], { check: true, timeoutMs: 600_000 });

    const conf = `${dir}/nginx.conf`;
    mkdirSync(`${dir}/nginx`, { recursive: true });
    writeFileSync(
      conf,
      `daemon off; user root; worker_processes auto; pid ${dir}/nginx/pid; error_log ${dir}/nginx/error.log;
events { worker_connections 1024; }
http { access_log off; sendfile on; tcp_nopush on; tcp_nodelay on; keepalive_requests 100000;
  client_body_temp_path ${dir}/nginx; proxy_temp_path ${dir}/nginx; fastcgi_temp_path ${dir}/nginx;
  uwsgi_temp_path ${dir}/nginx; scgi_temp_path ${dir}/nginx;
  server { listen 127.0.0.1:0; root ${cache}; } }\n`,
    );
    const nginxPort = 20000 + Math.floor(Math.random() * 20000);
    writeFileSync(conf, (await import('node:fs')).readFileSync(conf, 'utf8').replace('127.0.0.1:0', `127.0.0.1:${nginxPort}`));
    nginx = spawn('nginx', ['-c', conf, '-p', `${dir}/nginx`], { stdio: 'inherit' });
    const nginxBase = `http://127.0.0.1:${nginxPort}`;
    for (let i = 0; i < 100; i++) {
      const ok = await fetch(`${nginxBase}/nix-cache-info`).then(
        (r) => r.ok,
        () => false,
      );
      if (ok) break;
      await new Promise((r) => setTimeout(r, 100));
    }

    const bareNode = spawn(process.execPath, [new URL('./bare-node-cache.ts', import.meta.url).pathname, cache, String(nginxPort + 1)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    bare = bareNode;
    await new Promise((resolve) => bareNode.stdout!.once('data', resolve));
    const bareBase = `http://127.0.0.1:${nginxPort + 1}`;

    // The same server as a desktop user runs it (see test/e2e/nonroot.test.ts), started first, while
    // no daemon client holds the store database open, as at login.
    for (let i = 0; i < 100 && existsSync(`${host.root}/nix/var/nix/db/db.sqlite-shm`); i++) await new Promise((r) => setTimeout(r, 100));
    const shmAtStart = existsSync(`${host.root}/nix/var/nix/db/db.sqlite-shm`);
    user = await ensureUser('pnbench');
    chmodSync(dir, 0o755);
    mkdirSync(`${dir}/state-user`);
    chownSync(`${dir}/state-user`, user.uid, user.gid);
    mkdirSync(`${dir}/empty-bin`);
    pnUser = await startPeernixProcess(
      ['--store', host.storeUri, '--share-listen', '127.0.0.1:0', '--listen', '127.0.0.1:0', '--state-dir', `${dir}/state-user`, '--no-mdns'],
      {
        main: BUILT_MAIN,
        env: { PATH: `${dir}/empty-bin`, HOME: `${dir}/state-user`, NIX_CONFIG: undefined },
        wrap: asUser(user),
      },
    );
    const userBase = pnUser.shareUrl!;
    pn = await startPeernixProcess(
      ['--store', host.storeUri, '--share-listen', '127.0.0.1:0', '--listen', '127.0.0.1:0', '--state-dir', `${dir}/state`, '--no-mdns'],
      { main: BUILT_MAIN },
    );
    const pnBase = pn.shareUrl!;
    const threads = process.env.BENCH_SHARE_THREADS ?? '1';
    pnThreads = await startPeernixProcess(
      [
        '--store',
        host.storeUri,
        '--share-listen',
        '127.0.0.1:0',
        '--listen',
        '127.0.0.1:0',
        '--state-dir',
        `${dir}/state-threads`,
        '--no-mdns',
        '--share-threads',
        threads,
      ],
      { main: BUILT_MAIN },
    );
    const threadsBase = pnThreads.shareUrl!;
    const baseMain = process.env.BENCH_BASE_MAIN;
    if (baseMain)
      pnBefore = await startPeernixProcess(
        ['--store', host.storeUri, '--share-listen', '127.0.0.1:0', '--listen', '127.0.0.1:0', '--state-dir', `${dir}/state-base`, '--no-mdns'],
        { main: baseMain },
      );
    await new Promise((r) => setTimeout(r, 500));
    await fetch(`${userBase}/${'0'.repeat(32)}.narinfo`); // a request brings the fast path up at the latest
    // Logged when the source changes; nothing logged means the database opened at once.
    const userMetadata =
      /narinfo metadata from the store database/.test(pnUser.logs()) || !/narinfo metadata from the nix-daemon/.test(pnUser.logs())
        ? 'store database'
        : 'nix-daemon';

    const hp = (p: string) => p.slice(11, 43);
    const hitHashes = paths.map(hp);
    const hitUrls = (b: string) => Array.from({ length: NARINFO_REQUESTS }, (_, i) => `${b}/${hitHashes[i % hitHashes.length]}.narinfo`);
    const missUrls = (b: string) =>
      Array.from({ length: NARINFO_REQUESTS }, () => `${b}/${Array.from(randomBytes(32), (x) => NIX32[x & 31]).join('')}.narinfo`);
    const bigInfo = await (await fetchOk(`${pnBase}/${hp(big)}.narinfo`)).text();
    const pnNar = `${pnBase}/${/^URL: (.*)$/m.exec(bigInfo)![1]}`;
    const threadsNar = `${threadsBase}/${/^URL: (.*)$/m.exec(await (await fetchOk(`${threadsBase}/${hp(big)}.narinfo`)).text())![1]}`;
    const nginxInfo = await (await fetchOk(`${nginxBase}/${hp(big)}.narinfo`)).text();
    const nginxNar = `${nginxBase}/${/^URL: (.*)$/m.exec(nginxInfo)![1]}`;
    const beforeNar = pnBefore ? `${pnBefore.shareUrl!}${pnNar.slice(pnBase.length)}` : null;

    // Warm both (page cache, connection pools, JIT).
    await sequentialLatency(hitUrls(pnBase).slice(0, 300), 200);
    await sequentialLatency(hitUrls(nginxBase).slice(0, 300), 200);
    await sequentialLatency(hitUrls(bareBase).slice(0, 300), 200);
    await sequentialLatency(hitUrls(userBase).slice(0, 300), 200);
    await sequentialLatency(hitUrls(threadsBase).slice(0, 300), 200);
    await curlThroughput(pnNar, 1);
    await curlThroughput(threadsNar, 1);
    await curlThroughput(nginxNar, 1);

    const nonRoot: Record<string, { root: number[]; user: number[] }> = {};
    const addNonRoot = (k: string, root: number, usr: number) => {
      nonRoot[k] ??= { root: [], user: [] };
      nonRoot[k].root.push(root);
      nonRoot[k].user.push(usr);
    };
    const one: Record<string, { threads: number[]; one: number[]; nginx: number[]; before: number[] }> = {};
    const addOne = (k: string, threadsFigure: number, oneFigure: number, nginxFigure: number, beforeFigure = NaN) => {
      one[k] ??= { threads: [], one: [], nginx: [], before: [] };
      one[k].threads.push(threadsFigure);
      one[k].one.push(oneFigure);
      one[k].nginx.push(nginxFigure);
      one[k].before.push(beforeFigure);
    };
    const beforeBase = pnBefore?.shareUrl ?? null;
    const nars: [string, number][] = [
      [pnNar, pn.proc.pid!],
      [nginxNar, nginx.pid!],
      [threadsNar, pnThreads.proc.pid!],
      ...(beforeNar && pnBefore ? [[beforeNar, pnBefore.proc.pid!] as [string, number]] : []),
    ];
    const m: Record<string, { ours: number[]; ref: number[]; node: number[] }> = {};
    const add = (k: string, ours: number, ref: number, node = NaN) => {
      m[k] ??= { ours: [], ref: [], node: [] };
      m[k].ours.push(ours);
      m[k].ref.push(ref);
      m[k].node.push(node);
    };
    // Latency: the servers take turns every 100 requests. Throughput: each run starts with a
    // different server. Either way no server is always the one measured at a quiet or busy moment.
    for (let r = 0; r < RUNS; r++) {
      process.stderr.write(`run ${r + 1}/${RUNS}\n`);
      const [ph, nh, bh, uh] = await latencyInTurns([pnBase, nginxBase, bareBase, userBase].map(hitUrls), 200);
      add('narinfo hit p50 (ms)', percentile(ph, 50), percentile(nh, 50), percentile(bh, 50));
      add('narinfo hit p99 (ms)', percentile(ph, 99), percentile(nh, 99), percentile(bh, 99));
      addNonRoot('narinfo hit p50', percentile(ph, 50), percentile(uh, 50));
      const [th, oh, tnh, bfh] = await latencyInTurns([threadsBase, pnBase, nginxBase, ...(beforeBase ? [beforeBase] : [])].map(hitUrls), 200);
      addOne('narinfo hit p50 (ms)', percentile(th, 50), percentile(oh, 50), percentile(tnh, 50), bfh ? percentile(bfh, 50) : NaN);
      const [pm, nm, bm, um] = await latencyInTurns([pnBase, nginxBase, bareBase, userBase].map(missUrls), 404);
      add('narinfo miss p50 (ms)', percentile(pm, 50), percentile(nm, 50), percentile(bm, 50));
      add('narinfo miss p99 (ms)', percentile(pm, 99), percentile(nm, 99), percentile(bm, 99));
      addNonRoot('narinfo miss p50', percentile(pm, 50), percentile(um, 50));
      for (const c of [1, 16]) {
        const label = `NAR 200 MB, ${c} connection${c > 1 ? 's' : ''}`;
        const [p, n, t, bf] = await inTurn(
          r,
          nars.map(
            ([u, pid]) =>
              () =>
                withCpu(pid, () => curlThroughput(u, c)),
          ),
        );
        add(`${label} (MiB/s)`, p.value, n.value);
        addOne(`${label} (MiB/s)`, t.value, p.value, n.value, bf?.value);
        // MiB/s × seconds = MiB sent in the run.
        const perGiB = (x: { value: number; cpu: number; secs: number }) => x.cpu / ((x.value * x.secs) / 1024);
        addOne(`${label} (CPU s/GiB)`, perGiB(t), perGiB(p), perGiB(n), bf ? perGiB(bf) : NaN);
      }
    }
    const rss = peakRssMiB(pn.proc.pid!);
    const rssThreads = peakRssMiB(pnThreads.proc.pid!);

    console.log(`\npeernix serve vs nginx (flat file cache, compression=none) — medians of ${RUNS} runs, ${NARINFO_REQUESTS} narinfo requests per run`);
    console.log(`${'metric'.padEnd(34)} ${'peernix'.padStart(10)} ${'nginx'.padStart(10)}                ${'bare node'.padStart(10)}`);
    for (const [k, v] of Object.entries(m)) {
      const unit = k.includes('MiB/s') ? 'MiB/s' : 'ms';
      const node = median(v.node);
      const nodeCol = Number.isFinite(node) ? `${node.toFixed(3).padStart(10)}  (nginx ratio ${(node / median(v.ref)).toFixed(2)})` : '';
      console.log(`${row(k.replace(/ \((ms|MiB\/s)\)$/, ''), median(v.ours), median(v.ref), unit)} ${nodeCol}`);
    }
    console.log(`${'peernix peak RSS (whole run, incl. 16×200 MB)'.padEnd(34)} ${rss.toFixed(1).padStart(10)} MiB`);
    console.log(
      `\nshare listener with worker threads (--share-threads ${threads}) vs the main thread alone (the default), beside nginx — medians of ${RUNS} runs; load average ${loadavg()
        .map((l) => l.toFixed(1))
        .join(' ')}`,
    );
    const beforeCols = beforeBase ? ` ${'before'.padStart(10)}  before/nginx` : '';
    console.log(`${'metric'.padEnd(34)} ${'threads'.padStart(10)} ${'one loop'.padStart(10)} ${'nginx'.padStart(10)}  threads/nginx  one/nginx${beforeCols}`);
    for (const [k, v] of Object.entries(one)) {
      const [a, b, c, d] = [median(v.threads), median(v.one), median(v.nginx), median(v.before)];
      const before = beforeBase ? ` ${d.toFixed(3).padStart(10)}  ${(d / c).toFixed(2).padStart(11)}×` : '';
      console.log(
        `${k.padEnd(34)} ${a.toFixed(3).padStart(10)} ${b.toFixed(3).padStart(10)} ${c.toFixed(3).padStart(10)}  ${(a / c).toFixed(2).padStart(12)}× ${(b / c).toFixed(2).padStart(9)}×${before}`,
      );
    }
    if (beforeBase) console.log(`(before: ${process.env.BENCH_BASE_MAIN}, one loop)`);
    console.log(
      `${'peak RSS (MiB)'.padEnd(34)} ${rssThreads.toFixed(1).padStart(10)} ${rss.toFixed(1).padStart(10)}${pnBefore ? ` ${''.padStart(10)} ${peakRssMiB(pnBefore.proc.pid!).toFixed(1).padStart(10)}` : ''}`,
    );
    console.log(
      `\npeernix as a non-root user vs as root: user ${user.name} (uid ${user.uid}, no nix on PATH, started while ${shmAtStart ? 'a' : 'no'} daemon client held the database; its metadata from the ${userMetadata}) — medians of ${RUNS} runs`,
    );
    console.log(`${'metric'.padEnd(34)} ${'non-root'.padStart(10)} ${'root'.padStart(10)}`);
    for (const [k, v] of Object.entries(nonRoot)) console.log(`${row(k, median(v.user), median(v.root), 'ms')}`);
  } finally {
    await pn?.stop();
    await pnUser?.stop();
    await pnThreads?.stop();
    await pnBefore?.stop();
    await releaseUser(user);
    nginx?.kill('SIGTERM');
    bare?.kill('SIGTERM');
    await host.stop();
    await cleanup(dir);
  }
}

/**
 * CPU seconds of a process and its direct children (nginx's workers): the scheduler's run time of
 * every thread, in nanoseconds (/proc/…/schedstat), where utime and stime tick at 10 ms, too coarse
 * for one connection's 200 MB.
 */
function cpuSeconds(pid: number): number {
  let ns = 0;
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (Number(d) !== pid && ppid !== pid) continue;
      for (const t of readdirSync(`/proc/${d}/task`)) ns += Number(readFileSync(`/proc/${d}/task/${t}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // gone meanwhile
    }
  }
  return ns / 1e9;
}

/** A measurement with the CPU time `pid` spent during it and its length in seconds. */
async function withCpu(pid: number, measure: () => Promise<number>): Promise<{ value: number; cpu: number; secs: number }> {
  const cpu0 = cpuSeconds(pid);
  const t0 = performance.now();
  const value = await measure();
  return { value, cpu: cpuSeconds(pid) - cpu0, secs: (performance.now() - t0) / 1000 };
}

/** Runs the measurements one after another starting with number `run` (mod n); results in the given order. */
async function inTurn<T>(run: number, measure: (() => Promise<T>)[]): Promise<T[]> {
  const out: T[] = new Array(measure.length);
  for (let i = 0; i < measure.length; i++) {
    const k = (run + i) % measure.length;
    out[k] = await measure[k]();
  }
  return out;
}

await main();
