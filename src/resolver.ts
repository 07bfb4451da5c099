import type { Readable } from 'node:stream';
import { AffinityCache, LOCAL, type AffinityEntry } from './affinity.ts';
import type { FallbackReason } from './api.ts';
import { BackendUnavailableError, type CacheBackend, type NarBody } from './cache/backend.ts';
import { localNarBody, narInfoFromPathInfo } from './cache/local-backend.ts';
import { narUrl } from './cache/routes.ts';
import type { EventLog } from './events.ts';
import type { Logger } from './log.ts';
import { formatSha256Nix32, parseSha256 } from './nix/hash.ts';
import type { NarInfo } from './nix/narinfo.ts';
import { encodeNix32 } from './nix/nix32.ts';
import type { SecretKey } from './nix/signing.ts';
import { parseStorePath } from './nix/store-path.ts';
import type { PeerClient } from './peers/peer-client.ts';
import type { Peer, PeerRegistry } from './peers/registry.ts';
import { ResumingNarStream, type NarSource } from './peers/resuming-nar.ts';
import type { LocalStore } from './store/local-store.ts';
import { judgeNarInfo, type TrustPolicy } from './trust.ts';

// Where the substituter listener's answers come from. Every way a request can end is here:
//   narinfo: local store → (negative cache) → all live peers in parallel → 404
//   NAR:     the affinity entry's source → local store → any live peer with the same NarHash → 404
// A NAR is never refused just because we don't remember its narinfo: the URL names the store hash
// and the NarHash, which is all any source needs.

export interface ResolverOptions {
  store: LocalStore;
  key: SecretKey;
  registry: PeerRegistry;
  client: PeerClient;
  affinity: AffinityCache;
  events: EventLog;
  log: Logger;
  trust: () => TrustPolicy;
  negativeTtlMs?: number;
  hedgeMs?: number;
  verifyLocalNars?: boolean;
}

interface Lookup {
  list: PeerAnswer[];
  done: boolean;
  doneAt: number;
  waiters: Set<() => void>;
}

type Opened = { source: NarSource; stream: Readable };
type Verdict = 'trusted' | 'acceptable' | 'rejected';

interface PeerAnswer {
  peer: Peer;
  info: NarInfo;
  narHash32: string;
  narUrl: string;
}

export class Resolver implements CacheBackend {
  private readonly o: ResolverOptions;
  private readonly negative = new Map<string, number>();
  private readonly lookups = new Map<string, Lookup>();

  constructor(opts: ResolverOptions) {
    this.o = { negativeTtlMs: 5000, hedgeMs: 300, ...opts };
    // A new peer may have what we just missed.
    opts.registry.on('up', () => this.negative.clear());
  }

  async narInfo(hashPart: string): Promise<NarInfo | null> {
    const local = await this.localPathInfo(hashPart);
    if (local) {
      const info = narInfoFromPathInfo(local, this.o.key);
      this.o.affinity.record({
        hashPart,
        storePath: local.path,
        source: LOCAL,
        sourceName: 'this machine',
        peerNarUrl: null,
        narHash32: encodeNix32(local.narHash),
        narSize: local.narSize,
      });
      return info;
    }
    const answer = await this.lookupPeers(hashPart, (a) => judgeNarInfo(a.info, this.o.trust()));
    if (!answer) return null;
    this.remember(hashPart, answer);
    // Signatures pass through untouched; only the URL changes so the NAR comes back through us.
    return { ...answer.info, url: narUrl(hashPart, answer.narHash32) };
  }

  async nar(hashPart: string, narHash: Buffer): Promise<NarBody | null> {
    const narHash32 = encodeNix32(narHash);
    const found = this.o.affinity.get(hashPart);
    const entry = found && found.narHash32 === narHash32 ? found : undefined;
    const tried = new Set<string>();
    let reason: FallbackReason = 'none';

    if (entry && entry.source !== LOCAL) {
      const peer = this.o.registry.get(entry.source);
      if (!peer || peer.state === 'gone') reason = 'peer-gone';
      else if (!this.o.registry.live().includes(peer) || !entry.peerNarUrl) reason = 'peer-failed';
      else {
        tried.add(peer.id);
        const opened = await this.openFromPeer({ peer, url: entry.peerNarUrl }, entry.narSize);
        if (opened) {
          this.o.affinity.hit(hashPart);
          return this.peerBody(hashPart, entry.storePath, narHash, entry.narSize, opened, tried);
        }
        reason = 'peer-failed';
      }
    }

    const local = await this.openLocal(hashPart, narHash);
    if (typeof local !== 'string') {
      const storePath = local.info.path;
      if (entry?.source !== LOCAL || !entry) {
        this.o.affinity.record({ hashPart, storePath, source: LOCAL, sourceName: 'this machine', peerNarUrl: null, narHash32, narSize: local.info.narSize });
        if (entry) this.fallback(storePath, entry, 'this machine', reason, 'served');
      }
      this.o.affinity.hit(hashPart);
      return localNarBody(local, this.o.verifyLocalNars ?? false);
    }
    if (entry?.source === LOCAL) reason = local === 'mismatch' ? 'mismatch' : 'gc';

    // Any peer that holds this store path with exactly this NarHash serves identical bytes.
    const found2 = await this.openFromPeers(hashPart, narHash32, tried);
    if (found2) {
      const { answer, opened } = found2;
      const storePath = answer.info.storePath;
      this.remember(hashPart, answer);
      this.o.affinity.hit(hashPart);
      this.fallback(storePath, entry, answer.peer.name, reason, 'served');
      return this.peerBody(hashPart, storePath, narHash, answer.info.narSize, opened, tried);
    }
    if (entry) this.fallback(entry.storePath, entry, null, reason, 'not-found');
    return null;
  }

