import { availableParallelism } from 'node:os';
import { type Clock, systemClock } from '../base/clock.ts';
import { PhasePlan } from './phase-plan.ts';

// How much compressing this machine does for NAR frames (adaptive-frames.ts), for all clients
// together: any LAN client can ask, so compression slots are bounded and a block that can't get one
// soon goes raw. It also keeps each client's phase plan and the compression rates measured here.

/** Longest a block waits for the compression budget before it goes raw. */
export const BUDGET_WAIT_MS = 20;
/** Clients whose plans are kept. */
const REMEMBERED_CLIENTS = 256;

/** Compression work this machine accepts from all clients at once; a block that can't get it soon goes raw. */
export class CompressionBudget {
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  readonly max: number;
  /** Per client address: its NARs' phase plan. */
  private readonly plans = new Map<string, PhasePlan>();
  /** NAR bytes per second one compression achieves here, per level (measured, starts as a guess). */
  private readonly rates = new Map<number, number>([
    [1, 200e6],
    [3, 100e6],
  ]);

  /**
   * Every block is compressed, whatever the plan says (PEERNIX_FORCE_PEER_COMPRESSION=1): for
   * bench:transfers, to show beside the adaptive figures what compressing always would do here.
   */
  readonly forced: boolean;
  /** Times the phases, the link's waits and the compressions of every NAR framed under this budget. */
  readonly clock: Clock;

  constructor(max = Math.max(1, availableParallelism() - 1), forced = process.env.PEERNIX_FORCE_PEER_COMPRESSION === '1', clock: Clock = systemClock) {
    this.max = max;
    this.forced = forced;
    this.clock = clock;
  }

  /** A compression slot within waitMs, or false. */
  take(waitMs = BUDGET_WAIT_MS): Promise<boolean> {
    if (this.active < this.max) {
      this.active++;
      return Promise.resolve(true);
    }
    if (waitMs <= 0 || this.waiting.length >= 64) return Promise.resolve(false);
    return new Promise((resolve) => {
      const grant = () => {
        this.clock.clearTimeout(timer);
        resolve(true);
      };
      const timer = this.clock.setTimeout(() => {
        const i = this.waiting.indexOf(grant);
        if (i >= 0) this.waiting.splice(i, 1);
        resolve(false);
      }, waitMs);
      this.waiting.push(grant);
    });
  }

  give(): void {
    const next = this.waiting.shift();
    if (next)
      next(); // the slot passes on
    else this.active--;
  }

  /** The phase plan of a client's NARs (the most recently used are kept). */
  planFor(client: string): PhasePlan {
    let plan = this.plans.get(client);
    if (plan) this.plans.delete(client);
    else plan = new PhasePlan(this.clock);
    this.plans.set(client, plan);
    if (this.plans.size > REMEMBERED_CLIENTS) this.plans.delete(this.plans.keys().next().value!);
    return plan;
  }

  rate(level: number): number {
    return this.rates.get(level)!;
  }

  measured(level: number, bytes: number, ms: number): void {
    if (ms <= 0) return;
    const r = (bytes / ms) * 1000;
    this.rates.set(level, 0.7 * this.rates.get(level)! + 0.3 * r);
  }
}
