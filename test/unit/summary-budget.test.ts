import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { BloomFilter } from 'bloomfilter';
import { silentLogger } from '../../src/base/log.ts';
import { PeerSummaries } from '../../src/peers/peer-summaries.ts';
import { SummaryBudget } from '../../src/peers/summary-budget.ts';
import { encodeSummary, SUMMARY_PATH, SUMMARY_TYPE } from '../../src/wire/summary-wire.ts';
import { waitFor } from '../support/wait.ts';

// Following peers' summaries costs at most a budget per address, however many identities the
// address announces: the clock is driven for the budget's own rules, and a flooding peer on
// loopback (127.0.0.2, as a LAN host would be: a new 1 MiB summary for every poll, under ten
// identities) for PeerSummaries.

describe('summary budget', () => {
  it('bytes and CPU per minute per address, on the clock it is given', () => {
    let now = 0;
    const b = new SummaryBudget({ bytesPerMinute: 10, cpuMsPerMinute: 100, now: () => now });
    b.charge('10.0.0.1', 6, 10);
    assert.equal(b.over('10.0.0.1'), null);
    now = 30_000;
    b.charge('10.0.0.1', 6, 10);
    assert.match(b.over('10.0.0.1') ?? '', /in a minute/);
    assert.equal(b.over('10.0.0.2'), null, 'another address has its own budget');
    now = 60_001; // the first spend left the window
    assert.equal(b.over('10.0.0.1'), null);
    b.charge('10.0.0.1', 0, 95);
    assert.match(b.over('10.0.0.1') ?? '', /ms of CPU/);
  });

  it('follows a bounded number of identities per address', () => {
    const b = new SummaryBudget({ identitiesPerAddress: 2 });
    assert.ok(b.admit('a', '1') && b.admit('a', '2') && b.admit('a', '1'));
    assert.equal(b.admit('a', '3'), false);
    assert.ok(b.admit('b', '3'));
    assert.ok(
      ['1', '2', '3'].every((id) => b.admit('127.0.0.1', id)),
      'processes on this machine are not counted',
    );
    b.release('a', '1');
    assert.ok(b.admit('a', '3'));
  });
});

describe('PeerSummaries against a summary flood', () => {
  it('ten identities at one address answering every poll with a new 1 MiB summary get the budget of one address', async (t) => {
    let sent = 0;
    const server = createServer((req, res) => {
      if (!req.url?.startsWith(SUMMARY_PATH)) return void res.writeHead(404).end();
      const body = encodeSummary({ epoch: randomBytes(8).toString('hex'), generation: 1, paths: 1, filter: new BloomFilter(8 * 1024 * 1024, 7) });
      sent += body.length;
      res.writeHead(200, { 'content-type': SUMMARY_TYPE, 'content-length': body.length }).end(body);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.2', r));
    const url = `http://127.0.0.2:${(server.address() as AddressInfo).port}`;
    // The budget's minute does not move on: what was spent stays spent for the whole test.
    const budget = new SummaryBudget({ bytesPerMinute: 4 * 1024 * 1024, now: () => 0 });
    const summaries = new PeerSummaries({ log: silentLogger, budget });
    for (let i = 0; i < 10; i++) summaries.follow(`id-${i}`, url);
    // Unbudgeted, each identity polled four times a second (~40 MiB a second here) and none was refused.
    const views = await waitFor(
      'every identity refused',
      async () => {
        const v = Array.from({ length: 10 }, (_, i) => summaries.view(`id-${i}`)!);
        return v.every((x) => x.state === 'refused') && v;
      },
      60_000,
    ).finally(() => {
      summaries.close();
      server.close();
    });
    t.diagnostic(`sent ${(sent / 1048576).toFixed(1)} MiB; states ${views.map((v) => v.state).join(' ')}; ${views[9].reason}`);
    // The budget, plus what the identities had asked for before the first answer was charged.
    assert.ok(sent <= 4 * 1024 * 1024 + 4 * 1024 * 1024 + 1024, `${sent} bytes`);
    assert.equal(views.filter((v) => /identities at 127\.0\.0\.2/.test(v.reason ?? '')).length, 6);
    assert.ok(
      views.every((v) => v.state === 'refused'),
      'every one falls back to plain lookups',
    );
    assert.equal(summaries.mayHave('id-0', '0'.repeat(32)), null);
  });
});
