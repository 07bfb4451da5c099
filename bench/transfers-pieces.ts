// What a piece costs the holder that serves it: the Python library's NAR (about 53 MB) from one
// holder B, unshaped, fetched with curl from A as one whole NAR and as 4 MiB Range pieces one after
// another (what one lane of a fetch from several holders at once asks). Figures per run: wall time
// (curl started in A's namespace for each piece: on a loaded machine mostly process start-up), B's
// CPU and its nix-daemon's CPU per MB, and for pieces the median time to the first byte and curl's
// own time per piece.
//
//   node bench/transfers-pieces.ts          (root: network namespaces; npm run build first)
//   BENCH_RUNS=n  BENCH_PIECE_MIB=n  BENCH_WAYS=whole,pieces  BENCH_PROFILE=dir (B runs with --cpu-prof into dir)
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { createLan, type Lan } from '../test/support/netns.ts';
import { childPids, cleanup, makeSigningKey, makeTempDir, type NixHost, startNixHost } from '../test/support/nix-host.ts';
import { BUILT_MAIN, startPeernixProcess, type PeernixProcess } from '../test/support/peernix-process.ts';
import { median } from './lib.ts';
import { cpuSeconds, holderArgs } from './transfers-one-nar.ts';

const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const PIECE = Number(process.env.BENCH_PIECE_MIB ?? 4) * 1024 * 1024;
const MB = 1e6;
// Which ways run (both by default): whole, pieces.
const WAYS = (process.env.BENCH_WAYS ?? 'whole,pieces').split(',');

/** CPU seconds of a nix-daemon: its own, its reaped per-connection children's, and those running now. */
function daemonCpu(host: NixHost): number {
  const pid = host.pid();
  if (!pid) return 0;
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  let n = (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / 100; // utime stime cutime cstime
  for (const c of childPids(pid)) {
    try {
      n += cpuSeconds(c);
    } catch {
      // reaped meanwhile: its time is in the parent's cutime by the next reading
    }
  }
  return n;
}

async function main(): Promise<void> {
  const dir = await makeTempDir('pn-bpieces');
  let host: NixHost | null = null;
  let lan: Lan | null = null;
  let holder: PeernixProcess | null = null;
  const load0 = loadavg()[0];
  try {
    host = await startNixHost(`${dir}/b`);
    const key = await makeSigningKey(host, `${dir}/b`, 'bench-pieces-1');
    const py = (await host.nixStore(['--add', '/usr/lib/python3.11'], { check: true })).stdout.trim();
    lan = await createLan(2);
    const [A, B] = lan.hosts;
    const profile = process.env.BENCH_PROFILE;
    holder = await startPeernixProcess(holderArgs(host.storeUri, key.secretKeyFile, `${dir}/b-state`), {
      main: BUILT_MAIN,
      wrap: (cmd, args) => ['ip', ['netns', 'exec', B.ns, cmd, ...(profile ? ['--cpu-prof', `--cpu-prof-dir=${profile}`] : []), ...args]],
    });
    const base = `http://${B.address}:9999`;
    const info = await A.run('curl', ['-sf', `${base}/${py.slice(11, 43)}.narinfo`]);
    if (info.code !== 0) throw new Error(`narinfo from B: curl exit ${info.code}`);
    const url = `${base}/${/^URL: (.*)$/m.exec(info.stdout)![1]}`;
    const size = Number(/^NarSize: (\d+)$/m.exec(info.stdout)![1]);
    const get = async (range: [number, number] | null): Promise<{ total: number; first: number }> => {
      const r = await A.run(
        'curl',
        ['-s', '-o', '/dev/null', '-w', '%{http_code} %{time_total} %{time_starttransfer}', ...(range ? ['-r', `${range[0]}-${range[1]}`] : []), url],
        {
          timeoutMs: 120_000,
        },
      );
      const [status, total, first] = r.stdout.trim().split(' ');
      if (status !== (range ? '206' : '200')) throw new Error(`NAR from B: HTTP ${status} (curl exit ${r.code})`);
      return { total: Number(total), first: Number(first) };
    };
    const figs: Record<string, number[]> = {};
    const add = (k: string, v: number) => (figs[k] ??= []).push(v);
    await get(null); // the page cache and B's first-request work out of the way
    for (let r = 0; r < RUNS; r++) {
      for (const way of (r % 2 ? ['pieces', 'whole'] : ['whole', 'pieces']).filter((w) => WAYS.includes(w))) {
        const b0 = cpuSeconds(holder.proc.pid!);
        const d0 = daemonCpu(host);
        const t0 = performance.now();
        let n = 0;
        if (way === 'whole') await get(null);
        else
          for (let at = 0; at < size; at += PIECE, n++) {
            const got = await get([at, Math.min(size, at + PIECE) - 1]);
            add('pieces: time to first byte (ms)', got.first * 1000);
            add('pieces: curl time per piece (ms)', got.total * 1000);
          }
        add(`${way}: wall (s)`, (performance.now() - t0) / 1000);
        add(`${way}: B's CPU (ms/MB)`, ((cpuSeconds(holder.proc.pid!) - b0) * 1000) / (size / MB));
        add(`${way}: nix-daemon's CPU (ms/MB)`, ((daemonCpu(host) - d0) * 1000) / (size / MB));
        if (n) add('pieces: per NAR', n);
      }
    }
    console.log(
      `one holder, unshaped, ${(size / MB).toFixed(1)} MB NAR, pieces of ${PIECE / 1024 / 1024} MiB; medians of ${RUNS}; load ${load0.toFixed(1)} → ${loadavg()[0].toFixed(1)}`,
    );
    for (const [k, v] of Object.entries(figs)) console.log(`${k.padEnd(40)} ${median(v).toFixed(2)}`);
  } finally {
    await holder?.stop();
    await lan?.teardown();
    await host?.stop();
    await cleanup(dir);
  }
}

await main();
