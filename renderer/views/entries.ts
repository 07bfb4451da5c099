import type { CacheEntryView } from '../../src/base/api.ts';
import { byId, h, replaceChildren } from '../dom.ts';
import { formatAge, formatBytes, formatDateTime, shortHash } from '../format.ts';

/** Rendering thousands of rows helps nobody; the filter narrows it down. */
const MAX_ROWS = 300;

export function filterEntries(entries: CacheEntryView[], query: string): CacheEntryView[] {
  const terms = query.toLowerCase().split(/\s+/).filter(Boolean);
  if (!terms.length) return entries;
  return entries.filter((e) => {
    const hay = `${e.storePath} ${e.sourceName} ${e.narHash}`.toLowerCase();
    return terms.every((t) => hay.includes(t));
  });
}

export function renderEntries(entries: CacheEntryView[], query: string, now: number): void {
  const body = byId('entries-body');
  const empty = byId('entries-empty');
  const more = byId('entries-more');
  const matching = filterEntries(entries, query).sort((a, b) => b.updatedAt - a.updatedAt);
  const shown = matching.slice(0, MAX_ROWS);
  replaceChildren(
    body,
    shown.map((e) => row(e, now)),
  );

  byId('entries-count').textContent = entries.length ? (query.trim() ? `${matching.length} of ${entries.length}` : String(entries.length)) : '';

  more.hidden = matching.length <= shown.length;
  more.textContent = `Showing the ${shown.length} most recent of ${matching.length}; type in the filter to narrow down.`;

  byId('entries-table').hidden = shown.length === 0;
  empty.hidden = shown.length > 0;
  if (!entries.length) {
    replaceChildren(empty, [
      h('strong', { text: 'Nothing served yet.' }),
      ' Add the lines under “Use this cache” to ',
      h('code', { text: 'nix.conf' }),
      ', restart the nix-daemon, and run a ',
      h('code', { text: 'nix build' }),
      '. Paths served from this machine or a peer appear here.',
    ]);
  } else if (!matching.length) {
    replaceChildren(empty, ['No entries match ', h('code', { text: query.trim() }), '.']);
  }
}

function row(e: CacheEntryView, now: number): HTMLTableRowElement {
  const local = e.source === 'local';
  return h(
    'tr',
    { testid: 'entry-row', attrs: { 'data-hash-part': e.hashPart } },
    h('td', { class: 'name' }, h('span', { class: 'strong', text: e.name, title: e.storePath })),
    h(
      'td',
      null,
      h('span', { class: local ? 'src src-local' : 'src src-peer', text: e.sourceName, title: local ? 'this machine’s store' : `peer ${e.source}` }),
    ),
    h('td', { class: 'mono wide-only', text: shortHash(e.narHash), title: e.narHash }),
    h('td', { class: 'num', text: formatBytes(e.narSize) }),
    h('td', {
      class: 'num wide-only',
      text: formatAge(e.createdAt, now),
      title: `first served ${formatDateTime(e.createdAt)}, last ${formatDateTime(e.updatedAt)}`,
    }),
    h('td', { class: 'num', text: String(e.hits) }),
  );
}
