import type { NetworkAction, NetworkStatusView } from '../base/api.ts';
import type { EventLog } from '../base/events.ts';
import type { Logger } from '../base/log.ts';
import { isNetworkId, networkName, type RecognisedNetwork } from '../peers/network-id.ts';

// Whether this machine shares on the network it is on: only on a network the user trusted (or on
// every network, `trustAllNetworks`). It turns network changes into pauses of the sharing switch —
// a reason, never a change of the user's saved choice — keeps `trustedNetworks` saved, puts each
// move and each decision on the event stream, and knows whether the user should be asked.

export interface NetworkTrustParts {
  trusted: string[];
  trustAll: boolean;
  /**
   * An install from before networks were asked about, that shared: trust the first network it
   * recognises, once, so it keeps working after the upgrade (and say so in an event).
   */
  trustFirstNetwork: boolean;
  /** Whether the user wants to share (asked only then). */
  wanted: () => boolean;
  /** Holds sharing off for a reason (null: lifts it). */
  pause: (reason: string | null) => Promise<void>;
  /** Saves `trustedNetworks`; may throw. */
  persist?: (ids: string[]) => void;
  events: EventLog;
  log: Logger;
  changed: () => void;
}

export const MAX_TRUSTED_NETWORKS = 64;

export class NetworkTrust {
  private readonly parts: NetworkTrustParts;
  private trusted: string[];
  private current: RecognisedNetwork | null = null;
  private seen = false;
  private trustFirst: boolean;
  // "Not here" answers, until the next start: the question is asked once per network per run.
  private readonly dismissed = new Set<string>();

  constructor(parts: NetworkTrustParts) {
    this.parts = parts;
    this.trusted = [...parts.trusted];
    this.trustFirst = parts.trustFirstNetwork && !parts.trustAll;
  }

  get trustAll(): boolean {
    return this.parts.trustAll;
  }

  /** Sharing may run here. */
  get allowed(): boolean {
    return this.parts.trustAll || (this.current !== null && this.trusted.includes(this.current.id));
  }

  /** The watcher saw a (new) network: decide, say so, and pause or resume sharing. */
  async moved(network: RecognisedNetwork | null): Promise<void> {
    const first = !this.seen;
    this.seen = true;
    this.current = network;
    let note: string | undefined;
    if (network && this.trustFirst && !this.trusted.includes(network.id)) {
      this.trustFirst = false;
      note = `trusted ${network.name} because this install shared before Peernix asked about networks; \`peernix network forget current\` undoes it`;
      this.trusted = [...this.trusted, network.id];
      try {
        this.parts.persist?.(this.trusted);
      } catch (e) {
        note += ` (not saved: ${(e as Error).message}; asked again after a restart)`;
      }
      this.parts.log.info(note);
    }
    if (!first || network || note) {
      this.parts.events.emit({
        type: 'network',
        networkId: network?.id ?? null,
        networkName: network?.name ?? null,
        trusted: this.allowed,
        ...(note ? { note } : {}),
      });
    }
    if (network) this.parts.log.info(`on network ${network.name}: ${this.allowed ? 'trusted, sharing allowed' : 'not trusted, not sharing here'}`);
    else this.parts.log.info('on no recognised network: not sharing');
    await this.apply();
  }

  async act(action: NetworkAction): Promise<NetworkStatusView> {
    if ('dismiss' in action) {
      this.dismissed.add(action.dismiss);
      this.parts.changed();
      return this.view();
    }
    const which = 'trust' in action ? action.trust : action.forget;
    const id = which === 'current' ? this.current?.id : which;
    if (!id) throw new Error('this machine is on no network Peernix can recognise (offline, or its router has not answered yet)');
    if (!isNetworkId(id)) throw new Error('not a network id (see `peernix network list`)');
    let next: string[];
    if ('trust' in action) {
      if (this.trusted.includes(id)) return this.view();
      if (this.trusted.length >= MAX_TRUSTED_NETWORKS) throw new Error(`already ${MAX_TRUSTED_NETWORKS} trusted networks; forget one first`);
      next = [...this.trusted, id];
    } else {
      if (!this.trusted.includes(id)) throw new Error(`${networkName(id)} is not a trusted network`);
      next = this.trusted.filter((t) => t !== id);
    }
    // Saved first: a choice that could not be kept is not made (the caller sees why).
    try {
      this.parts.persist?.(next);
    } catch (e) {
      throw new Error(`could not save trusted networks: ${(e as Error).message}`);
    }
    this.trusted = next;
    const verb = 'trust' in action ? 'trusted' : 'forgot';
    this.parts.log.info(`${verb} network ${networkName(id)}`);
    if (id === this.current?.id) {
      this.parts.events.emit({ type: 'network', networkId: id, networkName: this.current.name, trusted: this.allowed, note: `${verb} by the user` });
    }
    await this.apply();
    this.parts.changed();
    return this.view();
  }

  view(): NetworkStatusView {
    const c = this.current;
    return {
      current: c && { id: c.id, name: c.name },
      trusted: this.allowed,
      trustAll: this.parts.trustAll,
      trustedNetworks: this.trusted.map((id) => ({ id, name: networkName(id) })),
      ask: c !== null && !this.allowed && this.parts.wanted() && !this.dismissed.has(c.id),
    };
  }

  /** Why sharing is held off here; null when it may run. */
  reason(): string | null {
    if (this.allowed) return null;
    return this.current ? `${this.current.name} is not a trusted network` : 'this machine is on no recognised network';
  }

  private apply(): Promise<void> {
    return this.parts.pause(this.reason());
  }
}
