import type { NoticeId, TeamAction } from './api.ts';

// Checks a request to change the team or acknowledge a notice, as it arrives from outside the core
// (the control API's JSON body, the window's IPC): exactly one verb, with a bounded string. Whether
// the key parses is the roster's to say, with its reason.

export function parseTeamAction(v: unknown): TeamAction | null {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return null;
  const entries = Object.entries(v);
  if (entries.length !== 1) return null;
  const [verb, key] = entries[0];
  if ((verb !== 'add' && verb !== 'remove') || typeof key !== 'string' || key.trim().length === 0 || key.length > 300) return null;
  return { [verb]: key.trim() } as TeamAction;
}

const NOTICE_IDS: readonly NoticeId[] = ['scopes'];

export function parseNoticeId(v: unknown): NoticeId | null {
  return NOTICE_IDS.includes(v as NoticeId) ? (v as NoticeId) : null;
}
