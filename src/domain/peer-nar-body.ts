import type { NarBody } from '../cache/backend.ts';
import type { EventLog } from '../base/events.ts';
import type { Logger } from '../base/log.ts';
import { encodeNix32 } from '../nix/nix32.ts';
import type { HedgedOpener, PeerAnswer } from '../peers/hedged-open.ts';
import type { PeerClient } from '../peers/peer-client.ts';
import type { PeerRegistry } from '../peers/registry.ts';
import { ResumingNarStream, type NarSource, type NarWatchOptions, type OpenedNar } from '../peers/resuming-nar.ts';
import { DEFAULT_SWARM, SwarmNarStream, type SwarmTuning } from '../peers/swarm-nar.ts';
import type { AffinityCache } from './affinity.ts';
import { reportFallback } from './fallback-report.ts';
import type { MismatchCuts } from './mismatch-cuts.ts';
import type { NarInfoLookup } from './narinfo-lookup.ts';
import type { TransferHandle, TransferTracker } from './transfers.ts';

// A NAR's body from peers, once one has opened it: resumed on another holder when its source fails,
// split among several holders when large, counted for the window, and accounted for when it ends.

export interface PeerNarBodiesOptions {
  registry: PeerRegistry;
  client: PeerClient;
  affinity: AffinityCache;
  events: EventLog;
  log: Logger;
  hedged: HedgedOpener;
  /** The holders a resume or a swarm may use come from the lookups; a resume's source is remembered there. */
  lookup: Pick<NarInfoLookup, 'fanOut' | 'remember'>;
  mismatchCuts: MismatchCuts;
  transfers?: Pick<TransferTracker, 'begin'>;
  narWatch?: Partial<NarWatchOptions>;
  swarm?: Partial<SwarmTuning> | false;
}

export class PeerNarBodies {
  private readonly opts: PeerNarBodiesOptions;

  constructor(opts: PeerNarBodiesOptions) {
    this.opts = opts;
  }

  /**
   * Several holders at once, for a NAR large enough: the holders of this NarHash the lookup found,
   * live, and honouring Range (a Go peer resends from the start). Null: one holder at a time.
   */
  private swarmFor(
    hashPart: string,
    narHash32: string,
    narSize: number,
    first: OpenedNar,
  ): { holders: () => NarSource[]; answers: () => PeerAnswer[]; tuning: Partial<SwarmTuning> } | null {
    const tuning = this.opts.swarm;
    if (tuning === false || first.source.peer.dialect === 'go' || narSize < (tuning?.minNarBytes ?? DEFAULT_SWARM.minNarBytes)) return null;
    const state = this.opts.lookup.fanOut(hashPart);
    if (!state) return null;
    const answers = () => {
      const live = new Set(this.opts.registry.live());
      return state.list.filter((a) => a.narHash32 === narHash32 && a.peer.dialect !== 'go' && live.has(a.peer));
    };
    const holders = () => answers().map((a): NarSource => ({ peer: a.peer, url: a.narUrl }));
    return { holders, answers, tuning: tuning ?? {} };
  }

  /**
   * One holder's share of a split NAR failed and the others take it over: for the window and the
   * affinity cache that is a fallback, as when a single source is replaced by a resume.
   */
  private shareMoved(hashPart: string, storePath: string, failed: NarSource, answers: () => PeerAnswer[], swarm: () => SwarmNarStream | null): void {
    const left = answers().filter((a) => a.peer.id !== failed.peer.id);
    const working = (swarm()?.working ?? []).filter((x) => x.peer.id !== failed.peer.id);
    const takers = working.length > 0 ? working.map((x) => x.peer.name) : left.map((a) => a.peer.name);
    const before = this.opts.affinity.get(hashPart);
    if (before?.source === failed.peer.id) {
      const next = left.find((a) => working.some((x) => x.peer.id === a.peer.id)) ?? left[0];
      if (next) this.opts.lookup.remember(hashPart, next);
    }
    const to = takers.length > 0 ? [...new Set(takers)].join(' + ') : null;
    reportFallback(this.opts.log, this.opts.events, storePath, { sourceName: failed.peer.name }, to, 'peer-failed', to ? 'served' : 'not-found');
  }

