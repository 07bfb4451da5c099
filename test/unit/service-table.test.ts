// Discovery's service table: bounds per source and overall, expiry, and an eviction order that keeps
// proven entries. Time is driven explicitly.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ServiceTable, type TableEntry } from '../../src/peers/service-table.ts';

function table(standing: Map<string, number>, max = 64, perSource = 16) {
  return new ServiceTable<TableEntry>({
    max,
    perSource,
    standing: (k) => standing.get(k) ?? 0,
    minLifetimeMs: 125_000,
    maxLifetimeMs: 600_000,
    staleMs: 65_000,
  });
}

function entry(key: string, source: string, now: number, t?: ServiceTable<TableEntry>, ttl?: number): TableEntry {
  const e = { key, source, seenAt: now, expiresAt: now };
  t?.touch(e, now, ttl);
  return e;
}

describe('service table', () => {
  it('500 usable services from one address hold its quota without churn; quiet or unusable ones make room; a peer elsewhere gets in', (tc) => {
    const standing = new Map<string, number>();
    const t = table(standing);
    let admitted = 0;
    let evictedTotal = 0;
    for (let i = 0; i < 500; i++) {
      standing.set(`fake-${i}`, 1); // each has an address on this LAN
      const a = t.admit(entry(`fake-${i}`, '10.0.0.66', i, t));
      if (a.admitted) admitted++;
      evictedTotal += a.evicted.length;
    }
    tc.diagnostic(`after 500 fakes from one address: ${t.size} entries, ${admitted} admitted, ${evictedTotal} evicted`);
    assert.deepEqual([t.size, admitted, evictedTotal], [16, 16, 0]);
    const genuine = t.admit(entry('genuine', '10.0.0.2', 1000, t));
    assert.deepEqual(genuine, { admitted: true, evicted: [] });
    // One fake loses its address, and the rest go quiet: newcomers replace the unusable one first, then the quietest.
    standing.set('fake-7', 0);
    for (const k of ['late-1', 'late-2', 'late-3']) standing.set(k, 1);
    const later = [
      t.admit(entry('late-1', '10.0.0.66', 1000, t)),
      t.admit(entry('late-2', '10.0.0.66', 1000, t)),
      t.admit(entry('late-3', '10.0.0.66', 70_000, t)),
    ];
    const replaced = later.map((a) => (a.admitted ? a.evicted.map((e) => e.key).join() : 'refused'));
    tc.diagnostic(`replaced: ${replaced.join(', ')}`);
    assert.deepEqual(replaced, ['fake-7', 'refused', 'fake-0']);
  });

  it('when full, the newcomer replaces the weakest: unusable before usable, oldest first, never a proven one', (tc) => {
    const standing = new Map<string, number>();
    const t = table(standing, 4, 4);
    for (const [k, s] of [
      ['proven', 2],
      ['usable-old', 1],
      ['unusable-new', 0],
      ['usable-new', 1],
    ] as const) {
      standing.set(k, s);
      t.admit(entry(k, `10.0.0.${k.length}`, k.endsWith('old') ? 1 : 10, t));
    }
    const order: string[] = [];
    for (let i = 0; i < 3; i++) {
      const a = t.admit(entry(`new-${i}`, `10.0.1.${i}`, 100 + i, t));
      standing.set(`new-${i}`, 2); // each newcomer proves itself at once
      assert.equal(a.admitted, true);
      order.push(...a.evicted.map((e) => e.key));
    }
    tc.diagnostic(`eviction order: ${order.join(', ')}`);
    assert.deepEqual(order, ['unusable-new', 'usable-old', 'usable-new']);
    // Only proven entries left: a newcomer is turned away rather than displacing one.
    const refused = t.admit(entry('late', '10.0.2.1', 200, t));
    assert.equal(refused.admitted, false);
    assert.deepEqual(
      t
        .values()
        .map((e) => e.key)
        .sort(),
      ['new-0', 'new-1', 'new-2', 'proven'],
    );
  });

  it('a source whose quota is all proven cannot add more', () => {
    const standing = new Map<string, number>([
      ['a', 2],
      ['b', 2],
    ]);
    const t = table(standing, 64, 2);
    t.admit(entry('a', '10.0.0.9', 0, t));
    t.admit(entry('b', '10.0.0.9', 0, t));
    assert.equal(t.admit(entry('c', '10.0.0.9', 1, t)).admitted, false);
    assert.equal(t.admit(entry('d', '10.0.0.8', 1, t)).admitted, true);
  });

  it('entries not heard from expire: record TTL clamped between two query rounds and 10 minutes', (tc) => {
    const t = table(new Map());
    t.admit(entry('short-ttl', '10.0.0.1', 0, t, 1)); // 1 s TTL: kept for the minimum, 125 s
    t.admit(entry('srv-ttl', '10.0.0.1', 0, t, 200));
    t.admit(entry('huge-ttl', '10.0.0.1', 0, t, 2 ** 31));
    const refreshed = entry('refreshed', '10.0.0.1', 0, t, 120);
    t.admit(refreshed);
    t.touch(refreshed, 100_000, 120); // answered a query round
    const at = (ms: number) => t.expire(ms).map((e) => e.key);
    const expired = { 124_999: at(124_999), 125_000: at(125_000), 200_000: at(200_000), 225_000: at(225_000), 599_999: at(599_999), 600_000: at(600_000) };
    tc.diagnostic(`expired at: ${JSON.stringify(expired)}`);
    assert.deepEqual(expired, { 124_999: [], 125_000: ['short-ttl'], 200_000: ['srv-ttl'], 225_000: ['refreshed'], 599_999: [], 600_000: ['huge-ttl'] });
    assert.equal(t.size, 0);
  });
});
