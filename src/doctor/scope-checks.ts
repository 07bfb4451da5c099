import type { DoctorCheck } from '../base/api.ts';
import type { DoctorFacts } from './facts.ts';

// What this machine shares with whom (README, "Team and scopes"): the scope counts and the requests
// refused by scope, and — when peers asked for team paths while the team is empty — the fix.

export function scopeChecks(f: DoctorFacts): DoctorCheck[] {
  const st = f.peernix.snapshot?.status;
  if (!st?.scopes) return [];
  const { judged, refused, publicKeys } = st.scopes;
  const members = st.team?.members.length ?? 0;
  const base = { id: 'share.scopes', group: 'peernix', title: 'What is shared with whom' } as const;
  const counts =
    `Paths judged: ${judged.public} public (everyone on a trusted network), ${judged.team} team (team members only), ${judged.never} never. ` +
    `Requests refused by scope: ${refused.public + refused.team + refused.never} (team ${refused.team}, never ${refused.never}). ` +
    `Team: ${members} member(s). Public keys: ${publicKeys.map((k) => k.slice(0, k.indexOf(':'))).join(', ') || 'none'}.`;
  if (refused.team > 0 && members === 0) {
    return [
      {
        ...base,
        status: 'warn',
        detail: `${counts} Peers asked for paths only a team member may fetch, and this machine has no team.`,
        fix: 'If those machines are your colleagues\u2019, compare their key fingerprints with them and add them: `peernix team list` shows the peers your Nix trusts, `peernix team add <public key>` adds one.',
      },
    ];
  }
  const notice = st.notices?.length ? ' Since the upgrade, team paths go to team members only (`peernix team list`).' : '';
  return [{ ...base, status: 'ok', detail: counts + notice, fix: null }];
}
