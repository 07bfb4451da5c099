import type { PeernixEvent } from './api.ts';

// Typed events with a bounded history: the window's timeline and `peernix status` read the history,
// subscribers get each event as it happens.

type Without<T, K extends keyof T> = T extends unknown ? Omit<T, K> : never;
export type NewEvent = Without<PeernixEvent, 'id' | 'time'>;

export class EventLog {
  private readonly items: PeernixEvent[] = [];
  private readonly listeners = new Set<(e: PeernixEvent) => void>();
  private nextId = 1;
  private readonly limit: number;

  constructor(limit = 500) {
    this.limit = limit;
  }

  emit(event: NewEvent): PeernixEvent {
    const full = { ...event, id: this.nextId++, time: Date.now() } as PeernixEvent;
    this.items.push(full);
    if (this.items.length > this.limit) this.items.splice(0, this.items.length - this.limit);
    for (const l of this.listeners) {
      try {
        l(full);
      } catch {
        // a broken subscriber must not stop the others or the request that emitted
      }
    }
    return full;
  }

  /** Newest first. */
  recent(): PeernixEvent[] {
    return this.items.slice().reverse();
  }

  subscribe(listener: (e: PeernixEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
