// One client connection to nix-daemon, speaking the worker protocol (nix-protocols.md §3).
//
// Only the read-only operations a binary-cache server needs are implemented. Requests are
// written as soon as they are issued and replies are matched to requests in FIFO order, which
// the daemon guarantees because it serves one connection strictly sequentially. That lets many
// callers share one connection without waiting for each other's round trips.

import { EventEmitter } from 'node:events';
import net from 'node:net';
import { encodeString, encodeStringList, encodeU64, RawByteStream, WireError, WireReader } from './wire.ts';
import type { Readable } from 'node:stream';

export interface PathInfo {
  path: string;
  deriver: string | null;
  narHash: Buffer; // 32 raw bytes (SHA-256 of the NAR)
  references: string[]; // full store paths
  registrationTime: number; // Unix seconds
  narSize: number;
  ultimate: boolean;
  sigs: string[];
  ca: string | null;
}

import { DaemonError, MAX_MESSAGE, readStderr, type LogSink } from './daemon-stderr.ts';
import { parseSha256 } from '../nix/hash.ts';
import { parseStorePath } from '../nix/store-path.ts';

export { DaemonError } from './daemon-stderr.ts';

// --- protocol constants ---

const WORKER_MAGIC_1 = 0x6e697863; // "cxin"
const WORKER_MAGIC_2 = 0x6478696f; // "oixd"
const CLIENT_VERSION = 0x126; // 1.38: lets current Lix (min 1.35) and upstream (1.38) talk to us
const MIN_DAEMON_MINOR = 10;

const OP_IS_VALID_PATH = 1;
const OP_ADD_TEMP_ROOT = 11;
const OP_QUERY_PATH_INFO = 26;
const OP_QUERY_PATH_FROM_HASH_PART = 29;
const OP_NAR_FROM_PATH = 38;
const OP_QUERY_REALISATION = 43;
/** A realisation's JSON is a few hundred bytes; its dependent realisations could make it longer. */
const MAX_REALISATION = 64 * 1024;

// Bounds on what we accept from the daemon; all far above anything a sane daemon sends.
const MAX_PATH = 4096;
const MAX_REFERENCES = 100_000;
const MAX_SIGS = 1024;
const MAX_FEATURES = 256;

const minor = (v: number): number => v & 0xff;

// --- local argument checks ---
// A malformed argument makes the daemon fail while decoding the request, after which it cannot
// resynchronise and drops the connection (§3.4), taking every pipelined call with it. So nothing
// goes out that the daemon could choke on.

// Loose on purpose: a wrong hash part is an error the daemon reports and survives (§3.4).
const HASH_PART_RE = /^[0-9a-z]{1,64}$/;

export function isPlausibleStorePath(p: unknown): p is string {
  if (typeof p !== 'string') return false;
  try {
    parseStorePath(p);
    return true;
  } catch {
    return false;
  }
}

function checkPath(p: unknown): string {
  if (!isPlausibleStorePath(p)) {
    throw new DaemonError(`not a valid store path: ${JSON.stringify(p)}`, { fatal: false, code: 'EINVAL' });
  }
  return p;
}

// The daemon sends base16, but the reader side of Nix accepts any form, and so do we.
export function parseNarHash(text: string): Buffer {
  try {
    return parseSha256(text);
  } catch {
    throw new WireError('PROTOCOL', `unrecognised NAR hash from daemon: ${JSON.stringify(text.slice(0, 100))}`);
  }
}

// --- connection ---

interface Pending {
  op: string;
  /** Reads the reply after STDERR_LAST. */
  reply: (r: WireReader) => Promise<unknown>;
  resolve: (value: unknown) => void;
  reject: (err: DaemonError) => void;
}

export interface ConnectOptions {
  /** Connect + handshake deadline. Default 10 s. */
  timeoutMs?: number;
  /**
   * Declare the connection dead when the daemon makes no progress on the oldest outstanding
   * request for this long (NAR streaming time is not counted). Default 0 = never.
   */
  opTimeoutMs?: number;
  /** Receives log lines the daemon forwards (NEXT and activity texts). */
  onLog?: (line: string) => void;
}

interface Handshake {
  protocolVersion: number;
  daemonVersion: string | null;
  trusted: boolean | null;
  features: string[];
}

