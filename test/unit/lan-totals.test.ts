import { format } from 'node:util';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import type { PeernixEvent } from '../../src/base/api.ts';
import { EventLog } from '../../src/base/events.ts';
import { LAN_TOTALS_FILE, LanTotals, localDay } from '../../src/domain/lan-totals.ts';
import { createLogger } from '../../src/base/log.ts';

// The LAN totals with an explicit clock (local time: the process runs in Europe/Berlin here, so
// day and week edges are local, not UTC), fed by a real EventLog, persisted to a real directory.

process.env.TZ = 'Europe/Berlin';
const log = createLogger('error');
const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(path.join(tmpdir(), 'pn-lan-totals-'));
  dirs.push(d);
  return d;
};
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const at = (y: number, mo: number, d: number, h = 12, mi = 0) => new Date(y, mo - 1, d, h, mi).getTime();
type T = Extract<PeernixEvent, { type: 'transfer' }>;
const transfer = (direction: 'in' | 'out', bytes: number, outcome: T['outcome'] = 'ok') =>
  ({ type: 'transfer', storePath: '/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-x', direction, peerName: 'b', bytes, wireBytes: bytes, outcome }) as const;

describe('LanTotals', () => {
  test('counts fetched and served paths per local day, misses, and the week since Monday', (t) => {
    let now = at(2026, 11, 30, 0, 30); // Monday 00:30 in Berlin = Sunday 23:30 UTC
    const events = new EventLog();
    const totals = new LanTotals({ file: null, now: () => now });
    totals.follow((l) => events.subscribe(l));
    events.emit(transfer('in', 1000));
    events.emit(transfer('in', 500, 'resumed'));
    events.emit(transfer('in', 700, 'failed')); // arrived broken: no saving
    events.emit(transfer('out', 300));
    totals.countMiss();
    assert.equal(localDay(now), '2026-11-30');
    let v = totals.view();
    t.diagnostic(format('Monday:', JSON.stringify(v.today)));
    assert.deepEqual(v.today, { fetchedBytes: 1500, fetchedPaths: 2, servedBytes: 300, servedPaths: 1, misses: 1 });
    assert.deepEqual(v.week, v.today);

    now = at(2026, 12, 2, 23, 59); // Wednesday, same week
    events.emit(transfer('in', 10));
    v = totals.view();
    assert.deepEqual(v.today, { fetchedBytes: 10, fetchedPaths: 1, servedBytes: 0, servedPaths: 0, misses: 0 });
    assert.equal(v.week.fetchedBytes, 1510);
    assert.equal(v.week.fetchedPaths, 3);

    now = at(2026, 12, 7, 0, 1); // the next Monday: a new week
    v = totals.view();
    t.diagnostic(format('next Monday:', JSON.stringify(v.week)));
    assert.equal(v.week.fetchedBytes, 0);
    assert.equal(v.today.fetchedBytes, 0);
  });

  test('bytes per minute over the last hour, oldest first; older minutes fall off', () => {
    let now = at(2026, 11, 30, 10, 0);
    const totals = new LanTotals({ file: null, now: () => now });
    totals.flow('in', 100);
    now += 30_000;
    totals.flow('in', 50);
    totals.flow('out', 7);
    now += 60_000 * 5;
    totals.flow('out', 9);
    let m = totals.view().minutes;
    assert.equal(m.inBytes.length, 60);
    assert.equal(m.outBytes.length, 60);
    assert.equal(m.inBytes[54], 150);
    assert.equal(m.outBytes[54], 7);
    assert.equal(m.outBytes[59], 9);
    assert.equal(m.start, Math.floor(now / 60_000) * 60_000 - 59 * 60_000);
    now += 60 * 60_000;
    m = totals.view().minutes;
    assert.equal(
      m.inBytes.reduce((a, b) => a + b, 0),
      0,
      'an hour later nothing is left',
    );
  });

  test('persists atomically, survives a restart, and keeps at most 14 days', (t) => {
    const dir = tmp();
    const file = path.join(dir, LAN_TOTALS_FILE);
    let now = at(2026, 11, 1);
    const a = new LanTotals({ file, now: () => now, log });
    for (let d = 0; d < 30; d++) {
      now = at(2026, 11, 1 + d);
      a.record({ ...transfer('in', 1000 + d), id: d, time: now });
    }
    a.flow('in', 42);
    a.close();
    const size = statSync(file).size;
    t.diagnostic(`30 days recorded → ${size} bytes on disk`);
    assert.ok(size < 4096, `bounded: ${size} bytes`);
    assert.deepEqual(readdirSync(dir), [LAN_TOTALS_FILE], 'no temporary file left');
    const stored = JSON.parse(readFileSync(file, 'utf8'));
    assert.equal(Object.keys(stored.days).length, 14);
    const b = new LanTotals({ file, now: () => now, log });
    assert.equal(b.view().today.fetchedBytes, 1029);
    assert.equal(b.view().minutes.inBytes[59], 42);
  });

  test('a corrupt file is set aside and counting starts again; nothing throws', () => {
    for (const bad of [
      '{"version":1,"days":{"2026-11-30":{"fetchedBytes":-1}}',
      'not json',
      JSON.stringify({ version: 1, days: { x: {} }, minutes: [] }),
      JSON.stringify({ version: 2 }),
    ]) {
      const dir = tmp();
      const file = path.join(dir, LAN_TOTALS_FILE);
      writeFileSync(file, bad);
      const t = new LanTotals({ file, now: () => at(2026, 11, 30), log });
      assert.equal(t.view().today.fetchedBytes, 0);
      const names = readdirSync(dir);
      assert.equal(names.length, 1);
      assert.match(names[0], /^lan-totals\.json\.corrupt-/);
      t.countMiss();
      t.flush();
      assert.ok(existsSync(file), 'a fresh file is written');
    }
  });
});
