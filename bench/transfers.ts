// Benchmark for transfers between peers (issues 11 and 24).
//
//   npm run bench:transfers          (root: network namespaces and tc; nginx: scripts/install-system-deps.sh bench)
//   BENCH_PARTS=one,swarm,model npm run bench:transfers      (some parts only; BENCH_RUNS=n runs each)
//
// 0. Issue 24: one NAR with the link known or not (transfers-one-nar.ts), one NAR from several
//    holders (transfers-swarm.ts), and the 1 Gbit/s model (transfers-model.ts).
// 1. Compression between Peernix peers. Two hosts in network namespaces, A and B, B's outgoing link
//    shaped with tc tbf (100 Mbit/s, 1 Gbit/s, and unshaped). A real Nix on A substitutes a closure
//    from B through A's substituter (`nix copy --from`, signatures required), once through an A that
//    lets B compress and once through an A started with --no-peer-compression, in turns. Figures:
//    wall time of the substitution and B's CPU per MB of NAR sent, for a compressible closure (a
//    Python library, documentation, binaries from this machine) and for random bytes.
// 2. The proxy's cost per byte, unshaped, on loopback: a 200 MB NAR fetched with curl from a Peernix
//    peer directly, through Peernix (the client-side proxy, which verifies SHA-256), through nginx
//    (proxy_pass, no hashing) and through a bare Node proxy (http.get().pipe(), Node's floor here).
//    Throughput, and CPU seconds the proxy process spent per MB.
//
// Both namespaces and every process share this machine's cores: the figures say how many it has.
// Medians of RUNS runs (3 × RUNS unshaped, where a copy takes under a second). For the compressible
// closure at 1 Gbit/s, a third column shows what compressing every block would do here (a second B
// started with PEERNIX_FORCE_PEER_COMPRESSION=1).
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { createLan, nodeBin, type Lan, type LanHost } from '../test/support/netns.ts';
import { addPath, cleanup, makeSigningKey, makeTempDir, nixEnv, startNixHost, type NixHost } from '../test/support/nix-host.ts';
import { BUILT_MAIN, startPeernixProcess, type PeernixProcess } from '../test/support/peernix-process.ts';
import { run } from '../test/support/run.ts';
import { curlThroughput, fetchOk, median, peernixLauncher } from './lib.ts';
import { model } from './transfers-model.ts';
import { cpuSeconds, type Figures, holderArgs, oneNar, type OneNarFigures, shapeLink } from './transfers-one-nar.ts';
import { swarm } from './transfers-swarm.ts';

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
// Which parts run (all by default): one (a single NAR, link known or not), swarm (several holders),
// model (1 Gbit/s by measurement and model), closure (the closure at each shape), proxy (vs nginx).
const PARTS = (process.env.BENCH_PARTS ?? 'one,swarm,model,closure,proxy').split(',');
const ONE_SHAPES = (process.env.BENCH_ONE_SHAPES ?? '100mbit,1gbit,unshaped').split(',');
// Unshaped first: it is the ceiling the shaped runs are held against.
const SHAPES = (process.env.BENCH_SHAPES ?? 'unshaped,100mbit,1gbit').split(',');
const MB = 1e6;
const MiB = 1024 * 1024;

type Fig = Record<string, { values: Record<string, number[]>; unit: string }>;
const fig: Fig = {};
function add(metric: string, column: string, value: number, unit: string) {
  fig[metric] ??= { values: {}, unit };
  (fig[metric].values[column] ??= []).push(value);
}

/** Busy and total CPU time of the whole machine so far, in clock ticks (from /proc/stat). */
function machineTicks(): { busy: number; total: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: total - f[3] - f[4], total }; // idle and iowait are not busy
}

