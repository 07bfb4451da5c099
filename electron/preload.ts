// Runs in the sandboxed window before the page: exposes exactly one object, window.peernix, that
// implements PeernixBridge over IPC. No Electron or Node object crosses into the page.
import { contextBridge, ipcRenderer, type IpcRendererEvent } from 'electron';
import type { PeernixBridge } from '../src/base/api.ts';
import { IPC, type EventChannel, type InvokeChannel, type IpcEvents, type IpcInvoke } from './ipc-schema.ts';

/** The one place a channel's result type is asserted: the schema declares what main answers. */
function invoke<C extends InvokeChannel>(channel: C, ...args: IpcInvoke[C]['args']): Promise<IpcInvoke[C]['result']> {
  return ipcRenderer.invoke(channel, ...args) as Promise<IpcInvoke[C]['result']>;
}

/** The one place an event's payload type is asserted: the schema declares what main sends. */
function listen<C extends EventChannel>(channel: C, listener: (payload: IpcEvents[C]) => void): () => void {
  const wrapped = (_event: IpcRendererEvent, payload: IpcEvents[C]) => listener(payload);
  ipcRenderer.on(channel, wrapped);
  return () => {
    ipcRenderer.removeListener(channel, wrapped);
  };
}

const bridge: PeernixBridge = {
  snapshot: () => invoke(IPC.snapshot),
  onChange: (listener) => listen(IPC.change, listener),
  setSharing: async (on) => {
    await invoke(IPC.setSharing, on === true);
  },
  copyText: async (text) => {
    await invoke(IPC.copyText, String(text));
  },
  doctor: () => invoke(IPC.doctor),
  network: (action) => invoke(IPC.network, action),
  team: (action) => invoke(IPC.team, action),
  noticeSeen: (id) => invoke(IPC.noticeSeen, id),
};

contextBridge.exposeInMainWorld('peernix', bridge);
