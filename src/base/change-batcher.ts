import type { ApiChange } from './api.ts';

// Subscribers of the API's changes. Events go out as they happen; 'peers', 'entries' and 'status'
// are notices to re-read the snapshot, so many of them within a tick of 100 ms become one each —
// a burst of peer probes or cache records must not make every window re-render per change.

export type Topic = 'peers' | 'entries' | 'status';

export class ChangeBatcher {
  private readonly listeners = new Set<(c: ApiChange) => void>();
  private readonly pending = new Set<Topic>();
  private readonly delayMs: number;
  private timer: NodeJS.Timeout | null = null;

  constructor(delayMs = 100) {
    this.delayMs = delayMs;
  }

  subscribe(listener: (c: ApiChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Delivers a change to every subscriber now; one that throws does not stop the others. */
  now(change: ApiChange): void {
    for (const l of this.listeners) {
      try {
        l(change);
      } catch {
        // a broken subscriber is its own problem
      }
    }
  }

  soon(topic: Topic): void {
    this.pending.add(topic);
    this.timer ??= setTimeout(() => {
      this.timer = null;
      const topics = [...this.pending];
      this.pending.clear();
      for (const t of topics) this.now({ topic: t });
    }, this.delayMs);
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.pending.clear();
  }
}
