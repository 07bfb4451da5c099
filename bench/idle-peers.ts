// What idle Peernix peers cost (#26): N Peernix processes, each in its own network namespace on one
// LAN, finding each other over mDNS as on a real network, doing nothing but staying in touch.
//
//   npm run build && node bench/idle-peers.ts      (BENCH_IDLE_SIZES=10,30  BENCH_IDLE_WINDOW_S=60  BENCH_IDLE_ARGS=)
//
// For each size, once every node sees the others up: CPU per node over the window (from
// /proc/<pid>/stat, as % of one core) beside the named reference, an idle bare Node process
// (`setInterval` once a second) in a namespace of the same LAN measured over the same window; and
// flaps, the peer-up/peer-down events every node logged in the window, per node and minute. Target:
// ≤ 0.2 % of a core per node, no flapping, on this machine however busy it is (nproc and the load
// average are printed with the figures).
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import type { Snapshot } from '../src/base/api.ts';
import { createLan, nodeBin, type Lan } from '../test/support/netns.ts';
import { cleanup, makeTempDir, nixEnv, startNixHost } from '../test/support/nix-host.ts';
import { BUILT_MAIN, startPeernixProcess, type PeernixProcess } from '../test/support/peernix-process.ts';
import { median } from './lib.ts';

const SIZES = (process.env.BENCH_IDLE_SIZES ?? '10,30').split(',').map(Number);
const WINDOW_S = Number(process.env.BENCH_IDLE_WINDOW_S ?? 60);
const EXTRA_ARGS = (process.env.BENCH_IDLE_ARGS ?? '').split(' ').filter(Boolean); // e.g. "--no-share", to see what costs what
// Attribution (debug, not figures): BENCH_IDLE_TRACE=<dir> writes each node's wake-ups by source over the
// window (idle-wakeups.cjs) and prints the mean per node; BENCH_IDLE_NODE_OPTIONS (e.g. "--cpu-prof
// --cpu-prof-dir=/tmp/p") goes to the nodes only.
const TRACE_DIR = process.env.BENCH_IDLE_TRACE;
const NODE_OPTIONS = [process.env.BENCH_IDLE_NODE_OPTIONS ?? '', TRACE_DIR ? `--require ${import.meta.dirname}/idle-wakeups.cjs` : '']
  .filter(Boolean)
  .join(' ');
// Idle is the steady state: a new peer's first probes (its RTT floor, probe-schedule.ts) are over within a minute.
const SETTLE_S = 60;
const UP_WITHIN_S = 240;
const TICKS_PER_S = 100; // USER_HZ on Linux

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** utime + stime of a process, in seconds. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / TICKS_PER_S;
}

/** The node's snapshot from its control API (curl: a Node CLI per node and poll would cost more than the nodes). */
async function status(lan: Lan, i: number): Promise<Snapshot | null> {
  const r = await lan.hosts[i].run('curl', ['-sf', '--max-time', '30', 'http://127.0.0.1:9998/peernix/api/snapshot'], { timeoutMs: 60_000 });
  if (r.code !== 0) return null;
  return JSON.parse(r.stdout) as Snapshot;
}

const pct = (x: number) => `${x.toFixed(3)} %`;

