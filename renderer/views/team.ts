import type { NoticeId, StatusView, TeamAction } from '../../src/base/api.ts';
import { byId, h, replaceChildren } from '../dom.ts';

// The team card: the machines that get this one's team paths, each with its key's fingerprint (to
// compare by voice with its owner) and a Remove button, and a field to paste a colleague's public
// key. Adding from the peers list is in peers.ts; the upgrade's notice, with the peers this machine's
// Nix already trusts offered one click each, is renderNotice below.

export type TeamAct = (action: TeamAction) => void;

export function renderTeam(status: StatusView | null, act: TeamAct | null): void {
  const card = byId('team-card');
  const team = status?.team;
  card.hidden = !team;
  if (!team) return;
  byId('team-count').textContent = team.members.length ? `${team.members.length} ${team.members.length === 1 ? 'member' : 'members'}` : '';
  const list = byId('team-list');
  replaceChildren(
    list,
    team.members.map((m) =>
      h(
        'li',
        { class: 'team-member', testid: 'team-member', attrs: { 'data-key': m.publicKey } },
        h(
          'div',
          null,
          h('span', { class: 'strong', text: m.name, title: m.publicKey }),
          m.peerName ? h('span', { class: 'muted small', text: ` seen now as ${m.peerName}` }) : null,
          h('div', {
            class: 'mono small',
            testid: 'team-fingerprint',
            text: m.fingerprint,
            title: 'Compare this with the fingerprint your colleague’s Peernix shows',
          }),
        ),
        act ? button('Remove', 'team-remove', () => act({ remove: m.publicKey })) : null,
      ),
    ),
  );
  const empty = byId('team-empty');
  empty.hidden = team.members.length > 0;
  empty.textContent = 'Nobody yet: paths built or added here go to no one. Add a colleague from the peers list, or paste their public key.';
  byId('team-saved').hidden = team.saved;
  const sc = status?.scopes;
  const counts = byId('team-scopes');
  counts.hidden = !sc;
  if (sc) {
    const refused = sc.refused.public + sc.refused.team + sc.refused.never;
    counts.textContent = `Paths judged: ${sc.judged.public} public · ${sc.judged.team} team · ${sc.judged.never} never. Requests refused by scope: ${refused}.`;
  }
  const input = byId<HTMLInputElement>('team-key');
  const add = byId<HTMLButtonElement>('team-add');
  input.disabled = add.disabled = !act;
}

/** The paste field: wired once (the card is re-rendered, the field keeps what the user typed). */
export function wireTeamAdd(act: TeamAct | null): void {
  const input = byId<HTMLInputElement>('team-key');
  const add = byId<HTMLButtonElement>('team-add');
  const submit = () => {
    const key = input.value.trim();
    if (!key || !act) return;
    act({ add: key });
    input.value = '';
  };
  add.addEventListener('click', submit);
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') submit();
  });
}

/** One-time notices (an upgrade that changed what is shared), with the one-click offers they carry. */
export function renderNotice(status: StatusView | null, act: TeamAct | null, seen: ((id: NoticeId) => void) | null): void {
  const bar = byId('notice-bar');
  const notice = status?.notices?.[0];
  if (!notice) {
    bar.hidden = true;
    return;
  }
  bar.hidden = false;
  const offers = notice.id === 'scopes' ? (status?.team?.candidates ?? []) : [];
  replaceChildren(bar, [
    h('div', { testid: 'notice-text', text: notice.text }),
    offers.length
      ? h(
          'ul',
          { class: 'offers' },
          ...offers.map((c) =>
            h(
              'li',
              { testid: 'notice-offer' },
              h('span', { class: 'strong', text: c.name }),
              ' ',
              h('span', { class: 'mono small', text: c.fingerprint, title: c.publicKey }),
              ' ',
              act ? button('Add to team', 'notice-add', () => act({ add: c.publicKey })) : null,
            ),
          ),
        )
      : null,
    seen ? button('Got it', 'notice-seen', () => seen(notice.id)) : null,
  ]);
}

export function button(label: string, testid: string, onClick: () => void): HTMLButtonElement {
  const b = h('button', { class: 'button', testid, text: label, attrs: { type: 'button' } });
  b.addEventListener('click', () => {
    b.disabled = true;
    onClick();
  });
  return b;
}
