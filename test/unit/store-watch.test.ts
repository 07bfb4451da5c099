import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { createLogger } from '../../src/base/log.ts';
import { StoreWatch } from '../../src/domain/store-watch.ts';
import { watchFolder } from '../../src/store/folder-watch.ts';
import { StoreSummary } from '../../src/store/store-summary.ts';
import { FakeClock } from '../support/fake-clock.ts';
import { MemorySource } from '../support/memory-source.ts';

// The store summary follows the store (#26 idle cost): a write to the database's folder, told by the
// kernel, brings what was added into the summary at once; a change the kernel didn't tell of comes
// in at the 10 s fallback; a folder that can't be watched is looked at twice a second, as before;
// deletions rebuild it within 10 s either way. The kernel's events are real (a temp folder written),
// the timers the fake clock's.

const log = createLogger('error');

const healthy = { health: async () => ({ ok: true, version: 'test', error: null }) };

describe('the store summary follows the store', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'store-watch-'));
  after(() => fs.rmSync(root, { recursive: true, force: true }));

  /** A StoreWatch on a folder of its own; `events` resolves each time the kernel told of a write there. */
  /** `watchable: false`: every watch is refused (inotify's limit); `exists: false`: the folder is made later. */
  async function setUp(name: string, opts: { watchable?: boolean; exists?: boolean } = {}) {
    const folder = path.join(root, name);
    if (opts.exists !== false) fs.mkdirSync(folder);
    const source = new MemorySource();
    source.add(50);
    const summary = new StoreSummary(source);
    const clock = new FakeClock();
    let told: () => void = () => {};
    const nextEvent = () => new Promise<void>((resolve) => (told = resolve));
    const watch = new StoreWatch({
      store: healthy,
      summary,
      sharing: () => true,
      log,
      changed: () => {},
      dbFolder: folder,
      clock,
      watch: (f, onEvent, onError) => {
        if (opts.watchable === false) throw new Error('ENOSPC');
        return watchFolder(
          f,
          () => {
            onEvent();
            told();
          },
          onError,
        );
      },
    });
    await watch.start();
    return { folder, source, summary, clock, watch, nextEvent };
  }

  it('takes in a path added as soon as the kernel tells of the write', async (t) => {
    const s = await setUp('told');
    t.after(() => s.watch.stop());
    assert.equal(s.watch.watchingDb, true);
    const before = s.summary.current();
    s.source.add(1);
    s.clock.advance(5_000);
    assert.deepEqual(s.summary.current(), before, 'nothing told yet, and the fallback is 10 s away');

    const seen = s.nextEvent();
    fs.writeFileSync(path.join(s.folder, 'db.sqlite-wal'), 'a write');
    await seen;
    s.clock.advance(100);
    assert.equal(s.summary.current().epoch, before.epoch);
    assert.equal(s.summary.current().generation, before.generation + 1);
  });

  it('takes in a path the kernel never told of at the 10 s fallback', async (t) => {
    const s = await setUp('untold');
    t.after(() => s.watch.stop());
    const before = s.summary.current();
    s.source.add(1);
    s.clock.advance(9_900);
    assert.deepEqual(s.summary.current(), before);
    s.clock.advance(100);
    assert.equal(s.summary.current().generation, before.generation + 1);
  });

  it('looks twice a second while the folder cannot be watched', async (t) => {
    const s = await setUp('refused', { watchable: false });
    t.after(() => s.watch.stop());
    assert.equal(s.watch.watchingDb, false);
    const before = s.summary.current();
    s.source.add(1);
    s.clock.advance(500);
    assert.equal(s.summary.current().generation, before.generation + 1);
  });

  it("watches the nearest existing folder while the database's doesn't exist, and the folder once it does", async (t) => {
    const s = await setUp('not-yet', { exists: false });
    t.after(() => s.watch.stop());
    assert.equal(s.watch.watchingDb, true, 'its parent is watched: no fast tick');
    const before = s.summary.current();

    let seen = s.nextEvent();
    fs.mkdirSync(s.folder);
    await seen; // the parent's watch tells of the folder's creation
    s.clock.advance(100);
    s.source.add(1);
    seen = s.nextEvent();
    fs.writeFileSync(path.join(s.folder, 'db.sqlite-wal'), 'a write');
    await seen; // now the folder's own watch
    s.clock.advance(100);
    assert.equal(s.summary.current().generation, before.generation + 1);
    assert.equal(s.watch.watchingDb, true);
  });

  it('rebuilds on deletions within 10 s, watched or not', async (t) => {
    for (const watchable of [true, false]) {
      const s = await setUp(`deleted-${watchable}`, { watchable });
      t.after(() => s.watch.stop());
      s.source.add(2000);
      s.clock.advance(10_000);
      const before = s.summary.current();
      s.source.remove(1500); // over the rebuild threshold (1000 paths, 10 %)
      if (watchable) {
        const seen = s.nextEvent();
        fs.writeFileSync(path.join(s.folder, 'db.sqlite-wal'), 'a deletion');
        await seen;
      }
      s.clock.advance(10_000);
      assert.notEqual(s.summary.current().epoch, before.epoch, `a new epoch (${watchable ? 'watched' : 'unwatched'})`);
    }
  });

  it('stops looking when stopped', async () => {
    const s = await setUp('stopped');
    s.watch.stop();
    assert.equal(s.clock.pending, 0);
  });
});
