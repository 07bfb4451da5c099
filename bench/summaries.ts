// Benchmark for store summaries (issue 10), with Peernix peers as processes on loopback.
//
//   npm run build && node bench/summaries.ts
//
// Twenty peers: one ("holder") serves a store with the paths hits ask for, nineteen serve another.
// Prints, side by side with its reference:
//   - narinfo miss p50/p99 through A with 20 peers, against A with no peers (same run, in turns);
//   - narinfo requests a hit sends to peers (counted in the peers' own request logs), against the
//     20 that asking every peer would send;
//   - the slowest miss in the 10 s after a peer's link is cut without a word (the peer runs in a
//     network namespace whose link goes down: no RST, like a laptop whose lid closed), against the
//     lookup timeout it would cost without summaries; half of those misses are hash parts the cut
//     peer's summary falsely admits, so they are asked of it;
//   - time from `nix-store --add` on the holder's store to A answering that path;
//   - a 100 000-path summary: bytes on the wire, false positives, time to build and to take in one
//     added path, and the memory 20 such summaries take on a peer.
// Medians of RUNS runs.
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { encodeNix32 } from '../src/nix/nix32.ts';
import { DEFAULT_TIMEOUTS } from '../src/peers/peer-client.ts';
import { decodeSummary } from '../src/wire/summary-wire.ts';
import { StoreSummary } from '../src/store/store-summary.ts';
import { createLan, type Lan } from '../test/support/netns.ts';
import { cleanup, makeTempDir, startNixHost, type NixHost } from '../test/support/nix-host.ts';
import { waitFor } from '../test/support/wait.ts';
import { BUILT_MAIN, startPeernixProcess, type PeernixProcess } from '../test/support/peernix-process.ts';
import { run } from '../test/support/run.ts';
import { fetchOk, latencyInTurns, median, peernixLauncher, percentile, row, UnexpectedStatus } from './lib.ts';

const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const REQUESTS = Number(process.env.BENCH_NARINFO ?? 1000);
const randomHash = () => encodeNix32(randomBytes(20));

