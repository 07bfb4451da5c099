import type { IncomingMessage } from 'node:http';
import type { NarInfo } from '../nix/narinfo.ts';
import { isHashPart } from '../nix/store-path.ts';
import type { PathScopes } from '../store/path-scope.ts';
import type { AskerClass } from './asker-class.ts';
import { NotFound } from './http-error.ts';
import type { Route, RouteMatch, RoutePolicy } from './route-table.ts';

// The share listener's one policy on who may see what, hung on the route table's `reveals` column
// and applied before any handler runs, so no route can forget it. An anonymous asker (anyone whose
// request did not ride a team member's TLS connection) sees only public paths; a team member sees
// public and team paths; nobody sees a `never` path. A path the asker may not see is answered exactly
// as an absent one: the same NotFound thrown on the same route (so the same 404 bytes), after the
// same store lookup an absent path costs (so the same timing class). Per reveals:
//   nothing, control  served (the asker is classed all the same)
//   path              by the scope of the path the route names: its first capture is the hash part,
//                     or the route's revealedPath finds it (a realisation's id names a derivation
//                     output: judged by its output path); a route naming no hash part otherwise is for
//                     team members only (fails closed)
//   summary           served; the handler picks the summary the asker's class may see
//   figures           team members only: counts and byte totals move with team transfers

export interface ScopePolicyOptions {
  classify: (req: IncomingMessage) => AskerClass;
  scopes: PathScopes;
  /** This store's narinfo by hash part, as the routes themselves would read it (the same cached lookup). */
  narInfo: (hashPart: string) => NarInfo | null | Promise<NarInfo | null>;
}

export function scopePolicy(opts: ScopePolicyOptions): RoutePolicy {
  const { scopes } = opts;
  return (req: IncomingMessage, route: Route, match: RouteMatch) => {
    const asker = opts.classify(req);
    match.asker = asker;
    switch (route.reveals) {
      case 'nothing':
      case 'control':
      case 'summary':
        return;
      case 'figures':
        if (asker !== 'team') throw new NotFound();
        return;
      case 'path': {
        if (route.revealedPath) return route.revealedPath(match).then((h) => judgeHashPart(h, asker));
        return judgeHashPart(match.params[0], asker);
      }
    }
  };

  function judgeHashPart(hashPart: string | null | undefined, asker: AskerClass): void | Promise<void> {
    // No path named, or a name that is no hash part: the handler answers a team member; anyone else
    // gets the absent answer here (fail closed: a path the handler would find after all is not judged).
    if (hashPart === null || hashPart === undefined || !isHashPart(hashPart)) {
      if (asker !== 'team') throw new NotFound();
      return;
    }
    const info = opts.narInfo(hashPart);
    if (info instanceof Promise) return info.then((i) => judge(i, asker));
    return judge(info, asker);
  }

  function judge(info: NarInfo | null, asker: AskerClass): void {
    // Absent at this lookup: the absent answer, here for anyone but a team member. The handler looks
    // again, and a path added in between (a build finishing) must not reach a stranger unjudged.
    if (!info) {
      if (asker !== 'team') throw new NotFound();
      return;
    }
    const scope = scopes.scopeOf(info);
    if (scope === 'public' || (scope === 'team' && asker === 'team')) return;
    scopes.countRefusal(scope);
    throw new NotFound();
  }
}
