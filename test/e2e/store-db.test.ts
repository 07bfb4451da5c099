// The store database fast path (src/store/store-db.ts) against a real Nix store: answers match the
// daemon's, and a path added or deleted is seen by the very next lookup despite the answer cache.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { addPath, cleanup, makeTempDir, startNixHost, treeFile, type NixHost } from '../support/nix-host.ts';
import { StoreDb } from '../../src/store/store-db.ts';
import { DaemonConnection } from '../../src/store/daemon-connection.ts';

const hashPart = (p: string): string => p.slice('/nix/store/'.length, '/nix/store/'.length + 32);

describe('store database lookups', { timeout: 120_000 }, () => {
  let dir: string;
  let host: NixHost;
  let db: StoreDb;

  before(async () => {
    dir = await makeTempDir('pn-storedb');
    host = await startNixHost(`${dir}/host`);
    await addPath(host, 'first', treeFile('first\n'));
    const opened = StoreDb.open(host.root);
    assert.ok(opened.db, opened.why ?? '');
    db = opened.db;
  });
  after(async () => {
    db?.close();
    await host?.stop();
    if (dir) await cleanup(dir);
  });

  it('answers as the daemon does, the same again when asked twice', async () => {
    const p = await addPath(host, 'answer', treeFile('answer\n'));
    const conn = await DaemonConnection.connect(host.socket, { timeoutMs: 5000 });
    try {
      const fromDaemon = await conn.queryPathInfo(p);
      const fromDb = db.byHashPart(hashPart(p));
      assert.ok(fromDb && fromDaemon);
      assert.equal(fromDb.path, fromDaemon.path);
      assert.ok(fromDb.narHash.equals(fromDaemon.narHash));
      assert.equal(fromDb.narSize, fromDaemon.narSize);
      assert.deepEqual(fromDb.references, [...fromDaemon.references].sort());
      assert.equal(db.byHashPart(hashPart(p)), fromDb, 'asked again, answered from the cache');
      assert.equal(db.byHashPart('0'.repeat(32)), null);
    } finally {
      conn.close();
    }
  });

  it('a deleted path is gone, and a new one there, at the very next lookup', async () => {
    const p = await addPath(host, 'short-lived', treeFile('short-lived\n'));
    for (let i = 0; i < 3; i++) assert.ok(db.byHashPart(hashPart(p)), 'known, and answered again from the cache');
    const del = await host.nixStore(['--delete', p]);
    assert.equal(del.code, 0, del.stderr);
    assert.equal(db.byHashPart(hashPart(p)), null);

    const q = await addPath(host, 'newcomer', treeFile('newcomer\n'));
    assert.ok(db.byHashPart(hashPart(q)));
  });

  it('a miss asked before a path is added is not remembered past the addition', async () => {
    // The path's hash is known only once added, so prime the cache with a lookup of the exact hash
    // part by adding, deleting and re-adding the same content.
    const p = await addPath(host, 'again', treeFile('again\n'));
    assert.equal((await host.nixStore(['--delete', p])).code, 0);
    assert.equal(db.byHashPart(hashPart(p)), null);
    assert.equal(db.byHashPart(hashPart(p)), null, 'remembered while nothing is written');
    const again = await addPath(host, 'again', treeFile('again\n'));
    assert.equal(again, p);
    assert.ok(db.byHashPart(hashPart(p)));
  });
});
