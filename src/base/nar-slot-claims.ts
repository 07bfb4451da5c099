// NAR slots for several event loops (the share listener's worker threads): one NarSlots, held by the
// main loop, keeps the caps global, and the other loops claim on it by message. A claim costs one
// message each way per NAR (not per narinfo), and the one queue keeps its order and its wait across
// loops, so a client spreading its connections over every loop still gets its per-address share and
// no more.
//
// Messages, loop → holder: { t: 'acquire', id, address } | { t: 'abort', id } | { t: 'release', id };
// holder → loop: { t: 'admitted', id } | { t: 'refused', id, why }.

import type { Admission, NarAdmission, NarSlot, NarSlots } from './nar-slots.ts';

export type ClaimRequest = { t: 'acquire'; id: number; address: string } | { t: 'abort'; id: number } | { t: 'release'; id: number };
export type ClaimAnswer = { t: 'admitted'; id: number } | { t: 'refused'; id: number; why: 'busy' | 'gone' | 'closed' };

export function isClaimRequest(m: { t?: unknown }): m is ClaimRequest {
  return m.t === 'acquire' || m.t === 'abort' || m.t === 'release';
}

export function isClaimAnswer(m: { t?: unknown }): m is ClaimAnswer {
  return m.t === 'admitted' || m.t === 'refused';
}

/** The holder's side, one per claiming loop: answers its claims from the one NarSlots. */
export class SlotClaimsHost {
  private readonly slots: NarSlots;
  private readonly answer: (a: ClaimAnswer) => void;
  private readonly held = new Map<number, NarSlot>();
  private readonly waiting = new Map<number, AbortController>();

  constructor(slots: NarSlots, answer: (a: ClaimAnswer) => void) {
    this.slots = slots;
    this.answer = answer;
  }

  handle(m: ClaimRequest): void {
    if (m.t === 'release') {
      this.held.get(m.id)?.release();
      this.held.delete(m.id);
    } else if (m.t === 'abort') {
      this.waiting.get(m.id)?.abort();
    } else void this.acquire(m.id, m.address);
  }

  private async acquire(id: number, address: string): Promise<void> {
    const gone = new AbortController();
    this.waiting.set(id, gone);
    const a = await this.slots.acquire(address, gone.signal);
    this.waiting.delete(id);
    if ('slot' in a) {
      this.held.set(id, a.slot);
      this.answer({ t: 'admitted', id });
    } else this.answer({ t: 'refused', id, why: a.refused });
  }

  /** The loop is gone (stopped or crashed): whatever it held or waited for goes back. */
  drop(): void {
    for (const w of this.waiting.values()) w.abort();
    for (const s of this.held.values()) s.release();
    this.held.clear();
  }

  /** Slots this loop holds now; for tests. */
  get holding(): number {
    return this.held.size;
  }
}

/** A claiming loop's side: NarAdmission over messages to the holder. */
export class ClaimedNarSlots implements NarAdmission {
  private readonly send: (m: ClaimRequest) => void;
  private readonly pending = new Map<number, (a: Admission) => void>();
  private nextId = 1;
  private closed = false;

  constructor(send: (m: ClaimRequest) => void) {
    this.send = send;
  }

  acquire(address: string, signal?: AbortSignal): Admission | Promise<Admission> {
    if (this.closed) return { refused: 'closed' };
    if (signal?.aborted) return { refused: 'gone' };
    const id = this.nextId++;
    return new Promise<Admission>((resolve) => {
      const onAbort = () => this.send({ t: 'abort', id });
      signal?.addEventListener('abort', onAbort, { once: true });
      this.pending.set(id, (a) => {
        signal?.removeEventListener('abort', onAbort);
        // Admitted after the client left: the slot goes straight back.
        if ('slot' in a && signal?.aborted) {
          a.slot.release();
          return resolve({ refused: 'gone' });
        }
        resolve(a);
      });
      this.send({ t: 'acquire', id, address });
    });
  }

  /** An answer from the holder. */
  handle(m: ClaimAnswer): void {
    const settle = this.pending.get(m.id);
    if (!settle) {
      if (m.t === 'admitted') this.send({ t: 'release', id: m.id });
      return;
    }
    this.pending.delete(m.id);
    if (m.t === 'refused') return settle({ refused: m.why });
    let released = false;
    settle({
      slot: {
        release: () => {
          if (released) return;
          released = true;
          this.send({ t: 'release', id: m.id });
        },
      },
    });
  }

  /** Ends every wait ('closed') and refuses every later claim: the loop is stopping. */
  close(): void {
    this.closed = true;
    for (const settle of this.pending.values()) settle({ refused: 'closed' });
    this.pending.clear();
  }
}
