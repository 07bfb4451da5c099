import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, test } from 'node:test';
import { BloomFilter } from 'bloomfilter';
import { createSummaryHandler, MAX_SUMMARY_WAIT_MS } from '../../src/cache/summary-route.ts';
import { DEFAULT_LIMITS } from '../../src/cache/limits.ts';
import { shareRouteOnly } from '../support/share-route.ts';
import { createLogger } from '../../src/base/log.ts';
import { DEFAULT_WAIT_S, PeerSummaries } from '../../src/peers/peer-summaries.ts';
import { decodeDelta, decodeSummary, encodeDelta, encodeSummary, SummaryFormatError } from '../../src/wire/summary-wire.ts';
import { StoreSummary } from '../../src/store/store-summary.ts';
import { FakeClock } from '../support/fake-clock.ts';
import { MemorySource, randomHashPart as hashPart } from '../support/memory-source.ts';
import { waitFor } from '../support/wait.ts';

const T = { timeout: 30_000 };
const log = createLogger('error');

describe('summary wire format', () => {
  test('a summary and a delta survive the trip; hostile bytes are refused with a reason', T, () => {
    const filter = BloomFilter.withTargetError(1000, 0.01);
    const parts = Array.from({ length: 500 }, hashPart);
    for (const h of parts) filter.add(h);
    const buf = encodeSummary({ epoch: '0123456789abcdef', generation: 7, paths: 500, filter });
    const back = decodeSummary(buf);
    assert.equal(back.epoch, '0123456789abcdef');
    assert.equal(back.generation, 7);
    assert.equal(back.paths, 500);
    assert.ok(parts.every((h) => back.filter.test(h)));
    assert.deepEqual([...back.filter.buckets], [...filter.buckets]);

    const bad = (mutate: (b: Buffer) => Buffer, why: RegExp) => assert.throws(() => decodeSummary(mutate(Buffer.from(buf))), why);
    bad((b) => (b.write('XXXX', 0), b), /not a Peernix summary/);
    bad((b) => ((b[4] = 2), b), /version 2/);
    bad((b) => ((b[5] = 9), b), /scheme 9/);
    bad((b) => ((b[6] = 0), b), /k=0/);
    bad((b) => ((b[6] = 200), b), /k=200/);
    bad((b) => b.subarray(0, b.length - 4), /does not match/);
    bad((b) => (b.writeUInt32BE(0xffffffff, 24), b), /does not match/);
    bad(() => Buffer.alloc(5 * 1024 * 1024), /larger than/);

    const d = { epoch: '0123456789abcdef', from: 3, to: 5, hashParts: parts.slice(0, 3) };
    assert.deepEqual(decodeDelta(encodeDelta(d)), d);
    assert.throws(() => decodeDelta('peernix-summary-delta 1 0123456789abcdef 3 5 2\n' + parts[0] + '\n'), /says 2 paths but has 1/);
    assert.throws(() => decodeDelta('peernix-summary-delta 1 0123456789abcdef 3 5 1\n../../etc/passwd\n'), SummaryFormatError);
    assert.throws(() => decodeDelta('peernix-summary-delta 1 0123456789abcdef 5 5 0\n'), /from generation 5 to 5/);
    assert.throws(() => decodeDelta('peernix-summary-delta 1 0123456789abcdef 3 5 999999\n'), /larger than/);
  });
});

describe('StoreSummary', () => {
  test('100 000 paths: size, false positives, build and update time', T, (tc) => {
    const src = new MemorySource();
    src.add(100_000);
    const s = new StoreSummary(src);
    let t = performance.now();
    assert.equal(s.refresh(), true);
    const built = s.full()!;
    const buildMs = performance.now() - t;
    const decoded = decodeSummary(built);
    assert.ok(
      src.rows.every((r) => decoded.filter.test(r.hashPart)),
      'no false negatives',
    );
    const probes = 100_000;
    let fp = 0;
    for (let i = 0; i < probes; i++) if (decoded.filter.test(hashPart())) fp++;
    src.add(1);
    t = performance.now();
    s.refresh();
    const updateMs = performance.now() - t;
    tc.diagnostic(
      `100 000 paths: ${(built.length / 1024).toFixed(1)} KiB on the wire, ${((fp / probes) * 100).toFixed(2)} % false positives, built in ${buildMs.toFixed(0)} ms, one added path in ${updateMs.toFixed(2)} ms`,
    );
    assert.ok(built.length <= 150 * 1024, `${built.length} bytes`);
    assert.ok(fp / probes <= 0.012, `${fp} false positives in ${probes}`);
  });

  test('deltas carry exactly what was added; a rebuild (deletions, growth) starts a new epoch', T, () => {
    const src = new MemorySource();
    src.add(3000);
    const s = new StoreSummary(src);
    s.refresh();
    const e0 = s.current();
    assert.equal(e0.generation, 0);
    assert.equal(s.refresh(), false, 'nothing new');
    const a = src.add(2);
    assert.equal(s.refresh(), true);
    const b = src.add(1);
    s.refresh();
    assert.deepEqual(s.deltaSince(e0.epoch, 0)?.hashParts, [...a, ...b]);
    assert.deepEqual(s.deltaSince(e0.epoch, 1)?.hashParts, b);
    assert.deepEqual(s.deltaSince(e0.epoch, 2)?.hashParts, []);
    assert.equal(s.deltaSince('ffffffffffffffff', 1), null, 'another epoch: whole summary');
    assert.equal(s.deltaSince(e0.epoch, 9), null, 'a generation from the future: whole summary');

    src.remove(1500);
    assert.equal(s.refresh(true), true);
    assert.notEqual(s.current().epoch, e0.epoch, 'half the paths gone: rebuilt');
    const e1 = s.current();
    src.add(Math.ceil(1503 * 1.1));
    s.refresh();
    assert.notEqual(s.current().epoch, e1.epoch, 'outgrew its room: rebuilt');
  });
});

