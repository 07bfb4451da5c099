// Every IPC channel between the window and the main process, with its payload types. The preload
// and the main-side handlers both import this file; nothing else names a channel.
import type { ApiChange, Snapshot } from '../src/api.ts';

export const IPC = {
  /** renderer → main (invoke): the full snapshot. */
  snapshot: 'peernix:snapshot',
  /** renderer → main (invoke): turn sharing on or off. */
  setSharing: 'peernix:set-sharing',
  /** renderer → main (invoke): put text on the clipboard (the sandboxed renderer has no clipboard). */
  copyText: 'peernix:copy-text',
  /** main → renderer (send): an ApiChange. */
  change: 'peernix:change',
} as const;

/** Request arguments and response of each invoke channel. */
export interface IpcInvoke {
  [IPC.snapshot]: { args: []; result: Snapshot };
  [IPC.setSharing]: { args: [on: boolean]; result: void };
  [IPC.copyText]: { args: [text: string]; result: void };
}

/** Payload of each main → renderer channel. */
export interface IpcEvents {
  [IPC.change]: ApiChange;
}

export type InvokeChannel = keyof IpcInvoke;

/** Longest text the window may put on the clipboard; the nix.conf lines are far shorter. */
export const MAX_COPY_TEXT = 64 * 1024;
