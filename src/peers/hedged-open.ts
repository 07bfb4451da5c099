import type { TimerHandle } from '../base/clock.ts';
import type { Logger } from '../base/log.ts';
import type { NarInfo } from '../nix/narinfo.ts';
import { PeerError, type PeerClient } from './peer-client.ts';
import type { Peer, PeerRegistry } from './registry.ts';
import type { NarSource, OpenedNar } from './resuming-nar.ts';

// Opening a NAR on peers, hedged: the preferred peer first, and when it has not answered within
// hedgeMs the next holder of the same NarHash too; whichever answers first serves, the others are
// cancelled. Holders come from the resolver's lookups (one fan-out per hash part, shared).

/** A peer's usable narinfo answer for a hash part. */
export interface PeerAnswer {
  peer: Peer;
  info: NarInfo;
  narHash32: string;
  narUrl: string;
}

/** One fan-out of narinfo lookups: answers as they arrive, and who waits for more. */
export interface Lookup {
  list: PeerAnswer[];
  done: boolean;
  doneAt: number;
  waiters: Set<() => void>;
}

/** A peer to open a NAR on: one that answered a lookup, or the affinity entry's (answer null). */
export interface Candidate {
  peer: Peer;
  url: string;
  storePath: string;
  narSize: number;
  answer: PeerAnswer | null;
}

export type Found = { candidate: Candidate; opened: OpenedNar };

/**
 * Resolves once `ready()` holds, the lookup is done or `stop` aborts (the waiter has no use for the
 * answer any more: it then leaves the lookup at once rather than when a slow peer finally answers).
 */
export function waitUntil(state: Lookup, ready: () => boolean, stop?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const check = () => {
      if (ready() || state.done || stop?.aborted) {
        state.waiters.delete(check);
        stop?.removeEventListener('abort', check);
        resolve();
      }
    };
    state.waiters.add(check);
    stop?.addEventListener('abort', check, { once: true });
    check();
  });
}

export interface HedgedOpenDeps {
  registry: PeerRegistry;
  client: PeerClient;
  log: Logger;
  hedgeMs: number;
  /** The fan-out for a hash part (in flight, or just finished unless `fresh`), or null on a remembered miss. */
  lookup(hashPart: string, fresh?: boolean): Lookup | null;
}

export class HedgedOpener {
  private readonly deps: HedgedOpenDeps;

  constructor(deps: HedgedOpenDeps) {
    this.deps = deps;
  }

  /**
   * Opens the NAR on the first live peer with this NarHash (or on `first`, without asking anyone
   * else unless it is slow). With `first`, a quick failure resolves null, so the caller can try the
   * local store before other peers. Peers in `tried` are skipped; every peer opened is added.
   * `signal` (the client left): resolves null at once, every open is cancelled, no hedge follows.
   */
  open(hashPart: string, narHash32: string, tried: Set<string>, offset = 0, first?: Candidate, signal?: AbortSignal): Promise<Found | null> {
    const next = (state: Lookup) => {
      const live = new Set(this.deps.registry.live());
      const usable = (a: Lookup['list'][number]) => a.narHash32 === narHash32 && !tried.has(a.peer.id) && live.has(a.peer);
      // Resuming: a holder that honours Range first; a Go peer ignores it and resends from the start.
      return (offset > 0 ? state.list.find((a) => usable(a) && a.peer.dialect !== 'go') : undefined) ?? state.list.find(usable);
    };
    let state: Lookup | null = null;
    let fanned = false;
    const lookup = (): Lookup | null => {
      if (fanned) return state;
      fanned = true;
      state = this.deps.lookup(hashPart);
      // A lookup that just finished may predate what we need now (a peer that since got the path,
      // or only peers we have already tried): ask again rather than give up on stale answers.
      if (state?.done && !next(state)) state = this.deps.lookup(hashPart, true);
      return state;
    };
    return new Promise((resolve) => {
      let pending = 0;
      let settled = false;
      // The hedge waits on the health clock, as the peer's other waits do.
      const clock = this.deps.registry.health.clock;
      let timer: TimerHandle | undefined;
      const cancels = new Set<AbortController>();
      // Aborted once the open is over (won, failed or the client left): ends the waits for more answers.
      const over = new AbortController();
      const finish = (v: Found | null) => {
        if (settled) return;
        settled = true;
        if (timer) clock.clearTimeout(timer);
        signal?.removeEventListener('abort', left);
        over.abort();
        // Cancelling an open ends its slot wait or destroys its request, so the peer's slot frees too.
        for (const c of cancels) c.abort();
        resolve(v);
      };
      const left = () => finish(null);
      if (signal?.aborted) return finish(null);
      signal?.addEventListener('abort', left, { once: true });
      const open = async (candidate: Candidate) => {
        tried.add(candidate.peer.id);
        pending++;
        if (timer) clock.clearTimeout(timer);
        timer = clock.setTimeout(() => void launch(), this.deps.hedgeMs);
        const cancel = new AbortController();
        cancels.add(cancel);
        const opened = await this.openOne(candidate, candidate.narSize, offset, cancel.signal);
        cancels.delete(cancel);
        pending--;
        if (opened && !settled) finish({ candidate, opened });
        else if (opened) opened.stream.destroy();
        else if (!settled && !fanned && pending === 0) finish(null);
        else void launch();
      };
      const launch = async () => {
        if (settled) return;
        const s = lookup();
        if (!s) {
          if (pending === 0) finish(null);
          return;
        }
        await waitUntil(s, () => next(s) !== undefined, over.signal);
        if (settled) return;
        const answer = next(s);
        if (!answer) {
          if (pending === 0) finish(null);
          return;
        }
        void open({ peer: answer.peer, url: answer.narUrl, storePath: answer.info.storePath, narSize: answer.info.narSize, answer });
      };
      if (first) void open(first);
      else void launch();
    });
  }

  /**
   * Opens a NAR on one source; a failure marks the peer so it isn't asked again until it recovers.
   * A peer that merely no longer has the path, is busy, or that we cancelled, has not failed.
   */
  async openOne(source: NarSource, narSize: number, offset = 0, signal?: AbortSignal, end?: number): Promise<OpenedNar | null> {
    try {
      const stream = await this.deps.client.openNar(source.url, { offset, expectedSize: narSize, signal, end });
      return { source: { peer: source.peer, url: source.url }, stream };
    } catch (e) {
      if (signal?.aborted) return null;
      this.deps.log.info(`peer ${source.peer.name}: ${(e as Error).message}`);
      if (e instanceof PeerError && (e.kind === 'missing' || e.kind === 'busy')) return null;
      // A timeout of a peer heard from moments ago is congestion (registry health decides).
      this.deps.registry.reportFailure(source.peer, (e as Error).message, e instanceof PeerError && e.kind === 'timeout');
      return null;
    }
  }
}