async function measure(n: number, storeUri: string, dir: string): Promise<{ rows: string[]; median: number }> {
  const lan = await createLan(n + 1);
  const nodes: PeernixProcess[] = [];
  const stateDirs: string[] = [];
  const reference = lan.hosts[n].exec(nodeBin(), ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
  try {
    process.stderr.write(`${n} nodes: starting…\n`);
    for (let i = 0; i < n; i++) {
      const stateDir = `${dir}/n${n}-${i}`;
      stateDirs.push(stateDir);
      nodes.push(
        await startPeernixProcess(
          [
            '--store',
            storeUri,
            '--share-listen',
            '0.0.0.0:9999',
            '--listen',
            '127.0.0.1:9998',
            '--state-dir',
            stateDir,
            '--name',
            `idle-${n}-${i}`,
            ...EXTRA_ARGS,
          ],
          {
            main: BUILT_MAIN,
            timeoutMs: 60_000,
            env: nixEnv({
              XDG_CACHE_HOME: `${stateDir}/xdg`,
              ...(NODE_OPTIONS ? { NODE_OPTIONS } : {}),
              ...(TRACE_DIR ? { PEERNIX_WAKEUP_TRACE: TRACE_DIR } : {}),
            }),
            wrap: (cmd, args) => ['ip', ['netns', 'exec', lan.hosts[i].ns, cmd, ...args]],
          },
        ),
      );
    }
    // `ip netns exec` execs in place: the pid is Peernix's own.
    for (const p of nodes) if (!readFileSync(`/proc/${p.proc.pid}/cmdline`, 'utf8').includes(BUILT_MAIN)) throw new Error(`pid ${p.proc.pid} is not Peernix`);

    const upStart = performance.now();
    let leastUp = 0;
    while (performance.now() - upStart < UP_WITHIN_S * 1000) {
      const views = await Promise.all(stateDirs.map((_, i) => status(lan, i)));
      leastUp = Math.min(...views.map((v) => (v ? v.peers.filter((p) => p.state === 'up').length : 0)));
      if (leastUp >= n - 1) break;
      await sleep(2000);
    }
    const upAfter = (performance.now() - upStart) / 1000;
    process.stderr.write(
      `${n} nodes: every node sees ≥ ${leastUp} of ${n - 1} up after ${upAfter.toFixed(0)} s; settling ${SETTLE_S} s, measuring ${WINDOW_S} s…\n`,
    );
    await sleep(SETTLE_S * 1000);

    const pids = nodes.map((p) => p.proc.pid!);
    process.stderr.write(`${n} nodes: pids ${pids.join(' ')}\n`);
    if (TRACE_DIR) for (const pid of pids) process.kill(pid, 'SIGUSR2');
    const before = pids.map(cpuSeconds);
    const refBefore = cpuSeconds(reference.pid!);
    const load0 = loadavg()[0];
    const wall0 = Date.now(); // event times are epoch ms
    const t0 = performance.now();
    await sleep(WINDOW_S * 1000);
    const secs = (performance.now() - t0) / 1000;
    const after = pids.map(cpuSeconds);
    const refAfter = cpuSeconds(reference.pid!);
    if (TRACE_DIR) {
      for (const pid of pids) process.kill(pid, 'SIGUSR2');
      await sleep(2000);
      printWakeups(TRACE_DIR, pids);
    }
    const wall1 = Date.now();
    const load1 = loadavg()[0];

    const cpu = after.map((a, i) => ((a - before[i]) / secs) * 100).sort((a, b) => a - b);
    const ref = ((refAfter - refBefore) / secs) * 100;
    const views = await Promise.all(stateDirs.map((_, i) => status(lan, i)));
    const flaps = views
      .map((v) => (v ? v.events.filter((e) => (e.type === 'peer-up' || e.type === 'peer-down') && e.time >= wall0 && e.time <= wall1).length : NaN))
      .map((c) => c / (secs / 60))
      .sort((a, b) => a - b);
    const upAtEnd = Math.min(...views.map((v) => (v ? v.peers.filter((p) => p.state === 'up').length : 0)));
    const unread = views.filter((v) => !v).length;
    const rows = [
      `| ${n} idle peers | CPU per node, median / max | ${pct(median(cpu))} / ${pct(cpu[cpu.length - 1])} | idle bare Node: ${pct(ref)} |`,
      `| ${n} idle peers | flaps per node and minute, median / max (all nodes: total in ${secs.toFixed(0)} s) | ${median(flaps).toFixed(2)} / ${flaps[flaps.length - 1].toFixed(2)} (${flaps.reduce((a, b) => a + b, 0) * (secs / 60)}) | 0 |`,
      `| ${n} idle peers | least peers seen up by a node, at the start / end of the window | ${leastUp} / ${upAtEnd} of ${n - 1}${unread ? ` (${unread} status unread)` : ''} | ${n - 1} |`,
      `| ${n} idle peers | load average (1 min) at the window's start / end, ${cpuCount()} cores | ${load0.toFixed(1)} / ${load1.toFixed(1)} | |`,
    ];
    return { rows, median: median(cpu) };
  } finally {
    reference.kill('SIGKILL');
    await Promise.all(nodes.map((p) => p.stop().catch(() => null)));
    await lan.teardown();
  }
}

/** Each node's wake-ups per second by source (idle-wakeups.cjs), summed by source over the nodes, as a mean per node. */
function printWakeups(dir: string, pids: number[]): void {
  const total = new Map<string, number>();
  let read = 0;
  for (const pid of pids) {
    try {
      const { rows } = JSON.parse(readFileSync(`${dir}/${pid}.json`, 'utf8')) as { rows: { perSecond: number; site: string }[] };
      for (const r of rows) total.set(r.site, (total.get(r.site) ?? 0) + r.perSecond);
      read++;
    } catch {}
  }
  const rows = [...total].sort((a, b) => b[1] - a[1]);
  const all = rows.reduce((a, [, v]) => a + v, 0) / Math.max(1, read);
  process.stderr.write(`wake-ups per node and second (mean of ${read} nodes): ${all.toFixed(2)}\n`);
  for (const [site, v] of rows.slice(0, 40)) process.stderr.write(`  ${(v / Math.max(1, read)).toFixed(3)}  ${site}\n`);
}

function cpuCount(): number {
  return readFileSync('/proc/cpuinfo', 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('processor')).length;
}

async function main() {
  const dir = await makeTempDir('pn-bidle');
  // One store for every node (their daemon socket is reachable from any namespace): idle cost is
  // Peernix's, and 30 nix-daemons would only add their own.
  const store = await startNixHost(`${dir}/store`);
  const rows: string[] = ['| setting | figure | Peernix | reference |', '|---|---|---|---|'];
  const medians: number[] = [];
  try {
    for (const n of SIZES) {
      const got = await measure(n, store.storeUri, dir);
      rows.push(...got.rows);
      medians.push(got.median);
      process.stderr.write(`${got.rows.join('\n')}\n`);
    }
    // What each further peer costs a node: the slope of the median between consecutive sizes.
    for (let i = 1; i < SIZES.length; i++) {
      const slope = (medians[i] - medians[i - 1]) / (SIZES[i] - SIZES[i - 1]);
      rows.push(`| ${SIZES[i - 1]} → ${SIZES[i]} idle peers | CPU per node for each further peer (slope of the medians) | ${pct(slope)} | |`);
    }
  } finally {
    await store.stop();
    await cleanup(dir);
  }
  process.stdout.write(`${rows.join('\n')}\n`);
}

// A stray child must not outlive the bench.
process.on('SIGINT', () => process.exit(130));
await main();
