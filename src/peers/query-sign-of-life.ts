// Hears other hosts' mDNS queries for our service type and takes one from a stranger as a sign of life:
// a host that starts browsing for `_peernix._tcp` is very likely one that has just started serving.
// The Go peernix announces nothing when it starts (it only answers queries), so without this a Go host
// that starts after us is found only at our next periodic query, up to a minute later; with it, our
// query goes out within a moment of its first browse, and its answer brings it in.
// Threat: queries are anyone's to send; each one costs at most a flag check, and our own queries are
// sent at most once per `minGapMs` however many arrive, so we amplify nothing.

export interface SignOfLifeOptions {
  /** The service type's PTR name, lower case ("_peernix._tcp.local"). */
  serviceName: string;
  /** Whether an address is ours or already a known peer's (its query tells us nothing new). */
  known: (address: string) => boolean;
  /** Sends our query for the service type. */
  requery: () => void;
  /** Fewest ms between two queries we send for this reason (default 5 s). */
  minGapMs?: number;
  /** Ms to wait after hearing the query, so the newcomer's responder is up (default 500 ms). */
  delayMs?: number;
  now?: () => number;
  setTimer?: (fn: () => void, ms: number) => { unref?: () => unknown } | unknown;
}

export class QuerySignOfLife {
  private readonly opts: Required<Omit<SignOfLifeOptions, 'setTimer'>> & Pick<SignOfLifeOptions, 'setTimer'>;
  private lastAt = -Infinity;
  private pending = false;
  private stopped = false;
  /** Queries we sent because a stranger asked. */
  requeries = 0;

  constructor(opts: SignOfLifeOptions) {
    this.opts = { minGapMs: 5000, delayMs: 500, now: Date.now, ...opts, serviceName: opts.serviceName.toLowerCase() };
  }

  /** A multicast-dns 'query' event. */
  heard(packet: unknown, rinfo: unknown): void {
    if (this.stopped || this.pending) return;
    const questions = (packet as { questions?: unknown } | null)?.questions;
    if (!Array.isArray(questions)) return;
    const asksUs = questions.some((q) => {
      const name = (q as { name?: unknown } | null)?.name;
      return typeof name === 'string' && name.length < 256 && name.toLowerCase().replace(/\.$/, '') === this.opts.serviceName;
    });
    if (!asksUs) return;
    const address = (rinfo as { address?: unknown } | null)?.address;
    if (typeof address !== 'string' || this.opts.known(address)) return;
    const now = this.opts.now();
    if (now - this.lastAt < this.opts.minGapMs) return;
    this.lastAt = now;
    this.pending = true;
    const fire = () => {
      this.pending = false;
      if (this.stopped) return;
      this.requeries++;
      this.opts.requery();
    };
    const timer = this.opts.setTimer ? this.opts.setTimer(fire, this.opts.delayMs) : setTimeout(fire, this.opts.delayMs);
    (timer as { unref?: () => unknown } | null)?.unref?.();
  }

  stop(): void {
    this.stopped = true;
  }
}
