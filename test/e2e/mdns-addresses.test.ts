// Our mDNS answers on a dual-stack LAN, as another host reads them off the wire: the A record last (a
// Go peernix keeps the last address record and cannot use a link-local IPv6 one), and an address
// removed from the interface gone from the very next answer (it stayed 51 s before).

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { nodeBin, PROJECT_ROOT, skippedWithoutNetns } from '../support/netns.ts';
import { createPnLan, type PnHost, type PnLan } from '../support/peernix-lan.ts';

const ASKER = `${PROJECT_ROOT}/test/fixtures/mdns-asker.ts`;

describe('our mDNS answers on a dual-stack LAN', { timeout: 300_000 }, () => {
  if (skippedWithoutNetns()) return;
  let pl: PnLan;
  let pn: PnHost;
  let other: PnHost;

  before(async () => {
    pl = await createPnLan('pn-mdns-addr', ['pn', 'other']);
    [pn, other] = pl.hosts;
    await pl.start(pn);
  });
  after(async () => {
    await pl?.teardown();
  });

  const ask = async (): Promise<{ type: string; data: string }[]> => {
    const r = await other.lan.run(nodeBin(), [ASKER, other.lan.address], { timeoutMs: 20_000 });
    assert.equal(r.code, 0, r.stderr);
    const answers = (JSON.parse(r.stdout) as { from: string; addresses: { type: string; data: string }[] }[]).filter((a) => a.from === pn.lan.address);
    assert.ok(answers.length > 0, `no answer from ${pn.lan.address}: ${r.stdout}`);
    return answers[answers.length - 1].addresses;
  };

  it('lists both addresses, the A record last, and drops the IPv6 one as soon as it leaves the interface', async (t) => {
    const before = await ask();
    t.diagnostic(`answer before: ${before.map((a) => `${a.type} ${a.data}`).join(', ')}`);
    assert.deepEqual(before.map((a) => a.data).sort(), [pn.lan.address, pn.lan.linkLocal].sort());
    assert.equal(before[before.length - 1].type, 'A');

    const t0 = Date.now();
    const del = await pn.lan.run('ip', ['addr', 'del', `${pn.lan.linkLocal}/64`, 'dev', 'eth0']);
    assert.equal(del.code, 0, del.stderr);
    const afterDel = await ask();
    t.diagnostic(`answer ${Date.now() - t0} ms after the IPv6 address was removed: ${afterDel.map((a) => `${a.type} ${a.data}`).join(', ')}`);
    assert.deepEqual(afterDel, [{ type: 'A', data: pn.lan.address }]);
  });
});
