import type { Clock } from '../base/clock.ts';

// A client's NARs go in timed phases, raw or compressed, and the NAR bytes per second each phase
// achieved decide the next (adaptive-frames.ts says why). A phase's rate counts only its second
// half: the buffers between here and the receiver hold the previous phase's bytes at first.

const TRIAL_MS = 1000;
const LONG_MS = 4000;
/** Each compressed trial that loses doubles the raw phase before the next one, up to this. */
const MAX_RAW_MS = 64_000;
/** Compressing must bring at least this much more NAR per second than sending raw. */
export const MARGIN = 1.1;

type Mode = 'raw' | 'zstd';

/** Timed phases of raw or compressed blocks, chosen by the NAR throughput each achieved. */
export class PhasePlan {
  mode: Mode = 'raw';
  private trial = true;
  private readonly clock: Clock;
  private start: number;
  private nar = 0;
  private samples: { at: number; nar: number }[] = [];
  private readonly rate: Record<Mode, number | null> = { raw: null, zstd: null };
  /** Length of a long raw phase: doubles with each compressed trial that loses. */
  private rawMs = LONG_MS;
  /** What the receiver said of its own pace in its latest request (null: nothing, an older Peernix). */
  receiverHeld: number | null = null;

  constructor(clock: Clock) {
    this.clock = clock;
    this.start = clock.now();
  }

  /** Called once a block is on its way; `zstdWorthTrying` says whether a compressed trial could pay now. */
  blockSent(narBytes: number, zstdWorthTrying: () => boolean): void {
    const now = this.clock.now();
    this.nar += narBytes;
    this.samples.push({ at: now, nar: this.nar });
    const elapsed = now - this.start;
    if (elapsed < (this.trial ? TRIAL_MS : this.mode === 'raw' ? this.rawMs : LONG_MS) || this.samples.length < 4) return;
    const mid = this.samples.find((x) => x.at >= this.start + elapsed / 2)!;
    this.rate[this.mode] = now > mid.at ? ((this.nar - mid.nar) / (now - mid.at)) * 1000 : null;
    const other: Mode = this.mode === 'raw' ? 'zstd' : 'raw';
    let next: Mode;
    let trial: boolean;
    if (this.trial && this.rate[other] !== null && this.rate[this.mode] !== null) {
      // A trial against the phase before it: the better one runs long.
      next = this.rate.zstd! > this.rate.raw! * MARGIN ? 'zstd' : 'raw';
      trial = false;
      this.rawMs = next === 'zstd' ? LONG_MS : Math.min(MAX_RAW_MS, this.rawMs * 2);
    } else if (other === 'zstd' && !zstdWorthTrying()) {
      next = 'raw';
      trial = false;
    } else {
      next = other; // after a long phase (or the first one), try the other way
      trial = true;
    }
    this.mode = next;
    this.trial = trial;
    this.begin(now);
  }

  /** A NAR starts: after a pause (no block for a while) the phase is timed afresh. */
  resumeAfterIdle(): void {
    const last = this.samples.at(-1)?.at ?? this.start;
    const now = this.clock.now();
    if (now - last > 1000) this.begin(now);
  }

  private begin(now: number): void {
    this.start = now;
    this.nar = 0;
    this.samples = [];
  }
}