async function main() {
  const dir = await makeTempDir('pn-bxfer');
  const hosts: NixHost[] = [];
  const started: PeernixProcess[] = [];
  const lans: Lan[] = [];
  const children: ChildProcess[] = [];
  const figs: Figures = { add, values: (m, c) => fig[m]?.values[c] ?? [] };
  const load0 = loadavg()[0];
  try {
    const cores = availableParallelism();
    let one: OneNarFigures | null = null;
    if (PARTS.includes('one')) one = await oneNar(dir, figs, RUNS, ONE_SHAPES, hosts, started, (l) => lans.push(l));
    if (PARTS.includes('swarm')) await swarm(dir, figs, RUNS, hosts, started, (l) => lans.push(l));
    if (PARTS.includes('model')) model(figs, one);
    if (PARTS.includes('closure')) await compression(dir, hosts, started, (l) => lans.push(l));
    if (PARTS.includes('proxy')) await proxy(dir, hosts, started, children);
    console.log(
      `\ntransfers between peers — medians of ${RUNS} runs; every process shares this machine's ${cores} cores (A, B, Nix, curl and the proxies alike); load average ${load0.toFixed(1)} at the start, ${loadavg()[0].toFixed(1)} at the end (other helpers' tests included)`,
    );
    for (const [metric, { values, unit }] of Object.entries(fig)) {
      const cols = Object.entries(values).map(([c, v]) => `${c} ${median(v).toFixed(unit === 'ms/MB' || unit === 'x' || unit === 'cores' ? 2 : 1)}`);
      console.log(`${metric.padEnd(46)} ${cols.join('   ')}  ${unit}`);
    }
  } finally {
    for (const c of children) c.kill('SIGTERM');
    for (const p of started) await p.stop().catch(() => {});
    for (const l of lans) await l.teardown();
    for (const h of hosts) await h.stop();
    await cleanup(dir);
  }
}

/** A closure of this machine's own files: a Python library, documentation and binaries. */
async function compressibleClosure(b: NixHost, dir: string): Promise<string[]> {
  const bins = `${dir}/binaries`;
  mkdirSync(bins);
  let total = 0;
  const candidates = readdirSync('/usr/bin')
    .map((n) => `/usr/bin/${n}`)
    .filter((p) => {
      try {
        const s = statSync(p);
        return s.isFile() && s.size > 200_000;
      } catch {
        return false;
      }
    })
    .sort();
  for (const p of candidates) {
    if (total > 40 * MB) break;
    copyFileSync(p, `${bins}/${p.slice(9)}`);
    total += statSync(p).size;
  }
  const docs = `${dir}/docs`;
  mkdirSync(docs);
  await run('sh', ['-c', `cd /usr/share/doc && find . -name '*.gz' -prune -o -type f -print | head -4000 | cpio -pdm --quiet '${docs}'`]);
  const paths: string[] = [];
  for (const p of ['/usr/lib/python3.11', docs, bins]) paths.push((await b.nixStore(['--add', p], { check: true })).stdout.trim());
  return paths;
}

async function narBytes(b: NixHost, paths: string[]): Promise<number> {
  const r = await run('nix', ['path-info', '--store', b.storeUri, '--json', ...paths], { check: true });
  return (JSON.parse(r.stdout) as { narSize: number }[]).reduce((n, p) => n + p.narSize, 0);
}

