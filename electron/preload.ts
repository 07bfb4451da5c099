// Runs in the sandboxed window before the page: exposes exactly one object, window.peernix, that
// implements PeernixBridge over IPC. No Electron or Node object crosses into the page.
import { contextBridge, ipcRenderer, type IpcRendererEvent } from 'electron';
import type { ApiChange, PeernixBridge, Snapshot } from '../src/api.ts';
import { IPC } from './ipc-schema.ts';

const bridge: PeernixBridge = {
  snapshot: () => ipcRenderer.invoke(IPC.snapshot) as Promise<Snapshot>,
  onChange(listener) {
    const wrapped = (_event: IpcRendererEvent, change: ApiChange) => listener(change);
    ipcRenderer.on(IPC.change, wrapped);
    return () => {
      ipcRenderer.removeListener(IPC.change, wrapped);
    };
  },
  setSharing: async (on) => {
    await ipcRenderer.invoke(IPC.setSharing, on === true);
  },
  copyText: async (text) => {
    await ipcRenderer.invoke(IPC.copyText, String(text));
  },
};

contextBridge.exposeInMainWorld('peernix', bridge);
