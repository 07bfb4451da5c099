// Main-side IPC handlers. The renderer is sandboxed but still untrusted: every request is checked
// for where it came from (our own page) and what it carries, before it reaches the API.
import type { PeernixApi } from '../src/base/api.ts';
import { IPC, IPC_ARGS, IpcInputError, type EventChannel, type InvokeChannel, type IpcEvents, type IpcInvoke } from './ipc-schema.ts';

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
  /** Delivers an event to every open window (webContents.send), typed by the schema's IpcEvents. */
  broadcast<C extends EventChannel>(channel: C, payload: IpcEvents[C]): void;
}

/** Each channel's handler, typed by the schema: arguments already checked by IPC_ARGS. */
type Handlers = { [C in InvokeChannel]: (...args: IpcInvoke[C]['args']) => Promise<IpcInvoke[C]['result']> | IpcInvoke[C]['result'] };

/** Registers the handlers and forwards API changes; returns a function that undoes both. */
export function registerIpc(ipcMain: IpcMainLike, api: PeernixApi, deps: IpcDeps): () => void {
  const handlers: Handlers = {
    [IPC.snapshot]: () => api.snapshot(),
    [IPC.setSharing]: (on) => api.setSharing(on),
    [IPC.copyText]: (text) => deps.clipboard.writeText(text),
    [IPC.doctor]: () => (api.doctor ? api.doctor() : Promise.reject(new Error('this Peernix has no doctor'))),
    [IPC.network]: (action) => (api.network ? api.network(action) : Promise.reject(new Error('this Peernix has no trusted networks'))),
    [IPC.team]: (action) => (api.team ? api.team(action) : Promise.reject(new Error('this Peernix has no team'))),
    [IPC.noticeSeen]: (id) => (api.noticeSeen ? api.noticeSeen(id) : Promise.resolve()),
  };
  const call = <C extends InvokeChannel>(channel: C, raw: unknown[]) =>
    (handlers[channel] as (...args: IpcInvoke[C]['args']) => unknown)(...IPC_ARGS[channel](raw));

  for (const channel of Object.keys(handlers) as InvokeChannel[]) {
    ipcMain.handle(channel, (event, ...args: unknown[]) => {
      const url = event.senderFrame?.url ?? '';
      if (!deps.isTrustedSender(url)) throw new IpcInputError(`${channel}: refused a request from ${url || 'an unknown frame'}`);
      return call(channel, args);
    });
  }
  const unsubscribe = api.subscribe((change) => deps.broadcast(IPC.change, change));

  return () => {
    unsubscribe();
    for (const channel of Object.keys(handlers)) ipcMain.removeHandler(channel);
  };
}
