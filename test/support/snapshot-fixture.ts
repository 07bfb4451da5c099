import type { Snapshot, StatusView } from '../../src/base/api.ts';

// One made-up snapshot for unit tests of what reads snapshots (tray model, control API, views):
// a host that shares, with a healthy daemon and no peers, entries or events unless a test adds them.

export function statusFixture(over: Partial<StatusView> = {}): StatusView {
  return {
    version: '0.1.0',
    instanceId: 'i1',
    hostName: 'alice-laptop',
    sharing: true,
    shareUrl: 'http://0.0.0.0:9999',
    shareError: null,
    substituterUrl: 'http://127.0.0.1:9998',
    publicKey: 'alice-1:AAAA',
    nixConf: 'extra-substituters = http://127.0.0.1:9998\nextra-trusted-public-keys = alice-1:AAAA\n',
    daemon: { ok: true, version: '2.8.0', error: null },
    mdns: false,
    peersUp: 0,
    startedAt: 1,
    ...over,
  };
}

export function snapshotFixture(status: Partial<StatusView> = {}, rest: Partial<Omit<Snapshot, 'status'>> = {}): Snapshot {
  return { status: statusFixture(status), peers: [], entries: [], events: [], ...rest };
}