  private remember(hashPart: string, a: PeerAnswer): void {
    this.o.affinity.record({
      hashPart,
      storePath: a.info.storePath,
      source: a.peer.id,
      sourceName: a.peer.name,
      peerNarUrl: a.narUrl,
      narHash32: a.narHash32,
      narSize: a.info.narSize,
    });
  }

  private fallback(storePath: string, entry: AffinityEntry | undefined, to: string | null, reason: FallbackReason, outcome: 'served' | 'not-found'): void {
    const from = entry?.sourceName ?? 'none';
    this.o.log.info(`fallback ${storePath}: ${from} → ${to ?? 'nobody'} (${reason}, ${outcome})`);
    this.o.events.emit({ type: 'fallback', storePath, from, to, reason, outcome });
  }

  private async localPathInfo(hashPart: string) {
    try {
      return await this.o.store.pathInfoByHashPart(hashPart);
    } catch (e) {
      // The local daemon being down must not stop us finding the path on a peer.
      this.o.log.warn(`local store: ${(e as Error).message}`);
      return null;
    }
  }

  private async openLocal(hashPart: string, narHash: Buffer) {
    try {
      return await this.o.store.openNar(hashPart, narHash);
    } catch (e) {
      this.o.log.warn(`local store: ${(e as Error).message}`);
      return 'missing' as const;
    }
  }

  /**
   * Asks every live peer at once and resolves with the first answer `judge` calls trusted, or else the
   * first it calls acceptable once all have answered. Identical lookups share one fan-out.
   */
  private async lookupPeers(hashPart: string, judge: (a: PeerAnswer) => Verdict): Promise<PeerAnswer | null> {
    const state = this.fanOut(hashPart);
    if (!state) return null;
    await this.until(state, () => state.list.some((a) => judge(a) === 'trusted'));
    return state.list.find((a) => judge(a) === 'trusted') ?? state.list.find((a) => judge(a) === 'acceptable') ?? null;
  }

  /** The fan-out for this hash part: the one in flight or just finished, else a new one (null on a fresh miss). */
  private fanOut(hashPart: string): Lookup | null {
    const now = Date.now();
    const until = this.negative.get(hashPart);
    if (until !== undefined) {
      if (until > now) return null;
      this.negative.delete(hashPart);
    }
    const existing = this.lookups.get(hashPart);
    if (existing && (!existing.done || existing.doneAt + 1000 > now)) return existing;
    const state: Lookup = { list: [], done: false, doneAt: 0, waiters: new Set() };
    this.lookups.set(hashPart, state);
    const wake = () => {
      for (const w of state.waiters) w();
    };
    const asks = this.o.registry.live().map(async (peer) => {
      try {
        const info = await this.o.client.narInfo(peer.url, hashPart);
        const answer = info && this.validAnswer(peer, hashPart, info);
        if (answer) {
          state.list.push(answer);
          wake();
        }
      } catch (e) {
        this.o.log.debug(`peer ${peer.name}: ${(e as Error).message}`);
        this.o.registry.reportFailure(peer, (e as Error).message);
      }
    });
    void Promise.all(asks).then(() => {
      state.done = true;
      state.doneAt = Date.now();
      if (state.list.length === 0) this.negative.set(hashPart, state.doneAt + this.o.negativeTtlMs!);
      wake();
      setTimeout(() => this.lookups.get(hashPart) === state && this.lookups.delete(hashPart), 1000).unref();
    });
    return state;
  }

  private until(state: Lookup, ready: () => boolean): Promise<void> {
    return new Promise((resolve) => {
      const check = () => {
        if (ready() || state.done) {
          state.waiters.delete(check);
          resolve();
        }
      };
      state.waiters.add(check);
      check();
    });
  }

