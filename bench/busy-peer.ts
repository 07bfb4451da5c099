// Benchmark: a NAR burst from a slow peer on an idle and on a busy machine (issue #27).
//
//   node bench/busy-peer.ts        (root: network namespaces, tc)
//
// Two hosts in network namespaces with real Nix and Peernix; B's link shaped to 20 Mbit/s (tbf). A
// fetches the narinfos of 40 one-MiB paths only B holds, then all 40 NARs at once through its
// substituter, while asking for misses one after another; once with the machine idle, once beside two
// CPU busy-loops. Then A is stopped with SIGTERM, idle. Prints side by side: NARs served complete
// (every status checked: 200 and the full NarSize), the misses' p50 and max meanwhile (each checked to
// be a 404), the whole burst's time beside the link's own floor (40 MiB at 20 Mbit/s), and the idle
// SIGTERM time. `--runs N` (default 3) alternates idle and busy rounds and prints medians, with every
// run's NAR count. Target: 40/40 in every run of both columns.
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { encodeNix32 } from '../src/nix/nix32.ts';
import { startCpuHogs } from '../test/support/cpu-hogs.ts';
import { importPaths } from '../test/support/nix-host.ts';
import { createPnLan, hashPart as H, SUBST, upPeers, waitFor, type PnHost, type PnLan } from '../test/support/peernix-lan.ts';
import { percentile } from './lib.ts';

const MiB = 1024 * 1024;
const N = 40;

interface Column {
  served: number;
  statuses: Record<string, number>;
  missP50: number;
  missMax: number;
  missesNot404: number;
  sigtermMs: number;
  burstMs: number;
}

const RUNS = process.argv.includes('--runs') ? Number(process.argv[process.argv.indexOf('--runs') + 1]) : 3;
/** What the shaped link alone needs for the burst's NAR bytes: the floor the burst is measured against. */
const LINK_FLOOR_MS = ((N * MiB * 8) / 20e6) * 1000;

async function round(pl: PnLan, A: PnHost, B: PnHost, hogCount: number): Promise<Column> {
  await pl.start(A);
  await waitFor('A to see B', async () => upPeers(await pl.status(A)).includes('host-b'), 30_000);
  const paths = Array.from({ length: N }, (_, i) => ({
    path: `/nix/store/${encodeNix32(randomBytes(20))}-busy-${hogCount}-${i}`,
    tree: { type: 'file' as const, size: MiB, seed: `busy-${hogCount}-${i}` },
    references: [],
  }));
  // A trusts B's store summary for misses: the narinfos are asked once A's copy of it counts the new
  // paths (asked before, they would rightly be misses: B's summary did not admit them yet).
  const summaryOf = async () => (await pl.status(A)).peers.find((p) => p.name === 'host-b')?.summary ?? null;
  const summaryPaths = async () => (await summaryOf())?.paths ?? 0;
  await waitFor('A to follow B’s summary', async () => (await summaryOf())?.state === 'ok', 30_000);
  const before = await summaryPaths();
  await importPaths(B.nix, paths);
  await waitFor('A’s copy of B’s summary to count the new paths', async () => (await summaryPaths()) >= before + N, 30_000);
  const infos = await Promise.all(
    paths.map(async ({ path }) => {
      const r = await pl.curl(A, [`${SUBST}/${H(path)}.narinfo`]);
      const url = /^URL: (.*)$/m.exec(r.stdout)?.[1];
      if (!url) throw new Error(`no narinfo for ${path}: ${r.stdout}`);
      return { url, narSize: Number(/^NarSize: (\d+)$/m.exec(r.stdout)![1]) };
    }),
  );
  const shaped = await B.lan.run('tc', ['qdisc', 'add', 'dev', 'eth0', 'root', 'tbf', 'rate', '20mbit', 'burst', '32kb', 'latency', '50ms']);
  if (shaped.code !== 0) throw new Error(shaped.stderr);
  const hogs = startCpuHogs(hogCount, 180);
  try {
    let done = false;
    const burstStart = performance.now();
    const nars = Promise.all(infos.map((i) => pl.curl(A, ['-o', '/dev/null', '-w', '%{http_code} %{size_download}', `${SUBST}/${i.url}`]))).finally(
      () => (done = true),
    );
    const misses: number[] = [];
    let missesNot404 = 0;
    while (!done) {
      const r = await pl.curl(A, ['-o', '/dev/null', '-w', '%{http_code} %{time_total}', `${SUBST}/${encodeNix32(randomBytes(20))}.narinfo`]);
      const [code, secs] = r.stdout.split(' ');
      if (code !== '404') missesNot404++;
      misses.push(Number(secs) * 1000);
    }
    const results = await nars;
    const burstMs = performance.now() - burstStart;
    const statuses: Record<string, number> = {};
    let served = 0;
    results.forEach((r, i) => {
      const [code, size] = r.stdout.split(' ');
      statuses[code] = (statuses[code] ?? 0) + 1;
      if (r.code === 0 && code === '200' && Number(size) === infos[i].narSize) served++;
    });
    misses.sort((a, b) => a - b);
    if (served !== N)
      process.stderr.write(
        `${hogCount} hogs: A's log around the failures:\n${A.pn!.logs()
          .split('\n')
          .filter((l) => /host-b|fallback|NAR|peer/.test(l))
          .slice(-60)
          .join('\n')}\n`,
      );
    await hogs.stop();
    await B.lan.run('tc', ['qdisc', 'del', 'dev', 'eth0', 'root']);
    // Idle now: how long one SIGTERM takes to end it.
    const proc = A.pn!.proc;
    const exited = once(proc, 'exit');
    const t0 = performance.now();
    proc.kill('SIGTERM');
    await exited;
    const sigtermMs = performance.now() - t0;
    A.pn = null;
    return { served, statuses, missP50: percentile(misses, 50), missMax: misses.at(-1) ?? NaN, missesNot404, sigtermMs, burstMs };
  } finally {
    await hogs.stop();
    await B.lan.run('tc', ['qdisc', 'del', 'dev', 'eth0', 'root']).catch(() => {});
  }
}

