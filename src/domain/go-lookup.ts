import type { TimerHandle } from '../base/clock.ts';
import { randomBytes } from 'node:crypto';
import { encodeNix32 } from '../nix/nix32.ts';
import { askGoHasPath } from '../peers/go-has-path.ts';
import type { Peer, PeerRegistry } from '../peers/registry.ts';
import { GO_UDP_DEFAULT_PORT } from '../wire/go-udp.ts';

// A Go peernix host's side of a narinfo lookup: its "has_path?" question over UDP beside the HTTP
// narinfo, and which of the two Go protocols each host speaks (that decides what its silence means).

/** One Go peer's lookup in progress (see GoLookups.begin). */
export interface GoLookup {
  /** Aborts when the lookup's stop does, or when the peer's silence counts as a miss. */
  signal: AbortSignal;
  end: () => void;
  saidYes: () => boolean;
  saidNotFound: () => boolean;
  /** The narinfo came: how long it took after the "yes" goes to the registry. */
  answered: () => void;
}

export class GoLookups {
  /** Go peers heard answering "not_found" (e74df7c on): their silence is not taken as a miss. */
  private readonly answersMisses = new WeakSet<Peer>();
  private readonly dialectAsked = new WeakSet<Peer>();

  private readonly registry: PeerRegistry;
  /** The UDP port Go peernix hosts answer "has_path?" on (go-has-path.ts). */
  private readonly udpPort: number;

  constructor(registry: PeerRegistry, udpPort: number = GO_UDP_DEFAULT_PORT) {
    this.registry = registry;
    this.udpPort = udpPort;
  }

  /**
   * Tells the two Go protocols apart before lookups need to: a question for a hash no store holds is
   * answered "not_found" by today's Go (e74df7c on) and not at all by 93fc511. One datagram (and one
   * nix-store run on the Go host) when a Go peer comes up; silence asks again at its next coming up.
   */
  learnDialect(peer: Peer): void {
    if (peer.dialect !== 'go' || this.answersMisses.has(peer) || this.dialectAsked.has(peer)) return;
    this.dialectAsked.add(peer);
    void askGoHasPath(peer.address, this.udpPort, encodeNix32(randomBytes(20)), AbortSignal.timeout(3000)).then((r) => {
      if (r === 'not-found') this.answersMisses.add(peer);
      else this.dialectAsked.delete(peer);
    });
  }

  /**
   * A Go peer's lookup: its silence is a miss after registry.goSilenceMs, unless it says over UDP
   * that it holds the path. Then its (slow) narinfo is waited for at the peer's own pace: as long as
   * the peer keeps answering something within registry.goHeldMs — a host making twenty narinfos one
   * nix-store run at a time is slow, not gone, and a 404 for a path it said it has is remembered by
   * Nix for an hour. The signal aborts either way.
   */
  begin(peer: Peer, hashPart: string, stop: AbortSignal): GoLookup {
    const registry = this.registry;
    const clock = registry.health.clock;
    const silence = new AbortController();
    const asked = new AbortController(); // the UDP question ends with the lookup
    // A host that has said "not_found" speaks today's protocol, where silence is no answer (a loaded
    // host, a lost datagram), not a miss: only the narinfo's own deadline ends its lookup.
    let timer: TimerHandle | undefined = this.answersMisses.has(peer) ? undefined : clock.setTimeout(() => silence.abort(), registry.goSilenceMs(peer));
    const stopTimer = () => timer !== undefined && clock.clearTimeout(timer);
    let yesAt: number | null = null;
    let yesMs = 0;
    let notFound = false;
    // After a "yes": cut only once the peer has been silent for its held allowance, which a slow
    // "yes" (a loaded host) lengthens.
    const held = () => {
      const ms = registry.goHeldMs(peer, yesMs);
      const quiet = clock.now() - Math.max(yesAt!, peer.lastHeard);
      if (quiet >= ms) silence.abort();
      else timer = clock.setTimeout(held, ms - quiet);
    };
    void askGoHasPath(peer.address, this.udpPort, hashPart, AbortSignal.any([stop, asked.signal, silence.signal])).then((ms) => {
      if (ms === null || silence.signal.aborted) return;
      if (ms === 'not-found') {
        // Definitive (today's Go says it of its own store): the lookup needs no narinfo from it.
        notFound = true;
        this.answersMisses.add(peer);
        stopTimer();
        silence.abort();
        return;
      }
      yesAt = clock.now();
      yesMs = ms;
      stopTimer();
      registry.reportGoYes(peer, ms);
      timer = clock.setTimeout(held, registry.goHeldMs(peer, ms));
    });
    return {
      saidYes: () => yesAt !== null,
      saidNotFound: () => notFound,
      answered: () => {
        if (yesAt !== null) registry.reportGoHeld(peer, clock.now() - yesAt);
      },
      signal: AbortSignal.any([stop, silence.signal]),
      end: () => {
        stopTimer();
        asked.abort();
      },
    };
  }
}