async function main() {
  const dir = await makeTempDir('pn-bsum');
  const holderStore = await startNixHost(`${dir}/holder`);
  const otherStore = await startNixHost(`${dir}/other`);
  const emptyStore = await startNixHost(`${dir}/a`);
  const { started, serve } = peernixLauncher(dir);
  let lan: Lan | null = null;
  const fig: Record<string, { ours: number[]; ref: number[]; unit: string }> = {};
  const add = (k: string, ours: number, ref: number, unit: string) => {
    fig[k] ??= { ours: [], ref: [], unit };
    fig[k].ours.push(ours);
    fig[k].ref.push(ref);
  };
  try {
    process.stderr.write('preparing: 2000 paths on the holder, 2000 others on the rest…\n');
    const holderPaths = await addFiles(holderStore, `${dir}/hf`, 2000);
    await addFiles(otherStore, `${dir}/of`, 2000);

    process.stderr.write('starting 20 peers and two instances of A…\n');
    const holder = await serve('holder', holderStore.storeUri, ['--log-level', 'debug']);
    // One of the others lives behind a link the bench can cut: a namespace on a bridge that, for this
    // bench only, has an address in the machine's own namespace (nothing else is on it).
    lan = await createLan(1);
    const bridgeAddress = lan.subnet.replace(/\.0\/24$/, '.254');
    const addr = await run('ip', ['addr', 'add', `${bridgeAddress}/24`, 'dev', lan.name]);
    if (addr.code !== 0) throw new Error(`ip addr add: ${addr.stderr}`);
    const farHost = lan.hosts[0];
    const far = await startPeernixProcess(
      [
        '--store',
        otherStore.storeUri,
        '--listen',
        '127.0.0.1:0',
        '--share-listen',
        '0.0.0.0:9999',
        '--state-dir',
        `${dir}/far`,
        '--no-mdns',
        '--log-level',
        'debug',
      ],
      {
        main: BUILT_MAIN,
        wrap: (cmd, args) => ['ip', ['netns', 'exec', farHost.ns, cmd, ...args]],
      },
    );
    started.push(far);
    far.shareUrl = `http://${farHost.address}:9999`;
    const others: PeernixProcess[] = [far];
    for (let i = 1; i < 19; i++) others.push(await serve(`peer${i}`, otherStore.storeUri, ['--log-level', 'debug']));
    const peers = [holder, ...others];
    const alone = await serve('a0', emptyStore.storeUri, ['--no-share']);
    const a = await serve('a20', emptyStore.storeUri, ['--no-share', ...peers.flatMap((p) => ['--peer', p.shareUrl!])]);
    await waitFor(
      `A to follow 20 summaries`,
      async () => (await snapshot(a)).peers.filter((p) => p.state === 'up' && p.summary?.state === 'ok').length === 20,
      60_000,
    );

    const misses = (base: string) => Array.from({ length: REQUESTS }, () => `${base}/${randomHash()}.narinfo`);
    await latencyInTurns([misses(a.substituterUrl).slice(0, 200), misses(alone.substituterUrl).slice(0, 200)], 404);
    const asked = () => peers.reduce((n, p) => n + narinfoRequests(p), 0);
    for (let r = 0; r < RUNS; r++) {
      const before = asked();
      const [withPeers, without] = await latencyInTurns([misses(a.substituterUrl), misses(alone.substituterUrl)], 404);
      add('miss p50, 20 peers (vs 0 peers)', percentile(withPeers, 50), percentile(without, 50), 'ms');
      add('miss p99, 20 peers (vs 0 peers)', percentile(withPeers, 99), percentile(without, 99), 'ms');
      add('peers asked per miss (vs 20)', (asked() - before) / REQUESTS, 20, '');
    }
    for (let r = 0; r < RUNS; r++) {
      const batch = holderPaths.slice(r * 100, r * 100 + 100);
      const before = asked();
      for (const p of batch) {
        const res = await fetch(`${a.substituterUrl}/${p.slice(11, 43)}.narinfo`);
        if (res.status !== 200) throw new Error(`hit ${p}: HTTP ${res.status}`);
      }
      add('peers asked per hit (vs 20)', (asked() - before) / batch.length, 20, '');
    }

    for (let r = 0; r < RUNS; r++) {
      const path = (await holderStore.nixStore(['--add', writeFile(`${dir}/late${r}`, `late ${r} ${randomHash()}\n`)], { check: true })).stdout.trim();
      const t0 = performance.now();
      while ((await fetch(`${a.substituterUrl}/${path.slice(11, 43)}.narinfo`)).status !== 200) await new Promise((res) => setTimeout(res, 20));
      add('nix-store --add on a peer → answered here', performance.now() - t0, NaN, 'ms');
    }

    // A peer whose link is cut without a word. Without summaries, the next miss would wait for it
    // until the lookup timeout; with them, misses don't ask it at all, except those its summary
    // falsely admits, which must not wait on it either.
    const admitted = decodeSummary(Buffer.from(await (await fetchOk(`${far.shareUrl}/peernix/summary`)).arrayBuffer()));
    const falsePositives: string[] = [];
    while (falsePositives.length < 40) {
      const h = randomHash();
      if (admitted.filter.test(h)) falsePositives.push(h);
    }
    for (let r = 0; r < RUNS; r++) {
      await waitFor('the far peer to be up again', async () => (await snapshot(a)).peers.filter((p) => p.state === 'up').length === 20, 60_000);
      const veth = farHost.ns.replace(/n(\d+)$/, 'v$1');
      const cut = await run('ip', ['link', 'set', veth, 'down']);
      if (cut.code !== 0) throw new Error(`ip link set down: ${cut.stderr}`);
      const afterCut: number[] = [];
      const afterCutAdmitted: number[] = [];
      const end = Date.now() + 10_000;
      for (let i = 0; Date.now() < end; i++) {
        const admittedMiss = i % 2 === 0 && afterCutAdmitted.length < 20;
        const t0 = performance.now();
        const res = await fetch(`${a.substituterUrl}/${admittedMiss ? falsePositives[(r * 20 + afterCutAdmitted.length) % 40] : randomHash()}.narinfo`);
        await res.arrayBuffer();
        // A miss must still be a quick 404 while the holder's link is cut; anything else is no miss timing.
        if (res.status !== 404) throw new UnexpectedStatus(`miss after the cut: HTTP ${res.status}`);
        (admittedMiss ? afterCutAdmitted : afterCut).push(performance.now() - t0);
        await new Promise((res) => setTimeout(res, 20));
      }
      const up = await run('ip', ['link', 'set', veth, 'up']);
      if (up.code !== 0) throw new Error(`ip link set up: ${up.stderr}`);
      add('slowest miss in 10 s after a link cut (vs lookup timeout)', Math.max(...afterCut, ...afterCutAdmitted), DEFAULT_TIMEOUTS.narInfoMs, 'ms');
      add('  of them, slowest the cut peer’s summary admits (target ≤ 50)', Math.max(...afterCutAdmitted), 50, 'ms');
    }

    summaryFigures(add);

    console.log(`\nstore summaries — medians of ${RUNS} runs, ${REQUESTS} misses per run; 20 peers are Peernix processes on loopback, on the same 2 cores`);
    console.log(`${'metric'.padEnd(58)} ${'peernix'.padStart(10)} ${'reference'.padStart(10)}`);
    for (const [k, v] of Object.entries(fig)) console.log(row(k.padEnd(58), median(v.ours), median(v.ref), v.unit));
    const m = fig['miss p50, 20 peers (vs 0 peers)'];
    const ratio = median(m.ours) / median(m.ref);
    const extra = median(m.ours) - median(m.ref);
    console.log(`\nmiss with 20 peers: ${ratio.toFixed(2)}× the miss with none, ${extra.toFixed(3)} ms more (target: ≤ 1.5× or ≤ 0.1 ms more)`);
  } finally {
    for (const p of started) await p.stop();
    await lan?.teardown();
    await holderStore.stop();
    await otherStore.stop();
    await emptyStore.stop();
    await cleanup(dir);
  }
}

