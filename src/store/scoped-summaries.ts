import type { PathScope, PathScopes } from './path-scope.ts';
import { StoreSummary, type StoreSummaryOptions, type SummarySource } from './store-summary.ts';

// This store's two summaries for peers (issue #20): a stranger's admits public paths only, a team
// member's public and team paths; a `never` path is in neither. A Bloom filter of team paths handed
// to a stranger would be an offline oracle for guessing them, so each asker gets only its own.
// Rows whose facts can't be read are left out of the public one (fail closed).

export interface ScopedSummariesOptions {
  source: SummarySource;
  scopes: PathScopes;
  /**
   * The scope of a row's path, judged on the narinfo as the share listener serves it (synchronous,
   * from the store database); null when it can't be told now (then it is left out: fails closed).
   */
  scopeOf: (hashPart: string) => PathScope | null;
  summary?: StoreSummaryOptions;
}

export class ScopedSummaries {
  readonly public: StoreSummary;
  readonly team: StoreSummary;

  constructor(opts: ScopedSummariesOptions) {
    const { source, scopes } = opts;
    this.public = new StoreSummary(source, {
      ...opts.summary,
      admit: (row) => opts.scopeOf(row.hashPart) === 'public',
    });
    this.team = new StoreSummary(source, { ...opts.summary, admit: (row) => row.path !== undefined && !scopes.isExcluded(row.path) });
  }

  /** The summary an asker may see. */
  for(team: boolean): StoreSummary {
    return team ? this.team : this.public;
  }

  refresh(checkDeletions = false): boolean {
    const a = this.public.refresh(checkDeletions);
    const b = this.team.refresh(checkDeletions);
    return a || b;
  }

  /** The rules changed: both are built anew (peers fetch them whole under a new epoch). */
  rebuild(): void {
    this.public.rebuildNow();
    this.team.rebuildNow();
  }
}