  body(hashPart: string, storePath: string, narHash: Buffer, narSize: number, first: OpenedNar, tried: Set<string>): NarBody {
    const narHash32 = encodeNix32(narHash);
    let stream: ResumingNarStream | null = null;
    let swarm: SwarmNarStream | null = null;
    let bytes = 0;
    let released = false;
    let progress: TransferHandle | undefined;
    return {
      narSize,
      narHash,
      storePath,
      hashCheck: true,
      stream: () => {
        stream = new ResumingNarStream({
          first,
          narSize,
          onBytes: (src, n) => {
            if (swarm) return; // counted as the swarm takes them: bytes past its cut are dropped
            bytes += n;
            this.opts.registry.countBytesFrom(src.peer, n);
          },
          watch: this.opts.narWatch,
          resume: async (offset, failed, why, slow, bad) => {
            if (slow) this.opts.log.info(`NAR ${storePath} from ${failed.peer.name} is slow at byte ${offset} (${why}); looking for another holder`);
            else if (bad) {
              // Bombs, floods of tiny frames, bytes past the NarSize: as bad as bytes that don't match.
              this.opts.log.warn(`NAR ${storePath} from ${failed.peer.name} cut at byte ${offset}: ${why}; resuming elsewhere`);
              this.opts.registry.reportBadBytes(failed.peer, why);
            } else {
              this.opts.log.warn(`NAR ${storePath} from ${failed.peer.name} failed at byte ${offset}: ${why}; resuming elsewhere`);
              this.opts.registry.reportFailure(failed.peer, why);
            }
            const found = await this.opts.hedged.open(hashPart, narHash32, tried, offset);
            // A slow peer stays the source when no one else has the NAR; once replaced, it may still
            // serve a later resume of this one.
            if (!found) return null;
            if (slow) tried.delete(failed.peer.id);
            const before = this.opts.affinity.get(hashPart);
            if (found.candidate.answer) this.opts.lookup.remember(hashPart, found.candidate.answer);
            reportFallback(this.opts.log, this.opts.events, storePath, before, found.candidate.peer.name, 'peer-failed', 'served');
            return found.opened;
          },
        });
        const s = stream;
        const split = this.swarmFor(hashPart, narHash32, narSize, first);
        const w = () => swarm;
        if (split) {
          swarm = new SwarmNarStream({
            head: s,
            headSource: first.source,
            narSize,
            holders: split.holders,
            tuning: split.tuning,
            openRange: async (src, start, end, signal) => (await this.opts.hedged.openOne(src, narSize, start, signal, end))?.stream ?? null,
            onFailure: (src, why, bad) => {
              this.opts.log.warn(`NAR ${storePath}: ${src.peer.name}'s share failed (${why}); the others take it over`);
              if (bad) this.opts.registry.reportBadBytes(src.peer, why);
              else this.opts.registry.reportFailure(src.peer, why);
            },
            onGivenUp: (src) => this.shareMoved(hashPart, storePath, src, split.answers, w),
            firstHeld: heldShare(this.opts.client.receiverLoad.hint(new URL(first.source.url).origin)),
            onBytes: (src, n) => {
              bytes += n;
              // The first stream may have resumed on another holder by itself.
              this.opts.registry.countBytesFrom((src === first.source ? (s.sources.at(-1) ?? src) : src).peer, n);
            },
          });
        }
        const sw: SwarmNarStream | null = swarm;
        progress = this.opts.transfers?.begin({
          storePath,
          direction: 'in',
          peerName: () => (sw?.split ? holderNames(sw) : (s.sources.at(-1) ?? first.source).peer.name),
          total: narSize,
          bytes: () => bytes,
          wireBytes: () => sw?.wireBytes ?? s.wireBytes,
        });
        return swarm ?? stream;
      },
      release: (reason = 'done') => {
        if (released) return;
        released = true;
        const s = stream as ResumingNarStream | null;
        if (!s) {
          // Never streamed (HEAD, an unsatisfiable range, a client already gone): let the peer go
          // now rather than hold its connection until the idle timeout. Nothing was transferred.
          first.stream.destroy();
          return;
        }
        const w = swarm as SwarmNarStream | null;
        w?.destroy();
        s.destroy();
        const resumed = s.sources.length > 1 || (w?.resumed ?? false);
        progress?.end(reason === 'aborted' ? 'aborted' : reason !== 'done' ? 'failed' : resumed ? 'resumed' : 'ok');
        const last = s.sources.at(-1)?.peer ?? first.source.peer;
        const sources = w?.split ? [...new Set([...s.sources, ...w.sources])] : s.sources;
        if (reason === 'mismatch') {
          this.opts.mismatchCuts.remember(hashPart, narHash32);
          for (const src of sources) this.opts.registry.reportBadBytes(src.peer, 'served bytes that do not match the NarHash');
        }
        if (w?.split)
          this.opts.log.info(
            `NAR ${storePath} from ${w.shares.length} holders at once: ${w.shares.map((x) => `${x.source.peer.name} ${x.narBytes}`).join(', ')} bytes${w.resumed ? ' (a share moved to the others)' : ''}`,
          );
        if (reason !== 'aborted') {
          this.opts.events.emit({
            type: 'transfer',
            storePath,
            direction: 'in',
            peerName: w?.split ? holderNames(w) : last.name,
            bytes,
            wireBytes: w?.wireBytes ?? s.wireBytes,
            outcome: reason === 'done' ? (resumed ? 'resumed' : 'ok') : 'failed',
          });
        }
      },
    };
  }
}

/** A receiver-load hint as a number (undefined while nothing is known). */
function heldShare(hint: string | undefined): number | undefined {
  return hint === undefined ? undefined : Number(hint);
}

/** The holders a split NAR came from, as one peer name ("host-b + host-c"). */
function holderNames(swarm: SwarmNarStream): string {
  return swarm.sources.map((x) => x.peer.name).join(' + ');
}
