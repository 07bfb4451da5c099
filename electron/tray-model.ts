// What the tray shows, as plain data: tray.ts renders it with Electron's Menu, tests check it here.
import type { Snapshot } from '../src/base/api.ts';

export type TrayIcon = 'sharing' | 'idle' | 'error';

export type TrayAction = 'open' | 'copyNixConf' | 'retry' | 'openLog' | 'quit' | 'trustNetwork';
export type TrayToggle = 'sharing' | 'startAtLogin';

export type MenuItemModel =
  | { kind: 'status'; label: string }
  | { kind: 'separator' }
  | { kind: 'checkbox'; id: TrayToggle; label: string; checked: boolean; enabled: boolean }
  | { kind: 'action'; id: TrayAction; label: string; enabled: boolean };

export interface TrayModel {
  icon: TrayIcon;
  tooltip: string;
  items: MenuItemModel[];
  /** The network the "Share on …?" item asks about (what its click trusts); null when not asking. */
  askedNetworkId?: string | null;
}

export interface TrayOptions {
  startAtLogin: boolean;
  /** The core could not start at all (shown instead of the daemon's status). */
  startError?: string | null;
  /** Something the user asked for that the shell could not do (start at login refused, settings not saved). */
  notice?: string | null;
}

/** `snapshot` is null while the core is starting or if it failed to start. */
export function trayModel(snapshot: Snapshot | null, opts: TrayOptions): TrayModel {
  const status = snapshot?.status ?? null;
  const error = opts.startError
    ? `Peernix could not start: ${opts.startError}`
    : status && !status.daemon.ok
      ? `Nix daemon unavailable: ${status.daemon.error ?? 'no answer'}`
      : status?.shareError
        ? `Sharing failed: ${status.shareError}`
        : null;

  let line: string;
  if (error) line = error;
  else if (!status) line = 'Starting…';
  else if (!status.sharing && status.sharePaused) line = `Not sharing here: ${status.sharePaused}`;
  else if (!status.sharing) line = 'Not sharing';
  else line = status.peersUp === 0 ? 'Sharing — no peers found yet' : `Sharing with ${status.peersUp} ${status.peersUp === 1 ? 'peer' : 'peers'}`;
  // Without Nix's trusted keys every signed answer from a peer is turned away: say so, not just "sharing".
  if (!error && status?.trust?.error) line += ' — cannot read Nix trust settings';

  const icon: TrayIcon = error ? 'error' : status?.sharing ? 'sharing' : 'idle';
  const asked = !error && status?.network?.ask ? (status.network.current ?? null) : null;

  return {
    icon,
    tooltip: `Peernix — ${truncate(line, 100)}`,
    askedNetworkId: asked?.id ?? null,
    items: [
      { kind: 'status', label: truncate(line, 120) },
      ...(opts.notice ? [{ kind: 'status', label: truncate(opts.notice, 120) } as const] : []),
      // An upgrade's one-time notice stays here until it is read in the window (or `peernix team list`).
      ...(!error && status?.notices?.length ? [{ kind: 'status', label: 'Team paths now go to your team only: open Peernix to add colleagues' } as const] : []),
      ...(opts.startError ? [{ kind: 'action', id: 'retry', label: 'Retry', enabled: true } as const] : []),
      // The one question on an untrusted network, asked in the tray as in the window.
      ...(asked ? [{ kind: 'action', id: 'trustNetwork', label: truncate(`Share on ${asked.name}?`, 120), enabled: true } as const] : []),
      { kind: 'separator' },
      { kind: 'checkbox', id: 'sharing', label: 'Share my Nix store', checked: status?.sharing ?? false, enabled: status !== null },
      { kind: 'action', id: 'open', label: 'Open Peernix', enabled: status !== null },
      { kind: 'action', id: 'copyNixConf', label: 'Copy Nix configuration', enabled: Boolean(status?.nixConf) },
      { kind: 'separator' },
      { kind: 'checkbox', id: 'startAtLogin', label: 'Start at login', checked: opts.startAtLogin, enabled: true },
      { kind: 'action', id: 'openLog', label: 'Open log', enabled: true },
      { kind: 'action', id: 'quit', label: 'Quit Peernix', enabled: true },
    ],
  };
}

function truncate(s: string, n: number): string {
  const oneLine = s.replace(/\s+/g, ' ').trim();
  return oneLine.length > n ? oneLine.slice(0, n - 1) + '…' : oneLine;
}
