import type { StatusView } from '../../src/base/api.ts';
import { byId, h, replaceChildren } from '../dom.ts';
import { plural } from '../format.ts';

export interface HeaderState {
  status: StatusView | null;
  peersKnown: number;
  /** Set while a toggle is on its way to the core. */
  pending: boolean;
  /** The bridge itself failed (core unreachable, request refused). */
  problem: string | null;
}

export function renderHeader(s: HeaderState): void {
  const toggle = byId<HTMLInputElement>('sharing-toggle');
  const line = byId('status-line');
  byId('host-name').textContent = s.status?.hostName ?? '…';
  if (s.status) document.title = `Peernix — ${s.status.hostName}`;

  toggle.disabled = s.pending || !s.status;
  if (s.status && !s.pending) toggle.checked = s.status.sharing;

  if (s.problem) {
    line.className = 'status status-error';
    replaceChildren(line, [h('strong', { text: 'Problem: ' }), s.problem]);
    return;
  }
  const st = s.status;
  if (!st) {
    line.className = 'status';
    line.textContent = 'Connecting to Peernix…';
    return;
  }
  if (!st.daemon.ok) {
    line.className = 'status status-error';
    replaceChildren(line, [
      h('strong', { text: 'Nix daemon unavailable: ' }),
      st.daemon.error ?? 'no answer from the nix-daemon',
      h('span', { class: 'muted', text: ' — nothing can be served until Peernix reaches it.' }),
    ]);
    return;
  }
  const parts: (string | Node)[] = [];
  if (st.sharing) {
    parts.push(h('span', { class: 'dot dot-ok', attrs: { 'aria-hidden': 'true' } }));
    parts.push(h('strong', { text: 'Sharing' }));
    // "0.0.0.0:9999" means nothing to a colleague: show an address they can use.
    const addr = st.shareAddresses?.[0] ?? st.shareUrl;
    if (addr) parts.push(' on ', h('code', { testid: 'share-url', text: addr }));
    if ((st.shareAddresses?.length ?? 0) > 1) parts.push(h('span', { class: 'muted', text: ` (+${st.shareAddresses!.length - 1})` }));
    parts.push(st.peersUp ? ` with ${plural(st.peersUp, 'peer')}` : ' — no peers found yet');
  } else {
    parts.push(h('span', { class: 'dot dot-idle', attrs: { 'aria-hidden': 'true' } }));
    parts.push(h('strong', { text: 'Not sharing' }));
    parts.push(' — peers cannot fetch from this machine; your Nix still uses theirs');
  }
  if (st.shareError) parts.push(h('span', { class: 'sep', text: '·' }), h('strong', { class: 'share-error', text: st.shareError }));
  parts.push(h('span', { class: 'sep', text: '·' }));
  parts.push(`Nix ${st.daemon.version ?? 'daemon'} connected`);
  parts.push(h('span', { class: 'sep', text: '·' }));
  parts.push(st.mdns ? 'mDNS discovery on' : 'mDNS discovery off');
  parts.push(h('span', { class: 'sep', text: '·' }));
  parts.push(`Peernix ${st.version}`);
  // Without the local Nix's trusted keys every signed answer from a peer is refused: not "all is well".
  if (st.trust?.error) {
    parts.push(h('br', {}), h('strong', { text: 'Cannot read the Nix trust settings: ' }), st.trust.error);
    parts.push(h('span', { class: 'muted', text: ` — peers' answers are judged by ${st.trust.keys ? 'the last ones read' : 'no trusted keys'}.` }));
  }
  // Two trusted keys of one name (every Go peernix key is peernix-1): Nix honours only the first.
  for (const c of st.trust?.clashes ?? []) {
    parts.push(h('br', {}), h('strong', { text: `${c.ignored.length + 1} trusted keys are named ${c.name}: ` }));
    parts.push(`Nix honours only the first and refuses paths signed by the others. Give each Go peernix host its own key-name (see peernix doctor).`);
  }
  line.className = st.shareError || st.trust?.error || st.trust?.clashes?.length ? 'status status-error' : st.sharing ? 'status status-ok' : 'status';
  replaceChildren(line, parts);
}