function mapConnectError(err: NodeJS.ErrnoException, socketPath: string): DaemonError {
  const code = err.code ?? 'ECONNECT';
  let msg: string;
  switch (code) {
    case 'ENOENT':
      msg = `nix-daemon socket ${socketPath} does not exist (is nix-daemon running?)`;
      break;
    case 'ECONNREFUSED':
      msg = `nix-daemon socket ${socketPath} refused the connection (is nix-daemon running?)`;
      break;
    case 'EACCES':
    case 'EPERM':
      msg = `permission denied connecting to nix-daemon socket ${socketPath}`;
      break;
    case 'EAGAIN':
      msg = `nix-daemon socket ${socketPath} is not accepting connections fast enough (listen backlog full)`;
      break;
    case 'ENOTSOCK':
      msg = `${socketPath} is not a socket`;
      break;
    default:
      msg = `cannot connect to nix-daemon socket ${socketPath}: ${err.message}`;
  }
  return new DaemonError(msg, { fatal: true, code, cause: err });
}

async function handshake(socket: net.Socket, r: WireReader): Promise<Handshake> {
  socket.write(Buffer.concat([encodeU64(WORKER_MAGIC_1), encodeU64(CLIENT_VERSION)]));
  const magic = await r.u64();
  if (magic !== WORKER_MAGIC_2) throw new WireError('PROTOCOL', 'peer is not a nix-daemon (bad magic)');
  const daemon = await r.u64();
  if (daemon >> 8 !== 1 || minor(daemon) < MIN_DAEMON_MINOR) {
    throw new WireError('PROTOCOL', `unsupported daemon protocol version ${daemon >> 8}.${minor(daemon)}`);
  }
  const n = Math.min(CLIENT_VERSION, daemon);

  // Everything we send is independent of what the daemon answers, so send it in one go.
  const out: Buffer[] = [];
  if (minor(n) >= 38) out.push(encodeStringList([])); // our feature set: none
  if (minor(n) >= 14) out.push(encodeU64(0)); // obsolete CPU affinity
  if (minor(n) >= 11) out.push(encodeU64(0)); // obsolete reserve-space
  if (out.length) socket.write(Buffer.concat(out));

  let features: string[] = [];
  if (minor(n) >= 38) features = await r.strList(MAX_FEATURES, 1024);
  let daemonVersion: string | null = null;
  if (minor(n) >= 33) daemonVersion = await r.str(1024);
  let trusted: boolean | null = null;
  if (minor(n) >= 35) {
    const t = await r.u64();
    trusted = t === 1 ? true : t === 2 ? false : null;
  }
  const err = await readStderr(r, n, null);
  if (err) throw err;
  return { protocolVersion: n, daemonVersion, trusted, features };
}

function asFatal(err: unknown, context: string): DaemonError {
  if (err instanceof DaemonError && err.fatal) return err;
  const e = err as Error;
  const code = err instanceof WireError ? (err.code === 'EOF' ? 'ECONNRESET' : 'EPROTO') : (err as DaemonError).code;
  return new DaemonError(`${context}: ${e?.message ?? String(err)}`, { fatal: true, code, cause: err });
}

export class DaemonConnection extends EventEmitter {
  readonly socketPath: string;
  /** Negotiated version N = min(ours, daemon's), as major << 8 | minor. */
  readonly protocolVersion: number;
  readonly daemonVersion: string | null;
  /** Only reported by daemons speaking >= 1.35; null otherwise. */
  readonly trusted: boolean | null;
  readonly features: string[];

  private readonly socket: net.Socket;
  private readonly reader: WireReader;
  private readonly onLog: LogSink | null;
  private readonly opTimeoutMs: number;
  private readonly queue: Pending[] = [];
  private pumping = false;
  private isClosed = false;
  private reserved = false; // a NarFromPath was issued: nothing may follow it
  private timer: NodeJS.Timeout | null = null;
  private readonly closedPromise: Promise<void>;

