import type { TransferView } from '../../src/base/api.ts';
import { byId, h, replaceChildren } from '../dom.ts';
import { formatBytes, storePathName } from '../format.ts';

// Transfers in progress: one row per NAR moving to or from a peer, with a real <progress> bar
// (announced by screen readers) and its figures as text.

export function renderTransfers(transfers: TransferView[]): void {
  const list = byId('transfers-list');
  const empty = byId('transfers-empty');
  const sorted = [...transfers].sort((a, b) => Number(a.outcome !== null) - Number(b.outcome !== null) || a.startedAt - b.startedAt);
  replaceChildren(list, sorted.map(row));
  const moving = transfers.filter((t) => t.outcome === null).length;
  byId('transfers-count').textContent = moving ? `${moving} moving` : '';
  list.hidden = transfers.length === 0;
  empty.hidden = transfers.length > 0;
}

const OUTCOME: Record<NonNullable<TransferView['outcome']>, string> = { ok: 'done', resumed: 'done (resumed)', failed: 'failed' };

const SCOPE_TITLE: Record<NonNullable<TransferView['scope']>, string> = {
  public: 'Public: signed by a public cache; anyone on a trusted network may have it',
  team: 'Team: served only to team members, over the team channel',
  never: 'Never: excluded by name (never served)',
};

function row(t: TransferView): HTMLLIElement {
  const incoming = t.direction === 'in';
  const pct = t.total > 0 ? Math.min(100, (t.bytes / t.total) * 100) : 100;
  const bar = h('progress', { attrs: { max: String(Math.max(1, t.total)), 'aria-label': `${storePathName(t.storePath)}: ${Math.floor(pct)}%` } });
  bar.value = Math.min(t.bytes, Math.max(1, t.total));
  const figures = [
    h('span', {
      testid: 'transfer-bytes',
      attrs: { 'data-bytes': String(t.bytes), 'data-total': String(t.total) },
      text: `${formatBytes(t.bytes)} of ${formatBytes(t.total)}`,
    }),
    h('span', { class: 'muted', text: ` · ${Math.floor(pct)}%` }),
  ];
  if (t.outcome === null) figures.push(h('span', { class: 'muted', testid: 'transfer-rate', text: ` · ${formatBytes(t.bytesPerSec)}/s` }));
  // Frame headers alone add a few bytes per MiB: only a real difference (compression) is worth a word.
  if (t.wireBytes !== undefined && Math.abs(t.wireBytes - t.bytes) > t.bytes * 0.01)
    figures.push(h('span', { class: 'muted', testid: 'transfer-wire', text: ` · ${formatBytes(t.wireBytes)} on the wire` }));
  return h(
    'li',
    {
      class: `xfer xfer-${t.direction}${t.outcome ? ` xfer-${t.outcome}` : ''}`,
      testid: 'transfer-row',
      attrs: { 'data-transfer-id': String(t.id), 'data-direction': t.direction },
    },
    h(
      'div',
      { class: 'xfer-title' },
      h('span', { class: 'xfer-dir', text: incoming ? '↓' : '↑', attrs: { 'aria-hidden': 'true' } }),
      h('span', { class: 'strong xfer-name', text: storePathName(t.storePath), title: t.storePath }),
      h('span', { class: 'muted xfer-peer', text: incoming ? `from ${t.peerName}` : `to ${t.peerName}` }),
      t.scope ? h('span', { class: 'tag', testid: 'transfer-scope', text: t.scope, title: SCOPE_TITLE[t.scope] }) : null,
      t.outcome ? h('span', { class: `pill ${t.outcome === 'failed' ? 'pill-warn' : 'pill-ok'}`, text: OUTCOME[t.outcome] }) : null,
    ),
    bar,
    h('div', { class: 'xfer-figures small' }, ...figures),
  );
}
