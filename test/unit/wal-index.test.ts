import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, before, describe, it } from 'node:test';
import { WalIndexWatch } from '../../src/store/wal-index.ts';

describe('WalIndexWatch', () => {
  let dir: string;
  let writer: DatabaseSync;
  let reader: DatabaseSync;
  let file: string;

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'peernix-wal-'));
    file = path.join(dir, 'db.sqlite');
    writer = new DatabaseSync(file);
    writer.exec('PRAGMA journal_mode = wal; CREATE TABLE t (x INTEGER)');
    reader = new DatabaseSync(file, { readOnly: true });
    reader.prepare('SELECT count(*) FROM t').get();
  });
  after(() => {
    reader?.close();
    writer?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('stays the same while nobody writes, and moves on every write transaction and checkpoint', () => {
    const w = WalIndexWatch.open(file)!;
    assert.ok(w);
    try {
      const g0 = w.current();
      assert.notEqual(g0, null);
      reader.prepare('SELECT * FROM t').all();
      assert.equal(w.current(), g0, 'reads are not writes');
      writer.exec('INSERT INTO t VALUES (1)');
      const g1 = w.current();
      assert.notEqual(g1, g0);
      assert.equal(w.current(), g1);
      writer.exec('BEGIN; INSERT INTO t VALUES (2); DELETE FROM t WHERE x = 1; COMMIT');
      const g2 = w.current();
      assert.notEqual(g2, g1);
      writer.exec('PRAGMA wal_checkpoint(TRUNCATE)');
      assert.notEqual(w.current(), g2);
    } finally {
      w.close();
    }
  });

  it('a database not in WAL mode has nothing to watch', () => {
    const plain = path.join(dir, 'plain.sqlite');
    const db = new DatabaseSync(plain);
    db.exec('CREATE TABLE t (x INTEGER)');
    db.close();
    assert.equal(WalIndexWatch.open(plain), null);
  });

  it('a header whose two copies differ (caught mid-rewrite) or that is not initialised cannot be trusted', () => {
    const fake = path.join(dir, 'fake.sqlite');
    const shm = Buffer.alloc(32768);
    shm[12] = 1;
    shm[48 + 12] = 1;
    shm[8] = 7; // first copy's change counter differs from the second's
    fs.writeFileSync(`${fake}-shm`, shm);
    const w = WalIndexWatch.open(fake)!;
    try {
      assert.equal(w.current(), null);
      shm[48 + 8] = 7;
      fs.writeFileSync(`${fake}-shm`, shm);
      assert.notEqual(w.current(), null, 'equal copies are trusted');
      shm[12] = 0;
      shm[48 + 12] = 0;
      fs.writeFileSync(`${fake}-shm`, shm);
      assert.equal(w.current(), null, 'isInit = 0');
    } finally {
      w.close();
    }
  });
});
