// Transfers cut for wrong bytes, remembered so that a resume of one is refused: the client holds a
// prefix that failed verification, and any correct suffix would still fail its own check.

/** Most transfers cut for wrong bytes remembered at once (oldest forgotten first). */
const MAX_MISMATCH_CUTS = 4096;

export class MismatchCuts {
  /** `${hashPart}-${narHash32}` → until when a resume of it is refused. */
  private readonly cuts = new Map<string, number>();

  private readonly now: () => number;
  private readonly memoryMs: number;

  /** `now` is the registry's health clock (monotonic), so a wall clock set back keeps no cut longer. */
  constructor(now: () => number, memoryMs: number) {
    this.now = now;
    this.memoryMs = memoryMs;
  }

  refusesResume(hashPart: string, narHash32: string): boolean {
    const key = `${hashPart}-${narHash32}`;
    const until = this.cuts.get(key);
    if (until === undefined) return false;
    if (until > this.now()) return true;
    this.cuts.delete(key);
    return false;
  }

  remember(hashPart: string, narHash32: string): void {
    const key = `${hashPart}-${narHash32}`;
    this.cuts.delete(key);
    this.cuts.set(key, this.now() + this.memoryMs);
    if (this.cuts.size > MAX_MISMATCH_CUTS) this.cuts.delete(this.cuts.keys().next().value!);
  }
}
