import type { PeerView, StatusView, TeamAction } from '../../src/base/api.ts';
import { byId, h, replaceChildren } from '../dom.ts';
import { formatBytes, formatDateTime, formatRtt } from '../format.ts';
import { describeSummary } from '../../src/base/summary-text.ts';
import { sparkline } from '../svg.ts';
import { button } from './team.ts';

const STATE_LABEL: Record<PeerView['state'], string> = { up: 'up', suspect: 'suspect', gone: 'gone' };

export function renderPeers(peers: PeerView[], status: StatusView | null, teamAct: ((a: TeamAction) => void) | null = null): void {
  const body = byId('peers-body');
  const empty = byId('peers-empty');
  const order = { up: 0, suspect: 1, gone: 2 } as const;
  const sorted = [...peers].sort((a, b) => order[a.state] - order[b.state] || a.name.localeCompare(b.name));
  replaceChildren(
    body,
    sorted.map((p) => row(p, teamAct)),
  );

  const up = peers.filter((p) => p.state === 'up').length;
  byId('peers-count').textContent = peers.length ? `${up} up · ${peers.length} known` : '';

  byId('peers-table').hidden = peers.length === 0;
  empty.hidden = peers.length > 0;
  if (!peers.length) {
    replaceChildren(empty, [
      h('strong', { text: 'No peers yet.' }),
      ' ',
      status && !status.mdns ? 'mDNS discovery is off; add a peer with ' : 'Peernix looks for peers on your LAN by mDNS; add one with ',
      h('code', { text: '--peer URL' }),
      '.',
    ]);
  }
}

const SOURCE_TAG: Record<PeerView['source'], { text: string; title: string }> = {
  mdns: { text: 'mDNS', title: 'found on the LAN' },
  dnssd: { text: 'DNS-SD', title: 'found in a DNS-SD domain (across subnets)' },
  static: { text: 'static', title: 'configured with --peer' },
};

function row(p: PeerView, teamAct: ((a: TeamAction) => void) | null): HTMLTableRowElement {
  const tr = h(
    'tr',
    { testid: 'peer-row', class: `peer-${p.state}`, attrs: { 'data-peer-id': p.id, 'data-state': p.state } },
    h(
      'td',
      { class: 'name' },
      h('span', { class: 'strong', text: p.name, title: p.url }),
      h('span', { class: 'tag', testid: 'peer-source', text: SOURCE_TAG[p.source].text, title: SOURCE_TAG[p.source].title }),
      h('div', { class: 'muted small', testid: 'peer-summary', text: describeSummary(p.summary) }),
      p.why ? h('div', { class: 'why small', testid: 'peer-why', text: p.why }) : null,
      teamLine(p, teamAct),
    ),
    h('td', { class: 'mono wide-only', text: `${p.address.includes(':') ? `[${p.address}]` : p.address}:${p.port}` }),
    h('td', { class: 'wide-only', text: p.platform ?? '—' }),
    h(
      'td',
      { attrs: { 'data-label': 'Trusted' } },
      h('span', {
        class: p.trusted ? 'pill pill-ok' : 'pill pill-warn',
        text: p.trusted ? 'yes' : p.verified ? 'no' : 'unverified',
        attrs: { 'data-verified': String(p.verified) },
        title: p.trusted
          ? `This machine's Nix trusts ${p.publicKey ?? 'its key'}`
          : !p.verified
            ? 'This peer has not proven it holds the key it announces; its answers are judged one by one'
            : p.publicKey
              ? `Add ${p.publicKey} to trusted-public-keys to accept paths only this peer signed`
              : 'This peer announced no signing key',
      }),
    ),
    h('td', { class: 'num', attrs: { 'data-label': 'RTT' } }, formatRtt(p.rttMs), ' ', rttSpark(p)),
    h(
      'td',
      { title: `last seen ${formatDateTime(p.lastSeen)}`, attrs: { 'data-label': 'State' } },
      h('span', { class: `dot dot-${p.state}`, attrs: { 'aria-hidden': 'true' } }),
      STATE_LABEL[p.state] ?? String(p.state),
      ...(p.bad
        ? [
            ' ',
            h('span', {
              testid: 'peer-bad',
              class: 'pill pill-warn',
              text: 'bad',
              title: `Not used for NARs: ${p.bad.reason} (since ${formatDateTime(p.bad.since)}, until ${formatDateTime(p.bad.until)}). Clear with: peernix peer clear ${p.name}`,
            }),
          ]
        : []),
    ),
    h('td', { class: 'num', text: formatBytes(p.bytesTo), attrs: { 'data-label': 'Sent' } }),
    h('td', { class: 'num', attrs: { 'data-label': 'Received' } }, formatBytes(p.bytesFrom), ' ', throughputSpark(p)),
  );
  return tr;
}

/**
 * The peer's key fingerprint and its place in the team: a member is marked; a peer that proved its
 * key can be added in one click, the fingerprint beside the button to compare with its owner first.
 */
function teamLine(p: PeerView, act: ((a: TeamAction) => void) | null): HTMLElement | null {
  if (!p.fingerprint || !p.publicKey) return null;
  const key = p.publicKey;
  return h(
    'div',
    { class: 'small peer-team', testid: 'peer-team' },
    h('span', { class: 'mono', testid: 'peer-fingerprint', text: p.fingerprint, title: `Key ${key}: compare with its owner` }),
    ' ',
    p.teamMember
      ? h('span', { class: 'pill pill-ok', testid: 'peer-team-member', text: 'team' })
      : p.verified && act
        ? button('Add to team', 'peer-add-team', () => act({ add: key }))
        : null,
  );
}

/** Samples in a full history (peer-history.ts keeps 30). */
const SLOTS = 30;

function rttSpark(p: PeerView): SVGElement | null {
  const v = p.history?.rttMs ?? [];
  if (v.length < 2) return null;
  const seen = v.filter((x): x is number => x !== null);
  const label = seen.length
    ? `RTT over the last ${minutes(p, v.length)}: ${formatRtt(Math.min(...seen))} to ${formatRtt(Math.max(...seen))}${seen.length < v.length ? `, ${v.length - seen.length} checks unanswered` : ''}`
    : `No RTT over the last ${minutes(p, v.length)}: it did not answer`;
  return sparkline(v, label, { cls: 'spark-rtt', testid: 'peer-rtt-spark', slots: SLOTS });
}

function throughputSpark(p: PeerView): SVGElement | null {
  const v = p.history?.bytesPerSec ?? [];
  if (v.length < 2) return null;
  return sparkline(v, `Throughput over the last ${minutes(p, v.length)}: up to ${formatBytes(Math.max(...v))}/s`, {
    cls: 'spark-bytes',
    testid: 'peer-throughput-spark',
    slots: SLOTS,
  });
}

function minutes(p: PeerView, n: number): string {
  const s = Math.round(((p.history?.intervalMs ?? 10_000) * n) / 1000);
  return s < 120 ? `${s} s` : `${Math.round(s / 60)} min`;
}
