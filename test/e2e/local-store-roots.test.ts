// NARs of one path served at once or soon after each other share one temp-root connection to the
// real nix-daemon (local-store.ts): pieces of a NAR fetched from several holders at once would
// otherwise each fork a daemon worker. The root still protects the path while in use, lingers a
// while after a NAR went out whole (on the injected clock), goes at once after a cut one, and only a
// bounded number linger.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Readable } from 'node:stream';
import { LocalStore } from '../../src/store/local-store.ts';
import { FakeClock } from '../support/fake-clock.ts';
import { addPath, childPids, cleanup, makeTempDir, type NixHost, startNixHost, treeFile } from '../support/nix-host.ts';
import { waitFor } from '../support/wait.ts';

const H = (p: string) => p.slice('/nix/store/'.length, '/nix/store/'.length + 32);

async function drain(s: Readable): Promise<number> {
  let n = 0;
  for await (const b of s) n += (b as Buffer).length;
  return n;
}

describe('LocalStore temp roots shared by the NARs of one path', () => {
  let dir: string;
  let host: NixHost;
  let store: LocalStore;
  const clock = new FakeClock();
  const paths: { path: string; narHash: Buffer; narSize: number }[] = [];

  before(
    async () => {
      dir = await makeTempDir('pn-roots');
      host = await startNixHost(`${dir}/host`);
      for (let i = 0; i < 11; i++) {
        const p = await addPath(host, `roots-${i}`, treeFile(`path ${i}\n`.repeat(1000 + i)));
        const [info] = await host.pathInfoJson([p]);
        paths.push({ path: p, narHash: Buffer.from(info.narHash.slice('sha256-'.length), 'base64'), narSize: info.narSize });
      }
      store = new LocalStore({ location: { socketPath: host.socket, root: host.root }, useDb: false, clock });
    },
    { timeout: 120_000 },
  );

  after(
    async () => {
      await store?.close();
      await host?.stop();
      if (dir) await cleanup(dir);
    },
    { timeout: 30_000 },
  );

  const open = async (i: number) => {
    const nar = await store.openNar(H(paths[i].path), paths[i].narHash);
    assert.ok(typeof nar !== 'string', `path ${i}: ${String(nar)}`);
    return nar;
  };
  const deletable = async (i: number) => (await host.nixStore(['--delete', paths[i].path])).code === 0;
  const workers = () => childPids(host.pid()!).length;

  it('two pieces at once share one connection; after they went out whole it lingers, then goes', { timeout: 60_000 }, async () => {
    await store.pathInfoByHashPart(H(paths[0].path)); // the pool's lookup connection, before counting
    const idle = workers();
    const a = await open(0);
    const b = await open(0);
    assert.equal(workers(), idle + 1, 'one daemon worker for both');
    assert.deepEqual(store.heldRoots, [{ path: paths[0].path, users: 2 }]);
    const half = Math.floor(paths[0].narSize / 2);
    assert.equal((await drain(a.streamFrom!(0, half))) + (await drain(b.streamFrom!(half))), paths[0].narSize);
    a.release(true);
    b.release(true);
    assert.deepEqual(store.heldRoots, [{ path: paths[0].path, users: 0 }]);
    assert.equal(await deletable(0), false, 'the lingering root still protects the path');
    // A third piece within the linger takes the same root, no new worker.
    const c = await open(0);
    assert.equal(workers(), idle + 1);
    c.release(true);
    clock.advance(2000);
    await waitFor('the lingering root to go', async () => store.heldRoots.length === 0, 10_000);
    await waitFor('the path to be deletable once the root went', () => deletable(0), 10_000);
  });

  it('a NAR cut short gives its root up at once', { timeout: 60_000 }, async () => {
    const a = await open(1);
    a.release(false);
    await waitFor('the root to go without any time passing', async () => store.heldRoots.length === 0, 10_000);
    await waitFor('the path to be deletable', () => deletable(1), 10_000);
  });

  it('at most eight roots linger unused; the longest-waiting go first', { timeout: 60_000 }, async () => {
    for (let i = 2; i < 11; i++) (await open(i)).release(true);
    await waitFor('the ninth idle root to push out the first', async () => store.heldRoots.length === 8, 10_000);
    assert.deepEqual(
      store.heldRoots.map((r) => r.path),
      paths.slice(3, 11).map((p) => p.path),
    );
    clock.advance(2000);
    await waitFor('every lingering root to go', async () => store.heldRoots.length === 0, 10_000);
  });
});
