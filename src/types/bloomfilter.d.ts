// bloomfilter 1.x ships no type declarations; these cover what Peernix uses.
declare module 'bloomfilter' {
  export class BloomFilter {
    /** `m` bits (rounded up to 32), or the 32-bit buckets of a filter to load; `k` hash functions. */
    constructor(m: number | ArrayLike<number>, k: number);
    readonly m: number;
    readonly k: number;
    readonly buckets: Uint32Array;
    add(v: string): void;
    test(v: string): boolean;
    countBits(): number;
    /** Estimated number of items added. */
    size(): number;
    /** Estimated false-positive rate. */
    error(): number;
    static withTargetError(n: number, error: number): BloomFilter;
  }
}
