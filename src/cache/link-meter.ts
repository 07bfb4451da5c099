import type { Clock } from '../base/clock.ts';

// Whether the consumer of a framed NAR (the link, or a receiver behind it) is what holds the
// sender back, and how fast it drains meanwhile: from the time each push had to wait for it.

/** A link is the bottleneck when the response backed up for this share of the recent time. */
const BACKED_UP_SHARE = 0.3;
const WINDOW_MS = 500;

/** How fast the consumer takes what is yielded, and whether it is what holds us back. */
export class LinkMeter {
  private samples: { at: number; bytes: number; waitedMs: number }[] = [];
  private readonly clock: Clock;

  constructor(clock: Clock) {
    this.clock = clock;
  }

  note(bytes: number, waitedMs: number): void {
    const now = this.clock.now();
    this.samples.push({ at: now, bytes, waitedMs });
    while (this.samples.length > 2 && now - this.samples[0].at > WINDOW_MS) this.samples.shift();
  }

  /** Wire bytes per second the consumer drains while it is the bottleneck, or null when it isn't. */
  boundRate(): number | null {
    if (this.samples.length < 4) return null;
    const span = this.samples.at(-1)!.at - this.samples[0].at;
    if (span <= 0) return null;
    let waited = 0;
    let bytes = 0;
    for (const s of this.samples.slice(1)) {
      waited += s.waitedMs;
      bytes += s.bytes;
    }
    if (waited / span < BACKED_UP_SHARE) return null;
    return (bytes / span) * 1000;
  }
}
