import { keepCorruptFile, readStateFile, StateFileError, writeStateFile } from '../base/state-file.ts';
import type { LanTally, LanTotalsView, PeernixEvent } from '../base/api.ts';
import type { Logger } from '../base/log.ts';

// What the LAN did for this machine: per local day, bytes and paths fetched from peers (instead of
// the upstream caches) and served to them, and misses answered; per minute over the last hour,
// NAR bytes in and out. Day totals come from the 'transfer' events (a path counts once it arrived
// whole); the minute chart from transfer progress, so a long transfer draws as it goes.
//
// Kept in the state directory so a restart does not zero the week: a small JSON file (at most
// KEEP_DAYS days and an hour of minutes), written atomically a few seconds after a change. A file
// that cannot be read is set aside as <file>.corrupt-<time> and counting starts again.

export const LAN_TOTALS_FILE = 'lan-totals.json';
const KEEP_DAYS = 14;
const MINUTES = 60;
const MAX_FILE_BYTES = 256 * 1024;

export interface LanTotalsOptions {
  /** The file totals persist in; null keeps them in memory only. */
  file: string | null;
  log?: Logger;
  now?: () => number;
  /** How long after a change the file is written. */
  saveDelayMs?: number;
}

interface Stored {
  version: 1;
  days: Record<string, LanTally>;
  minutes: [minute: number, inBytes: number, outBytes: number][];
}

const zero = (): LanTally => ({ fetchedBytes: 0, fetchedPaths: 0, servedBytes: 0, servedPaths: 0, misses: 0 });

/** The local calendar day of `t`, as YYYY-MM-DD. */
export function localDay(t: number): string {
  const d = new Date(t);
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
}

/** The local days of the week `t` is in, Monday first, up to and including t's day. */
function weekDays(t: number): string[] {
  const d = new Date(t);
  const sinceMonday = (d.getDay() + 6) % 7;
  const days: string[] = [];
  for (let i = sinceMonday; i >= 0; i--) days.push(localDay(new Date(d.getFullYear(), d.getMonth(), d.getDate() - i, 12).getTime()));
  return days;
}

export class LanTotals {
  private days = new Map<string, LanTally>();
  private minutes = new Map<number, { in: number; out: number }>();
  private readonly listeners = new Set<() => void>();
  private readonly opts: LanTotalsOptions & { now: () => number; saveDelayMs: number };
  private saveTimer: NodeJS.Timeout | null = null;
  /** Set when the file was refused (a link, another user's): it is then left alone, never written. */
  private refused = false;

  constructor(opts: LanTotalsOptions) {
    this.opts = { now: Date.now, saveDelayMs: 5000, ...opts };
    if (opts.file) this.load(opts.file);
  }

  /** Follows an event stream ('transfer' events); returns the unsubscribe. */
  follow(subscribe: (listener: (e: PeernixEvent) => void) => () => void): () => void {
    return subscribe((e) => this.record(e));
  }

  record(e: PeernixEvent): void {
    if (e.type !== 'transfer' || e.outcome === 'failed') return;
    this.countTransfer(e.direction, e.bytes);
  }

  /** A NAR that arrived (or went out) whole; also for clients that are not peers (no event names them). */
  countTransfer(direction: 'in' | 'out', bytes: number): void {
    const day = this.today();
    if (direction === 'in') {
      day.fetchedBytes += bytes;
      day.fetchedPaths++;
    } else {
      day.servedBytes += bytes;
      day.servedPaths++;
    }
    this.changed();
  }

  countMiss(): void {
    this.today().misses++;
    this.changed();
  }

  /** NAR bytes that just moved, for the per-minute chart. */
  flow(direction: 'in' | 'out', bytes: number): void {
    if (!(bytes > 0)) return;
    const minute = Math.floor(this.opts.now() / 60_000);
    let m = this.minutes.get(minute);
    if (!m) {
      m = { in: 0, out: 0 };
      this.minutes.set(minute, m);
      for (const k of this.minutes.keys()) if (k <= minute - MINUTES) this.minutes.delete(k);
    }
    m[direction] += bytes;
    this.changed();
  }

