// What the stand-in electron module and the test say to each other over the child's IPC channel.

export type StubCommand =
  | { cmd: 'state' }
  | { cmd: 'click'; label: string }
  | { cmd: 'invoke'; channel: string; senderUrl: string; args: unknown[] }
  | { cmd: 'quit' }
  | { cmd: 'dialogResponse'; response: number };

export interface MenuItemState {
  label: string;
  type: string;
  checked: boolean;
  enabled: boolean;
  submenu?: MenuItemState[];
}

export interface WindowState {
  id: number;
  options: Record<string, unknown>;
  loaded: string | null;
  loadError: string | null;
  visible: boolean;
  destroyed: boolean;
  sent: { channel: string; payload: unknown }[];
  menu: MenuItemState[] | null;
}

export interface StubState {
  name: string;
  paths: Record<string, string>;
  ready: boolean;
  tray: {
    created: number;
    image: string | null;
    tooltip: string | null;
    menu: MenuItemState[];
    setContextMenuCalls: number;
    destroyed: boolean;
  } | null;
  imagesRequested: string[];
  windows: WindowState[];
  dialogs: { kind: string; title: string; content: string; buttons?: string[] }[];
  clipboard: string[];
  shell: { kind: string; target: string }[];
  ipcHandlers: string[];
  loginItem: Record<string, unknown>[];
  quitRequested: number;
  singleInstanceLock: boolean | null;
  secondInstances: string[][];
  dockHidden: boolean;
}

export type StubMessage =
  | { type: 'reply'; id: number; ok: true; value: unknown }
  | { type: 'reply'; id: number; ok: false; error: string }
  | { type: 'event'; what: string; detail?: unknown };