  private constructor(socketPath: string, socket: net.Socket, reader: WireReader, hs: Handshake, opts: ConnectOptions) {
    super();
    this.socketPath = socketPath;
    this.socket = socket;
    this.reader = reader;
    this.protocolVersion = hs.protocolVersion;
    this.daemonVersion = hs.daemonVersion;
    this.trusted = hs.trusted;
    this.features = hs.features;
    this.onLog = opts.onLog ?? null;
    this.opTimeoutMs = opts.opTimeoutMs ?? 0;
    let markClosed!: () => void;
    this.closedPromise = new Promise<void>((resolve) => (markClosed = resolve));
    const onSocketClose = (): void => {
      this.fail(new DaemonError(`nix-daemon connection ${this.socketPath} closed`, { fatal: true, code: 'ECONNRESET' }));
      markClosed();
      this.emit('close');
    };
    // The daemon may have hung up right after the handshake, before we were listening.
    if (socket.closed) queueMicrotask(onSocketClose);
    else socket.once('close', onSocketClose);
  }

  /**
   * Connect to the daemon socket and perform the handshake. Every failure (missing socket,
   * refused, permission, timeout, rejected handshake) is a DaemonError naming the socket.
   */
  static async connect(socketPath: string, opts: ConnectOptions = {}): Promise<DaemonConnection> {
    const timeoutMs = opts.timeoutMs ?? 10_000;
    const deadline = performance.now() + timeoutMs;
    let delay = 2;
    for (;;) {
      try {
        return await DaemonConnection.attempt(socketPath, opts, timeoutMs, Math.max(1, deadline - performance.now()));
      } catch (err) {
        // The daemon's listen backlog is small; a burst of connects (many NAR requests at once)
        // overflows it and Linux answers EAGAIN instead of queueing. Back off and try again.
        if (!(err instanceof DaemonError) || err.code !== 'EAGAIN' || performance.now() + delay >= deadline) throw err;
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 50);
      }
    }
  }

  private static attempt(socketPath: string, opts: ConnectOptions, timeoutMs: number, remainingMs: number): Promise<DaemonConnection> {
    return new Promise<DaemonConnection>((resolve, reject) => {
      const socket = net.createConnection({ path: socketPath });
      const reader = new WireReader(socket);
      let settled = false;
      const fail = (err: DaemonError): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.destroy();
        reject(err);
      };
      const timer = setTimeout(() => {
        fail(
          new DaemonError(`timed out after ${timeoutMs} ms connecting to nix-daemon at ${socketPath}`, {
            fatal: true,
            code: 'ETIMEDOUT',
          }),
        );
      }, remainingMs);
      const onError = (err: NodeJS.ErrnoException): void => fail(mapConnectError(err, socketPath));
      socket.once('error', onError);
      socket.once('connect', () => {
        handshake(socket, reader).then(
          (hs) => {
            if (settled) return;
            settled = true;
            clearTimeout(timer);
            socket.off('error', onError);
            resolve(new DaemonConnection(socketPath, socket, reader, hs, opts));
          },
          (err: unknown) => {
            if (err instanceof DaemonError) {
              fail(new DaemonError(`nix-daemon at ${socketPath} rejected the connection: ${err.message}`, { fatal: true, code: 'EDAEMON', cause: err }));
            } else if (err instanceof WireError && err.code === 'EOF') {
              fail(
                new DaemonError(
                  `nix-daemon at ${socketPath} closed the connection during the handshake ` + `(user not in allowed-users, or protocol 1.38 not accepted)`,
                  { fatal: true, code: 'ECONNRESET', cause: err },
                ),
              );
            } else {
              fail(asFatal(err, `handshake with nix-daemon at ${socketPath} failed`));
            }
          },
        );
      });
    });
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /** Requests sent whose replies have not been read yet. */
  get pending(): number {
    return this.queue.length;
  }

  /** False once closed or once a NAR transfer has been started on it. */
  get usable(): boolean {
    return !this.isClosed && !this.reserved;
  }

  /** Resolves once the socket is fully closed (immediately if it already is). */
  whenClosed(): Promise<void> {
    return this.closedPromise;
  }

  onClose(cb: () => void): () => void {
    this.on('close', cb);
    return () => this.off('close', cb);
  }

  // --- operations ---

  async queryPathFromHashPart(hashPart: string): Promise<string | null> {
    if (typeof hashPart !== 'string' || !HASH_PART_RE.test(hashPart)) {
      throw new DaemonError(`not a valid hash part: ${JSON.stringify(hashPart)}`, { fatal: false, code: 'EINVAL' });
    }
    const path = await this.call<string>('QueryPathFromHashPart', [encodeU64(OP_QUERY_PATH_FROM_HASH_PART), encodeString(hashPart)], (r) => r.str(MAX_PATH));
    return path === '' ? null : path;
  }

  async queryPathInfo(path: string): Promise<PathInfo | null> {
    checkPath(path);
    const n = this.protocolVersion;
    const req = [encodeU64(OP_QUERY_PATH_INFO), encodeString(path)];
    const readInfo = async (r: WireReader): Promise<PathInfo | null> => {
      if (minor(n) >= 17 && !(await r.bool())) return null;
      const deriver = await r.str(MAX_PATH);
      const narHash = parseNarHash(await r.str(1024));
      const references = await r.strList(MAX_REFERENCES, MAX_PATH);
      const registrationTime = await r.u64();
      const narSize = await r.u64();
      let ultimate = false;
      let sigs: string[] = [];
      let ca = '';
      if (minor(n) >= 16) {
        ultimate = await r.bool();
        sigs = await r.strList(MAX_SIGS, MAX_MESSAGE);
        ca = await r.str(MAX_MESSAGE);
      }
      return { path, deriver: deriver || null, narHash, references, registrationTime, narSize, ultimate, sigs, ca: ca || null };
    };
    if (minor(n) >= 17) return this.call('QueryPathInfo', req, readInfo);
    try {
      return await this.call('QueryPathInfo', req, readInfo);
    } catch (err) {
      // Before 1.17 an unknown path is reported as an in-band error.
      if (err instanceof DaemonError && !err.fatal && /is not valid/.test(err.message)) return null;
      throw err;
    }
  }

  /**
   * The realisations the store knows for one derivation output ("sha256:<hex>!<output>"), as the
   * daemon's JSON texts (protocol ≥ 1.31; before that it answers bare store paths, with no
   * signatures to pass on, so null). A daemon without ca-derivations answers an in-band error,
   * which is "none here".
   * Nix 2.8's and 2.26's daemons (checked) abort the connection's worker on this op while
   * ca-derivations is off (an assertion in their SQLite layer); Nix 2.34's answers "none". So an
   * older daemon, or one that is not upstream Nix at 1.38, is asked only when `caEnabled` says its
   * configuration turns ca-derivations on; otherwise the answer is "none" without asking.
   */
  async queryRealisation(id: string, opts: { caEnabled?: boolean } = {}): Promise<string[] | null> {
    if (typeof id !== 'string' || id.length > 200 || !/^sha256:[0-9a-f]{64}![A-Za-z0-9+\-_?=.]{1,100}$/.test(id)) {
      throw new DaemonError(`not a derivation output id: ${JSON.stringify(id)}`, { fatal: false, code: 'EINVAL' });
    }
    if (minor(this.protocolVersion) < 31) return null;
    if (!opts.caEnabled && !(minor(this.protocolVersion) >= 38 && versionAtLeast(this.daemonVersion, 2, 34))) return [];
    try {
      return await this.call('QueryRealisation', [encodeU64(OP_QUERY_REALISATION), encodeString(id)], (r) => r.strList(16, MAX_REALISATION));
    } catch (err) {
      if (err instanceof DaemonError && !err.fatal) return [];
      throw err;
    }
  }

  async isValidPath(path: string): Promise<boolean> {
    checkPath(path);
    return this.call('IsValidPath', [encodeU64(OP_IS_VALID_PATH), encodeString(path)], (r) => r.bool());
  }

  /**
   * Register a temporary GC root held by the daemon process serving this connection; it lasts
   * exactly as long as the connection (nix-protocols.md §4).
   */
  async addTempRoot(path: string): Promise<void> {
    checkPath(path);
    await this.call('AddTempRoot', [encodeU64(OP_ADD_TEMP_ROOT), encodeString(path)], (r) => r.u64());
  }

  /**
   * Stream the NAR of `path`: exactly `narSize` bytes, then end. The daemon sends the NAR
   * unframed, so the length must come from a preceding QueryPathInfo; an error the daemon
   * reports mid-dump is indistinguishable from NAR bytes, so the consumer must hash what it
   * gets. This must be the last operation on the connection, which closes when the stream ends
   * or is destroyed. Earlier pipelined calls still complete normally.
   */
  narFromPath(path: string, narSize: number): Readable {
    checkPath(path);
    if (!Number.isSafeInteger(narSize) || narSize < 0) {
      throw new DaemonError(`bad NAR size: ${narSize}`, { fatal: false, code: 'EINVAL' });
    }
    this.assertUsable();
    this.reserved = true;

    let finished = false;
    const stream = new RawByteStream(narSize, {
      onDestroy: () => {
        // The consumer gave up (or we failed it): the daemon would keep dumping, so hang up.
        if (!finished) this.close();
      },
    });
    this.enqueue(
      'NarFromPath',
      [encodeU64(OP_NAR_FROM_PATH), encodeString(path)],
      async (r) => {
        // From here on the pace is set by the consumer, not the daemon.
        this.clearTimer();
        await r.handOff(stream);
        // Every byte is in the stream now. No reply can follow a NAR, so release the daemon
        // process (and its temp roots) right away; the consumer still reads what is buffered.
        finished = true;
        this.close();
      },
      () => {},
      (err) => {
        if (!finished && !stream.destroyed) stream.destroy(err);
        this.close();
      },
    );
    return stream;
  }

  /** Hang up. Calls still waiting for a reply are rejected with a fatal DaemonError. */
  close(): void {
    if (!this.isClosed) {
      this.fail(new DaemonError(`nix-daemon connection ${this.socketPath} closed by client`, { fatal: true, code: 'ECLOSED' }));
    }
  }

  /** Hang up, rejecting calls still waiting with this error (a caller's deadline passed). */
  closeWith(err: DaemonError): void {
    this.fail(err);
  }

  // --- machinery ---

  private assertUsable(): void {
    if (this.isClosed) {
      throw new DaemonError(`nix-daemon connection ${this.socketPath} is closed`, { fatal: true, code: 'ECLOSED' });
    }
    if (this.reserved) {
      throw new DaemonError(`nix-daemon connection ${this.socketPath} is in use for a NAR transfer`, {
        fatal: true,
        code: 'ECLOSED',
      });
    }
  }

  private call<T>(op: string, request: Buffer[], reply: (r: WireReader) => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      try {
        this.assertUsable();
      } catch (err) {
        reject(err);
        return;
      }
      this.enqueue(op, request, reply, resolve as (v: unknown) => void, reject);
    });
  }

  private enqueue(
    op: string,
    request: Buffer[],
    reply: (r: WireReader) => Promise<unknown>,
    resolve: (v: unknown) => void,
    reject: (err: DaemonError) => void,
  ): void {
    this.queue.push({ op, reply, resolve, reject });
    this.socket.write(request.length === 1 ? request[0] : Buffer.concat(request));
    if (!this.timer && this.opTimeoutMs > 0) this.armTimer();
    void this.pump();
  }

  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.queue.length > 0 && !this.isClosed) {
        const head = this.queue[0];
        let value: unknown;
        let opError: DaemonError | null;
        try {
          opError = await readStderr(this.reader, this.protocolVersion, this.onLog);
          if (!opError) value = await head.reply(this.reader);
        } catch (err) {
          this.fail(asFatal(err, `nix-daemon ${head.op} on ${this.socketPath} failed`));
          return;
        }
        if (this.isClosed) return; // close() already rejected head
        this.queue.shift();
        if (this.queue.length > 0) this.timer?.refresh();
        else this.clearTimer();
        if (opError) head.reject(opError);
        else head.resolve(value);
      }
    } finally {
      this.pumping = false;
    }
  }

  private armTimer(): void {
    this.timer = setTimeout(() => {
      this.timer = null;
      if (this.queue.length === 0) return;
      this.fail(
        new DaemonError(`nix-daemon at ${this.socketPath} did not answer ${this.queue[0].op} within ${this.opTimeoutMs} ms`, {
          fatal: true,
          code: 'ETIMEDOUT',
        }),
      );
    }, this.opTimeoutMs);
    this.timer.unref();
  }

  private clearTimer(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
  }

  private fail(err: DaemonError): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.clearTimer();
    this.socket.destroy();
    const pending = this.queue.splice(0);
    for (const p of pending) p.reject(err);
  }
}

/** Whether a daemon's version string ("2.34.8", "3.12.0") is at least major.minor. */
export function versionAtLeast(version: string | null, major: number, minorVersion: number): boolean {
  const m = version ? /^(\d+)\.(\d+)/.exec(version) : null;
  if (!m) return false;
  const [a, b] = [Number(m[1]), Number(m[2])];
  return a > major || (a === major && b >= minorVersion);
}
