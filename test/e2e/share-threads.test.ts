import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { addPath, cleanup, makeTempDir, run, startNixHost, type NixHost } from '../support/nix-host.ts';
import { get } from '../support/http.ts';
import { MAIN, startPeernixProcess, type PeernixProcess } from '../support/peernix-process.ts';
import { waitFor } from '../support/wait.ts';

// The share listener on several event loops (app/share-loops.ts): the main thread and two worker
// threads bound to one port with SO_REUSEPORT. Which loop answered is read from the debug log: a
// worker's lines say "share loop N", the main thread's don't. The per-address NAR cap holds across
// loops (one NarSlots in the main thread), and switching sharing off closes every loop's listener.

const H = (p: string) => p.slice(11, 43);

describe('share listener on several threads', { timeout: 240_000 }, () => {
  let dir: string;
  let host: NixHost;
  let pn: PeernixProcess;
  let big: string;
  let base: string;
  const cli = (args: string[]) =>
    run(process.execPath, [MAIN, ...args, '--listen', new URL(pn.substituterUrl).host, '--state-dir', `${dir}/state`], { timeoutMs: 30_000 });

  before(async () => {
    dir = await makeTempDir('pn-threads');
    host = await startNixHost(`${dir}/host`);
    // Big enough that a reader that stopped holds its stream (and its slot) open.
    big = await addPath(host, 'threads-big', { type: 'file', size: 24 * 1024 * 1024, seed: 'threads' });
    pn = await startPeernixProcess(
      [
        '--store',
        host.storeUri,
        '--share-listen',
        '127.0.0.1:0',
        '--listen',
        '127.0.0.1:0',
        '--state-dir',
        `${dir}/state`,
        '--no-mdns',
        '--share-threads',
        '2',
        '--log-level',
        'debug',
      ],
      { env: { PEERNIX_LIMITS: 'narStreamsPerAddress=2,narQueueWaitMs=1500' } },
    );
    base = pn.shareUrl!;
  });

  after(async () => {
    await pn?.stop();
    await host?.stop();
    if (dir) await cleanup(dir);
  });

  /** The loops whose request lines name this URL part: 0 for the main thread, N for worker N. */
  function loopsThatServed(part: string): Set<number> {
    const loops = new Set<number>();
    for (const line of pn.logs().split('\n')) {
      if (!line.includes(` GET ${part}`) && !line.includes(` GET /${part}`)) continue;
      const m = /share loop (\d+)/.exec(line);
      loops.add(m ? Number(m[1]) : 0);
    }
    return loops;
  }

  it('connections land on more than one loop, and every loop answers alike', async () => {
    const marker = `${H(big)}.narinfo`;
    const answers = await Promise.all(Array.from({ length: 48 }, () => get(`${base}/${marker}`)));
    assert.deepEqual(new Set(answers.map((a) => a.status)), new Set([200]));
    assert.equal(new Set(answers.map((a) => a.body.toString())).size, 1, 'the same narinfo from every loop');
    await waitFor('the request lines', async () => loopsThatServed(marker).size >= 2, 10_000);
  });

  it('the per-address NAR cap holds across loops', async () => {
    const info = (await get(`${base}/${H(big)}.narinfo`)).body.toString();
    const narPath = /^URL: (.*)$/m.exec(info)![1];
    // Eight connections from one address at once, each reading only its first bytes: two streams at
    // most may be open for that address, whichever loops took the connections.
    const held: (() => void)[] = [];
    const statuses = await Promise.all(
      Array.from(
        { length: 8 },
        () =>
          new Promise<number>((resolve, reject) => {
            const req = request(`${base}/${narPath}`, { agent: false }, (res) => {
              held.push(() => req.destroy());
              if (res.statusCode === 200) res.once('data', () => res.pause());
              else res.resume();
              resolve(res.statusCode!);
            });
            req.on('error', reject);
            req.end();
          }),
      ),
    );
    try {
      assert.equal(statuses.filter((s) => s === 200).length, 2, `statuses: ${statuses.join(' ')}`);
      assert.equal(statuses.filter((s) => s === 503).length, 6, `statuses: ${statuses.join(' ')}`);
    } finally {
      for (const cut of held) cut();
    }
    await waitFor('the NAR request lines', async () => loopsThatServed(narPath).size >= 2, 10_000);
    // The slots came back: a later stream is admitted.
    await waitFor('a slot after the cut', async () => (await get(`${base}/${narPath}`)).status === 200, 10_000);
  });

  it('sharing off closes every loop’s listener; on opens them all again', async () => {
    const port = Number(new URL(base).port);
    assert.equal((await cli(['sharing', 'off'])).stdout, 'sharing is off\n');
    // SO_REUSEPORT would hand some of these to a loop still listening.
    const tries = await Promise.allSettled(Array.from({ length: 32 }, () => get(`http://127.0.0.1:${port}/nix-cache-info`)));
    assert.deepEqual(
      tries.map((t) => (t.status === 'rejected' ? /ECONNREFUSED/.test(String(t.reason)) : t.value.status)),
      tries.map(() => true),
    );
    assert.equal((await cli(['sharing', 'on'])).stdout, 'sharing is on\n');
    const url = [...pn.logs().matchAll(/sharing turned on: (http:\S+)/g)].at(-1)![1];
    const answers = await Promise.all(Array.from({ length: 32 }, () => get(`${url}/nix-cache-info`)));
    assert.deepEqual(new Set(answers.map((a) => a.status)), new Set([200]));
    base = url;
  });
});
