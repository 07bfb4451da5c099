import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, describe, it } from 'node:test';
import { StoreDb } from '../../src/store/store-db.ts';

// StoreDb on a database with Nix's schema, written by a second connection as the daemon would.
// The end-to-end test (test/e2e/store-db.test.ts) does the same against a real Nix.

const HASH = 'sha256:' + 'ab'.repeat(32);

function makeStore(journal: 'wal' | 'delete'): { root: string; writer: DatabaseSync } {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'peernix-storedb-'));
  fs.mkdirSync(path.join(root, 'nix/var/nix/db'), { recursive: true });
  const writer = new DatabaseSync(path.join(root, 'nix/var/nix/db/db.sqlite'));
  writer.exec(`PRAGMA journal_mode = ${journal};
    CREATE TABLE ValidPaths (id integer primary key autoincrement not null, path text unique not null, hash text not null,
      registrationTime integer not null, deriver text, narSize integer, ultimate integer, sigs text, ca text);
    CREATE TABLE Refs (referrer integer not null, reference integer not null, primary key (referrer, reference));`);
  return { root, writer };
}

function register(writer: DatabaseSync, hashPart: string): void {
  writer.prepare('INSERT INTO ValidPaths (path, hash, registrationTime, narSize) VALUES (?, ?, 1, 120)').run(`/nix/store/${hashPart}-x`, HASH);
}

describe('StoreDb', () => {
  const cleanups: (() => void)[] = [];
  after(() => cleanups.forEach((f) => f()));

  for (const journal of ['wal', 'delete'] as const) {
    it(`[${journal}] sees every registration and deletion at the next lookup`, () => {
      const { root, writer } = makeStore(journal);
      if (journal === 'delete') {
        // A WAL index left over from earlier: its header never changes, so it must not be trusted.
        const shm = Buffer.alloc(32768);
        shm[12] = 1;
        shm[60] = 1;
        fs.writeFileSync(path.join(root, 'nix/var/nix/db/db.sqlite-shm'), shm);
      }
      const opened = StoreDb.open(root);
      assert.ok(opened.db, opened.why ?? '');
      const db = opened.db;
      cleanups.push(() => {
        db.close();
        writer.close();
        fs.rmSync(root, { recursive: true, force: true });
      });
      const a = 'a'.repeat(32);
      const b = 'b'.repeat(32);
      assert.equal(db.byHashPart(a), null);
      assert.equal(db.byHashPart(a), null);
      register(writer, a);
      assert.equal(db.byHashPart(a)?.path, `/nix/store/${a}-x`);
      assert.equal(db.byHashPart(b), null);
      writer.exec(`DELETE FROM ValidPaths WHERE path = '/nix/store/${a}-x'`);
      assert.equal(db.byHashPart(a), null);
      register(writer, a); // back, with a new id
      register(writer, b);
      assert.ok(db.byHashPart(a));
      assert.ok(db.byHashPart(b));
    });
  }
});