async function main() {
  const pl = await createPnLan('pn-bbusy', ['host-a', 'host-b']);
  const [A, B] = pl.hosts;
  try {
    await pl.start(B);
    const idle: Column[] = [];
    const busy: Column[] = [];
    for (let run = 0; run < RUNS; run++) {
      idle.push(await round(pl, A, B, 0));
      busy.push(await round(pl, A, B, 2));
    }
    const med = (cs: Column[], f: (c: Column) => number) =>
      percentile(
        cs.map(f).sort((a, b) => a - b),
        50,
      );
    const line = (label: string, a: string, b: string) => console.log(`${label.padEnd(34)}${a.padStart(22)}${b.padStart(22)}`);
    console.log(`\n${N} concurrent 1 MiB NARs from a peer at 20 Mbit/s, through the substituter; medians of ${RUNS} runs`);
    line('', 'idle', '2 CPU hogs');
    line('NARs served complete, per run', idle.map((c) => c.served).join(' '), busy.map((c) => c.served).join(' '));
    line('NAR statuses, all runs', JSON.stringify(sum(idle)), JSON.stringify(sum(busy)));
    line('burst time (ms)', med(idle, (c) => c.burstMs).toFixed(0), med(busy, (c) => c.burstMs).toFixed(0));
    line('  ÷ the link floor (ms)', (med(idle, (c) => c.burstMs) / LINK_FLOOR_MS).toFixed(2), (med(busy, (c) => c.burstMs) / LINK_FLOOR_MS).toFixed(2));
    line('misses meanwhile p50 (ms)', med(idle, (c) => c.missP50).toFixed(1), med(busy, (c) => c.missP50).toFixed(1));
    line('misses meanwhile max (ms)', med(idle, (c) => c.missMax).toFixed(1), med(busy, (c) => c.missMax).toFixed(1));
    line('misses not answered 404, all runs', String(idle.reduce((n, c) => n + c.missesNot404, 0)), String(busy.reduce((n, c) => n + c.missesNot404, 0)));
    line('idle SIGTERM to exit (ms)', med(idle, (c) => c.sigtermMs).toFixed(0), med(busy, (c) => c.sigtermMs).toFixed(0));
    console.log(`(link floor: ${N} MiB at 20 Mbit/s = ${LINK_FLOOR_MS.toFixed(0)} ms)`);
    if ([...idle, ...busy].some((c) => c.served !== N || c.missesNot404)) process.exitCode = 1;
  } finally {
    await pl.teardown();
  }
}

function sum(cs: Column[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const c of cs) for (const [k, v] of Object.entries(c.statuses)) out[k] = (out[k] ?? 0) + v;
  return out;
}

await main();