/** The summary of a 100 000-path store, built from made-up hash parts (they are uniformly random, as real ones are). */
function summaryFigures(add: (k: string, ours: number, ref: number, unit: string) => void) {
  for (let r = 0; r < RUNS; r++) {
    const rows = Array.from({ length: 100_000 }, (_, i) => ({ id: i + 1, hashPart: randomHash() }));
    const source = { rowsAfter: (id: number) => rows.filter((x) => x.id > id), count: () => rows.length };
    let t0 = performance.now();
    const s = new StoreSummary(source);
    s.refresh();
    const wire = s.full()!;
    add('100k-path summary: build', performance.now() - t0, NaN, 'ms');
    add('100k-path summary: size on the wire (target ≤ 150)', wire.length / 1024, 150, 'KiB');
    rows.push({ id: 100_001, hashPart: randomHash() });
    t0 = performance.now();
    s.refresh();
    add('100k-path summary: take in one added path', performance.now() - t0, NaN, 'ms');
    const decoded = decodeSummary(wire);
    let fp = 0;
    for (let i = 0; i < 100_000; i++) if (decoded.filter.test(randomHash())) fp++;
    add('100k-path summary: false positives (target ≤ 1)', fp / 1000, 1, '%');
    const heapBefore = process.memoryUsage().arrayBuffers + process.memoryUsage().heapUsed;
    const held = Array.from({ length: 20 }, () => decodeSummary(wire));
    const heapAfter = process.memoryUsage().arrayBuffers + process.memoryUsage().heapUsed;
    add('memory for 20 peers’ 100k-path summaries', (heapAfter - heapBefore) / 1024 / 1024, NaN, 'MiB');
    if (held.length !== 20) throw new Error('unreachable');
  }
}

async function addFiles(host: NixHost, folder: string, n: number): Promise<string[]> {
  mkdirSync(folder);
  const files = Array.from({ length: n }, (_, i) => writeFile(`${folder}/f${i}`, `file ${i} ${randomHash()}\n`));
  return (await host.nixStore(['--add', ...files], { check: true })).stdout.trim().split('\n');
}

function writeFile(path: string, text: string): string {
  writeFileSync(path, text);
  return path;
}

/** narinfo requests a peer's share listener logged (debug logs one line a request), health probes aside. */
function narinfoRequests(p: PeernixProcess): number {
  return (p.logs().match(/ GET \/[0-9a-z]{32}\.narinfo /g) ?? []).filter((l) => !l.includes('0'.repeat(32))).length;
}

async function snapshot(p: PeernixProcess): Promise<{ peers: { state: string; summary: { state: string } | null }[] }> {
  const res = await fetchOk(`${p.substituterUrl}/peernix/api/snapshot`, { headers: { host: new URL(p.substituterUrl).host } });
  return (await res.json()) as { peers: { state: string; summary: { state: string } | null }[] };
}

await main();