  view(): LanTotalsView {
    const now = this.opts.now();
    const week = zero();
    for (const key of weekDays(now)) {
      const d = this.days.get(key);
      if (d) for (const k of Object.keys(week) as (keyof LanTally)[]) week[k] += d[k];
    }
    const last = Math.floor(now / 60_000);
    const inBytes: number[] = [];
    const outBytes: number[] = [];
    for (let m = last - MINUTES + 1; m <= last; m++) {
      inBytes.push(this.minutes.get(m)?.in ?? 0);
      outBytes.push(this.minutes.get(m)?.out ?? 0);
    }
    return { today: { ...(this.days.get(localDay(now)) ?? zero()) }, week, minutes: { start: (last - MINUTES + 1) * 60_000, inBytes, outBytes } };
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Writes the file now (if there is anything unsaved). */
  flush(): void {
    if (this.saveTimer) clearTimeout(this.saveTimer);
    this.saveTimer = null;
    this.save();
  }

  close(): void {
    if (this.saveTimer) this.flush();
    this.listeners.clear();
  }

  private today(): LanTally {
    const key = localDay(this.opts.now());
    let d = this.days.get(key);
    if (!d) {
      d = zero();
      this.days.set(key, d);
      const keep = [...this.days.keys()].sort().slice(-KEEP_DAYS);
      for (const k of this.days.keys()) if (!keep.includes(k)) this.days.delete(k);
    }
    return d;
  }

  private changed(): void {
    if (this.opts.file && !this.saveTimer) {
      this.saveTimer = setTimeout(() => {
        this.saveTimer = null;
        this.save();
      }, this.opts.saveDelayMs);
      this.saveTimer.unref();
    }
    for (const l of this.listeners) {
      try {
        l();
      } catch {
        // a broken listener must not stop the count
      }
    }
  }

  private save(): void {
    const file = this.opts.file;
    if (!file) return;
    const now = Math.floor(this.opts.now() / 60_000);
    const stored: Stored = {
      version: 1,
      days: Object.fromEntries(this.days),
      minutes: [...this.minutes].filter(([m]) => m > now - MINUTES).map(([m, v]) => [m, v.in, v.out]),
    };
    if (this.refused) return;
    try {
      writeStateFile(file, JSON.stringify(stored));
    } catch (e) {
      this.opts.log?.warn(`cannot save the LAN totals to ${file}: ${(e as Error).message}`);
    }
  }

  private load(file: string): void {
    let text: string | null;
    try {
      text = readStateFile(file, { maxBytes: MAX_FILE_BYTES });
    } catch (e) {
      if (e instanceof StateFileError && e.problem !== 'too-large') {
        this.refused = true;
        this.opts.log?.warn(`LAN totals: ${e.message}; counting from zero without saving`);
        return;
      }
      return this.setAside(file, (e as Error).message);
    }
    if (text === null) return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      // JSON.parse's message quotes the file; only the fact reaches the log.
      return this.setAside(file, 'not valid JSON');
    }
    try {
      const stored = parseStored(parsed);
      for (const [k, v] of Object.entries(stored.days).sort().slice(-KEEP_DAYS)) this.days.set(k, v);
      for (const [m, i, o] of stored.minutes.slice(-MINUTES)) this.minutes.set(m, { in: i, out: o });
    } catch (e) {
      this.setAside(file, (e as Error).message);
    }
  }

  private setAside(file: string, why: string): void {
    try {
      const aside = keepCorruptFile(file, this.opts.now());
      this.opts.log?.warn(`LAN totals in ${file} unreadable (${why}); kept as ${aside}, counting from zero`);
    } catch (e) {
      this.opts.log?.warn(`LAN totals in ${file} unreadable (${why}) and could not be set aside: ${(e as Error).message}`);
    }
  }
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

function parseStored(v: unknown): Stored {
  if (typeof v !== 'object' || v === null || (v as Stored).version !== 1) throw new Error('not a version 1 totals file');
  const { days, minutes } = v as Stored;
  if (typeof days !== 'object' || days === null || !Array.isArray(minutes)) throw new Error('days or minutes missing');
  const out: Stored = { version: 1, days: {}, minutes: [] };
  for (const [k, d] of Object.entries(days)) {
    if (!/^\d{4}-\d{2}-\d{2}$/.test(k)) throw new Error('a day that is not a date');
    const t = zero();
    for (const f of Object.keys(t) as (keyof LanTally)[]) {
      const n = (d as unknown as Record<string, unknown>)?.[f];
      if (!isCount(n)) throw new Error(`bad ${f} on ${k}`);
      t[f] = n;
    }
    out.days[k] = t;
  }
  for (const m of minutes) {
    if (!Array.isArray(m) || m.length !== 3 || !m.every(isCount)) throw new Error('bad minute');
    out.minutes.push(m as Stored['minutes'][number]);
  }
  return out;
}
