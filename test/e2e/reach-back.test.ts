import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { DoctorReport } from '../../src/base/api.ts';
import { REACH_BACK_PATH } from '../../src/doctor/reach-back.ts';
import { skippedWithoutNetns } from '../support/netns.ts';
import { createPnLan, upPeers, waitFor, type PnHost, type PnLan } from '../support/peernix-lan.ts';

// "Is my share listener reachable from the LAN?" answered from the LAN: A's doctor asks its peers to
// connect back. B's way to A's share port is closed (a policy rule in B's namespace that prohibits
// TCP to A:9999, as a firewall between them would; A still reaches B), C's is open: B says it can't reach A, C says it can, and the doctor says which.
// A peer asking again at once is refused (rate limit), and a peer connects only to the asker.

describe('doctor: peers connect back to the share listener', { timeout: 300_000 }, () => {
  if (skippedWithoutNetns()) return;
  let pl: PnLan;
  let A: PnHost;
  let B: PnHost;
  let C: PnHost;
  const doctorOnA = async () => {
    const r = await pl.cli(A, ['doctor', '--json', '--store', A.nix.storeUri]);
    return (JSON.parse(r.stdout) as DoctorReport).checks.find((c) => c.id === 'share.lan')!;
  };

  before(async () => {
    pl = await createPnLan('pn-reach', ['host-a', 'host-b', 'host-c']);
    [A, B, C] = pl.hosts;
    for (const h of pl.hosts) await pl.start(h);
    await waitFor(
      'A to see B and C up',
      async () => {
        const up = upPeers(await pl.status(A));
        return up.includes('host-b') && up.includes('host-c');
      },
      30_000,
    );
    // From now on B can't open a connection to A's share port (A still reaches B: A sees it up).
    const r = await B.lan.run('ip', ['rule', 'add', 'to', A.lan.address, 'ipproto', 'tcp', 'dport', '9999', 'prohibit']);
    assert.equal(r.code, 0, r.stderr);
  });

  after(async () => {
    await pl?.teardown();
  });

  it('B, firewalled off, says it can’t reach A; C says it can: the doctor names both', async (t) => {
    const c = await doctorOnA();
    t.diagnostic(`A's doctor, share.lan ${c.status}: ${c.detail}\n  fix: ${c.fix}`);
    assert.equal(c.status, 'warn');
    assert.match(c.detail, /host-c connected back/);
    assert.match(c.detail, /host-b: could not connect to http:\/\/[\d.]+:9999\/nix-cache-info/);
    assert.ok(c.detail.includes(A.lan.address), 'peers connect to the address the request came from');
    assert.match(c.fix!, /TCP port 9999/);
  });

  it('asking again at once is refused by each peer (rate limit), and the doctor says it can’t tell', async (t) => {
    const direct = await pl.curl(A, ['-o', '/dev/null', '-w', '%{http_code}', `http://${C.lan.address}:9999${REACH_BACK_PATH}`]);
    const c = await doctorOnA();
    t.diagnostic(`a second ask of C at once: HTTP ${direct.stdout}; A's doctor then: share.lan ${c.status}`);
    assert.equal(direct.stdout, '429');
    assert.equal(c.status, 'unknown');
    assert.match(c.detail, /Can't tell from this host/);
  });
});
