import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { Readable } from 'node:stream';
import { formatSha256Nix32 } from '../../src/nix/hash.ts';
import { renderNarInfo, type NarInfo } from '../../src/nix/narinfo.ts';
import { encodeNix32 } from '../../src/nix/nix32.ts';
import { signNarInfo, type SecretKey } from '../../src/nix/signing.ts';
import type { PathInfo } from '../../src/store/daemon-connection.ts';
import type { StoreReader } from '../../src/cache/local-backend.ts';
import { PROBE_HASH_PART } from '../../src/peers/peer-client.ts';
import type { LocalNar } from '../../src/store/local-store.ts';

// Peers and a local store for resolver tests. A fake peer is a real HTTP server on 127.0.0.1 that
// serves real narinfos and arbitrary NAR bytes (the resolver never parses NAR grammar, it only
// hashes), with knobs for every way a LAN peer can misbehave.

/** A store path with its NAR: random bytes whose sha256 is the NarHash. */
export interface TestPath {
  storePath: string;
  hashPart: string;
  nar: Buffer;
  narHash: Buffer;
  narHash32: string; // nix32, no "sha256:" prefix
  narSize: number;
}

export function makePath(name: string, size = 64 * 1024, hashPart = encodeNix32(randomBytes(20))): TestPath {
  const nar = randomBytes(size);
  const narHash = createHash('sha256').update(nar).digest();
  return { storePath: `/nix/store/${hashPart}-${name}`, hashPart, nar, narHash, narHash32: formatSha256Nix32(narHash).slice(7), narSize: size };
}

/** The same store path holding other bytes (a non-reproducible rebuild). */
export function otherBytes(p: TestPath, size = p.narSize): TestPath {
  return makePath(p.storePath.slice(44), size, p.hashPart);
}

export interface NarInfoOptions {
  signers?: SecretKey[];
  url?: string;
  compression?: string;
  ca?: string;
  storePath?: string;
  references?: string[];
}

/** A narinfo as a peer's share listener would serve it: plain NAR under nar/<hash>-<narhash>.nar. */
export function narInfoFor(p: TestPath, o: NarInfoOptions = {}): NarInfo {
  const narHash = `sha256:${p.narHash32}`;
  const info: NarInfo = {
    storePath: o.storePath ?? p.storePath,
    url: o.url ?? `nar/${p.hashPart}-${p.narHash32}.nar`,
    compression: o.compression ?? 'none',
    fileHash: narHash,
    fileSize: p.narSize,
    narHash,
    narSize: p.narSize,
    references: o.references ?? [],
    sigs: [],
  };
  if (o.ca !== undefined) info.ca = o.ca;
  info.sigs = (o.signers ?? []).map((k) => signNarInfo(info, k));
  return info;
}

export interface FakePeerKnobs {
  narInfoDelayMs: number;
  narDelayMs: number; // before the NAR's response headers
  narInfo404: boolean;
  nar404: boolean;
  /** Answer NARs 503, as a share listener at its cap of NAR streams does. */
  nar503: boolean;
  /** Destroy the socket after sending this many NAR body bytes (only for requests from byte 0). */
  dieAfterBytes: number | null;
  /** Flip the bits of the NAR byte at this offset. */
  corruptAt: number | null;
  ranges: boolean;
  /** Send the NAR body slowly: `afterBytes` at once, then `bytes` every `everyMs`. */
  drip: { afterBytes: number; bytes: number; everyMs: number } | null;
  /** Accept connections and requests but never answer anything (a cut link, seen from our side). */
  blackhole: boolean;
  /** Answer health probes' lookups at once even when narInfoDelayMs stalls real lookups. */
  fastProbeLookups: boolean;
}

export interface FakePeerCounts {
  probe: number;
  probeLookup: number;
  narInfo: number;
  nar: number;
  ranged: number;
  urls: string[];
}

export class FakePeer {
  readonly server: Server;
  readonly url: string;
  readonly port: number;
  readonly knobs: FakePeerKnobs = {
    narInfoDelayMs: 0,
    narDelayMs: 0,
    narInfo404: false,
    nar404: false,
    nar503: false,
    dieAfterBytes: null,
    corruptAt: null,
    ranges: true,
    drip: null,
    blackhole: false,
    fastProbeLookups: false,
  };
  readonly counts: FakePeerCounts = { probe: 0, probeLookup: 0, narInfo: 0, nar: 0, ranged: 0, urls: [] };
  /** Ranges asked for, as "start-" strings. */
  readonly rangesAsked: string[] = [];
  /** Every NAR request, with when it came and when its response closed (answered or cut), in performance.now() ms. */
  readonly narRequests: { path: string; at: number; closedAt: number | null }[] = [];
  private readonly narInfos = new Map<string, string>();
  private readonly nars = new Map<string, Buffer>();
  private readonly sockets = new Set<Socket>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly narSockets = new Set<Socket>();

  private constructor(server: Server) {
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
    this.url = `http://127.0.0.1:${this.port}`;
  }

  static async start(): Promise<FakePeer> {
    let peer: FakePeer | null = null;
    const server = createServer((req, res) => peer!.handle(req, res));
    server.keepAliveTimeout = 60_000;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    peer = new FakePeer(server);
    server.on('connection', (s: Socket) => {
      peer!.sockets.add(s);
      s.on('close', () => peer!.sockets.delete(s));
    });
    return peer;
  }

  /** Serves this path: its narinfo (as given, or a default one) and its NAR at the narinfo's URL. */
  add(p: TestPath, info: NarInfo = narInfoFor(p)): this {
    this.narInfos.set(p.hashPart, renderNarInfo(info));
    this.nars.set(`/nar/${p.hashPart}-${p.narHash32}.nar`, p.nar);
    return this;
  }

