import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { BUILT_MAIN, startPeernixProcess, type PeernixProcess } from '../test/support/peernix-process.ts';

// Measuring helpers shared by the benchmarks. Figures are medians; latency percentiles come from
// every request of a run.

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

export function median(xs: number[]): number {
  return percentile(
    [...xs].sort((a, b) => a - b),
    50,
  );
}

/** A response with another status than a run expects: its timing would measure the wrong thing. */
export class UnexpectedStatus extends Error {}

/**
 * Sequential GETs over one keep-alive connection; returns per-request latencies in ms, sorted. Every
 * response must have status `expect` (200 for hits, 404 for misses), or the run fails.
 */
export async function sequentialLatency(urls: string[], expect: number): Promise<number[]> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const out: number[] = [];
  for (const url of urls) out.push(await timedGet(url, agent, expect));
  agent.destroy();
  return out.sort((a, b) => a - b);
}

/**
 * Like sequentialLatency for several servers at once, taking turns every `slice` requests (each on
 * its own kept-alive connection), so that all of them see the same moments of a noisy machine.
 * urls[k] are server k's URLs; returns each server's latencies in ms, sorted.
 */
export async function latencyInTurns(urls: string[][], expect: number, slice = 100): Promise<number[][]> {
  const agents = urls.map(() => new Agent({ keepAlive: true, maxSockets: 1 }));
  const out: number[][] = urls.map(() => []);
  const total = Math.max(...urls.map((u) => u.length));
  for (let from = 0, turn = 0; from < total; from += slice, turn++) {
    for (let j = 0; j < urls.length; j++) {
      const k = (turn + j) % urls.length;
      for (const url of urls[k].slice(from, from + slice)) out[k].push(await timedGet(url, agents[k], expect));
    }
  }
  for (const a of agents) a.destroy();
  return out.map((l) => l.sort((a, b) => a - b));
}

function timedGet(url: string, agent: Agent, expect: number): Promise<number> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = request(url, { agent }, (res) => {
      res.on('data', () => {});
      res.on('end', () =>
        res.statusCode === expect ? resolve(performance.now() - t0) : reject(new UnexpectedStatus(`${url}: HTTP ${res.statusCode}, expected ${expect}`)),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

/** Downloads with curl (a neutral, cheap client) and returns the aggregate throughput in MiB/s. */
export async function curlThroughput(url: string, connections: number): Promise<number> {
  // -f: an error status fails the run instead of timing an error page.
  const args = ['-sS', '-f', '-o', '/dev/null', '-w', '%{http_code} %{size_download}\\n'];
  const t0 = performance.now();
  const sizes = await Promise.all(
    Array.from(
      { length: connections },
      () =>
        new Promise<number>((resolve, reject) => {
          const p = spawn('curl', [...args, url], { stdio: ['ignore', 'pipe', 'inherit'] });
          let out = '';
          p.stdout.on('data', (d) => (out += d));
          p.on('close', (code) => {
            const [status, size] = out.trim().split(' ');
            if (code === 0 && status === '200') resolve(Number(size));
            else reject(new UnexpectedStatus(`curl exit ${code}, HTTP ${status} for ${url}`));
          });
        }),
    ),
  );
  const secs = (performance.now() - t0) / 1000;
  const bytes = sizes.reduce((a, b) => a + b, 0);
  return bytes / secs / (1024 * 1024);
}

/** fetch that fails the run unless the answer is 200; for the requests a benchmark depends on. */
export async function fetchOk(url: string, init?: RequestInit): Promise<Response> {
  const res = await fetch(url, init);
  if (res.status !== 200) {
    await res.body?.cancel();
    throw new UnexpectedStatus(`${url}: HTTP ${res.status}, expected 200`);
  }
  return res;
}

/** Peak resident set (VmHWM) of a process, in MiB. */
export function peakRssMiB(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

export function currentRssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

export function fmt(n: number, digits = 3): string {
  return Number.isFinite(n) ? n.toFixed(digits) : 'n/a';
}

export function row(label: string, ours: number, ref: number, unit: string, digits = 3): string {
  return `${label.padEnd(34)} ${fmt(ours, digits).padStart(10)} ${fmt(ref, digits).padStart(10)}  ${unit.padEnd(6)} ratio ${fmt(ours / ref, 2)}`;
}

/** Starts built `peernix serve` processes on loopback (no mDNS), each with a state dir under `dir`; keeps them in `started`. */
export function peernixLauncher(dir: string): { started: PeernixProcess[]; serve(name: string, store: string, args: string[]): Promise<PeernixProcess> } {
  const started: PeernixProcess[] = [];
  return {
    started,
    async serve(name, store, args) {
      const p = await startPeernixProcess(
        ['--store', store, '--listen', '127.0.0.1:0', '--share-listen', '127.0.0.1:0', '--state-dir', `${dir}/${name}`, '--no-mdns', ...args],
        { main: BUILT_MAIN },
      );
      started.push(p);
      return p;
    },
  };
}
