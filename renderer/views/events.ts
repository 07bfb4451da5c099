import type { FallbackReason, PeernixEvent } from '../../src/base/api.ts';
import { byId, h, replaceChildren } from '../dom.ts';
import { formatBytes, formatClock, formatDateTime, storePathName } from '../format.ts';

const MAX_SHOWN = 200;

export const REASON_TEXT: Record<FallbackReason, string> = {
  gc: 'garbage-collected on the remembered source',
  'peer-gone': 'the remembered peer is gone',
  'peer-failed': 'the remembered peer failed',
  mismatch: 'the remembered source now holds different bytes',
  none: 'no remembered source',
};

const OUTCOME_TEXT = { served: 'served', 'not-found': 'not found', failed: 'failed' } as const;

/** Successful transfers are the normal case and would drown the timeline; only trouble is shown. */
export function isTimelineEvent(e: PeernixEvent): boolean {
  return e.type !== 'transfer' || e.outcome !== 'ok';
}

export function renderEvents(events: PeernixEvent[]): void {
  const list = byId('events-list');
  const empty = byId('events-empty');
  const shown = events
    .filter(isTimelineEvent)
    .sort((a, b) => b.time - a.time || b.id - a.id)
    .slice(0, MAX_SHOWN);
  replaceChildren(list, shown.map(item));
  empty.hidden = shown.length > 0;
  if (!shown.length) {
    replaceChildren(empty, [
      h('strong', { text: 'No activity yet.' }),
      ' When a path is garbage-collected here and a peer serves it instead, or a peer joins or leaves, it shows up here.',
    ]);
  }
}

function item(e: PeernixEvent): HTMLLIElement {
  const time = h('time', { class: 'time', text: formatClock(e.time), title: formatDateTime(e.time) });
  const li = (kind: string, ...children: (Node | string | null)[]) =>
    h('li', { testid: 'event-row', class: `ev ev-${kind}`, attrs: { 'data-type': e.type } }, time, h('div', { class: 'ev-body' }, ...children));

  switch (e.type) {
    case 'fallback': {
      const ok = e.outcome === 'served';
      return li(
        ok ? 'fallback' : 'fallback-bad',
        h('div', { class: 'ev-title' }, h('span', { class: 'strong', text: storePathName(e.storePath), title: e.storePath })),
        h(
          'div',
          { class: 'route' },
          e.from === 'none'
            ? h('span', { class: 'src src-unknown', text: 'no record', title: 'no remembered source for this path' })
            : h('span', { class: e.from === 'this machine' ? 'src src-local' : 'src', text: e.from, title: e.from }),
          h('span', { class: 'arrow', text: '→', attrs: { 'aria-label': 'to' } }),
          h('span', {
            class: e.to ? (e.to === 'this machine' ? 'src src-local' : 'src') : 'src src-none',
            text: e.to ?? 'nobody',
            title: e.to ?? 'no source had it',
          }),
        ),
        h(
          'div',
          { class: 'chips' },
          h('span', { class: 'chip', text: `reason ${e.reason}`, title: REASON_TEXT[e.reason] ?? e.reason }),
          h('span', { class: `chip chip-${ok ? 'ok' : e.outcome === 'failed' ? 'error' : 'warn'}`, text: OUTCOME_TEXT[e.outcome] ?? e.outcome }),
        ),
      );
    }
    case 'peer-up':
      return li('up', h('div', { class: 'ev-title' }, h('span', { class: 'strong', text: e.peerName, title: e.peerName }), h('span', { text: 'joined' })));
    case 'peer-down':
      return li(
        'down',
        h('div', { class: 'ev-title' }, h('span', { class: 'strong', text: e.peerName, title: e.peerName }), h('span', { text: 'left' })),
        e.reason ? h('div', { class: 'muted', text: e.reason }) : null,
      );
    case 'sharing':
      return li(
        'sharing',
        h('div', { class: 'ev-title', text: e.enabled ? 'Sharing turned on' : e.reason ? 'Sharing paused' : 'Sharing turned off' }),
        e.reason ? h('div', { class: 'muted', text: e.reason }) : null,
      );
    case 'network':
      return li(
        'sharing',
        h('div', {
          class: 'ev-title',
          text: `${e.networkName ? `On ${e.networkName}` : 'On no recognised network'} — ${e.trusted ? 'sharing allowed' : 'not sharing here'}`,
        }),
        e.note ? h('div', { class: 'muted', text: e.note }) : null,
      );
    case 'daemon':
      return li(
        e.state === 'ok' ? 'up' : 'error',
        h('div', {
          class: 'ev-title',
          text: e.state === 'ok' ? 'nix-daemon answers again' : e.state === 'stalled' ? 'nix-daemon stalled: NARs wait for it' : 'nix-daemon unreachable',
        }),
        e.detail ? h('div', { class: 'muted', text: e.detail }) : null,
      );
    case 'team':
      return li(
        'sharing',
        h('div', { class: 'ev-title', text: `${e.name} ${e.change === 'added' ? 'joined the team' : 'left the team'}` }),
        h('div', { class: 'muted mono', text: `key ${e.fingerprint}` }),
      );
    case 'notice':
      return li('sharing', h('div', { class: 'ev-title', text: 'Sharing changed with this version' }), h('div', { class: 'muted', text: e.text }));
    case 'error':
      return li('error', h('div', { class: 'ev-title', text: e.message }));
    case 'transfer':
      return li(
        e.outcome === 'failed' ? 'error' : 'fallback',
        h('div', { class: 'ev-title' }, h('span', { class: 'strong', text: storePathName(e.storePath), title: e.storePath })),
        h(
          'div',
          { class: 'muted' },
          `${e.direction === 'in' ? 'from' : 'to'} ${e.peerName} · ${formatBytes(e.bytes)} · ${e.outcome === 'failed' ? 'transfer failed' : 'resumed from another source'}`,
        ),
      );
    default:
      return li('other', h('div', { class: 'ev-title', text: (e as { type: string }).type }));
  }
}
