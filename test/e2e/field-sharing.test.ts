import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { Snapshot } from '../../src/base/api.ts';
import { get } from '../support/http.ts';
import { cleanup, makeTempDir, run, startNixHost, type NixHost } from '../support/nix-host.ts';
import { MAIN, startPeernixProcess, type PeernixProcess } from '../support/peernix-process.ts';

// Field issue, item 2: a share port that another program holds. Peernix starts anyway (sharing off
// for this run, the reason visible), a switch while the port is busy fails with that reason and
// changes nothing, and the next switch after the port is freed works — no restart.

describe('field: the sharing switch survives a busy port', { timeout: 120_000 }, () => {
  let dir: string;
  let host: NixHost;
  let pn: PeernixProcess | null = null;
  let blocker: net.Server | null = null;
  let sharePort = 0;
  const stateDir = () => `${dir}/state`;
  const cli = (args: string[]) =>
    run(process.execPath, [MAIN, ...args, '--listen', new URL(pn!.substituterUrl).host, '--state-dir', stateDir()], { timeoutMs: 30_000 });
  const snapshot = async (): Promise<Snapshot> => {
    const r = await cli(['status', '--json']);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as Snapshot;
  };
  const savedSharing = async () => (JSON.parse(await readFile(`${stateDir()}/settings.json`, 'utf8')) as { sharing: boolean }).sharing;

  before(async () => {
    dir = await makeTempDir('pn-field-share');
    host = await startNixHost(`${dir}/host`);
    blocker = net.createServer((s) => s.destroy());
    await new Promise<void>((resolve) => blocker!.listen(0, '127.0.0.1', resolve));
    sharePort = (blocker.address() as net.AddressInfo).port;
  });

  after(async () => {
    await pn?.stop();
    blocker?.close();
    await host?.stop();
    if (dir) await cleanup(dir);
  });

  it('starts with the share port busy: sharing off for this run, the reason shown, the saved choice kept', async (t) => {
    pn = await startPeernixProcess([
      '--store',
      host.storeUri,
      '--share-listen',
      `127.0.0.1:${sharePort}`,
      '--listen',
      '127.0.0.1:0',
      '--state-dir',
      stateDir(),
      '--no-mdns',
    ]);
    const s = await snapshot();
    t.diagnostic(`status after start: sharing=${s.status.sharing} shareError=${JSON.stringify(s.status.shareError)}`);
    assert.equal(s.status.sharing, false);
    assert.equal(s.status.shareUrl, null);
    assert.match(s.status.shareError ?? '', /in use/);
    assert.ok(
      s.events.some((e) => e.type === 'error' && /in use/.test(e.message)),
      'an error event says why',
    );
    assert.equal(await savedSharing(), true, 'the user chose to share; a busy port does not change that choice');
    assert.equal((await get(`${pn.substituterUrl}/nix-cache-info`)).status, 200, 'the substituter works meanwhile');
    assert.match(
      await new Promise<string>((resolve) =>
        net
          .connect(sharePort, '127.0.0.1')
          .once('close', () => resolve('blocker still owns the port'))
          .once('error', (e) => resolve(e.message)),
      ),
      /blocker/,
    );
  });

  it('a switch while the port is busy fails with the reason and changes nothing; once free, the next switch works', async (t) => {
    const failed = await cli(['sharing', 'on']);
    t.diagnostic(`sharing on while busy: exit ${failed.code}: ${failed.stderr.trim()}`);
    assert.notEqual(failed.code, 0);
    assert.match(failed.stderr, /in use/);
    const again = await cli(['sharing', 'on']);
    assert.notEqual(again.code, 0, 'still busy: fails again for the current reason, not a remembered one');
    let s = await snapshot();
    assert.equal(s.status.sharing, false);
    assert.equal(s.events.filter((e) => e.type === 'sharing').length, 0, 'no event claims sharing changed');

    await new Promise<void>((resolve) => blocker!.close(() => resolve()));
    blocker = null;
    const ok = await cli(['sharing', 'on']);
    assert.equal(ok.stdout, 'sharing is on\n', ok.stderr);
    s = await snapshot();
    assert.equal(s.status.sharing, true);
    assert.equal(s.status.shareError, null);
    assert.equal(s.status.shareUrl, `http://127.0.0.1:${sharePort}`);
    assert.equal((await get(`http://127.0.0.1:${sharePort}/nix-cache-info`)).status, 200, 'the share listener answers');
    assert.equal(await savedSharing(), true);

    const off = await cli(['sharing', 'off']);
    assert.equal(off.stdout, 'sharing is off\n', off.stderr);
    assert.equal(await savedSharing(), false);
    await assert.rejects(get(`http://127.0.0.1:${sharePort}/nix-cache-info`), /ECONNREFUSED/);
    s = await snapshot();
    assert.deepEqual(
      s.events.filter((e) => e.type === 'sharing').map((e) => (e as { enabled: boolean }).enabled),
      [false, true],
      'events (newest first) say what happened, no more',
    );
  });

  // Stands alone: its own process, started with sharing off.
  it('at run time, a switch that failed does not poison the next one (no restart)', async (t) => {
    await pn?.stop();
    if (blocker) await new Promise<void>((resolve) => blocker!.close(() => resolve()));
    pn = await startPeernixProcess([
      '--store',
      host.storeUri,
      '--share-listen',
      `127.0.0.1:${sharePort}`,
      '--listen',
      '127.0.0.1:0',
      '--state-dir',
      stateDir(),
      '--no-mdns',
      '--no-share',
    ]);
    blocker = net.createServer((s) => s.destroy());
    await new Promise<void>((resolve) => blocker!.listen(sharePort, '127.0.0.1', resolve));
    const failed = await cli(['sharing', 'on']);
    assert.notEqual(failed.code, 0);
    await new Promise<void>((resolve) => blocker!.close(() => resolve()));
    blocker = null;
    const ok = await cli(['sharing', 'on']);
    t.diagnostic(`after the port was freed: exit ${ok.code} ${ok.stdout.trim()}${ok.stderr.trim()}`);
    assert.equal(ok.stdout, 'sharing is on\n', ok.stderr);
    assert.equal((await get(`http://127.0.0.1:${sharePort}/nix-cache-info`)).status, 200);
    assert.equal((await snapshot()).status.sharing, true);
  });
});