  remove(p: TestPath): this {
    this.narInfos.delete(p.hashPart);
    this.nars.delete(`/nar/${p.hashPart}-${p.narHash32}.nar`);
    return this;
  }

  /** Connections that carried a NAR and are still open (a NAR the resolver lets go of closes its own). */
  get openNarConnections(): number {
    return [...this.narSockets].filter((s) => !s.destroyed).length;
  }

  async close(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const s of this.sockets) s.destroy();
    await closed;
  }

  private later(ms: number, fn: () => void): void {
    if (ms <= 0) return fn();
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const path = req.url ?? '';
    this.counts.urls.push(path);
    res.on('error', () => {});
    if (this.knobs.blackhole) return;
    if (path === '/nix-cache-info') {
      this.counts.probe++;
      return void res.writeHead(200, { 'Content-Type': 'text/x-nix-cache-info' }).end('StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n');
    }
    const m = /^\/([0-9a-z]{32})\.narinfo$/.exec(path);
    if (m) {
      // Health probes look up a hash no store has; they are probes, not lookups.
      const probe = m[1] === PROBE_HASH_PART;
      if (probe) this.counts.probeLookup++;
      else this.counts.narInfo++;
      return this.later(probe && this.knobs.fastProbeLookups ? 0 : this.knobs.narInfoDelayMs, () => {
        const text = this.knobs.narInfo404 ? undefined : this.narInfos.get(m[1]);
        if (text === undefined) return void res.writeHead(404, { 'Content-Length': '0' }).end();
        res.writeHead(200, { 'Content-Type': 'text/x-nix-narinfo', 'Content-Length': String(Buffer.byteLength(text)) }).end(text);
      });
    }
    if (path.startsWith('/nar/')) {
      this.counts.nar++;
      this.narSockets.add(req.socket);
      const seen = { path, at: performance.now(), closedAt: null as number | null };
      this.narRequests.push(seen);
      res.once('close', () => (seen.closedAt = performance.now()));
      return this.later(this.knobs.narDelayMs, () => this.serveNar(path, req, res));
    }
    res.writeHead(404, { 'Content-Length': '0' }).end();
  }

  private serveNar(path: string, req: IncomingMessage, res: ServerResponse): void {
    const stored = this.nars.get(path);
    if (!stored || this.knobs.nar404) return void res.writeHead(404, { 'Content-Length': '0' }).end();
    if (this.knobs.nar503) return void res.writeHead(503, { 'Content-Length': '0', Connection: 'close' }).end();
    let bytes = stored;
    if (this.knobs.corruptAt !== null) {
      bytes = Buffer.from(stored);
      bytes[this.knobs.corruptAt] ^= 0xff;
    }
    const size = bytes.length;
    const range = /^bytes=(\d+)-$/.exec(String(req.headers.range ?? ''));
    if (range && this.knobs.ranges) {
      const start = Number(range[1]);
      this.counts.ranged++;
      this.rangesAsked.push(`${start}-`);
      res.writeHead(206, {
        'Content-Type': 'application/x-nix-nar',
        'Content-Length': String(size - start),
        'Content-Range': `bytes ${start}-${size - 1}/${size}`,
        'Accept-Ranges': 'bytes',
      });
      return void this.send(res, bytes.subarray(start));
    }
    res.writeHead(200, { 'Content-Type': 'application/x-nix-nar', 'Content-Length': String(size), 'Accept-Ranges': 'bytes' });
    const die = this.knobs.dieAfterBytes;
    if (die === null) return void this.send(res, bytes);
    // Let the first bytes reach the other side before the connection drops, as a crashing peer would.
    res.write(bytes.subarray(0, die), () => this.later(30, () => res.socket?.destroy()));
  }

  /** The body at once, or dripped as the drip knob says (stopping when the client goes away). */
  private send(res: ServerResponse, body: Buffer): void {
    const drip = this.knobs.drip;
    if (!drip) return void res.end(body);
    let at = Math.min(drip.afterBytes, body.length);
    res.write(body.subarray(0, at));
    const step = () => {
      if (res.destroyed) return;
      const next = Math.min(at + drip.bytes, body.length);
      const last = next >= body.length;
      if (last) res.end(body.subarray(at, next));
      else res.write(body.subarray(at, next));
      at = next;
      if (!last) this.later(drip.everyMs, step);
    };
    this.later(drip.everyMs, step);
  }
}

/** The part of the local store the cache layer reads (local-backend.ts StoreReader), over an in-memory map of paths. */
export class FakeLocalStore implements StoreReader {
  private readonly paths = new Map<string, { info: PathInfo; nar: Buffer }>();
  readonly released: string[] = [];
  opened = 0;

  add(p: TestPath, sigs: string[] = []): this {
    const info: PathInfo = {
      path: p.storePath,
      deriver: null,
      narHash: p.narHash,
      references: [],
      registrationTime: 1_700_000_000,
      narSize: p.narSize,
      ultimate: false,
      sigs,
      ca: null,
    };
    this.paths.set(p.hashPart, { info, nar: p.nar });
    return this;
  }

  /** Garbage-collected. */
  delete(p: TestPath): this {
    this.paths.delete(p.hashPart);
    return this;
  }

  async pathInfoByHashPart(hashPart: string): Promise<PathInfo | null> {
    return this.paths.get(hashPart)?.info ?? null;
  }

  async openNar(hashPart: string, narHash: Buffer): Promise<LocalNar | 'missing' | 'mismatch'> {
    const found = this.paths.get(hashPart);
    if (!found) return 'missing';
    if (!found.info.narHash.equals(narHash)) return 'mismatch';
    this.opened++;
    return {
      info: found.info,
      stream: () => Readable.from([found.nar]),
      release: () => void this.released.push(hashPart),
    };
  }
}
