import type { NetworkAction, StatusView } from '../../src/base/api.ts';
import { byId, h, replaceChildren } from '../dom.ts';
import { button } from './team.ts';

// The networks card: the network this machine is on, the ones it shares on (each with Forget), and
// "Share on this network" when the current one is not trusted. The question bar (network.ts) asks
// once; this card is where the choice is changed later.

export function renderNetworks(status: StatusView | null, act: ((a: NetworkAction) => void) | null): void {
  const card = byId('networks-card');
  const n = status?.network;
  card.hidden = !n;
  if (!n) return;
  const current = n.current;
  const here = current
    ? h(
        'div',
        { testid: 'networks-current' },
        'This network: ',
        h('span', { class: 'strong', text: current.name, title: current.id }),
        n.trustAll ? ' (every network is trusted)' : n.trusted ? ' (trusted)' : ' (not trusted)',
        ' ',
        !n.trusted && act ? button('Share on this network', 'networks-trust', () => act({ trust: current.id })) : null,
      )
    : h('div', { testid: 'networks-current', class: 'muted', text: 'On no network Peernix can recognise.' });
  replaceChildren(byId('networks-current-row'), [here]);
  replaceChildren(
    byId('networks-list'),
    n.trustedNetworks.map((t) =>
      h(
        'li',
        { testid: 'network-trusted', class: 'team-member', attrs: { 'data-id': t.id } },
        h('span', { text: t.name, title: t.id }),
        act ? button('Forget', 'network-forget', () => act({ forget: t.id })) : null,
      ),
    ),
  );
  const empty = byId('networks-empty');
  empty.hidden = n.trustedNetworks.length > 0;
  empty.textContent = n.trustAll ? 'Every network is trusted (trustAllNetworks).' : 'No trusted networks: this machine shares nowhere.';
}
