import type { ServerResponse } from 'node:http';
import type { Logger } from '../base/log.ts';

// The one place an HTTP error becomes a status, headers and a body. Handlers on every listener throw
// one of the typed errors below (or anything else, which is a 500) and never write an error status
// themselves. The public message is all a client ever sees: a thrown Error's own text (a stack, a
// path, a daemon's words) stays in the log.

export type ErrorKind =
  | 'bad-request'
  | 'forbidden'
  | 'not-found'
  | 'method-not-allowed'
  | 'conflict'
  | 'too-large'
  | 'range-not-satisfiable'
  | 'too-often'
  | 'internal'
  | 'busy'
  | 'unavailable';

/** Status per kind. 404 is what Nix takes as "not here, ask another cache"; 503 as "try later". */
export const STATUS: Record<ErrorKind, number> = {
  'bad-request': 400,
  forbidden: 403,
  'not-found': 404,
  'method-not-allowed': 405,
  conflict: 409,
  'too-large': 413,
  'range-not-satisfiable': 416,
  'too-often': 429,
  internal: 500,
  busy: 503,
  unavailable: 503,
};

export class HttpError extends Error {
  readonly kind: ErrorKind;
  /** What the client reads; `message` is what the log reads. */
  readonly publicMessage: string;
  readonly headers: Readonly<Record<string, string>>;

  constructor(kind: ErrorKind, publicMessage: string, opts: { headers?: Record<string, string>; logMessage?: string } = {}) {
    super(opts.logMessage ?? publicMessage);
    this.kind = kind;
    this.publicMessage = publicMessage;
    this.headers = opts.headers ?? {};
  }

  get status(): number {
    return STATUS[this.kind];
  }
}

export class BadRequest extends HttpError {
  constructor(message: string) {
    super('bad-request', message);
  }
}

export class Forbidden extends HttpError {
  constructor(message: string, headers?: Record<string, string>) {
    super('forbidden', message, { headers });
  }
}

export class NotFound extends HttpError {
  constructor(message = 'not found') {
    super('not-found', message);
  }
}

export class MethodNotAllowed extends HttpError {
  readonly allow: readonly string[];
  constructor(allow: readonly string[], message = 'method not allowed') {
    super('method-not-allowed', message, { headers: { Allow: allow.join(', ') } });
    this.allow = allow;
  }
}

/** The request is well-formed but the state refuses it (a network that can't be trusted now). */
export class Conflict extends HttpError {
  constructor(message: string) {
    super('conflict', message);
  }
}

export class TooLarge extends HttpError {
  constructor(message: string) {
    super('too-large', message);
  }
}

export class RangeNotSatisfiable extends HttpError {
  constructor(size: number) {
    super('range-not-satisfiable', 'range not satisfiable', { headers: { 'Content-Range': `bytes */${size}` } });
  }
}

export class TooOften extends HttpError {
  constructor(message: string, retryAfterS: number) {
    super('too-often', message, { headers: { 'Retry-After': String(retryAfterS) } });
  }
}

/** A cap on concurrent work is reached: the client may ask again (or ask another holder) shortly. */
export class Busy extends HttpError {
  constructor(message: string, opts: { retryAfterS: number; close?: boolean }) {
    // Connection: close, so a client turned away holds no socket either.
    super('busy', message, { headers: { 'Retry-After': String(opts.retryAfterS), ...(opts.close ? { Connection: 'close' } : {}) } });
  }
}

/** What the request needs is down or not ready (not "not found"). */
export class Unavailable extends HttpError {
  constructor(publicMessage: string, opts: { retryAfterS?: number; logMessage?: string } = {}) {
    super('unavailable', publicMessage, {
      logMessage: opts.logMessage,
      headers: opts.retryAfterS === undefined ? {} : { 'Retry-After': String(opts.retryAfterS) },
    });
  }
}

/** How a listener's error bodies read: plain text for Nix and peers, JSON for the control API. */
export type ErrorBody = 'text' | 'json';

/** Any thrown value as an HttpError: an unknown one is an internal error that says nothing of itself. */
export function asHttpError(e: unknown): HttpError {
  if (e instanceof HttpError) return e;
  return new HttpError('internal', 'internal error', { logMessage: (e as Error)?.stack ?? String(e) });
}

/**
 * Answers a request with the error. A response already under way (a NAR body that failed mid-way) is
 * destroyed, never ended: a cut connection is what tells Nix the body is incomplete.
 */
export function writeError(res: ServerResponse, e: unknown, opts: { body?: ErrorBody; log?: Logger } = {}): void {
  const err = asHttpError(e);
  if (err.kind === 'internal') opts.log?.error(`internal error: ${err.message}`);
  else if (err.kind === 'unavailable' && err.message !== err.publicMessage) opts.log?.warn(err.message);
  if (res.destroyed) return;
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const json = opts.body === 'json';
  const body = Buffer.from(json ? JSON.stringify({ error: err.publicMessage }) : `${err.publicMessage}\n`);
  // Headers a handler set before it failed (the control API's security headers) stay; a length or
  // type meant for a body that never came does not.
  res.removeHeader('Content-Length');
  res.removeHeader('Content-Range');
  res.removeHeader('Accept-Ranges');
  res.writeHead(err.status, {
    ...err.headers,
    'Content-Type': json ? 'application/json; charset=utf-8' : 'text/plain; charset=utf-8',
    'Content-Length': String(body.length),
    ...(json ? { 'Cache-Control': 'no-store' } : {}),
  });
  res.end(body);
}

/** A successful answer with a body held in memory; on HEAD the same headers and no body. */
export function sendBody(res: ServerResponse, body: string | Buffer, headers: Record<string, string>, opts: { head?: boolean; status?: 200 | 204 } = {}): void {
  if (res.headersSent || res.destroyed) return;
  const buf = typeof body === 'string' ? Buffer.from(body) : body;
  res.writeHead(opts.status ?? 200, { 'Content-Length': String(buf.length), ...headers });
  res.end(opts.head ? undefined : buf);
}
