import type { PeerSummaryView } from './api.ts';

// One line on a peer's store summary, the same in `peernix status` and the window. Imports nothing
// but types, so the renderer's bundle can use it.

export function describeSummary(s: PeerSummaryView | null, now = Date.now()): string {
  if (!s) return 'no summary followed yet';
  switch (s.state) {
    case 'ok': {
      const kib = s.bytes ? `, ${Math.max(1, Math.round(s.bytes / 1024))} KiB` : '';
      const age = s.updatedAt ? `, changed ${ago(now - s.updatedAt)}` : '';
      return `summary: ${s.paths.toLocaleString('en')} paths (≈ ${s.admittedEstimate.toLocaleString('en')} admitted), generation ${s.generation}${kib}${age}`;
    }
    case 'loading':
      return `summary: loading${s.reason ? ` (${s.reason})` : ''}; asked about every path meanwhile`;
    case 'stale':
      return `summary: stale (${s.reason ?? 'no word from the peer'}); asked about every path`;
    case 'unsupported':
      return 'no summary (not a Peernix, or an older one); asked about every path';
    case 'refused':
      return `summary refused: ${s.reason ?? 'not usable'}; asked about every path`;
  }
}

function ago(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}
