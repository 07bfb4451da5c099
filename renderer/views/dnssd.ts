import type { StatusView } from '../../src/base/api.ts';
import { describeLease, describeRegistration } from '../../src/base/dnssd-text.ts';
import { byId, h, replaceChildren } from '../dom.ts';

// The DNS-SD card: what is browsed across subnets, and this machine's registration in the office's
// DNS (domain, server, registered or refused with the server's words, the update lease granted or
// not), in the same words as `peernix status` and the doctor. Hidden when DNS-SD is not in use.

const PILL: Record<string, string> = { registered: 'pill pill-ok', refused: 'pill pill-warn', unreachable: 'pill pill-warn' };

export function renderDnsSd(status: StatusView | null): void {
  const card = byId('dnssd-card');
  const d = status?.dnsSd;
  // Nothing to say on a machine that neither browses a domain nor registers in one (mDNS only).
  card.hidden = !d || (d.domains.length === 0 && !d.registration);
  if (!d || card.hidden) return;
  const browse = d.domains.length
    ? `Browsing ${d.domains.join(', ')}${d.server ? ` via ${d.server}` : ''}: ${d.found} found${d.lastError ? `; ${d.lastError}` : ''}.`
    : 'No DNS-SD domain to browse.';
  const r = d.registration;
  replaceChildren(byId('dnssd-body'), [
    h('div', { testid: 'dnssd-browse', text: browse }),
    r
      ? h(
          'div',
          { testid: 'dnssd-registration', attrs: { 'data-state': r.state } },
          h('span', { class: PILL[r.state] ?? 'pill', testid: 'dnssd-registration-state', text: r.state }),
          ' ',
          h('span', { testid: 'dnssd-registration-text', text: describeRegistration(r) }),
        )
      : h('div', { class: 'muted', testid: 'dnssd-registration', text: 'This machine is not registered in any DNS-SD domain (dnsSdRegister unset).' }),
    r ? h('p', { class: 'hint', testid: 'dnssd-lease', text: describeLease(r) }) : null,
  ]);
}
