import type { NoticeId, NoticeView } from '../base/api.ts';
import type { EventLog } from '../base/events.ts';
import type { Logger } from '../base/log.ts';

// What the user is told once. Today one notice: an install from before scoped sharing keeps serving
// the LAN its public paths, but its team paths now go to team members only — said as an event on
// the start that found the upgrade, and shown in the window, tray and status until the user says
// they saw it. Both steps are remembered in settings, so a restart neither repeats the event nor
// forgets an unread notice.

export type NoticeState = 'none' | 'pending' | 'seen';

export const SCOPES_NOTICE_TEXT =
  'Peernix now shares by scope: peers and other machines on this LAN get only public paths (signed by a key in publicKeys, cache.nixos.org by default); ' +
  'paths built or added here go only to your team. Add the colleagues you share with (`peernix team add <their public key>`, or from the peers list).';

export interface NoticesParts {
  scopes: NoticeState;
  /** This start found a settings file from before scopes. */
  upgradedFromBeforeScopes: boolean;
  /** Saves the notice's state; may throw. */
  persist?: (state: NoticeState) => void;
  events: EventLog;
  log: Logger;
  changed: () => void;
}

export class Notices {
  private readonly parts: NoticesParts;
  private scopes: NoticeState;

  constructor(parts: NoticesParts) {
    this.parts = parts;
    this.scopes = parts.scopes;
    if (parts.upgradedFromBeforeScopes && this.scopes === 'none') {
      this.scopes = 'pending';
      this.save();
      parts.log.info(`upgrade: ${SCOPES_NOTICE_TEXT}`);
      parts.events.emit({ type: 'notice', notice: 'scopes', text: SCOPES_NOTICE_TEXT });
    }
  }

  view(): NoticeView[] {
    return this.scopes === 'pending' ? [{ id: 'scopes', text: SCOPES_NOTICE_TEXT }] : [];
  }

  seen(id: NoticeId): void {
    if (id !== 'scopes' || this.scopes === 'seen') return;
    this.scopes = 'seen';
    this.save();
    this.parts.changed();
  }

  private save(): void {
    try {
      this.parts.persist?.(this.scopes);
    } catch (e) {
      // Shown anyway; told again after a restart, which beats never being told.
      this.parts.log.warn(`could not remember the notice: ${(e as Error).message}`);
    }
  }
}
