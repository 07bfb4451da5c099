import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { ApiChange, NetworkAction, NoticeId, PeernixApi, Snapshot, TeamAction } from '../../src/base/api.ts';
import { registerIpc, type InvokeEventLike, type IpcMainLike } from '../../electron/ipc.ts';
import { IPC, MAX_COPY_TEXT } from '../../electron/ipc-schema.ts';

const T = { timeout: 5000 };
const PAGE = 'file:///opt/peernix/dist/renderer/index.html';

class FakeIpcMain implements IpcMainLike {
  handlers = new Map<string, (event: InvokeEventLike, ...args: any[]) => unknown>();
  handle(channel: string, listener: (event: InvokeEventLike, ...args: any[]) => unknown): void {
    assert.ok(!this.handlers.has(channel), `${channel} registered once`);
    this.handlers.set(channel, listener);
  }
  removeHandler(channel: string): void {
    this.handlers.delete(channel);
  }
  async invoke(channel: string, ...args: unknown[]): Promise<unknown> {
    return this.invokeFrom(PAGE, channel, ...args);
  }
  async invokeFrom(url: string | null, channel: string, ...args: unknown[]): Promise<unknown> {
    const h = this.handlers.get(channel);
    if (!h) throw new Error(`no handler for ${channel}`);
    return h({ senderFrame: url === null ? null : { url } }, ...args);
  }
}

