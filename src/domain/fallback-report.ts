import type { FallbackReason } from '../base/api.ts';
import type { EventLog } from '../base/events.ts';
import type { Logger } from '../base/log.ts';
import type { AffinityEntry } from './affinity.ts';

/**
 * Says that a NAR came (or did not) from somewhere other than the source its narinfo named: a log
 * line and a `fallback` event for the window.
 */
export function reportFallback(
  log: Logger,
  events: EventLog,
  storePath: string,
  entry: Pick<AffinityEntry, 'sourceName'> | undefined,
  to: string | null,
  reason: FallbackReason,
  outcome: 'served' | 'not-found',
): void {
  const from = entry?.sourceName ?? 'none';
  log.info(`fallback ${storePath}: ${from} → ${to ?? 'nobody'} (${reason}, ${outcome})`);
  events.emit({ type: 'fallback', storePath, from, to, reason, outcome });
}
