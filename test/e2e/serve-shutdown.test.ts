import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { addPath, cleanup, makeTempDir, startNixHost, type NixHost } from '../support/nix-host.ts';
import { get, narinfoField } from '../support/http.ts';
import { startPeernixProcess, type PeernixProcess } from '../support/peernix-process.ts';
import { waitFor } from '../support/wait.ts';

// `peernix serve` stopped by a signal while a slow client downloads a NAR. The process is Node itself
// (no shell wrapper), so the signal reaches the process that handles it.
//
// Decided: the first SIGTERM stops accepting, lets the running download finish (up to 10 s) and exits
// 0; a second SIGTERM cuts what is still running and exits 1 at once (the cut download was not a
// clean end, so a supervisor should see a failure).

// Big enough that the NAR cannot sit in loopback socket buffers (several MiB) when the signal comes.
const SIZE = 64 * 1024 * 1024;
const RATE = 12 * 1024 * 1024; // bytes/s: the download takes ~5 s, inside the 10 s grace

interface Download {
  done: Promise<{ code: number | null; bytes: number; sha256: string }>;
  bytesSoFar(): number;
}

function slowDownload(url: string, rate: number): Download {
  const curl = spawn('curl', ['-sS', '--fail', '--limit-rate', String(rate), '-o', '-', url], { stdio: ['ignore', 'pipe', 'pipe'] });
  const hash = createHash('sha256');
  let bytes = 0;
  curl.stdout.on('data', (b: Buffer) => {
    bytes += b.length;
    hash.update(b);
  });
  curl.stderr.resume();
  return {
    bytesSoFar: () => bytes,
    done: once(curl, 'close').then(([code]) => ({ code: code as number | null, bytes, sha256: hash.digest('hex') })),
  };
}

/** A loopback port free right now (the instances must know each other's ports before they start). */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

