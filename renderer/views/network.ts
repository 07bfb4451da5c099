import type { NetworkAction, NetworkStatusView, StatusView } from '../../src/base/api.ts';
import { byId, h, replaceChildren } from '../dom.ts';

// The network bar under the status line: which network this machine is on and whether it shares
// there, and — on a network not yet trusted, while sharing is wanted — the one question "Share on
// <network>?". The answer names the network it was asked about (its id), so a click that lands
// after a move can't trust the new network by mistake.

export function renderNetwork(status: StatusView | null, act: ((a: NetworkAction) => void) | null): void {
  const bar = byId('network-bar');
  const n: NetworkStatusView | undefined = status?.network;
  if (!status || !n) {
    bar.hidden = true;
    return;
  }
  bar.hidden = false;
  const name = n.current?.name ?? 'no recognised network';
  if (n.ask && n.current && act) {
    const id = n.current.id;
    bar.className = 'network-bar network-ask';
    replaceChildren(bar, [
      h('span', { testid: 'network-question', text: `Share on ${name}?` }),
      h('span', {
        class: 'muted',
        testid: 'network-scopes',
        text: ' If you say yes, everyone here can fetch your public paths (those a public cache such as cache.nixos.org signed); paths built or added here go only to your team.',
      }),
      button('Share here', 'network-trust', () => act({ trust: id })),
      button('Not here', 'network-dismiss', () => act({ dismiss: id })),
    ]);
    return;
  }
  bar.className = 'network-bar';
  const how = n.trustAll ? 'every network is trusted' : n.trusted ? 'trusted' : 'not trusted, not sharing here';
  replaceChildren(bar, [h('span', { testid: 'network-line', text: `Network: ${name} — ${how}` })]);
}

function button(label: string, testid: string, onClick: () => void): HTMLButtonElement {
  const b = h('button', { class: 'button', testid, text: label, attrs: { type: 'button' } });
  b.addEventListener('click', () => {
    b.disabled = true;
    onClick();
  });
  return b;
}
