// Main-side IPC handlers. The renderer is sandboxed but still untrusted: every request is checked
// for where it came from (our own page) and what it carries, before it reaches the API.
import type { ApiChange, PeernixApi } from '../src/api.ts';
import { IPC, MAX_COPY_TEXT, type IpcInvoke } from './ipc-schema.ts';

/** The slice of Electron's IpcMainInvokeEvent we look at. */
export interface InvokeEventLike {
  senderFrame: { url: string } | null;
}

/** The slice of Electron's ipcMain we use, so tests can pass a fake. */
export interface IpcMainLike {
  handle(channel: string, listener: (event: InvokeEventLike, ...args: any[]) => unknown): void;
  removeHandler(channel: string): void;
}

export interface IpcDeps {
  clipboard: { writeText(text: string): void };
  /** Whether a request from a frame at this URL may use the API (our renderer page only). */
  isTrustedSender(url: string): boolean;
  /** Delivers a change to every open window (webContents.send on IPC.change). */
  broadcast(change: ApiChange): void;
}

export class IpcInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'IpcInputError';
  }
}

type Handlers = { [C in keyof IpcInvoke]: (...args: unknown[]) => Promise<IpcInvoke[C]['result']> | IpcInvoke[C]['result'] };

/** Registers the handlers and forwards API changes; returns a function that undoes both. */
export function registerIpc(ipcMain: IpcMainLike, api: PeernixApi, deps: IpcDeps): () => void {
  const handlers: Handlers = {
    [IPC.snapshot]: (...args) => {
      expectArity(IPC.snapshot, args, 0);
      return api.snapshot();
    },
    [IPC.setSharing]: async (...args) => {
      expectArity(IPC.setSharing, args, 1);
      if (typeof args[0] !== 'boolean') throw new IpcInputError(`${IPC.setSharing}: expected true or false`);
      await api.setSharing(args[0]);
    },
    [IPC.copyText]: (...args) => {
      expectArity(IPC.copyText, args, 1);
      const text = args[0];
      if (typeof text !== 'string') throw new IpcInputError(`${IPC.copyText}: expected a string`);
      if (text.length > MAX_COPY_TEXT) throw new IpcInputError(`${IPC.copyText}: text longer than ${MAX_COPY_TEXT} characters`);
      deps.clipboard.writeText(text);
    },
  };

  for (const [channel, handler] of Object.entries(handlers) as [string, (...a: unknown[]) => unknown][]) {
    ipcMain.handle(channel, (event, ...args: unknown[]) => {
      const url = event.senderFrame?.url ?? '';
      if (!deps.isTrustedSender(url)) throw new IpcInputError(`${channel}: refused a request from ${url || 'an unknown frame'}`);
      return handler(...args);
    });
  }
  const unsubscribe = api.subscribe((change) => deps.broadcast(change));

  return () => {
    unsubscribe();
    for (const channel of Object.keys(handlers)) ipcMain.removeHandler(channel);
  };
}

function expectArity(channel: string, args: unknown[], n: number): void {
  if (args.length !== n) throw new IpcInputError(`${channel}: expected ${n} argument${n === 1 ? '' : 's'}, got ${args.length}`);
}