describe('following a peer summary over HTTP', () => {
  const servers: http.Server[] = [];
  after(() => {
    for (const s of servers) s.close();
  });

  async function serve(handler: http.RequestListener): Promise<string> {
    const server = http.createServer(handler);
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  test('a path added on the peer is admitted within moments (no polling), others are not; a vanished peer goes stale', T, async (t) => {
    const src = new MemorySource();
    const present = src.add(5000);
    const summary = new StoreSummary(src);
    summary.refresh();
    const route = shareRouteOnly('summary', createSummaryHandler({ summary }));
    let requests = 0;
    // Each request as the peer saw it: what it asked, whether another was open then, how it ended.
    const asked: { url: string; overlapped: boolean; status?: number }[] = [];
    let open = 0;
    const url = await serve((req, res) => {
      requests++;
      const seen: (typeof asked)[number] = { url: req.url ?? '', overlapped: open > 0 };
      asked.push(seen);
      open++;
      res.once('close', () => {
        open--;
        seen.status = res.statusCode;
      });
      if (!route(req, res)) res.writeHead(404).end();
    });
    const followers = new PeerSummaries({ log, waitS: 2, staleMs: 3000 });
    followers.follow('b', url);
    await waitFor('the summary', async () => followers.view('b')?.state === 'ok', 5000);
    assert.equal(followers.mayHave('b', present[42]), true);
    const absent = Array.from({ length: 2000 }, hashPart);
    const admitted = absent.filter((h) => followers.mayHave('b', h)).length;
    assert.ok(admitted <= 60, `${admitted} of 2000 absent paths admitted`);

    const [added] = src.add(1);
    assert.equal(followers.mayHave('b', added), false);
    const t0 = Date.now();
    summary.refresh();
    await waitFor('the added path', async () => followers.mayHave('b', added), 30_000);
    const before = requests;
    const { epoch, generation } = followers.view('b')!;
    t.diagnostic(`added path admitted after ${Date.now() - t0} ms; ${admitted}/2000 absent paths admitted; view ${JSON.stringify(followers.view('b'))}`);
    // Quiet now: the next polls each ask the peer to wait for news after what is known, one at a time,
    // and the first is held until its wait ran out with nothing new (long poll, not polling).
    await waitFor('two more polls', async () => requests >= before + 2, 20_000);
    const quiet = asked.slice(before, before + 2);
    t.diagnostic(`polls while quiet: ${JSON.stringify(quiet)}`);
    for (const q of quiet) {
      assert.equal(q.url, `/peernix/summary?epoch=${epoch}&since=${generation}&wait=2`);
      assert.equal(q.overlapped, false, 'one poll at a time');
    }
    assert.equal(quiet[0].status, 204, 'the first ended with nothing new');

    for (const s of servers) s.closeAllConnections?.(), s.close();
    await waitFor('stale', async () => followers.mayHave('b', present[1]) === null, 8000);
    assert.equal(followers.view('b')?.state, 'stale');
    followers.close();
  });

  test('long polls that end with nothing new (204) keep one connection, and each tells its peer is alive', T, async (t) => {
    const src = new MemorySource();
    src.add(100);
    const summary = new StoreSummary(src);
    summary.refresh();
    const route = shareRouteOnly('summary', createSummaryHandler({ summary }));
    let polls = 0;
    const url = await serve((req, res) => {
      polls++;
      if (!route(req, res)) res.writeHead(404).end();
    });
    let connections = 0;
    servers.at(-1)!.on('connection', () => connections++);
    const contacts: number[] = [];
    const followers = new PeerSummaries({ log, waitS: 1, onContact: (_id, everyMs) => contacts.push(everyMs) });
    followers.follow('b', url);
    await waitFor('five polls', async () => polls >= 6, 20_000);
    followers.close();
    t.diagnostic(`${polls} polls over ${connections} connection(s); ${contacts.length} contacts`);
    assert.equal(connections, 1, `${polls} polls opened ${connections} connections`);
    assert.ok(contacts.length >= 5 && contacts.every((ms) => ms === 1000));
  });

  test('the wait a follower asks by default is one the route grants, under the listener’s idle cut', T, async () => {
    const src = new MemorySource();
    src.add(10);
    const summary = new StoreSummary(src);
    summary.refresh();
    const route = shareRouteOnly('summary', createSummaryHandler({ summary }));
    const asked: string[] = [];
    const url = await serve((req, res) => {
      asked.push(req.url ?? '');
      if (!route(req, res)) res.writeHead(404).end();
    });
    const followers = new PeerSummaries({ log });
    followers.follow('b', url);
    const waiting = await waitFor('a waiting poll', async () => asked.find((u) => u.includes('wait=')), 10_000);
    followers.close();
    assert.equal(new URL(waiting, url).searchParams.get('wait'), String(DEFAULT_WAIT_S));
    assert.ok(DEFAULT_WAIT_S * 1000 <= MAX_SUMMARY_WAIT_MS, 'the route would answer sooner than asked');
    assert.ok(MAX_SUMMARY_WAIT_MS < DEFAULT_LIMITS.stallMs, 'the listener would cut a waiting poll as idle');
  });

  test('a filter of all ones, a summary that changes all the time, garbage, and a cache without summaries: no summary (asked as before)', T, async (t) => {
    const allOnes = new BloomFilter(new Uint32Array(1024).fill(0xffffffff), 7);
    const saturated = encodeSummary({ epoch: '00000000000000aa', generation: 1, paths: 1, filter: allOnes });
    const u1 = await serve((_req, res) => res.writeHead(200, { 'content-type': 'application/x-peernix-summary' }).end(saturated));
    let gen = 0;
    const small = BloomFilter.withTargetError(100, 0.01);
    const u2 = await serve((_req, res) =>
      res
        .writeHead(200, { 'content-type': 'application/x-peernix-summary' })
        .end(encodeSummary({ epoch: '00000000000000bb', generation: gen++, paths: 0, filter: small })),
    );
    const u3 = await serve((_req, res) => res.writeHead(200, { 'content-type': 'application/x-peernix-summary' }).end(randomBytes(5000)));
    const u4 = await serve((_req, res) => res.writeHead(404).end('not found\n'));
    let quickAnswers = 0;
    const u5 = await serve((req, res) => {
      if (req.url === '/peernix/summary')
        return res
          .writeHead(200, { 'content-type': 'application/x-peernix-summary' })
          .end(encodeSummary({ epoch: '00000000000000cc', generation: 0, paths: 0, filter: small }));
      quickAnswers++;
      res.writeHead(204).end();
    });
    const followers = new PeerSummaries({ log, waitS: 1, maxUpdatesPerMinute: 20 });
    for (const [id, u] of [
      ['ones', u1],
      ['flapping', u2],
      ['garbage', u3],
      ['harmonia', u4],
    ])
      followers.follow(id, u);
    // The hasty peer's follower is paced by a clock the test drives.
    const clock = new FakeClock();
    const hastyFollower = new PeerSummaries({ log, waitS: 1, clock });
    hastyFollower.follow('hasty', u5);
    await waitFor(
      'all judged',
      async () => ['ones', 'flapping', 'garbage', 'harmonia'].every((id) => ['refused', 'unsupported'].includes(followers.view(id)!.state)),
      10_000,
    );
    for (const id of ['ones', 'flapping', 'garbage', 'harmonia']) {
      assert.equal(followers.mayHave(id, hashPart()), null, id);
      t.diagnostic(`${id}: ${followers.view(id)!.state} — ${followers.view(id)!.reason}`);
    }
    assert.match(followers.view('ones')!.reason!, /admits nearly everything/);
    assert.match(followers.view('flapping')!.reason!, /changed \d+ times in a minute/);
    assert.equal(followers.view('harmonia')!.state, 'unsupported');
    // A peer that answers every wait at once is asked again only once its interval (250 ms) has passed
    // on the follower's clock: after each answer the follower waits on that clock, and nothing is asked
    // before it is due.
    try {
      for (let i = 0; i < 4; i++) {
        await waitFor(`answer ${i} taken, and the follower waiting on its clock`, async () => quickAnswers === i && clock.pending === 1, 10_000);
        clock.advance(249);
        assert.equal(clock.pending, 1, 'still waiting 1 ms before its interval');
        assert.equal(quickAnswers, i, 'not asked again before its interval');
        clock.advance(1);
      }
      await waitFor('the last answer', async () => quickAnswers === 4, 10_000);
      t.diagnostic(`a peer that answers every wait at once: ${quickAnswers} polls in 1 s of the follower's clock`);
    } finally {
      hastyFollower.close();
      followers.close();
    }
  });
});
