import type { LanTally, LanTotalsView } from '../../src/base/api.ts';
import { byId, h, replaceChildren } from '../dom.ts';
import { formatBytes, plural } from '../format.ts';
import { flowChart } from '../svg.ts';

// What the LAN did: today and this week, and NAR bytes per minute over the last hour.

export function renderLanTotals(lan: LanTotalsView | undefined): void {
  const box = byId('lan-totals');
  if (!lan) {
    replaceChildren(box, [h('div', { class: 'empty', text: 'This Peernix keeps no totals.' })]);
    return;
  }
  const inSum = lan.minutes.inBytes.reduce((a, b) => a + b, 0);
  const outSum = lan.minutes.outBytes.reduce((a, b) => a + b, 0);
  const label = `Last hour, per minute: ${formatBytes(inSum)} fetched from peers, ${formatBytes(outSum)} served to them`;
  replaceChildren(box, [
    h('div', { class: 'tallies' }, tally('Today', lan.today, 'lan-today'), tally('This week', lan.week, 'lan-week')),
    h(
      'figure',
      { class: 'flow-figure' },
      flowChart(lan.minutes.inBytes, lan.minutes.outBytes, label, { testid: 'lan-chart' }),
      h(
        'figcaption',
        { class: 'small muted' },
        h('span', { class: 'key key-in', attrs: { 'aria-hidden': 'true' } }),
        `in ${formatBytes(inSum)} `,
        h('span', { class: 'key key-out', attrs: { 'aria-hidden': 'true' } }),
        `out ${formatBytes(outSum)} — last hour, per minute`,
      ),
    ),
  ]);
}

function tally(title: string, t: LanTally, testid: string): HTMLElement {
  return h(
    'dl',
    {
      class: 'tally',
      testid,
      attrs: {
        'data-fetched-bytes': String(t.fetchedBytes),
        'data-fetched-paths': String(t.fetchedPaths),
        'data-served-bytes': String(t.servedBytes),
        'data-served-paths': String(t.servedPaths),
        'data-misses': String(t.misses),
      },
    },
    h('dt', { class: 'tally-title', text: title }),
    h(
      'dd',
      null,
      h('span', { class: 'big', text: formatBytes(t.fetchedBytes) }),
      h('span', { class: 'muted', text: ` from peers · ${plural(t.fetchedPaths, 'path')}` }),
    ),
    h(
      'dd',
      null,
      h('span', { class: 'big', text: formatBytes(t.servedBytes) }),
      h('span', { class: 'muted', text: ` served · ${plural(t.servedPaths, 'path')}` }),
    ),
    h('dd', { class: 'muted small', text: `${plural(t.misses, 'miss', 'misses')} answered at once` }),
  );
}
