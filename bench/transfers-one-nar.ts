// bench:transfers, part "one NAR" (issue #24 §1 and §3): a single NAR from a Peernix peer B over a
// shaped link, fetched with curl through A's substituter (which verifies SHA-256), in three ways:
//   raw            A started with --no-peer-compression (the reference)
//   link unknown   a fresh A and a fresh B: the first NAR from that peer starts raw, as before #24
//   link known     a fresh B, and an A that fetched one 8 MiB NAR from it first: it states the link
//                  rate it measured, and B starts compressed when that link is far slower than it compresses
// B and A are restarted for every fetch, so no plan or figure carries over between the ways.
// At 1 Gbit/s the raw and known ways run a second time with B on core 0 and A and curl on core 1
// (taskset), where this machine has two cores. Figures for the 1 Gbit/s model (transfers-model.ts)
// come from here too: CPU per MB on each side.
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { createLan, type Lan, type LanHost } from '../test/support/netns.ts';
import { makeSigningKey, type NixHost, startNixHost } from '../test/support/nix-host.ts';
import { BUILT_MAIN, type PeernixProcess, startPeernixProcess } from '../test/support/peernix-process.ts';
import { run } from '../test/support/run.ts';
import { median } from './lib.ts';

const MiB = 1024 * 1024;
const MB = 1e6;

/** The bench's figures: recorded by metric and column, and read back for ratios. */
export interface Figures {
  add(metric: string, column: string, value: number, unit: string): void;
  values(metric: string, column: string): number[];
}

/** CPU seconds (user + system) a process has used so far. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
}

/** Shapes a host's outgoing link with tc tbf at `shape` (a tc rate, or `unshaped`: none), as every part of bench:transfers does. */
export async function shapeLink(h: LanHost, shape: string): Promise<void> {
  await h.run('tc', ['qdisc', 'del', 'dev', 'eth0', 'root']);
  if (shape === 'unshaped') return;
  const burst = shape === '1gbit' ? '256kb' : '64kb';
  const tc = await h.run('tc', ['qdisc', 'add', 'dev', 'eth0', 'root', 'tbf', 'rate', shape, 'burst', burst, 'latency', '50ms']);
  if (tc.code !== 0) throw new Error(`tc: ${tc.stderr}`);
}

/** A serving peer's arguments: its store, loopback API on 9998 (share port 9999 unless told), key and state, no mDNS. */
export function holderArgs(storeUri: string, secretKeyFile: string, stateDir: string, ports = { listen: 9998, share: 9999 }): string[] {
  return [
    '--store',
    storeUri,
    '--listen',
    `127.0.0.1:${ports.listen}`,
    '--share-listen',
    `0.0.0.0:${ports.share}`,
    '--secret-key-file',
    secretKeyFile,
    '--state-dir',
    stateDir,
    '--no-mdns',
  ];
}

export interface OneNarFigures {
  /** Per shape and dataset, CPU ms per MB of NAR: B sending compressed, A receiving it; and raw. */
  cpu: Record<string, { bCompressed: number[]; aCompressed: number[]; bRaw: number[]; aRaw: number[]; ratio: number[] }>;
}

