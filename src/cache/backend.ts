import type { Readable } from 'node:stream';
import type { NarInfo } from '../nix/narinfo.ts';
import { Unavailable } from './http-error.ts';

// What an HTTP listener serves from. The share listener's backend is the local store alone; the
// substituter listener's is the resolver (local store, then peers). The HTTP layer stays the same.

export interface NarBody {
  narSize: number;
  narHash: Buffer;
  storePath: string;
  /**
   * Hash every byte against narHash while streaming. Off only for the local store, whose bytes are
   * pinned by a GC temp root and checked against the NarHash before headers; always on for peers.
   */
  hashCheck: boolean;
  /** The whole NAR from byte 0; the HTTP layer slices ranges and verifies every byte. */
  stream(): Readable;
  /**
   * The NAR from byte `start` on, up to `end` (exclusive) when given, when the source can skip ahead
   * without reading what it skips (the local store's files) and stop where asked. Used only for
   * bodies without hashCheck: a hash needs every byte.
   */
  streamFrom?(start: number, end?: number): Readable;
  /** Ends whatever holds the body alive (a GC temp root, a peer request). Idempotent. */
  release(reason?: 'done' | 'failed' | 'aborted' | 'mismatch'): void;
}

export interface NarRequestOptions {
  resume?: boolean;
  signal?: AbortSignal;
}

export interface CacheBackend {
  /** Synchronous when the answer is at hand: the hottest route then costs no event-loop turns. */
  narInfo(hashPart: string): NarInfo | null | Promise<NarInfo | null>;
  /**
   * `resume`: the request asks for the NAR from a byte > 0 (a client resuming a cut transfer).
   * `signal`: aborts when the client leaves before the answer; the backend then stops looking and
   * resolves null (nothing is recorded for it), or ignores it when its answer is quick anyway.
   */
  nar(hashPart: string, narHash: Buffer, opts?: NarRequestOptions): Promise<NarBody | null>;
}

/** This machine's store as the resolver sees it: its narinfos, and its NARs or why not. */
export interface LocalSource {
  /** Signed, with this cache's NAR URL and the NarHash as sha256:<nix32>. */
  narInfo(hashPart: string): NarInfo | null | Promise<NarInfo | null>;
  /** 'missing': not here (never was, or garbage-collected); 'mismatch': here, with other bytes. */
  openLocal(hashPart: string, narHash: Buffer): Promise<NarBody | 'missing' | 'mismatch'>;
}

/** Thrown when the source is down (not "not found"): the listener answers 503, never 404. */
export class BackendUnavailableError extends Unavailable {
  constructor(why: string) {
    super('store unavailable', { retryAfterS: 5, logMessage: why });
  }
}
