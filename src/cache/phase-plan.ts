import type { Clock } from '../base/clock.ts';
import { LinkMeter } from './link-meter.ts';

// A client's NARs go in timed phases, raw or compressed, and the NAR bytes per second each phase
// achieved decide the next (adaptive-frames.ts says why). A phase's rate counts only its second
// half: the buffers between here and the receiver hold the previous phase's bytes at first.

const TRIAL_MS = 1000;
const LONG_MS = 4000;
/** Each compressed trial that loses doubles the raw phase before the next one, up to this. */
const MAX_RAW_MS = 64_000;
/** Compressing must bring at least this much more NAR per second than sending raw. */
export const MARGIN = 1.1;
/**
 * A link the receiver measured at this many times less than one compression here is known slow:
 * a client's first NAR then starts compressed. Wide on purpose: the receiver pays for decoding, and
 * a link near this machine's compression rate is for the phases to judge, not a guess.
 */
export const KNOWN_SLOW = 4;

/** A receiver whose consumer held its recent transfers up for more than this share of their time gets no compression trial. */
export const RECEIVER_HELD_MAX = 0.3;

type Mode = 'raw' | 'zstd';

/** Timed phases of raw or compressed blocks, chosen by the NAR throughput each achieved. */
export class PhasePlan {
  /** How fast this client drains what is sent to it, across its responses. */
  readonly link: LinkMeter;
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
    this.link = new LinkMeter(clock);
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

  /**
   * A NAR starts with what the receiver knows of its link from earlier transfers (wire bytes per
   * second, receiver-load.ts). While no compressed phase was measured here for this client, a link far
   * slower than this machine compresses makes the next phase a long compressed one: no raw phase
   * first to learn what the receiver already knew. The phases then judge as ever (a raw trial follows).
   */
  knownLink(linkRate: number | null, compressRate: number): void {
    // Only while compressing was never measured for this client: once it was, the phases judge. Raw
    // phases may have run (pieces of one NAR from several holders, swarm-nar.ts, are short requests
    // that start raw before the receiver has a figure for this holder's link).
    if (linkRate === null || this.rate.zstd !== null || this.mode !== 'raw') return;
    if (this.receiverHeld !== null && this.receiverHeld > RECEIVER_HELD_MAX) return; // its own side, not the link, is what it waits on
    if (compressRate < linkRate * KNOWN_SLOW) return;
    this.mode = 'zstd';
    this.trial = false;
    this.begin(this.clock.now());
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