function setup() {
  const snap = { status: { sharing: true }, peers: [], entries: [], events: [] } as unknown as Snapshot;
  const sharingCalls: boolean[] = [];
  const networkCalls: NetworkAction[] = [];
  const teamCalls: TeamAction[] = [];
  const seen: NoticeId[] = [];
  const listeners = new Set<(c: ApiChange) => void>();
  const api: PeernixApi = {
    snapshot: () => snap,
    subscribe: (l) => {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    setSharing: async (on) => {
      sharingCalls.push(on);
    },
    clearPeerBad: async () => false,
    network: async (action) => {
      networkCalls.push(action);
      return { current: null, trusted: false, trustAll: false, trustedNetworks: [], ask: false };
    },
    team: async (action) => {
      teamCalls.push(action);
      return { members: [], max: 256, saved: true, candidates: [] };
    },
    noticeSeen: async (id) => void seen.push(id),
    stop: async () => {},
  };
  const copied: string[] = [];
  const broadcasts: ApiChange[] = [];
  const ipc = new FakeIpcMain();
  const dispose = registerIpc(ipc, api, {
    clipboard: { writeText: (t) => void copied.push(t) },
    isTrustedSender: (url) => url === PAGE,
    broadcast: (channel, c) => void (channel === IPC.change && broadcasts.push(c)),
  });
  return { ipc, snap, sharingCalls, networkCalls, teamCalls, seen, copied, broadcasts, listeners, dispose };
}

describe('registerIpc', () => {
  test('registers exactly the schema channels', T, () => {
    const { ipc } = setup();
    assert.deepEqual([...ipc.handlers.keys()].sort(), [IPC.copyText, IPC.doctor, IPC.network, IPC.team, IPC.noticeSeen, IPC.setSharing, IPC.snapshot].sort());
  });

  test('network forwards one checked action and refuses anything else', T, async () => {
    const { ipc, networkCalls } = setup();
    await ipc.invoke(IPC.network, { trust: 'gateway 52:54:00:12:34:56 192.168.1.0/24' });
    await ipc.invoke(IPC.network, { dismiss: 'subnet 10.0.0.0/24' });
    assert.deepEqual(networkCalls, [{ trust: 'gateway 52:54:00:12:34:56 192.168.1.0/24' }, { dismiss: 'subnet 10.0.0.0/24' }]);
    for (const bad of [null, 'current', { trust: 1 }, { trust: 'a', forget: 'b' }, { rm: 'x' }, { trust: 'x'.repeat(201) }, { trust: '' }]) {
      await assert.rejects(ipc.invoke(IPC.network, bad), /expected \{trust\|forget/, JSON.stringify(bad));
    }
    assert.equal(networkCalls.length, 2);
  });

  test('team and noticeSeen forward one checked argument and refuse anything else', T, async () => {
    const { ipc, teamCalls, seen } = setup();
    await ipc.invoke(IPC.team, { add: ' alice-1:key ' });
    await ipc.invoke(IPC.team, { remove: 'alice-1' });
    assert.deepEqual(teamCalls, [{ add: 'alice-1:key' }, { remove: 'alice-1' }]);
    for (const bad of [null, 'alice-1', { add: 1 }, { add: 'a', remove: 'b' }, { invite: 'x' }, { add: 'x'.repeat(301) }, { add: ' ' }]) {
      await assert.rejects(ipc.invoke(IPC.team, bad), /expected \{add: key\}/, JSON.stringify(bad));
    }
    await ipc.invoke(IPC.noticeSeen, 'scopes');
    await assert.rejects(ipc.invoke(IPC.noticeSeen, 'everything'), /expected a notice id/);
    assert.deepEqual(seen, ['scopes']);
    assert.equal(teamCalls.length, 2);
  });

  test('snapshot returns the API snapshot', T, async () => {
    const { ipc, snap } = setup();
    assert.equal(await ipc.invoke(IPC.snapshot), snap);
    await assert.rejects(ipc.invoke(IPC.snapshot, 'extra'), /expected 0 arguments/);
  });

  test('setSharing forwards a boolean', T, async () => {
    const { ipc, sharingCalls } = setup();
    await ipc.invoke(IPC.setSharing, false);
    await ipc.invoke(IPC.setSharing, true);
    assert.deepEqual(sharingCalls, [false, true]);
  });

  test('setSharing rejects anything but a boolean', T, async () => {
    const { ipc, sharingCalls } = setup();
    for (const bad of ['true', 1, null, undefined, { on: true }]) {
      await assert.rejects(ipc.invoke(IPC.setSharing, bad), /expected true or false/, String(bad));
    }
    await assert.rejects(ipc.invoke(IPC.setSharing), /expected 1 argument/);
    await assert.rejects(ipc.invoke(IPC.setSharing, true, true), /expected 1 argument/);
    assert.deepEqual(sharingCalls, []);
  });

  test('copyText takes one bounded string', T, async () => {
    const { ipc, copied } = setup();
    await ipc.invoke(IPC.copyText, 'extra-substituters = http://127.0.0.1:9998\n');
    assert.deepEqual(copied, ['extra-substituters = http://127.0.0.1:9998\n']);
    await assert.rejects(ipc.invoke(IPC.copyText, 42), /expected a string/);
    await assert.rejects(ipc.invoke(IPC.copyText, 'x'.repeat(MAX_COPY_TEXT + 1)), /longer than/);
    assert.equal(copied.length, 1);
  });

  test('requests from any other frame are refused', T, async () => {
    const { ipc, sharingCalls, copied } = setup();
    await assert.rejects(ipc.invokeFrom('https://evil.example/', IPC.setSharing, false), /refused a request from https:\/\/evil\.example/);
    await assert.rejects(ipc.invokeFrom(null, IPC.copyText, 'x'), /refused/);
    await assert.rejects(ipc.invokeFrom('file:///tmp/other.html', IPC.snapshot), /refused/);
    assert.deepEqual(sharingCalls, []);
    assert.deepEqual(copied, []);
  });

  test('API changes are broadcast to windows, until disposed', T, () => {
    const { listeners, broadcasts, dispose, ipc } = setup();
    for (const l of listeners) l({ topic: 'peers' });
    assert.deepEqual(broadcasts, [{ topic: 'peers' }]);
    dispose();
    assert.equal(listeners.size, 0);
    assert.equal(ipc.handlers.size, 0);
  });
});
