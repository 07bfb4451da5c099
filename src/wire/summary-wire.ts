import { BloomFilter } from 'bloomfilter';
import { isHashPart } from '../nix/store-path.ts';

// A store summary as it travels between peers: a Bloom filter over the hash parts of the store
// paths a Peernix shares, named by an epoch (a fresh random id at every rebuild) and a generation
// (one more at every batch of additions), plus deltas — the hash parts added since a generation.
// Everything decoded here comes from the LAN: sizes, k and every line are bounded and checked.
//
// Full summary (application/x-peernix-summary), big-endian:
//   "PNXS" | version u8 = 1 | scheme u8 = 1 | k u8 | 0 u8 | epoch 8 bytes | generation u32 |
//   paths u32 | bucket count u32 | buckets (u32 each)
// Scheme 1 is the `bloomfilter` package's 1.x hashing (FNV-1a 64 with enhanced double hashing) of
// the hash part's 32 characters; a peer that hashes otherwise must announce another scheme.
//
// Delta (text/x-peernix-summary-delta): a header line
//   "peernix-summary-delta 1 <epoch> <from> <to> <n>"
// then n hash parts, one a line.

export const SUMMARY_TYPE = 'application/x-peernix-summary';
export const DELTA_TYPE = 'text/x-peernix-summary-delta';
export const SUMMARY_PATH = '/peernix/summary';
const MAGIC = Buffer.from('PNXS');
const VERSION = 1;
const SCHEME = 1;
const HEADER_BYTES = 28;
export const MAX_K = 16;
/** Enough for about three million paths at 1 % false positives. */
export const MAX_SUMMARY_BYTES = 4 * 1024 * 1024;
export const MAX_DELTA_PATHS = 20_000;

export interface Summary {
  epoch: string; // 16 hex digits
  generation: number;
  paths: number;
  filter: BloomFilter;
}

export interface SummaryDelta {
  epoch: string;
  from: number;
  to: number;
  hashParts: string[];
}

export class SummaryFormatError extends Error {}

export function encodeSummary(s: Summary): Buffer {
  const buckets = s.filter.buckets;
  const out = Buffer.allocUnsafe(HEADER_BYTES + buckets.length * 4);
  MAGIC.copy(out, 0);
  out[4] = VERSION;
  out[5] = SCHEME;
  out[6] = s.filter.k;
  out[7] = 0;
  out.write(s.epoch, 8, 8, 'hex');
  out.writeUInt32BE(s.generation, 16);
  out.writeUInt32BE(s.paths, 20);
  out.writeUInt32BE(buckets.length, 24);
  for (let i = 0; i < buckets.length; i++) out.writeUInt32BE(buckets[i], HEADER_BYTES + i * 4);
  return out;
}

export function decodeSummary(buf: Buffer): Summary {
  if (buf.length < HEADER_BYTES + 4) throw new SummaryFormatError(`summary too short (${buf.length} bytes)`);
  if (buf.length > MAX_SUMMARY_BYTES) throw new SummaryFormatError(`summary larger than ${MAX_SUMMARY_BYTES} bytes`);
  if (!buf.subarray(0, 4).equals(MAGIC)) throw new SummaryFormatError('not a Peernix summary');
  if (buf[4] !== VERSION) throw new SummaryFormatError(`summary version ${buf[4]} is not supported`);
  if (buf[5] !== SCHEME) throw new SummaryFormatError(`summary hashing scheme ${buf[5]} is not supported`);
  const k = buf[6];
  if (k < 1 || k > MAX_K) throw new SummaryFormatError(`summary k=${k} is out of range`);
  const count = buf.readUInt32BE(24);
  if (count < 1 || HEADER_BYTES + count * 4 !== buf.length) throw new SummaryFormatError('summary length does not match its bucket count');
  const buckets = new Uint32Array(count);
  for (let i = 0; i < count; i++) buckets[i] = buf.readUInt32BE(HEADER_BYTES + i * 4);
  return {
    epoch: buf.toString('hex', 8, 16),
    generation: buf.readUInt32BE(16),
    paths: buf.readUInt32BE(20),
    filter: new BloomFilter(buckets, k),
  };
}

export function encodeDelta(d: SummaryDelta): string {
  return [`peernix-summary-delta 1 ${d.epoch} ${d.from} ${d.to} ${d.hashParts.length}`, ...d.hashParts].join('\n') + '\n';
}

const DELTA_HEADER = /^peernix-summary-delta 1 ([0-9a-f]{16}) (\d{1,10}) (\d{1,10}) (\d{1,6})$/;

export function decodeDelta(text: string): SummaryDelta {
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  const m = DELTA_HEADER.exec(lines[0] ?? '');
  if (!m) throw new SummaryFormatError('not a Peernix summary delta');
  const [from, to, n] = [Number(m[2]), Number(m[3]), Number(m[4])];
  if (to <= from) throw new SummaryFormatError(`delta goes from generation ${from} to ${to}`);
  if (n > MAX_DELTA_PATHS) throw new SummaryFormatError(`delta of ${n} paths is larger than ${MAX_DELTA_PATHS}`);
  const hashParts = lines.slice(1);
  if (hashParts.length !== n) throw new SummaryFormatError(`delta says ${n} paths but has ${hashParts.length}`);
  for (const h of hashParts) if (!isHashPart(h)) throw new SummaryFormatError('delta holds something that is not a hash part');
  return { epoch: m[1], from, to, hashParts };
}
