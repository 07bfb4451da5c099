// Benchmark for the resolver (the loopback substituter listener), with Peernix peers on loopback.
//
//   node bench/peers.ts
//
// Prints: narinfo miss latency through the substituter with 0, 1, 5 and 20 live peers (sequential,
// p50/p99); a narinfo hit through one peer against asking that peer directly; and a 200 MB NAR
// proxied through the substituter against downloading it from the peer directly (curl, MiB/s).
// Medians of RUNS runs. Targets (issue 3): a miss with 20 peers ≤ 5 ms p50; proxied ≥ 0.8× direct.
import { randomBytes } from 'node:crypto';
import { Agent, createServer, get, type Server } from 'node:http';
import { mkdirSync, writeFileSync } from 'node:fs';
import { addPath, cleanup, makeTempDir, startNixHost } from '../test/support/nix-host.ts';
import type { PeernixProcess } from '../test/support/peernix-process.ts';
import { curlThroughput, fetchOk, latencyInTurns, median, peernixLauncher, percentile, row, sequentialLatency } from './lib.ts';

const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const REQUESTS = Number(process.env.BENCH_NARINFO ?? 1000);
const PEERS = [0, 1, 5, 20];
const NIX32 = '0123456789abcdfghijklmnpqrsvwxyz';
const randomHash = () => Array.from(randomBytes(32), (x) => NIX32[x & 31]).join('');

async function main() {
  const dir = await makeTempDir('pn-bpeers');
  const peerStore = await startNixHost(`${dir}/peers`);
  const emptyStore = await startNixHost(`${dir}/a`);
  const { started, serve } = peernixLauncher(dir);
  try {
    process.stderr.write('preparing: 2000 small paths and one 200 MB path in the peers’ store…\n');
    mkdirSync(`${dir}/files`);
    const files = Array.from({ length: 2000 }, (_, i) => {
      writeFileSync(`${dir}/files/f${i}`, `file ${i} ${randomHash()}\n`);
      return `${dir}/files/f${i}`;
    });
    const small = (await peerStore.nixStore(['--add', ...files], { check: true })).stdout.trim().split('\n');
    const big = await addPath(peerStore, 'bench-200mb', { type: 'file', size: 200 * 1024 * 1024, seed: 'peers-bench' });

    process.stderr.write('starting 20 peers…\n');
    const peers: PeernixProcess[] = [];
    for (let i = 0; i < 20; i++) peers.push(await serve(`peer${i}`, peerStore.storeUri, []));
    const peerUrls = peers.map((p) => p.shareUrl!);

    const fig: Record<string, { ours: number[]; ref: number[]; unit: string }> = {};
    const add = (k: string, ours: number, ref: number, unit: string) => {
      fig[k] ??= { ours: [], ref: [], unit };
      fig[k].ours.push(ours);
      fig[k].ref.push(ref);
    };

    for (const n of PEERS) {
      const a = await serve(`a${n}`, emptyStore.storeUri, ['--no-share', ...peerUrls.slice(0, n).flatMap((u) => ['--peer', u])]);
      await waitUp(a, n);
      const urls = () => Array.from({ length: REQUESTS }, () => `${a.substituterUrl}/${randomHash()}.narinfo`);
      await sequentialLatency(urls().slice(0, 200), 404);
      for (let r = 0; r < RUNS; r++) {
        const l = await sequentialLatency(urls(), 404);
        add(`miss, ${n} peers p50`, percentile(l, 50), NaN, 'ms');
        add(`miss, ${n} peers p99`, percentile(l, 99), NaN, 'ms');
      }
      if (n === 1) {
        const via = a.substituterUrl;
        const direct = peerUrls[0];
        let next = 0;
        const hits = (base: string, from: number) =>
          Array.from({ length: REQUESTS }, (_, i) => `${base}/${small[(from + i) % small.length].slice(11, 43)}.narinfo`);
        for (let r = 0; r < RUNS; r++) {
          // Fresh paths each run so no lookup is shared with an earlier one; asked of the peer once
          // beforehand, so that both ways find its answers warm (it signs each narinfo once).
          await sequentialLatency(hits(direct, next), 200);
          const [through, straight] = await latencyInTurns([hits(via, next), hits(direct, next)], 200);
          next += REQUESTS;
          add('hit through 1 peer p50 (vs direct)', percentile(through, 50), percentile(straight, 50), 'ms');
        }
        const info = await (await fetchOk(`${via}/${big.slice(11, 43)}.narinfo`)).text();
        const viaNar = `${via}/${/^URL: (.*)$/m.exec(info)![1]}`;
        const dinfo = await (await fetchOk(`${direct}/${big.slice(11, 43)}.narinfo`)).text();
        const directNar = `${direct}/${/^URL: (.*)$/m.exec(dinfo)![1]}`;
        // A second reference: the least a Node proxy can do (http.get(...).pipe(res), no checks at all).
        const bare = await bareNodeProxy(direct);
        const bareNar = `${bare.url}${new URL(directNar).pathname}`;
        await curlThroughput(viaNar, 1);
        for (let r = 0; r < RUNS; r++) {
          const ours = await curlThroughput(viaNar, 1);
          add('NAR 200 MB proxied (vs direct)', ours, await curlThroughput(directNar, 1), 'MiB/s');
          add('NAR 200 MB proxied (vs bare node)', ours, await curlThroughput(bareNar, 1), 'MiB/s');
        }
        bare.server.close();
      }
      await a.stop();
      started.splice(started.indexOf(a), 1);
    }

    console.log(`\nresolver benchmark — medians of ${RUNS} runs, ${REQUESTS} narinfo requests per run, peers are Peernix processes on loopback`);
    console.log(`${'metric'.padEnd(34)} ${'peernix'.padStart(10)} ${'direct'.padStart(10)}`);
    for (const [k, v] of Object.entries(fig)) console.log(row(k, median(v.ours), median(v.ref), v.unit));
  } finally {
    for (const p of started) await p.stop();
    await peerStore.stop();
    await emptyStore.stop();
    await cleanup(dir);
  }
}

async function bareNodeProxy(upstream: string): Promise<{ url: string; server: Server }> {
  const agent = new Agent({ keepAlive: true });
  const server = createServer((req, res) => {
    get(upstream + req.url, { agent }, (up) => {
      res.writeHead(up.statusCode ?? 502, { 'content-length': up.headers['content-length'] ?? '0' });
      up.pipe(res);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, server };
}

async function waitUp(p: PeernixProcess, n: number) {
  for (let i = 0; i < 100; i++) {
    const s = (await (await fetchOk(`${p.substituterUrl}/peernix/api/snapshot`, { headers: { host: new URL(p.substituterUrl).host } })).json()) as {
      peers: { state: string }[];
    };
    if (s.peers.filter((x) => x.state === 'up').length === n) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`peers did not come up for ${p.substituterUrl}`);
}

await main();
