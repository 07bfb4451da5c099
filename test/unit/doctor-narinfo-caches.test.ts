import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { test } from 'node:test';
import { negativeCacheChecks } from '../../src/doctor/negative-cache-checks.ts';
import { readNegativeCaches } from '../../src/doctor/negative-cache-reader.ts';
import type { DoctorFacts } from '../../src/doctor/facts.ts';

// A machine that upgraded Nix keeps binary-cache-v6.sqlite (Nix 2.8, 2.26) beside the -v7 one Nix 2.34
// writes: the doctor reads both and each check's DELETE names the file its misses are in. The two
// tables read here, as both schemas have them (checked against real Nix 2.26 and 2.34 files in
// test/e2e/modern-nix.test.ts).

const URL = 'http://127.0.0.1:9998';

function cacheFile(file: string, misses: string[]): void {
  const db = new DatabaseSync(file);
  db.exec(`create table BinaryCaches (id integer primary key autoincrement not null, url text unique not null, timestamp integer not null, storeDir text not null, wantMassQuery integer not null, priority integer not null);
    create table NARs (cache integer not null, hashPart text not null, namePart text, url text, compression text, fileHash text, fileSize integer, narHash text, narSize integer, refs text, deriver text, sigs text, ca text, timestamp integer not null, present integer not null, primary key (cache, hashPart));`);
  db.prepare('insert into BinaryCaches (url, timestamp, storeDir, wantMassQuery, priority) values (?, 1000, ?, 1, 30)').run(URL, '/nix/store');
  for (const h of misses) db.prepare('insert into NARs (cache, hashPart, timestamp, present) values (1, ?, 1000, 0)').run(h);
  db.close();
}

test('every narinfo-cache schema in a directory is read, newest first, each named by its own file', (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'pn-nic-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  cacheFile(path.join(dir, 'binary-cache-v6.sqlite'), ['a'.repeat(32)]);
  cacheFile(path.join(dir, 'binary-cache-v7.sqlite'), ['b'.repeat(32), 'c'.repeat(32)]);
  writeFileSync(path.join(dir, 'binary-cache-v7.sqlite-journal-not-a-cache'), '');
  const files = readNegativeCaches(dir, 'nix-daemon', [URL]);
  assert.deepEqual(
    files.map((f) => [path.basename(f.file), f.misses.length]),
    [
      ['binary-cache-v7.sqlite', 2],
      ['binary-cache-v6.sqlite', 1],
    ],
  );

  const checks = negativeCacheChecks({ now: 1500_000, negativeCaches: files, userConf: { layer: null }, system: { layer: null } } as unknown as DoctorFacts);
  assert.deepEqual(
    checks.map((c) => c.status),
    ['warn', 'warn'],
  );
  assert.notEqual(checks[0].id, checks[1].id);
  assert.match(checks[0].fix!, new RegExp(`sqlite3 ${dir}/binary-cache-v7.sqlite "DELETE`));
  assert.match(checks[1].fix!, new RegExp(`sqlite3 ${dir}/binary-cache-v6.sqlite "DELETE`));
});

test('a directory Nix has written no cache in: one "nothing remembered" answer, not an error', (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'pn-nic-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const files = readNegativeCaches(path.join(dir, 'missing'), 'alice', [URL]);
  assert.equal(files.length, 1);
  assert.equal(files[0].state, 'absent');
  assert.match(files[0].file, /binary-cache-v\*\.sqlite$/);
});
