import { nix32Digit } from '../nix/nix32.ts';

// "Certainly not in the store" without a database query, for the narinfo misses that peers send
// all day: a fixed 2 MiB bitmap over the first 24 bits of every hash part seen. A set bit only says
// "maybe" (another path shares those bits, or the path was deleted since) and the caller then
// asks the database as before; a clear bit is a sure miss. With 100 000 paths about 0.6% of misses
// still reach the database.

const BITS = 24;

export class HashPartFilter {
  private readonly bits = new Uint8Array(1 << (BITS - 3));

  add(hashPart: string): void {
    const i = slot(hashPart);
    if (i >= 0) this.bits[i >> 3] |= 1 << (i & 7);
  }

  mayContain(hashPart: string): boolean {
    const i = slot(hashPart);
    return i < 0 || (this.bits[i >> 3] & (1 << (i & 7))) !== 0;
  }
}

// The first five nix32 digits hold 25 bits; the lowest is dropped. -1 for anything not nix32, which
// then always counts as "maybe".
function slot(hashPart: string): number {
  let v = 0;
  for (let k = 0; k < 5; k++) {
    const d = nix32Digit(hashPart.charCodeAt(k));
    if (d < 0) return -1;
    v = (v << 5) | d;
  }
  return v >>> 1;
}
