import dgram from 'node:dgram';
import net from 'node:net';
import type { Logger } from '../base/log.ts';
import { GO_NARHASH_MISMATCH, GO_NOT_FOUND, GO_PONG, GO_YES, parseGoQuestion, type GoQuestion } from '../wire/go-udp.ts';

// Answers the UDP questions of Go peernix peers (go-udp.ts) about this machine's own store, so they
// fetch from us over HTTP: a Go peer asks its peers over UDP before it uses HTTP, and never fetches
// from one that stays silent. It follows the share listener (bound only while sharing) and answers
// only from what the local store holds — never from what we know peers have — and within bounds:
// a token bucket per source address and one for all, of which a share is kept for sources proven over
// HTTP (so a flood from strangers cannot silence us to the peers we work with), a bounded table of
// sources, a cap on lookups in flight, and datagrams over Go's own 1024-byte buffer ignored. Bad
// packets are dropped, never thrown. Threat: every datagram is a stranger's; answers are never bigger
// than the question that asked, so we amplify nothing.

export interface UdpResponderOptions {
  host: string;
  port: number;
  /** The NarHash (32 raw bytes) of this store's own path with this hash part, or null when absent. */
  narHash: (hashPart: string) => Buffer | null | Promise<Buffer | null>;
  /** Whether a source address is a peer proven over HTTP: those draw first on the reserved share. */
  proven?: (address: string) => boolean;
  log: Logger;
  /** Questions per second per source address, and its burst (default 20/s, 40). */
  perSourceRate?: number;
  perSourceBurst?: number;
  /** Questions per second from everyone together, and its burst (default 200/s, 400). */
  totalRate?: number;
  totalBurst?: number;
  /** The part of the overall budget only proven peers may use (default 0.25). */
  provenShare?: number;
  /**
   * A proven peer's own rate and burst are this many times a stranger's (default 4): a stranger who
   * spoofs its address shares its bucket, and must send that much more to crowd it out.
   */
  provenSourceFactor?: number;
  /** Source addresses remembered for rate limiting (default 1024; the least recent is forgotten). */
  maxSources?: number;
  /** Store lookups answering at once; more questions are dropped (default 32). */
  maxInFlight?: number;
  now?: () => number;
}

export interface UdpResponderStats {
  received: number;
  yes: number;
  notFound: number; // asked for a path this store does not hold (a definitive miss for today's Go)
  mismatch: number; // held, but with other bytes than the NarHash asked for
  pongs: number;
  ignored: number; // malformed, oversized or not a question of ours
  limited: number; // over a rate or in-flight bound
}

interface Bucket {
  tokens: number;
  at: number;
}

export class UdpResponder {
  private readonly opts: Required<Omit<UdpResponderOptions, 'narHash' | 'proven' | 'log' | 'now' | 'host' | 'port'>>;
  private readonly host: string;
  private readonly wantedPort: number;
  private readonly narHash: UdpResponderOptions['narHash'];
  private readonly proven: (address: string) => boolean;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly sources = new Map<string, Bucket>();
  private readonly total: Bucket; // what anyone may use
  private readonly reserved: Bucket; // what only proven peers may use
  private socket: dgram.Socket | null = null;
  private inFlight = 0;
  readonly stats: UdpResponderStats = { received: 0, yes: 0, notFound: 0, mismatch: 0, pongs: 0, ignored: 0, limited: 0 };

