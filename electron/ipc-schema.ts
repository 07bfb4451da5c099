// Every IPC channel between the window and the main process, with its payload types. The preload
// and the main-side handlers both import this file; nothing else names a channel.
import type { ApiChange, DoctorReport, NetworkAction, NetworkStatusView, NoticeId, Snapshot, TeamAction, TeamView } from '../src/base/api.ts';
import { parseNetworkAction } from '../src/base/network-action.ts';
import { parseNoticeId, parseTeamAction } from '../src/base/team-action.ts';

export const IPC = {
  /** renderer → main (invoke): the full snapshot. */
  snapshot: 'peernix:snapshot',
  /** renderer → main (invoke): turn sharing on or off. */
  setSharing: 'peernix:set-sharing',
  /** renderer → main (invoke): put text on the clipboard (the sandboxed renderer has no clipboard). */
  copyText: 'peernix:copy-text',
  /** renderer → main (invoke): `peernix doctor`'s checks. */
  doctor: 'peernix:doctor',
  /** renderer → main (invoke): trust, forget or dismiss a network. */
  network: 'peernix:network',
  /** renderer → main (invoke): add or remove a team member. */
  team: 'peernix:team',
  /** renderer → main (invoke): the user read a one-time notice. */
  noticeSeen: 'peernix:notice-seen',
  /** main → renderer (send): an ApiChange. */
  change: 'peernix:change',
} as const;

/** Request arguments and response of each invoke channel. */
export interface IpcInvoke {
  [IPC.snapshot]: { args: []; result: Snapshot };
  [IPC.setSharing]: { args: [on: boolean]; result: void };
  [IPC.copyText]: { args: [text: string]; result: void };
  [IPC.doctor]: { args: []; result: DoctorReport };
  [IPC.network]: { args: [action: NetworkAction]; result: NetworkStatusView };
  [IPC.team]: { args: [action: TeamAction]; result: TeamView };
  [IPC.noticeSeen]: { args: [id: NoticeId]; result: void };
}

/** Payload of each main → renderer channel. */
export interface IpcEvents {
  [IPC.change]: ApiChange;
}

export type InvokeChannel = keyof IpcInvoke;
export type EventChannel = keyof IpcEvents;

/** Longest text the window may put on the clipboard; the nix.conf lines are far shorter. */
export const MAX_COPY_TEXT = 64 * 1024;

export class IpcInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'IpcInputError';
  }
}

/**
 * What each channel accepts, checked: the renderer is untrusted, so main takes its arguments as
 * unknown and gets them back typed as IpcInvoke declares, or an IpcInputError.
 */
export const IPC_ARGS: { [C in InvokeChannel]: (args: unknown[]) => IpcInvoke[C]['args'] } = {
  [IPC.snapshot]: (args) => {
    arity(IPC.snapshot, args, 0);
    return [];
  },
  [IPC.setSharing]: (args) => {
    arity(IPC.setSharing, args, 1);
    if (typeof args[0] !== 'boolean') throw new IpcInputError(`${IPC.setSharing}: expected true or false`);
    return [args[0]];
  },
  [IPC.copyText]: (args) => {
    arity(IPC.copyText, args, 1);
    const text = args[0];
    if (typeof text !== 'string') throw new IpcInputError(`${IPC.copyText}: expected a string`);
    if (text.length > MAX_COPY_TEXT) throw new IpcInputError(`${IPC.copyText}: text longer than ${MAX_COPY_TEXT} characters`);
    return [text];
  },
  [IPC.doctor]: (args) => {
    arity(IPC.doctor, args, 0);
    return [];
  },
  [IPC.network]: (args) => {
    arity(IPC.network, args, 1);
    const action = parseNetworkAction(args[0]);
    if (!action) throw new IpcInputError(`${IPC.network}: expected {trust|forget: id or "current"} or {dismiss: id}`);
    return [action];
  },
  [IPC.team]: (args) => {
    arity(IPC.team, args, 1);
    const action = parseTeamAction(args[0]);
    if (!action) throw new IpcInputError(`${IPC.team}: expected {add: key} or {remove: key, name or fingerprint}`);
    return [action];
  },
  [IPC.noticeSeen]: (args) => {
    arity(IPC.noticeSeen, args, 1);
    const id = parseNoticeId(args[0]);
    if (!id) throw new IpcInputError(`${IPC.noticeSeen}: expected a notice id`);
    return [id];
  },
};

function arity(channel: string, args: unknown[], n: number): void {
  if (args.length !== n) throw new IpcInputError(`${channel}: expected ${n} argument${n === 1 ? '' : 's'}, got ${args.length}`);
}
