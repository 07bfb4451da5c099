// bench:transfers, part "model" (issue #24 §3): what compression between peers gains on machines
// with more cores than this one, from rates measured here on one core each, and the CPU per MB each
// side spent in the one-NAR runs (transfers-one-nar.ts). The model (also in the README):
//
//   raw NAR MB/s  = min(L, 1000 / a_raw, 1000 / b_raw)
//   zstd NAR MB/s = min(L / ratio, k·c, 1000 / b_main, k·d, 1000 / a_main),  k = max(1, cores − 1)
//
// L the link in MB/s; a_raw, b_raw the receiver's and sender's CPU ms per MB sending raw (each
// Node's main thread, one core); c and d one core's zstd-1 compression and decompression rates (NAR
// MB/s), which run on k threads of the pool (the sender's budget is cores − 1, so a serving laptop
// keeps a core); b_main and a_main the main-thread CPU per NAR MB when compressed, taken as the raw
// path's (the same hashing and bookkeeping per NAR MB; fewer bytes through the sockets); ratio the
// wire bytes per NAR byte of zstd-1 in 1 MiB blocks.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { constants, zstdCompressSync, zstdDecompressSync } from 'node:zlib';
import { median } from './lib.ts';
import type { Figures, OneNarFigures } from './transfers-one-nar.ts';

const MB = 1e6;
const BLOCK = 1024 * 1024;

/** NAR MB per second one core achieves for `work` over the NAR in 1 MiB blocks (best of 3 passes: the machine is shared). */
function rate(nar: Buffer, work: (block: Buffer, i: number) => void): number {
  let best = 0;
  for (let pass = 0; pass < 3; pass++) {
    const t0 = performance.now();
    for (let at = 0, i = 0; at < nar.length; at += BLOCK, i++) work(nar.subarray(at, at + BLOCK), i);
    best = Math.max(best, nar.length / MB / ((performance.now() - t0) / 1000));
  }
  return best;
}

export function model(figs: Figures, one: OneNarFigures | null): void {
  process.stderr.write('model: per-core rates on the Python library NAR…\n');
  const nar = execFileSync('nix-store', ['--dump', '/usr/lib/python3.11'], { maxBuffer: 1 << 30 });
  const packed: Buffer[] = [];
  const c1 = rate(nar, (b, i) => (packed[i] = zstdCompressSync(b, { params: { [constants.ZSTD_c_compressionLevel]: 1 } })));
  const c3 = rate(nar, (b) => zstdCompressSync(b, { params: { [constants.ZSTD_c_compressionLevel]: 3 } }));
  const ratio = packed.reduce((n, p) => n + p.length, 0) / nar.length;
  let k = 0;
  const d = rate(nar, () => zstdDecompressSync(packed[k++ % packed.length]));
  const h = rate(nar, (b) => createHash('sha256').update(b).digest());
  const m = 'model: one core here, Python library NAR';
  figs.add(m, 'zstd-1 compress', c1, 'MB/s');
  figs.add(m, 'zstd-3 compress', c3, 'MB/s');
  figs.add(m, 'zstd decompress', d, 'MB/s');
  figs.add(m, 'sha256', h, 'MB/s');
  figs.add(`${m}: wire bytes per NAR byte, zstd-1 in 1 MiB blocks`, 'ratio', ratio, 'x');

  // Each side's main-thread CPU per MB, from the raw one-NAR runs at 1 Gbit/s, where CPU rather than
  // the link bounds them (at 100 Mbit/s a MB costs more: more wake-ups per byte). Compressed, the main
  // threads do the same per NAR MB (hashing, frames, fewer socket bytes), the pool the zstd work.
  const cpu = one?.cpu['Python library NAR at 1gbit'];
  const med = (xs: number[] | undefined, fallback: number) => (xs && xs.length > 0 ? median(xs) : fallback);
  const aMain = med(cpu?.aRaw, 1000 / h + 1);
  const bMain = med(cpu?.bRaw, 1.5);
  const r = ratio;
  figs.add(`${m}: main-thread CPU per MB, raw at 1gbit`, 'B (sender)', bMain, 'ms/MB');
  figs.add(`${m}: main-thread CPU per MB, raw at 1gbit`, 'A (receiver, hashes)', aMain, 'ms/MB');
  const cpu100 = one?.cpu['Python library NAR at 100mbit'];
  if (cpu100 && cpu100.bCompressed.length > 0) {
    figs.add(`${m}: CPU per MB compressed at 100mbit, link known`, 'B (sender)', median(cpu100.bCompressed), 'ms/MB');
    figs.add(`${m}: CPU per MB compressed at 100mbit, link known`, 'A (receiver)', median(cpu100.aCompressed), 'ms/MB');
  }
  const aRaw = aMain;
  const bRaw = bMain;
  for (const [link, L] of [
    ['1gbit', 125],
    ['100mbit', 12.5],
  ] as const) {
    for (const cores of [2, 4, 8]) {
      const kk = Math.max(1, cores - 1);
      const raw = Math.min(L, 1000 / aRaw, 1000 / bRaw);
      const z = Math.min(L / r, kk * c1, 1000 / bMain, kk * d, 1000 / aMain);
      figs.add(`model: projected gain at ${link}, each host with`, `${cores} cores`, z / raw, 'x');
    }
    const measured = figs.values(`one Python library NAR at ${link}: speed-up`, 'link known vs raw');
    if (measured.length > 0) figs.add(`model: projected gain at ${link}, each host with`, 'measured here (2 cores for both hosts)', median(measured), 'x');
    const pinned = figs.values(`one Python library NAR at ${link}: speed-up`, 'known vs raw, separate cores');
    if (pinned.length > 0) figs.add(`model: projected gain at ${link}, each host with`, 'measured, one core each (taskset)', median(pinned), 'x');
  }
}