  constructor(opts: UdpResponderOptions) {
    if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) throw new RangeError('udp responder: port must be 0–65535');
    this.host = opts.host;
    this.wantedPort = opts.port;
    this.narHash = opts.narHash;
    this.proven = opts.proven ?? (() => false);
    this.log = opts.log;
    this.now = opts.now ?? Date.now;
    this.opts = {
      perSourceRate: opts.perSourceRate ?? 20,
      perSourceBurst: opts.perSourceBurst ?? 40,
      totalRate: opts.totalRate ?? 200,
      totalBurst: opts.totalBurst ?? 400,
      maxSources: opts.maxSources ?? 1024,
      maxInFlight: opts.maxInFlight ?? 32,
      provenShare: opts.provenShare ?? 0.25,
      provenSourceFactor: opts.provenSourceFactor ?? 4,
    };
    if (!(this.opts.provenShare >= 0 && this.opts.provenShare < 1)) throw new RangeError('udp responder: provenShare must be in [0, 1)');
    this.total = { tokens: this.generalBurst, at: this.now() };
    this.reserved = { tokens: this.opts.totalBurst * this.opts.provenShare, at: this.now() };
  }

  private get generalBurst(): number {
    return this.opts.totalBurst * (1 - this.opts.provenShare);
  }

  get open(): boolean {
    return this.socket !== null;
  }

  /** The bound port, or null while closed. */
  get port(): number | null {
    try {
      return this.socket?.address().port ?? null;
    } catch {
      return null;
    }
  }

  /** Binds the socket; rejects (EADDRINUSE, EACCES) leaving nothing open. */
  async bind(): Promise<void> {
    if (this.socket) return;
    const sock = dgram.createSocket({ type: net.isIPv6(this.host) ? 'udp6' : 'udp4' });
    await new Promise<void>((resolve, reject) => {
      const onError = (e: Error) => {
        sock.close();
        reject(e);
      };
      sock.once('error', onError);
      sock.bind(this.wantedPort, this.host, () => {
        sock.off('error', onError);
        resolve();
      });
    });
    // After binding, an error (a send to a vanished host, ICMP) is logged; it never ends the process.
    sock.on('error', (e) => this.log.warn(`Go-peer UDP: ${e.message}`));
    sock.on('message', (msg, rinfo) => this.onMessage(sock, msg, rinfo));
    this.socket = sock;
  }

  close(): Promise<void> {
    const sock = this.socket;
    this.socket = null;
    this.sources.clear();
    if (!sock) return Promise.resolve();
    return new Promise((resolve) => sock.close(() => resolve()));
  }

  private onMessage(sock: dgram.Socket, msg: Buffer, rinfo: dgram.RemoteInfo): void {
    try {
      this.stats.received++;
      const q = parseGoQuestion(msg);
      if (!q) {
        this.stats.ignored++;
        return;
      }
      if (!this.admit(rinfo.address)) {
        this.stats.limited++;
        return;
      }
      if (q.kind === 'ping') {
        this.stats.pongs++;
        this.reply(sock, GO_PONG, rinfo);
        return;
      }
      if (this.inFlight >= this.opts.maxInFlight) {
        this.stats.limited++;
        return;
      }
      this.inFlight++;
      let answer: Buffer | null | Promise<Buffer | null>;
      try {
        answer = this.narHash(q.hashPart);
      } catch (e) {
        this.inFlight--;
        this.log.debug(`Go-peer UDP: store lookup failed: ${(e as Error).message}`);
        return;
      }
      const done = (held: Buffer | null) => {
        this.inFlight--;
        this.reply(sock, this.answerFor(q, held), rinfo);
      };
      if (answer instanceof Promise) {
        answer.then(done, (e: unknown) => {
          this.inFlight--;
          this.log.debug(`Go-peer UDP: store lookup failed: ${(e as Error)?.message ?? e}`);
        });
      } else done(answer);
    } catch (e) {
      this.log.warn(`Go-peer UDP: ${(e as Error)?.message ?? e}`);
    }
  }

  // A failed lookup answers nothing (the asker retries or gives up): never "not_found" for a path we
  // could not check, which today's Go would cache as a miss for 5 minutes.
  private answerFor(q: Exclude<GoQuestion, { kind: 'ping' }>, held: Buffer | null): Buffer {
    if (!held) {
      this.stats.notFound++;
      return GO_NOT_FOUND;
    }
    if (q.kind === 'has-path-with-narhash' && !held.equals(q.narHash)) {
      this.stats.mismatch++;
      return GO_NARHASH_MISMATCH;
    }
    this.stats.yes++;
    return GO_YES;
  }

  // Only on the socket the question came in on, and only while it is still the open one: a lookup
  // that ends after sharing was turned off answers nothing.
  private reply(sock: dgram.Socket, data: Buffer, rinfo: dgram.RemoteInfo): void {
    if (this.socket !== sock) return;
    sock.send(data, rinfo.port, rinfo.address, (err) => {
      if (err) this.log.debug(`Go-peer UDP: reply to ${rinfo.address}:${rinfo.port}: ${err.message}`);
    });
  }

  private admit(address: string): boolean {
    const now = this.now();
    let b = this.sources.get(address);
    const proven = this.proven(address);
    const factor = proven ? this.opts.provenSourceFactor : 1;
    if (b)
      this.sources.delete(address); // re-inserted below: the map's order is least recent first
    else {
      if (this.sources.size >= this.opts.maxSources) this.sources.delete(this.sources.keys().next().value!);
      b = { tokens: this.opts.perSourceBurst * factor, at: now };
    }
    this.sources.set(address, b);
    refill(b, now, this.opts.perSourceRate * factor, this.opts.perSourceBurst * factor);
    const share = this.opts.provenShare;
    refill(this.total, now, this.opts.totalRate * (1 - share), this.generalBurst);
    refill(this.reserved, now, this.opts.totalRate * share, this.opts.totalBurst * share);
    if (b.tokens < 1) return false;
    // A proven peer spends the reserve first, so strangers' traffic cannot use up what it relies on.
    const pool = this.reserved.tokens >= 1 && proven ? this.reserved : this.total;
    if (pool.tokens < 1) return false;
    b.tokens--;
    pool.tokens--;
    return true;
  }
}

function refill(b: Bucket, now: number, rate: number, burst: number): void {
  const dt = Math.max(0, now - b.at);
  b.tokens = Math.min(burst, b.tokens + (dt / 1000) * rate);
  b.at = now;
}
