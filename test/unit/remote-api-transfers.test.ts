import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ApiChange } from '../../src/base/api.ts';
import { connectRemoteApi } from '../../src/control/remote-api.ts';
import { createLogger } from '../../src/base/log.ts';
import { demoApi, demoLan, demoTransfers, serveDemoApi } from '../support/dashboard-demo.ts';
import { waitFor } from '../support/wait.ts';

// The tray app attached to a `peernix serve` on this machine: transfer progress arrives over the real
// control routes' change stream and is applied as it comes — several a second must not each cost a
// snapshot fetch.

test('transfer progress reaches an attached app without snapshot refetches', { timeout: 20_000 }, async (t) => {
  const api = demoApi();
  let snapshots = 0;
  const snapshot = api.snapshot.bind(api);
  api.snapshot = () => (snapshots++, snapshot());
  const served = await serveDemoApi(api, 0);
  const remote = await connectRemoteApi(new URL(served.url).origin, 'a'.repeat(64), createLogger('error'));
  try {
    const seen: ApiChange[] = [];
    remote.subscribe((c) => seen.push(c));
    await waitFor('the change stream', async () => api.listeners.size > 0, 5000);
    const before = snapshots;
    const row = demoTransfers()[0];
    for (let i = 1; i <= 10; i++) api.emit({ topic: 'transfers', transfers: [{ ...row, bytes: row.bytes + i * 1000 }], lan: demoLan() });
    await waitFor('ten progress changes', async () => seen.filter((c) => c.topic === 'transfers').length === 10, 5000);
    t.diagnostic(`10 progress changes → ${snapshots - before} snapshot fetches; last bytes ${remote.snapshot().transfers?.[0].bytes}`);
    assert.equal(snapshots - before, 0);
    assert.equal(remote.snapshot().transfers?.[0].bytes, row.bytes + 10_000);
    assert.equal(remote.snapshot().lan?.today.fetchedPaths, 412);
  } finally {
    await remote.stop();
    await served.close();
  }
});

test('an attached app trusts a network through the daemon it is attached to', { timeout: 20_000 }, async () => {
  const api = demoApi();
  const current = { id: 'subnet 10.77.0.0/24', name: '10.77.0.0/24 (no router)' };
  api.snap.status = { ...api.snap.status, sharing: false, network: { current, trusted: false, trustAll: false, trustedNetworks: [], ask: true } };
  const served = await serveDemoApi(api, 0);
  const remote = await connectRemoteApi(new URL(served.url).origin, 'a'.repeat(64), createLogger('error'));
  try {
    assert.ok(remote.network, 'the attached API can change trusted networks');
    const view = await remote.network({ trust: current.id });
    assert.equal(view.trusted, true);
    assert.deepEqual(api.networkCalls, [{ trust: current.id }]);
  } finally {
    await remote.stop();
    await served.close();
  }
});