  /**
   * Opens the NAR on the first peer with this NarHash; if that peer hasn't answered within hedgeMs,
   * the next one is asked too, and whichever answers first serves.
   */
  private async openFromPeers(hashPart: string, narHash32: string, tried: Set<string>, offset = 0): Promise<{ answer: PeerAnswer; opened: Opened } | null> {
    const state = this.fanOut(hashPart);
    if (!state) return null;
    const next = () => state.list.find((a) => a.narHash32 === narHash32 && !tried.has(a.peer.id));
    return new Promise((resolve) => {
      let pending = 0;
      let settled = false;
      let timer: NodeJS.Timeout | undefined;
      const finish = (v: { answer: PeerAnswer; opened: Opened } | null) => {
        settled = true;
        clearTimeout(timer);
        resolve(v);
      };
      const launch = async () => {
        if (settled) return;
        await this.until(state, () => next() !== undefined);
        const answer = next();
        if (settled) return;
        if (!answer) {
          if (pending === 0) finish(null);
          return;
        }
        tried.add(answer.peer.id);
        pending++;
        clearTimeout(timer);
        timer = setTimeout(() => void launch(), this.o.hedgeMs);
        const opened = await this.openFromPeer({ peer: answer.peer, url: answer.narUrl }, answer.info.narSize, offset);
        pending--;
        if (opened && !settled) finish({ answer, opened });
        else if (opened) opened.stream.destroy();
        else void launch();
      };
      void launch();
    });
  }

  /** A peer's narinfo is used only if it is for exactly this path and its NAR lives on that peer. */
  private validAnswer(peer: Peer, hashPart: string, info: NarInfo): PeerAnswer | null {
    try {
      if (parseStorePath(info.storePath).hashPart !== hashPart) return null;
      if (info.compression !== 'none') return null; // we stream and verify plain NARs only
      const url = new URL(info.url, peer.url + '/');
      if (url.origin !== new URL(peer.url).origin) return null; // never let a peer point us elsewhere
      const narHash32 = formatSha256Nix32(parseSha256(info.narHash)).slice('sha256:'.length);
      return { peer, info, narHash32, narUrl: url.href };
    } catch {
      return null;
    }
  }

  /** Opens a NAR on one source; a failure marks the peer so it isn't asked again until it recovers. */
  private async openFromPeer(source: NarSource, narSize: number, offset = 0): Promise<Opened | null> {
    try {
      const stream = await this.o.client.openNar(source.url, { offset, expectedSize: narSize });
      return { source, stream };
    } catch (e) {
      this.o.log.info(`peer ${source.peer.name}: ${(e as Error).message}`);
      this.o.registry.reportFailure(source.peer, (e as Error).message);
      return null;
    }
  }

  private peerBody(hashPart: string, storePath: string, narHash: Buffer, narSize: number, first: { source: NarSource; stream: Readable }, tried: Set<string>): NarBody {
    const narHash32 = encodeNix32(narHash);
    let stream: ResumingNarStream | null = null;
    let bytes = 0;
    let released = false;
    return {
      narSize,
      narHash,
      hashCheck: true,
      stream: () => {
        stream = new ResumingNarStream({
          first,
          narSize,
          onBytes: (src, n) => {
            bytes += n;
            this.o.registry.countBytesFrom(src.peer, n);
          },
          resume: async (offset, failed, why) => {
            this.o.log.warn(`NAR ${storePath} from ${failed.peer.name} failed at byte ${offset}: ${why}; resuming elsewhere`);
            this.o.registry.reportFailure(failed.peer, why);
            const found = await this.openFromPeers(hashPart, narHash32, tried, offset);
            if (!found) return null;
            const before = this.o.affinity.get(hashPart);
            this.remember(hashPart, found.answer);
            this.fallback(storePath, before, found.answer.peer.name, 'peer-failed', 'served');
            return found.opened;
          },
        });
        return stream;
      },
      release: (reason = 'done') => {
        if (released) return;
        released = true;
        const s = stream as ResumingNarStream | null;
        s?.destroy();
        const last = s?.sources.at(-1)?.peer ?? first.source.peer;
        if (reason === 'mismatch') {
          for (const src of s?.sources ?? [first.source]) this.o.registry.reportBadBytes(src.peer, 'served bytes that do not match the NarHash');
        }
        if (reason !== 'aborted') {
          this.o.events.emit({
            type: 'transfer',
            storePath,
            direction: 'in',
            peerName: last.name,
            bytes,
            outcome: reason === 'done' ? ((s?.sources.length ?? 1) > 1 ? 'resumed' : 'ok') : 'failed',
          });
        }
      },
    };
  }
}

export { BackendUnavailableError };