describe('peernix serve: SIGTERM while a transfer runs', { timeout: 300_000 }, () => {
  let dir: string;
  let host: NixHost;
  let big: string;
  let expected: { sha256: string; size: number };
  const procs: PeernixProcess[] = [];

  before(async () => {
    dir = await makeTempDir('pn-sig');
    host = await startNixHost(`${dir}/host`);
    big = await addPath(host, 'slow-one', { type: 'file', size: SIZE, seed: 'sig' });
    const d = await host.dumpHash(big);
    expected = { sha256: d.sha256.toString('hex'), size: d.size };
  });

  after(async () => {
    for (const p of procs) await p.stop('SIGKILL');
    await host?.stop();
    if (dir) await cleanup(dir);
  });

  async function start(name: string): Promise<{ pn: PeernixProcess; narUrl: string }> {
    const pn = await startPeernixProcess(
      ['--store', host.storeUri, '--share-listen', '127.0.0.1:0', '--listen', '127.0.0.1:0', '--state-dir', `${dir}/${name}`, '--no-mdns'],
      { main: undefined },
    );
    procs.push(pn);
    const hash = big.slice('/nix/store/'.length, '/nix/store/'.length + 32);
    const ni = await get(`${pn.shareUrl}/${hash}.narinfo`);
    assert.equal(ni.status, 200);
    return { pn, narUrl: new URL(narinfoField(ni.body.toString(), 'URL')!, pn.shareUrl! + '/').href };
  }

  it('one SIGTERM: the running NAR completes byte-exact, new connections are refused, exit 0', async (t) => {
    const { pn, narUrl } = await start('one');
    const dl = slowDownload(narUrl, RATE);
    await waitFor('download under way', async () => dl.bytesSoFar() > 4 * 1024 * 1024, 20_000);
    const t0 = Date.now();
    const sentAt = dl.bytesSoFar();
    pn.proc.kill('SIGTERM');
    const exited = once(pn.proc, 'exit');
    // The listener stops accepting at once.
    await waitFor(
      'listener closed',
      async () =>
        await get(`${pn.shareUrl}/nix-cache-info`).then(
          () => false,
          () => true,
        ),
      5_000,
    );
    const r = await dl.done;
    const [code] = (await exited) as [number | null];
    const ms = Date.now() - t0;
    t.diagnostic(`signal sent at ${sentAt} bytes; download ${r.bytes} bytes (curl exit ${r.code}); peernix exit ${code} ${ms} ms after one SIGTERM`);
    assert.equal(r.code, 0);
    assert.equal(r.bytes, expected.size);
    assert.equal(r.sha256, expected.sha256);
    assert.equal(code, 0, pn.logs());
    assert.doesNotMatch(pn.logs(), /second SIGTERM/);
    assert.match(pn.logs(), /SIGTERM: stopping/);
  });

  it('idle instances that follow each other as --peer peers each exit within 1 s of one SIGTERM', async (t) => {
    // Each polls the next one's summary (a long poll held open on its share listener): a held poll
    // is not a transfer, so nothing should make the stop wait for its grace period.
    const ports = [await freePort(), await freePort(), await freePort()];
    const pns: PeernixProcess[] = [];
    for (const [i, port] of ports.entries()) {
      const peers = ports.filter((p) => p !== port).flatMap((p) => ['--peer', `http://127.0.0.1:${p}`]);
      const pn = await startPeernixProcess(
        [
          '--store',
          host.storeUri,
          '--share-listen',
          `127.0.0.1:${port}`,
          '--listen',
          '127.0.0.1:0',
          '--state-dir',
          `${dir}/follow-${i}`,
          '--no-mdns',
          ...peers,
        ],
        { main: undefined },
      );
      procs.push(pn);
      pns.push(pn);
    }
    // Every instance sees both others up and holds a summary poll on each.
    for (const pn of pns) {
      await waitFor(
        'both peers up',
        async () => {
          const s = JSON.parse((await get(`${pn.substituterUrl}/peernix/api/snapshot`)).body.toString()) as { peers: { state: string }[] };
          return s.peers.filter((p) => p.state === 'up').length === 2;
        },
        20_000,
      );
    }
    await new Promise((r) => setTimeout(r, 3000)); // a summary round or two, so long polls are held
    const took: number[] = [];
    for (const pn of pns) {
      const exited = once(pn.proc, 'exit');
      const t0 = Date.now();
      pn.proc.kill('SIGTERM');
      const [code] = (await exited) as [number | null];
      took.push(Date.now() - t0);
      assert.equal(code, 0, pn.logs());
    }
    t.diagnostic(`idle SIGTERM of three instances following each other: ${took.join(', ')} ms`);
    for (const ms of took) assert.ok(ms < 1000, `an idle instance took ${ms} ms to exit`);
  });

  it('a second SIGTERM cuts the running NAR and exits 1 promptly', async (t) => {
    const { pn, narUrl } = await start('two');
    const dl = slowDownload(narUrl, 3 * 1024 * 1024); // would take ~20 s
    await waitFor('download under way', async () => dl.bytesSoFar() > 4 * 1024 * 1024, 20_000);
    const exited = once(pn.proc, 'exit');
    pn.proc.kill('SIGTERM');
    await waitFor('first signal taken', async () => /SIGTERM: stopping/.test(pn.logs()), 5_000);
    const t0 = Date.now();
    pn.proc.kill('SIGTERM');
    const [code] = (await exited) as [number | null];
    const ms = Date.now() - t0;
    const r = await dl.done;
    t.diagnostic(`second SIGTERM: peernix exit ${code} after ${ms} ms; download cut at ${r.bytes}/${expected.size} bytes (curl exit ${r.code})`);
    assert.equal(code, 1);
    assert.ok(ms < 3000, `exited ${ms} ms after the second signal`);
    assert.ok(r.bytes < expected.size);
    assert.notEqual(r.code, 0);
  });
});
