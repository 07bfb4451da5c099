import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { readFile } from 'node:fs/promises';
import { cleanup, makeTempDir, run, startNixHost, type NixHost } from '../support/nix-host.ts';
import { get } from '../support/http.ts';
import { MAIN, startPeernixProcess, type PeernixProcess } from '../support/peernix-process.ts';

// The CLI and the control API of a running `peernix serve`: status, sharing on/off remembered across
// restarts, and a loopback API that other web pages can't drive.

describe('peernix CLI and control API', { timeout: 180_000 }, () => {
  let dir: string;
  let host: NixHost;
  let pn: PeernixProcess;
  const cli = (args: string[]) =>
    run(process.execPath, [MAIN, ...args, '--listen', new URL(pn.substituterUrl).host, '--state-dir', `${dir}/state`], { timeoutMs: 30_000 });
  const start = () =>
    startPeernixProcess(['--store', host.storeUri, '--share-listen', '127.0.0.1:0', '--listen', '127.0.0.1:0', '--state-dir', `${dir}/state`, '--no-mdns']);

  before(async () => {
    dir = await makeTempDir('pn-ctl');
    host = await startNixHost(`${dir}/host`);
    pn = await start();
  });

  after(async () => {
    await pn?.stop();
    await host?.stop();
    if (dir) await cleanup(dir);
  });

  it('--version, --help and nix-conf print what a user needs', async () => {
    const v = await run(process.execPath, [MAIN, '--version']);
    assert.match(v.stdout, /^peernix \d+\.\d+\.\d+\n$/);
    const h = await run(process.execPath, [MAIN, 'serve', '--help']);
    for (const opt of ['--share-listen', '--listen', '--store', '--secret-key-file', '--state-dir', '--peer', '--no-mdns'])
      assert.ok(h.stdout.includes(opt), opt);
    const conf = await run(process.execPath, [MAIN, 'nix-conf', '--state-dir', `${dir}/state`]);
    const pub = (await readFile(`${dir}/state/public-key`, 'utf8')).trim();
    assert.equal(conf.stdout, `extra-substituters = http://127.0.0.1:9998\nextra-trusted-public-keys = ${pub}\n`);
    const bad = await run(process.execPath, [MAIN, 'frobnicate']);
    assert.equal(bad.code, 2);
  });

  it('status --json reports the running instance', async () => {
    const r = await cli(['status', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const s = JSON.parse(r.stdout);
    assert.equal(s.status.sharing, true);
    assert.equal(s.status.daemon.ok, true);
    assert.equal(s.status.daemon.version, '2.8.0');
    const text = await cli(['status']);
    assert.match(text.stdout, /sharing: +on/);
  });

  it('sharing off refuses the share listener at once and is remembered across a restart', async () => {
    const share = pn.shareUrl!;
    assert.equal((await get(`${share}/nix-cache-info`)).status, 200);
    const off = await cli(['sharing', 'off']);
    assert.equal(off.stdout, 'sharing is off\n', off.stderr);
    await assert.rejects(get(`${share}/nix-cache-info`), /ECONNREFUSED/);
    assert.equal((await get(`${pn.substituterUrl}/nix-cache-info`)).status, 200, 'the substituter keeps working');
    await pn.stop();
    pn = await start();
    assert.equal(pn.shareUrl, null, 'no share listener after the restart');
    assert.equal(JSON.parse((await cli(['status', '--json'])).stdout).status.sharing, false);
    assert.equal((await cli(['sharing', 'on'])).stdout, 'sharing is on\n');
  });

  it('the control API is protected from other web pages', async () => {
    const base = pn.substituterUrl;
    const host = new URL(base).host;
    assert.equal((await get(`${base}/peernix/api/snapshot`, { Host: host })).status, 200);
    assert.equal((await get(`${base}/peernix/api/snapshot`, { Host: `evil.example:${new URL(base).port}` })).status, 403, 'DNS rebinding: foreign Host');
    const post = async (headers: Record<string, string>) => {
      const res = await fetch(`${base}/peernix/api/sharing`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: '{"enabled":false}',
      });
      return res.status;
    };
    assert.equal(await post({}), 403, 'no token');
    assert.equal(await post({ authorization: 'Bearer 00' }), 403, 'wrong token');
    const token = (await readFile(`${dir}/state/control-token`, 'utf8')).trim();
    assert.equal(await post({ authorization: `Bearer ${token}`, origin: 'http://evil.example' }), 403, 'cross-origin');
    assert.equal(JSON.parse((await cli(['status', '--json'])).stdout).status.sharing, true, 'nothing changed');
    assert.equal(await post({ authorization: `Bearer ${token}` }), 200);
    assert.equal(JSON.parse((await cli(['status', '--json'])).stdout).status.sharing, false);
  });
});
