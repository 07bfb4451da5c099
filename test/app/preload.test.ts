import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import vm from 'node:vm';
import { IPC } from '../../electron/ipc-schema.ts';
import { PROJECT_ROOT } from '../support/peernix-process.ts';

// The built preload (dist/electron/preload.cjs) as Electron's sandboxed preload runs it: a CommonJS
// script whose only `require` is 'electron'. What reaches the page is what it passes to
// contextBridge.exposeInMainWorld.

test('the preload exposes exactly window.peernix, whose methods only invoke our own channels', { timeout: 10_000 }, async (t) => {
  const file = path.join(PROJECT_ROOT, 'dist/electron/preload.cjs');
  const code = fs.readFileSync(file, 'utf8');
  const exposed: [string, Record<string, unknown>][] = [];
  const invoked: [string, unknown[]][] = [];
  const subscribed: string[] = [];
  const required: string[] = [];
  const electron = {
    contextBridge: { exposeInMainWorld: (name: string, api: Record<string, unknown>) => exposed.push([name, api]) },
    ipcRenderer: {
      invoke: async (channel: string, ...args: unknown[]) => void invoked.push([channel, args]),
      on: (channel: string) => void subscribed.push(channel),
      removeListener: () => {},
    },
  };
  const sandbox = {
    require: (id: string) => {
      required.push(id);
      if (id !== 'electron') throw new Error(`a sandboxed preload cannot require ${id}`);
      return electron;
    },
    module: { exports: {} },
    exports: {},
  };
  vm.runInNewContext(code, sandbox, { filename: file });
  t.diagnostic(`required ${JSON.stringify(required)}; exposed ${JSON.stringify(exposed.map(([n, a]) => [n, Object.keys(a)]))}`);
  assert.deepEqual(required, ['electron']);
  assert.deepEqual(
    exposed.map(([n]) => n),
    ['peernix'],
  );
  const bridge = exposed[0][1] as Record<string, (...a: unknown[]) => unknown>;
  assert.deepEqual(Object.keys(bridge).sort(), ['copyText', 'doctor', 'network', 'noticeSeen', 'onChange', 'setSharing', 'snapshot', 'team']);
  for (const v of Object.values(bridge)) assert.equal(typeof v, 'function');
  await bridge.snapshot();
  await bridge.setSharing('yes'); // coerced to a boolean before it leaves the page
  await bridge.copyText(42);
  await bridge.network({ trust: 'current' });
  await bridge.team({ add: 'colleague-1:key' });
  await bridge.noticeSeen('scopes');
  const off = bridge.onChange(() => {}) as () => void;
  off();
  assert.deepEqual(invoked, [
    [IPC.snapshot, []],
    [IPC.setSharing, [false]],
    [IPC.copyText, ['42']],
    [IPC.network, [{ trust: 'current' }]],
    [IPC.team, [{ add: 'colleague-1:key' }]],
    [IPC.noticeSeen, ['scopes']],
  ]);
  assert.deepEqual(subscribed, [IPC.change]);
});
