import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Snapshot, StatusView } from '../../src/base/api.ts';
import { snapshotFixture } from '../support/snapshot-fixture.ts';
import { trayModel, type MenuItemModel, type TrayModel } from '../../electron/tray-model.ts';

const T = { timeout: 5000 };

function snapshot(over: Partial<StatusView> = {}): Snapshot {
  return snapshotFixture({ mdns: true, peersUp: 3, ...over });
}

const statusLine = (m: TrayModel) => (m.items[0] as Extract<MenuItemModel, { kind: 'status' }>).label;
function item<K extends MenuItemModel['kind']>(m: TrayModel, kind: K, id: string): Extract<MenuItemModel, { kind: K }> {
  const found = m.items.find((i) => i.kind === kind && 'id' in i && i.id === id);
  assert.ok(found, `${kind} ${id} present`);
  return found as Extract<MenuItemModel, { kind: K }>;
}

describe('trayModel', () => {
  test('sharing with N peers', T, () => {
    const m = trayModel(snapshot({ peersUp: 3 }), { startAtLogin: false });
    assert.equal(m.icon, 'sharing');
    assert.equal(statusLine(m), 'Sharing with 3 peers');
    assert.equal(m.tooltip, 'Peernix — Sharing with 3 peers');
    assert.equal(item(m, 'checkbox', 'sharing').checked, true);
    assert.equal(statusLine(trayModel(snapshot({ peersUp: 1 }), { startAtLogin: false })), 'Sharing with 1 peer');
    assert.equal(statusLine(trayModel(snapshot({ peersUp: 0 }), { startAtLogin: false })), 'Sharing — no peers found yet');
  });

  test('not sharing', T, () => {
    const m = trayModel(snapshot({ sharing: false, shareUrl: null }), { startAtLogin: true });
    assert.equal(m.icon, 'idle');
    assert.equal(statusLine(m), 'Not sharing');
    assert.equal(item(m, 'checkbox', 'sharing').checked, false);
    assert.equal(item(m, 'checkbox', 'startAtLogin').checked, true);
  });

  test('on an untrusted network: why it is not sharing, and the one question, naming that network', T, () => {
    const current = { id: 'gateway 52:54:00:12:34:56 192.168.1.0/24', name: '192.168.1.0/24 (router 52:54:00:12:34:56)' };
    const network = { current, trusted: false, trustAll: false, trustedNetworks: [], ask: true };
    const m = trayModel(snapshot({ sharing: false, shareUrl: null, sharePaused: `${current.name} is not a trusted network`, network }), {
      startAtLogin: false,
    });
    assert.equal(m.icon, 'idle');
    assert.equal(statusLine(m), `Not sharing here: ${current.name} is not a trusted network`);
    assert.equal(item(m, 'action', 'trustNetwork').label, `Share on ${current.name}?`);
    assert.equal(m.askedNetworkId, current.id);
    const answered = trayModel(snapshot({ sharing: false, shareUrl: null, sharePaused: 'x', network: { ...network, ask: false } }), { startAtLogin: false });
    assert.equal(
      answered.items.some((i) => 'id' in i && i.id === 'trustNetwork'),
      false,
      'asked once: not after "Not here"',
    );
    assert.equal(answered.askedNetworkId, null);
  });

  test('an upgrade’s unread notice is a line of its own until it is read', T, () => {
    const notices = [{ id: 'scopes' as const, text: 'Peernix now shares by scope.' }];
    const m = trayModel(snapshot({ notices }), { startAtLogin: false });
    assert.ok(m.items.some((i) => i.kind === 'status' && /Team paths now go to your team only/.test(i.label)));
    const read = trayModel(snapshot({ notices: [] }), { startAtLogin: false });
    assert.equal(read.items.filter((i) => i.kind === 'status').length, 1, 'only the status line once read');
  });

  test('the daemon error is shown plainly and wins over sharing state', T, () => {
    const m = trayModel(snapshot({ daemon: { ok: false, version: null, error: 'connect ENOENT /nix/var/nix/daemon-socket/socket' } }), {
      startAtLogin: false,
    });
    assert.equal(m.icon, 'error');
    assert.equal(statusLine(m), 'Nix daemon unavailable: connect ENOENT /nix/var/nix/daemon-socket/socket');
    assert.match(m.tooltip, /Nix daemon unavailable/);
    assert.equal(item(m, 'checkbox', 'sharing').checked, true, 'the checkbox still tells the truth');
  });

  test('a core that failed to start', T, () => {
    const m = trayModel(null, { startAtLogin: false, startError: 'listen EADDRINUSE 127.0.0.1:9998' });
    assert.equal(m.icon, 'error');
    assert.equal(statusLine(m), 'Peernix could not start: listen EADDRINUSE 127.0.0.1:9998');
    assert.equal(item(m, 'checkbox', 'sharing').enabled, false);
    assert.equal(item(m, 'action', 'open').enabled, false);
    assert.equal(item(m, 'action', 'quit').enabled, true);
  });

  test('a failed start offers Retry; a notice gets its own line; a failed sharing switch is shown as an error', T, () => {
    const failed = trayModel(null, { startAtLogin: false, startError: 'listen EADDRINUSE 127.0.0.1:9998' });
    assert.equal(item(failed, 'action', 'retry').enabled, true);
    assert.ok(!trayModel(snapshot(), { startAtLogin: false }).items.some((i) => 'id' in i && i.id === 'retry'));
    const noticed = trayModel(snapshot(), { startAtLogin: true, notice: 'Start at login needs your approval' });
    assert.deepEqual(noticed.items[1], { kind: 'status', label: 'Start at login needs your approval' });
    const shareFailed = trayModel(snapshot({ sharing: false, shareUrl: null, shareError: 'the share port is in use' }), { startAtLogin: false });
    assert.equal(shareFailed.icon, 'error');
    assert.equal(statusLine(shareFailed), 'Sharing failed: the share port is in use');
    assert.equal(item(shareFailed, 'checkbox', 'sharing').checked, false);
  });

  test('while starting', T, () => {
    const m = trayModel(null, { startAtLogin: false });
    assert.equal(statusLine(m), 'Starting…');
    assert.equal(m.icon, 'idle');
    assert.equal(item(m, 'action', 'copyNixConf').enabled, false);
  });

  test('every action is present, in order, with the status line first', T, () => {
    const m = trayModel(snapshot(), { startAtLogin: false });
    assert.deepEqual(
      m.items.map((i) => (i.kind === 'separator' ? '---' : i.kind === 'status' ? 'status' : `${i.id}:${i.label}`)),
      [
        'status',
        '---',
        'sharing:Share my Nix store',
        'open:Open Peernix',
        'copyNixConf:Copy Nix configuration',
        '---',
        'startAtLogin:Start at login',
        'openLog:Open log',
        'quit:Quit Peernix',
      ],
    );
    for (const i of m.items) if (i.kind === 'action' || i.kind === 'checkbox') assert.equal(i.enabled, true, i.id);
  });

  test('long or multi-line errors stay one menu line', T, () => {
    const m = trayModel(snapshot({ daemon: { ok: false, version: null, error: 'x'.repeat(300) + '\nstack' } }), { startAtLogin: false });
    assert.ok(statusLine(m).length <= 120);
    assert.ok(!statusLine(m).includes('\n'));
  });
});
