import type { IncomingMessage, ServerResponse } from 'node:http';
import { silentLogger, type Logger } from '../base/log.ts';
import type { AskerClass } from './asker-class.ts';
import { MethodNotAllowed, NotFound, writeError, type ErrorBody, type HttpError } from './http-error.ts';

// Routes as data: each listener's file (app/*-routes.ts) is a list of these, and this file finds the
// route a request line names and runs it. A request line is hostile input: only its raw, undecoded
// path is compared (so "/peernix/assets/../x" is just an unknown path), never more than
// MAX_URL_LENGTH characters of it, and a handler sees only what its own pattern captured.

export type Method = 'GET' | 'HEAD' | 'POST';
export const GET_HEAD: readonly Method[] = ['GET', 'HEAD'];
/** Every method, for a catch-all whose answer does not depend on it. */
export const ANY_METHOD = '*';

/** Which listener a route is served on. 'loopback' routes share the substituter's socket. */
export type ListenerName = 'share' | 'substituter' | 'loopback';

/**
 * What answering the route tells the asker about this machine's store, for policies on who may ask
 * what (scoped sharing):
 *   nothing   nothing about any store path (cache info, identity proof, reach-back, dashboard files)
 *   path      whether one named store path is here, and its narinfo or NAR
 *   summary   which paths are here, as a summary of all of them
 *   figures   counts and totals (metrics)
 *   control   everything the user sees, and changes to it (the control API, behind its token)
 */
export type Reveals = 'nothing' | 'path' | 'summary' | 'figures' | 'control';

export interface RouteMatch {
  /** The raw path, query excluded. */
  path: string;
  /** The raw query, without '?' ('' when none). */
  query: string;
  /** The pattern's capture groups, in order. */
  params: string[];
  head: boolean;
  /** Who is asking, as the listener's policy classed them (set before the handler runs; 'anonymous' without a policy). */
  asker: AskerClass;
}

/**
 * A listener's one policy on who may ask what (scope-policy.ts): runs before every route's handler,
 * may class the asker on the match, and throws (NotFound, to look exactly like an absent path) to
 * refuse. Synchronous when it can be, so the narinfo hot path costs no event-loop turn.
 */
export type RoutePolicy = (req: IncomingMessage, route: Route, match: RouteMatch) => void | Promise<void>;

/** Answers a request or throws an HttpError (any other throw is a 500); may finish later. */
export type RouteHandler = (req: IncomingMessage, res: ServerResponse, match: RouteMatch) => void | Promise<void>;

export interface Route {
  name: string;
  methods: readonly Method[] | typeof ANY_METHOD;
  /** An exact path, or an anchored pattern over the path whose groups become params. */
  path: string | RegExp;
  /** 'none': a URL with a query is not this route. Default: any query is passed on. */
  query?: 'any' | 'none';
  listener: ListenerName;
  reveals: Reveals;
  /** Runs before the method is checked (the control API's Host and Origin checks); throws to refuse. */
  guard?: (req: IncomingMessage, res: ServerResponse) => void;
  /** How this route's errors read; default text. */
  errorBody?: ErrorBody;
  /**
   * For a 'path' route whose URL names no hash part (a realisation names a derivation output): the
   * hash part of the store path answering would reveal, null when there is none. Scope policies
   * judge that path; without it such a route is for team members only.
   */
  revealedPath?: (match: RouteMatch) => Promise<string | null>;
  handler: RouteHandler;
}

/** Longer request lines match no route: no route of ours is that long, and a hostile one costs nothing. */
export const MAX_URL_LENGTH = 512;

export type Resolution =
  | { kind: 'route'; route: Route; match: RouteMatch }
  /** The path is a route's, the method is not (405 after the route's guard). */
  | { kind: 'method'; route: Route; error: HttpError }
  | { kind: 'none'; error: HttpError };

/** The route a request line names: the first whose path matches, whatever the method. */
export function resolveRoute(routes: readonly Route[], method: string | undefined, url: string | undefined): Resolution {
  if (!url || url.length > MAX_URL_LENGTH || !url.startsWith('/')) return { kind: 'none', error: new NotFound() };
  const q = url.indexOf('?');
  const path = q === -1 ? url : url.slice(0, q);
  const query = q === -1 ? '' : url.slice(q + 1);
  for (const route of routes) {
    if (route.query === 'none' && q !== -1) continue;
    let params: string[];
    if (typeof route.path === 'string') {
      if (path !== route.path) continue;
      params = [];
    } else {
      const m = route.path.exec(path);
      if (!m) continue;
      params = m.slice(1);
    }
    if (route.methods !== ANY_METHOD && !route.methods.includes(method as Method)) return { kind: 'method', route, error: new MethodNotAllowed(route.methods) };
    return { kind: 'route', route, match: { path, query, params, head: method === 'HEAD', asker: 'anonymous' } };
  }
  return { kind: 'none', error: new NotFound() };
}

/**
 * A listener's request handler for its routes. When no route matches (an unknown path, or a request
 * line no route could match, however the table ends) it returns false having written nothing, so the
 * caller may try more routes; with `last` it answers 404 itself.
 */
export function serveRoutes(
  routes: readonly Route[],
  opts: { log?: Logger; last?: boolean; policy?: RoutePolicy } = {},
): (req: IncomingMessage, res: ServerResponse) => boolean {
  const log = opts.log ?? silentLogger;
  return (req, res) => {
    const found = resolveRoute(routes, req.method, req.url);
    if (found.kind === 'none') {
      if (!opts.last) return false;
      writeError(res, found.error, { log });
      return true;
    }
    if (log.debugEnabled) {
      const started = process.hrtime.bigint();
      res.on('finish', () => {
        const ms = Number(process.hrtime.bigint() - started) / 1e6;
        log.debug(`${req.socket.remoteAddress} ${req.method} ${req.url} ${res.statusCode} ${ms.toFixed(2)}ms (${found.route.name})`);
      });
    }
    const route = found.route;
    const fail = (e: unknown) => {
      // A refused request's body is not read; drained, so the connection can carry the next one.
      if (!req.readableEnded) req.resume();
      writeError(res, e, { body: route.errorBody, log });
    };
    try {
      route.guard?.(req, res);
      if (found.kind === 'method') throw found.error;
      const match = found.match;
      const admitted = opts.policy?.(req, route, match);
      const done = admitted instanceof Promise ? admitted.then(() => route.handler(req, res, match)) : route.handler(req, res, match);
      // Never an unhandled rejection: that would end the whole daemon.
      if (done instanceof Promise) done.catch(fail);
    } catch (e) {
      fail(e);
    }
    return true;
  };
}
