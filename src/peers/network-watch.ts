import dgram from 'node:dgram';
import fs from 'node:fs';
import os from 'node:os';
import { processBeat } from '../base/beat.ts';
import { recogniseNetwork, type RecognisedNetwork, type Recognition } from './network-id.ts';
import type { Interfaces } from './local-address.ts';

// Follows which network this machine is on (network-id.ts) by reading the kernel's tables every
// 2 s (on the process's beat) — two small /proc files and the interface list, no root and no netlink — and says when it
// changed (a move pauses sharing well within the 5 s we promise; a faster look is idle cost, #26). When the default gateway's MAC is not known yet, one UDP datagram to it (discard port)
// makes the kernel ask for it; that is sent only when a decision waits on the answer (`mayPoke`), so
// an install that trusts every network never sends anything.

export interface NetworkClock {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const realClock: NetworkClock = {
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

const RECHECK_MS = 250;
/** How often the tables are read. */
export const NETWORK_POLL_MS = 2000;

export interface NetworkInputs {
  route: string;
  arp: string;
  interfaces: Interfaces;
}

/**
 * Linux's tables as this process's network namespace sees them; null elsewhere (see the README).
 * The interface list is read only when asked for (a getifaddrs dump is most of a look's cost).
 */
export function readLinuxInputs(): NetworkInputs | null {
  if (process.platform !== 'linux') return null;
  try {
    const route = fs.readFileSync('/proc/net/route', 'utf8');
    const arp = fs.readFileSync('/proc/net/arp', 'utf8');
    let interfaces: Interfaces | null = null;
    return {
      route,
      arp,
      get interfaces() {
        interfaces ??= os.networkInterfaces();
        return interfaces;
      },
    };
  } catch {
    return null;
  }
}

/** What a platform with no recogniser is on: one network, so trusting it trusts them all. */
export const UNRECOGNISED: RecognisedNetwork = { id: 'unrecognised', name: 'any network (this system’s networks can’t be told apart)' };

export interface NetworkWatchOptions {
  read?: () => NetworkInputs | null;
  /** Makes the kernel learn the gateway's MAC; default: a UDP datagram to its discard port. */
  poke?: (address: string) => void;
  /** Whether a poke may be sent now (false while every network is trusted). */
  mayPoke: () => boolean;
  onChange: (network: RecognisedNetwork | null) => void;
  clock?: NetworkClock;
  intervalMs?: number;
}

export class NetworkWatch {
  private readonly opts: NetworkWatchOptions;
  private readonly clock: NetworkClock;
  private timer: unknown = null;
  private stopBeat: (() => void) | null = null;
  private current: RecognisedNetwork | null = null;
  private stopped = false;
  private lastPoke = '';
  private recheck: unknown = null;
  private reported = false;
  private last: { route: string; arp: string; recognition: Recognition } | null = null;

  constructor(opts: NetworkWatchOptions) {
    this.opts = opts;
    this.clock = opts.clock ?? realClock;
  }

  get network(): RecognisedNetwork | null {
    return this.current;
  }

  /** Reads the tables once now and says whether the network changed (and tells onChange). */
  check(): boolean {
    const r = this.recognise();
    if (!r.network && r.gatewayUnresolved && this.opts.mayPoke()) {
      // One poke per gateway until it resolves or changes, not one a second at a dead router.
      const key = `${r.gatewayUnresolved.address}%${r.gatewayUnresolved.iface}`;
      if (key !== this.lastPoke) {
        (this.opts.poke ?? pokeGateway)(r.gatewayUnresolved.address);
        this.lastPoke = key;
        // The kernel drops an idle gateway's entry now and then: look again shortly before calling
        // it a move, so that doesn't flap sharing off and on. The wait is shorter than the poll.
        this.recheck = this.clock.setTimeout(() => {
          this.recheck = null;
          this.check();
        }, RECHECK_MS);
        return false;
      }
    } else if (r.network) {
      this.lastPoke = '';
    }
    const next = r.network;
    // The first look always counts, "no network" included: it decides whether sharing may start.
    if (this.reported && (next?.id ?? null) === (this.current?.id ?? null)) return false;
    this.reported = true;
    this.current = next;
    this.opts.onChange(next);
    return true;
  }

  /**
   * First look at start-up: when the gateway is known but its MAC not yet, asks for it and looks
   * again a few times (up to ~1 s) so a trusted network is recognised before sharing starts.
   */
  async start(): Promise<void> {
    for (let i = 0; i < 6 && this.opts.mayPoke(); i++) {
      const unresolved = this.recognise().gatewayUnresolved;
      if (!unresolved) break;
      if (i === 0) {
        (this.opts.poke ?? pokeGateway)(unresolved.address);
        this.lastPoke = `${unresolved.address}%${unresolved.iface}`;
      }
      await new Promise<void>((resolve) => this.clock.setTimeout(resolve, 200));
    }
    this.check();
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    this.stopBeat?.();
    this.stopBeat = null;
    if (this.timer !== null) this.clock.clearTimeout(this.timer);
    if (this.recheck !== null) this.clock.clearTimeout(this.recheck);
    this.timer = null;
    this.recheck = null;
  }

  private schedule(): void {
    if (this.stopped) return;
    const every = this.opts.intervalMs ?? NETWORK_POLL_MS;
    // On the process's beat (base/beat.ts), with the registry's round, unless a test drives a clock.
    if (!this.opts.clock) {
      this.stopBeat = processBeat.every(every, () => this.check());
      return;
    }
    this.timer = this.clock.setTimeout(() => {
      this.check();
      this.schedule();
    }, every);
  }

  private recognise(): Recognition {
    const inputs = (this.opts.read ?? readLinuxInputs)();
    if (!inputs) return { network: UNRECOGNISED };
    // Idle cost (#26): look after look, the same tables give the same answer. An address that moves
    // to another subnet changes the routes too, so the interface list is read only when they change.
    if (this.last && this.last.route === inputs.route && this.last.arp === inputs.arp) return this.last.recognition;
    const recognition = recogniseNetwork(inputs);
    this.last = { route: inputs.route, arp: inputs.arp, recognition };
    return recognition;
  }
}

function pokeGateway(address: string): void {
  const s = dgram.createSocket('udp4');
  s.on('error', () => s.close());
  s.send(Buffer.alloc(0), 9, address, () => s.close());
}