export async function oneNar(
  dir: string,
  figs: Figures,
  runs: number,
  shapes: string[],
  hosts: NixHost[],
  started: PeernixProcess[],
  keepLan: (l: Lan) => void,
): Promise<OneNarFigures> {
  const figures: OneNarFigures = { cpu: {} };
  const add = figs.add;
  const aStore = await startNixHost(`${dir}/one-a`);
  const bStore = await startNixHost(`${dir}/one-b`);
  hosts.push(aStore, bStore);
  const key = await makeSigningKey(bStore, `${dir}/one-b`, 'bench-one-b-1');
  process.stderr.write('one NAR: the Python library, 64 MiB random and an 8 MiB warm-up NAR on B…\n');
  const py = (await bStore.nixStore(['--add', '/usr/lib/python3.11'], { check: true })).stdout.trim();
  await run('sh', ['-c', `head -c ${64 * MiB} /dev/urandom > '${dir}/one-random.bin' && head -c ${8 * MiB} /dev/urandom > '${dir}/one-warm.bin'`], {
    check: true,
  });
  const rnd = (await bStore.nixStore(['--add', `${dir}/one-random.bin`], { check: true })).stdout.trim();
  const warm = (await bStore.nixStore(['--add', `${dir}/one-warm.bin`], { check: true })).stdout.trim();
  const lan = await createLan(2);
  keepLan(lan);
  const [A, B] = lan.hosts;
  const two = availableParallelism() >= 2;
  const wrap =
    (h: LanHost, cpu: string | null) =>
    (cmd: string, args: string[]): [string, string[]] =>
      cpu === null ? ['ip', ['netns', 'exec', h.ns, cmd, ...args]] : ['ip', ['netns', 'exec', h.ns, 'taskset', '-c', cpu, cmd, ...args]];

  const fetchNar = async (hashPart: string, cpu: string | null): Promise<{ seconds: number; size: number }> => {
    const info = await A.run('curl', ['-sf', `http://127.0.0.1:9998/${hashPart}.narinfo`]);
    if (info.code !== 0) throw new Error(`narinfo ${hashPart} through A: curl exit ${info.code}`);
    const url = /^URL: (.*)$/m.exec(info.stdout)![1];
    const args = ['-s', '-o', '/dev/null', '-w', '%{http_code} %{time_total} %{size_download}', `http://127.0.0.1:9998/${url}`];
    const r = cpu === null ? await A.run('curl', args, { timeoutMs: 300_000 }) : await A.run('taskset', ['-c', cpu, 'curl', ...args], { timeoutMs: 300_000 });
    const [status, seconds, size] = r.stdout.trim().split(' ');
    if (status !== '200') throw new Error(`NAR ${hashPart} through A: HTTP ${status} (curl exit ${r.code})`);
    return { seconds: Number(seconds), size: Number(size) };
  };

  const once = async (variant: 'raw' | 'unknown' | 'known', target: string, pin: boolean) => {
    const b = await startPeernixProcess(holderArgs(bStore.storeUri, key.secretKeyFile, `${dir}/one-b-state`), {
      main: BUILT_MAIN,
      wrap: wrap(B, pin ? '0' : null),
    });
    started.push(b);
    const a = await startPeernixProcess(
      [
        '--peer',
        `http://${B.address}:9999`,
        '--no-share',
        '--no-mdns',
        '--store',
        aStore.storeUri,
        '--listen',
        '127.0.0.1:9998',
        '--state-dir',
        `${dir}/one-a-state`,
        ...(variant === 'raw' ? ['--no-peer-compression'] : []),
      ],
      { main: BUILT_MAIN, wrap: wrap(A, pin ? '1' : null) },
    );
    started.push(a);
    try {
      for (let i = 0; ; i++) {
        const r = await A.run('curl', ['-sf', 'http://127.0.0.1:9998/peernix/api/snapshot', '-H', 'host: 127.0.0.1:9998']);
        if (r.code === 0 && /"state":"up"/.test(r.stdout)) break;
        if (i > 150) throw new Error('A never saw B');
        await new Promise((res) => setTimeout(res, 100));
      }
      if (variant === 'known') await fetchNar(warm.slice(11, 43), pin ? '1' : null);
      const b0 = cpuSeconds(b.proc.pid!);
      const a0 = cpuSeconds(a.proc.pid!);
      const r = await fetchNar(target.slice(11, 43), pin ? '1' : null);
      return { ...r, bCpu: cpuSeconds(b.proc.pid!) - b0, aCpu: cpuSeconds(a.proc.pid!) - a0, bLog: b.logs() };
    } finally {
      await a.stop().catch(() => {});
      await b.stop().catch(() => {});
      started.splice(started.indexOf(a), 1);
      started.splice(started.indexOf(b), 1);
    }
  };

  const sets = { 'Python library NAR': py, 'random NAR': rnd };
  for (const shape of shapes) {
    await shapeLink(B, shape);
    for (const [what, path] of Object.entries(sets)) {
      const metric = `one ${what} at ${shape}`;
      const ways: [string, 'raw' | 'unknown' | 'known', boolean][] = [
        ['raw', 'raw', false],
        ['link unknown', 'unknown', false],
        ['link known', 'known', false],
      ];
      if (shape === '1gbit' && two) ways.push(['raw, B and A on separate cores', 'raw', true], ['link known, separate cores', 'known', true]);
      process.stderr.write(`${metric}…\n`);
      const cpu = (figures.cpu[`${what} at ${shape}`] ??= { bCompressed: [], aCompressed: [], bRaw: [], aRaw: [], ratio: [] });
      for (let r = 0; r < runs; r++) {
        for (let i = 0; i < ways.length; i++) {
          const [col, variant, pin] = ways[(i + r) % ways.length];
          const got = await once(variant, path, pin);
          add(`${metric}: fetch through A`, col, got.seconds, 's');
          const mb = got.size / MB;
          add(`${metric}: B's CPU per MB`, col, (got.bCpu * 1000) / mb, 'ms/MB');
          add(`${metric}: A's CPU per MB`, col, (got.aCpu * 1000) / mb, 'ms/MB');
          const m = /NAR \S+: (\d+) bytes in (\d+) on the wire \((\d+) zstd frames, (\d+) raw/.exec(got.bLog);
          if (m) add(`${metric}: wire bytes per NAR byte`, col, Number(m[2]) / Number(m[1]), 'x');
          if (!pin && variant === 'known' && m) {
            cpu.bCompressed.push((got.bCpu * 1000) / mb);
            cpu.aCompressed.push((got.aCpu * 1000) / mb);
            cpu.ratio.push(Number(m[2]) / Number(m[1]));
          }
          if (!pin && variant === 'raw') {
            cpu.bRaw.push((got.bCpu * 1000) / mb);
            cpu.aRaw.push((got.aCpu * 1000) / mb);
          }
        }
      }
      const t = (col: string) => median(figs.values(`${metric}: fetch through A`, col));
      add(`${metric}: speed-up`, 'link known vs raw', t('raw') / t('link known'), 'x');
      add(`${metric}: speed-up`, 'link unknown vs raw', t('raw') / t('link unknown'), 'x');
      if (shape === '1gbit' && two)
        add(`${metric}: speed-up`, 'known vs raw, separate cores', t('raw, B and A on separate cores') / t('link known, separate cores'), 'x');
    }
  }
  return figures;
}