async function compression(dir: string, hosts: NixHost[], started: PeernixProcess[], keepLan: (l: Lan) => void) {
  const aStore = await startNixHost(`${dir}/a`);
  const bStore = await startNixHost(`${dir}/b`);
  hosts.push(aStore, bStore);
  const key = await makeSigningKey(bStore, `${dir}/b`, 'bench-b-1');
  process.stderr.write('preparing: a compressible closure and 64 MiB of random bytes on B…\n');
  const closure = await compressibleClosure(bStore, dir);
  const randomFile = `${dir}/random.bin`;
  await run('sh', ['-c', `head -c ${64 * MiB} /dev/urandom > '${randomFile}'`], { check: true });
  const random = [(await bStore.nixStore(['--add', randomFile], { check: true })).stdout.trim()];
  const sets = { compressible: closure, random };
  const sizes = { compressible: await narBytes(bStore, closure), random: await narBytes(bStore, random) };

  const lan = await createLan(2);
  keepLan(lan);
  const [A, B] = lan.hosts;
  const inNs =
    (h: LanHost) =>
    (cmd: string, args: string[]): [string, string[]] => ['ip', ['netns', 'exec', h.ns, cmd, ...args]];
  const b = await startPeernixProcess([...holderArgs(bStore.storeUri, key.secretKeyFile, `${dir}/b-state`), '--log-level', 'debug'], {
    main: BUILT_MAIN,
    wrap: inNs(B),
  });
  // B's debug log has a line per framed NAR: how many of its frames went compressed.
  // It also says what A reported of its own pace (peers/receiver-load.ts): the share of its raw
  // transfers' time that its own side, not the link, held B's bytes back.
  const frameCounts = () => {
    let zstd = 0;
    let raw = 0;
    let tried = 0;
    const held: number[] = [];
    for (const m of b.logs().matchAll(/\((\d+) zstd frames, (\d+) raw; (\d+) blocks compressed; receiver held ([\d.?]+);/g)) {
      zstd += Number(m[1]);
      raw += Number(m[2]);
      tried += Number(m[3]);
      if (m[4] !== '?') held.push(Number(m[4]));
    }
    return { zstd, raw, tried, held };
  };
  started.push(b);
  const peer = ['--peer', `http://${B.address}:9999`, '--no-share', '--no-mdns', '--store', aStore.storeUri];
  const aZstd = await startPeernixProcess([...peer, '--listen', '127.0.0.1:9998', '--state-dir', `${dir}/a1`], { main: BUILT_MAIN, wrap: inNs(A) });
  const aPlain = await startPeernixProcess([...peer, '--listen', '127.0.0.1:9997', '--state-dir', `${dir}/a2`, '--no-peer-compression'], {
    main: BUILT_MAIN,
    wrap: inNs(A),
  });
  started.push(aZstd, aPlain);
  // Beside them, what compressing every block would do: a second B on the same store that does so,
  // and an A that fetches from it. Asked only for the compressible closure at 1 Gbit/s.
  const bForced = await startPeernixProcess(holderArgs(bStore.storeUri, key.secretKeyFile, `${dir}/b2-state`, { listen: 9996, share: 9995 }), {
    main: BUILT_MAIN,
    wrap: inNs(B),
    env: { PEERNIX_FORCE_PEER_COMPRESSION: '1' },
  });
  started.push(bForced);
  const aForced = await startPeernixProcess(
    ['--peer', `http://${B.address}:9995`, '--no-share', '--no-mdns', '--store', aStore.storeUri, '--listen', '127.0.0.1:9996', '--state-dir', `${dir}/a3`],
    { main: BUILT_MAIN, wrap: inNs(A) },
  );
  started.push(aForced);
  for (const port of [9998, 9997, 9996]) {
    for (let i = 0; ; i++) {
      const r = await A.run('curl', ['-sf', `http://127.0.0.1:${port}/peernix/api/snapshot`, '-H', `host: 127.0.0.1:${port}`]);
      if (r.code === 0 && /"state":"up"/.test(r.stdout)) break;
      if (i > 150) throw new Error(`A on ${port} never saw B`);
      await new Promise((res) => setTimeout(res, 100));
    }
  }

  let copyNo = 0;
  const substitute = async (port: number, paths: string[]): Promise<number> => {
    const to = `${dir}/client-${copyNo++}`;
    const t0 = performance.now();
    const r = await A.run(
      'nix',
      [
        'copy',
        '--from',
        `http://127.0.0.1:${port}`,
        '--to',
        to,
        ...paths,
        '--option',
        'trusted-public-keys',
        key.publicKey,
        '--option',
        'require-sigs',
        'true',
      ],
      {
        env: nixEnv({ XDG_CACHE_HOME: `${to}-xdg`, NIX_CONFIG: 'experimental-features = nix-command' }),
        timeoutMs: 600_000,
      },
    );
    const ms = performance.now() - t0;
    if (r.code !== 0) throw new Error(`nix copy via ${port}: ${r.stderr}`);
    await run('rm', ['-rf', to, `${to}-xdg`]);
    return ms;
  };

  for (const shape of SHAPES) {
    await shapeLink(B, shape);
    for (const [what, paths] of Object.entries(sets) as [keyof typeof sets, string[]][]) {
      process.stderr.write(`${shape}, ${what} (${(sizes[what] / MB).toFixed(0)} MB of NARs)…\n`);
      const before = frameCounts();
      // Unshaped copies take well under a second: more of them, for a median that means something.
      const runs = shape === 'unshaped' ? 3 * RUNS : RUNS;
      const forced = shape === '1gbit' && what === 'compressible';
      for (let r = 0; r < runs; r++) {
        // In turns, starting with each side in alternate runs, so both see the same moments of a noisy machine.
        for (const variant of [...(r % 2 === 0 ? ['zstd', 'plain'] : ['plain', 'zstd']), ...(forced ? ['forced'] : [])]) {
          const server = variant === 'forced' ? bForced : b;
          const cpu0 = cpuSeconds(server.proc.pid!);
          const m0 = machineTicks();
          const ms = await substitute(variant === 'zstd' ? 9998 : variant === 'plain' ? 9997 : 9996, paths);
          const cpu = cpuSeconds(server.proc.pid!) - cpu0;
          const m1 = machineTicks();
          const col = variant === 'zstd' ? 'compressed' : variant === 'plain' ? 'uncompressed' : 'every block compressed';
          add(`${what} closure at ${shape}: nix copy`, col, ms / 1000, 's');
          // How many of the machine's cores were busy meanwhile: at all of them, the CPU, not the link, sets the pace.
          add(`${what} closure at ${shape}: cores busy`, col, (availableParallelism() * (m1.busy - m0.busy)) / Math.max(1, m1.total - m0.total), 'cores');
          add(`${what} closure at ${shape}: B's CPU per MB sent`, col, (cpu * 1000) / (sizes[what] / MB), 'ms/MB');
        }
      }
      const after = frameCounts();
      const z = after.zstd - before.zstd;
      const frames = Math.max(1, z + after.raw - before.raw);
      add(`${what} closure at ${shape}: frames sent compressed`, 'compressed', (100 * z) / frames, '%');
      add(`${what} closure at ${shape}: blocks compressed, sent so or not`, 'compressed', (100 * (after.tried - before.tried)) / frames, '%');
      const held = after.held.slice(before.held.length);
      if (held.length > 0) add(`${what} closure at ${shape}: A's side held its NARs`, 'share of time', 100 * median(held), '%');
      const t = fig[`${what} closure at ${shape}: nix copy`].values;
      add(`${what} closure at ${shape}: speed-up`, 'compressed vs uncompressed', median(t.uncompressed) / median(t.compressed), 'x');
      if (forced)
        add(
          `${what} closure at ${shape}: speed-up`,
          'every block compressed vs uncompressed',
          median(t.uncompressed) / median(t['every block compressed']),
          'x',
        );
      // The most any compression could gain here: to what the same copy takes with no link limit at all.
      const free = fig[`${what} closure at unshaped: nix copy`]?.values.uncompressed;
      if (shape !== 'unshaped' && free)
        add(`${what} closure at ${shape}: ceiling on this machine`, 'uncompressed vs unshaped', median(t.uncompressed) / median(free), 'x');
    }
  }
}

async function proxy(dir: string, hosts: NixHost[], started: PeernixProcess[], children: ChildProcess[]) {
  const store = await startNixHost(`${dir}/p`);
  const empty = await startNixHost(`${dir}/pa`);
  hosts.push(store, empty);
  process.stderr.write('preparing: a 200 MB path for the proxy runs…\n');
  const big = await addPath(store, 'bench-200mb', { type: 'file', size: 200 * MiB, seed: 'transfers-bench' });
  const { started: mine, serve } = peernixLauncher(dir);
  const b = await serve('pb', store.storeUri, []);
  const a = await serve('pa', empty.storeUri, ['--no-share', '--peer', b.shareUrl!]);
  started.push(...mine);
  for (let i = 0; (await (await fetch(`${a.substituterUrl}/${big.slice(11, 43)}.narinfo`)).status) !== 200; i++) {
    if (i > 100) throw new Error('A never answered the 200 MB path');
    await new Promise((r) => setTimeout(r, 100));
  }
  const info = await (await fetchOk(`${b.shareUrl}/${big.slice(11, 43)}.narinfo`)).text();
  const narPath = '/' + /^URL: (.*)$/m.exec(info)![1];

  const port = 20000 + Math.floor(Math.random() * 20000);
  const upstream = new URL(b.shareUrl!);
  mkdirSync(`${dir}/nginx`);
  writeFileSync(
    `${dir}/nginx.conf`,
    `daemon off; user root; worker_processes 1; pid ${dir}/nginx/pid; error_log ${dir}/nginx/error.log;
events { worker_connections 1024; }
http { access_log off; tcp_nodelay on; client_body_temp_path ${dir}/nginx; proxy_temp_path ${dir}/nginx;
  fastcgi_temp_path ${dir}/nginx; uwsgi_temp_path ${dir}/nginx; scgi_temp_path ${dir}/nginx;
  upstream peer { server ${upstream.host}; keepalive 8; }
  server { listen 127.0.0.1:${port}; location / { proxy_pass http://peer; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_buffering off; } } }\n`,
  );
  const nginx = spawn('nginx', ['-c', `${dir}/nginx.conf`, '-p', `${dir}/nginx`], { stdio: 'inherit' });
  children.push(nginx);
  const bare = spawn(nodeBin(), [new URL('./bare-node-proxy.ts', import.meta.url).pathname, b.shareUrl!, String(port + 1)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(bare);
  await new Promise((r) => bare.stdout!.once('data', r));
  for (
    let i = 0;
    (await fetch(`http://127.0.0.1:${port}/nix-cache-info`).then(
      (r) => r.status,
      () => 0,
    )) !== 200;
    i++
  ) {
    if (i > 100) throw new Error('nginx did not start');
    await new Promise((r) => setTimeout(r, 100));
  }
  // nginx's worker does the proxying; its pid is the master's child.
  const nginxWorker = Number((await run('pgrep', ['-P', String(nginx.pid)], { check: true })).stdout.trim().split('\n')[0]);

  const ways: [string, string, number | null][] = [
    ['direct from the peer', `${b.shareUrl}${narPath}`, null],
    ['through Peernix (verifies SHA-256)', `${a.substituterUrl}${narPath}`, a.proc.pid!],
    ['through nginx (proxy_pass)', `http://127.0.0.1:${port}${narPath}`, nginxWorker],
    ['through a bare Node proxy (pipe)', `http://127.0.0.1:${port + 1}${narPath}`, bare.pid!],
  ];
  for (const [, url] of ways) await curlThroughput(url, 1);
  const size = 200 * MiB;
  for (let r = 0; r < RUNS + 2; r++) {
    for (let i = 0; i < ways.length; i++) {
      const [name, url, pid] = ways[(i + r) % ways.length];
      const cpu0 = pid ? cpuSeconds(pid) : 0;
      const mibs = await curlThroughput(url, 1);
      add('200 MB NAR, unshaped loopback: throughput', name, mibs, 'MiB/s');
      if (pid) add("200 MB NAR, unshaped loopback: proxy's CPU per MB", name, ((cpuSeconds(pid) - cpu0) * 1000) / (size / MB), 'ms/MB');
    }
  }
}

await main();
