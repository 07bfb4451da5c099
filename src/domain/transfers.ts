import type { TransferView } from '../base/api.ts';

// NARs moving right now, in either direction. A transfer registers a way to read how far it is
// (a counter its stream already keeps) rather than reporting every chunk: one timer samples all of
// them every tickMs, works out their rates and publishes the whole list at most that often, and
// only when something moved. Progress never enters the bounded event history; the transfer's end
// still does (as the 'transfer' event its owner emits).

export type TransferEnd = 'ok' | 'failed' | 'resumed' | 'aborted';

export interface TransferStart {
  storePath: string;
  direction: 'in' | 'out';
  /** Or how to read it: a resumed transfer changes peer. */
  peerName: string | (() => string);
  /** NAR bytes of the whole transfer (NarSize, or the requested range). */
  total: number;
  /** NAR bytes so far. */
  bytes: () => number;
  /** Bytes on the wire so far, when the link compresses. */
  wireBytes?: () => number | undefined;
  /** A served path's scope, once known (it is judged beside the transfer, not before it). */
  scope?: () => TransferView['scope'];
}

export interface TransferHandle {
  readonly id: number;
  /** Takes a last sample and marks how it ended; 'aborted' (the client left) drops the row at once. */
  end(outcome: TransferEnd): void;
}

export interface TransferTrackerOptions {
  /** Called with the list whenever it changed, at most once per tick. */
  onUpdate: (transfers: TransferView[]) => void;
  /** NAR bytes moved since the last sample, per direction (the per-minute chart). */
  onFlow?: (direction: 'in' | 'out', bytes: number) => void;
  tickMs?: number;
  /** How long a finished row stays. */
  lingerMs?: number;
  /** The rate is measured over this much recent time. */
  rateWindowMs?: number;
  /** Most rows kept; the oldest finished ones go first. */
  maxRows?: number;
  now?: () => number;
}

interface Row {
  view: TransferView;
  start: TransferStart;
  endedAt: number | null;
  samples: { t: number; bytes: number }[];
  flowed: number;
}

export class TransferTracker {
  private readonly rows = new Map<number, Row>();
  private readonly opts: Required<Omit<TransferTrackerOptions, 'onFlow'>> & Pick<TransferTrackerOptions, 'onFlow'>;
  private nextId = 1;
  private timer: NodeJS.Timeout | null = null;
  private dirty = false;
  private closed = false;

  constructor(opts: TransferTrackerOptions) {
    this.opts = { tickMs: 250, lingerMs: 4000, rateWindowMs: 2000, maxRows: 200, now: Date.now, ...opts };
  }

  begin(start: TransferStart): TransferHandle {
    const id = this.nextId++;
    const now = this.opts.now();
    const row: Row = {
      start,
      endedAt: null,
      samples: [{ t: now, bytes: 0 }],
      flowed: 0,
      view: {
        id,
        storePath: start.storePath,
        direction: start.direction,
        peerName: peerNameOf(start),
        bytes: 0,
        total: start.total,
        bytesPerSec: 0,
        startedAt: now,
        outcome: null,
      },
    };
    this.rows.set(id, row);
    this.trim();
    this.dirty = true;
    this.ensureTimer();
    return {
      id,
      end: (outcome) => {
        if (row.endedAt !== null || this.rows.get(id) !== row) return;
        this.sample(row, this.opts.now());
        if (outcome === 'aborted') this.rows.delete(id);
        else {
          row.endedAt = this.opts.now();
          row.view = { ...row.view, outcome, bytesPerSec: 0 };
        }
        this.dirty = true;
        this.ensureTimer();
      },
    };
  }

  views(): TransferView[] {
    return [...this.rows.values()].map((r) => r.view);
  }

  /** One sampling round (the timer calls it; tests with their own clock call it directly). */
  tick(): void {
    const now = this.opts.now();
    for (const [id, row] of this.rows) {
      if (row.endedAt === null) this.sample(row, now);
      else if (now - row.endedAt >= this.opts.lingerMs) {
        this.rows.delete(id);
        this.dirty = true;
      }
    }
    if (this.dirty) {
      this.dirty = false;
      this.opts.onUpdate(this.views());
    }
    if (this.rows.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private sample(row: Row, now: number): void {
    const bytes = Math.max(row.view.bytes, Math.min(row.start.bytes(), Number.MAX_SAFE_INTEGER));
    const wire = row.start.wireBytes?.();
    const delta = bytes - row.flowed;
    if (delta > 0) {
      row.flowed = bytes;
      this.opts.onFlow?.(row.start.direction, delta);
    }
    row.samples.push({ t: now, bytes });
    while (row.samples.length > 2 && now - row.samples[1].t >= this.opts.rateWindowMs) row.samples.shift();
    const first = row.samples[0];
    const span = now - first.t;
    const bytesPerSec = span > 0 ? Math.round(((bytes - first.bytes) * 1000) / span) : 0;
    const v = row.view;
    const peerName = peerNameOf(row.start);
    const scope = row.start.scope?.();
    if (bytes !== v.bytes || bytesPerSec !== v.bytesPerSec || wire !== v.wireBytes || peerName !== v.peerName || scope !== v.scope) {
      row.view = { ...v, bytes, bytesPerSec, peerName, ...(wire !== undefined ? { wireBytes: wire } : {}), ...(scope !== undefined ? { scope } : {}) };
      this.dirty = true;
    }
  }

  private trim(): void {
    if (this.rows.size <= this.opts.maxRows) return;
    for (const [id, row] of this.rows) {
      if (this.rows.size <= this.opts.maxRows) return;
      if (row.endedAt !== null) this.rows.delete(id);
    }
  }

  private ensureTimer(): void {
    if (this.timer || this.closed) return;
    this.timer = setInterval(() => this.tick(), this.opts.tickMs);
    this.timer.unref();
  }
}

function peerNameOf(s: TransferStart): string {
  return typeof s.peerName === 'function' ? s.peerName() : s.peerName;
}
