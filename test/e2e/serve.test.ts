import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import {
  addPath,
  addTestClosure,
  cleanup,
  makeSigningKey,
  makeTempDir,
  nixEnv,
  run,
  signPaths,
  startNixHost,
  type NixHost,
  type TestClosure,
} from '../support/nix-host.ts';
import { get, narinfoField, rawExchange, sha256Of } from '../support/http.ts';
import { startPeernixProcess, type PeernixProcess } from '../support/peernix-process.ts';
import { waitFor } from '../support/wait.ts';

// `peernix serve` in front of a real nix-daemon, judged by an unmodified Nix with signature checks on.

const H = (p: string) => p.slice('/nix/store/'.length, '/nix/store/'.length + 32);

// One daemon and one Peernix for all cases; the last two are a sequence on purpose: the daemon is
// killed and restarted (Peernix must recover without a restart), then Peernix itself is stopped.
describe('peernix serve: a real Nix substitutes from it', { timeout: 600_000 }, () => {
  let dir: string;
  let host: NixHost;
  let closure: TestClosure;
  let big: string;
  let ours: { secretKeyFile: string; publicKey: string };
  let upstream: { secretKeyFile: string; publicKey: string };
  let stranger: { publicKey: string };
  let pn: PeernixProcess;
  let base: string;

  before(async () => {
    dir = await makeTempDir('pn-serve');
    host = await startNixHost(`${dir}/host`);
    closure = await addTestClosure(host, { largeSize: 30 * 1024 * 1024 });
    // A path nothing refers to, big enough that its NAR can't sit in socket buffers: for GC tests.
    big = await addPath(host, 'gc-target', { type: 'file', size: 48 * 1024 * 1024, seed: 'gc' });
    ours = await makeSigningKey(host, dir, 'peernix-test-1');
    upstream = await makeSigningKey(host, dir, 'upstream-cache-1');
    stranger = await makeSigningKey(host, dir, 'stranger-1');
    await signPaths(host, upstream.secretKeyFile, closure.paths);
    pn = await startPeernixProcess([
      '--store',
      host.storeUri,
      '--share-listen',
      '127.0.0.1:0',
      '--listen',
      '127.0.0.1:0',
      '--secret-key-file',
      ours.secretKeyFile,
      '--state-dir',
      `${dir}/state`,
      '--no-mdns',
    ]);
    base = pn.shareUrl!;
  });

  after(async () => {
    await pn?.stop();
    await host?.stop();
    if (dir) await cleanup(dir);
  });

  async function nixCopy(client: string, trustedKey: string) {
    return run(
      'nix',
      ['copy', '--from', base, '--to', `${dir}/${client}`, closure.top, '--option', 'trusted-public-keys', trustedKey, '--option', 'require-sigs', 'true'],
      {
        baseEnv: nixEnv({ XDG_CACHE_HOME: `${dir}/${client}-xdg` }),
        timeoutMs: 180_000,
      },
    );
  }

  async function clientClosure(client: string): Promise<string[]> {
    const r = await run('nix-store', ['--store', `${dir}/${client}`, '-qR', closure.top], { check: true });
    return r.stdout.trim().split('\n').sort();
  }

  it('nix-cache-info puts the LAN cache before cache.nixos.org', async () => {
    const r = await get(`${base}/nix-cache-info`);
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), 'StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 30\n');
    assert.equal((await get(`${base}/nix-cache/nix-cache-info`)).status, 200);
  });

  it('nix copy substitutes the whole closure trusting only this host’s key', async () => {
    const r = await nixCopy('client-ours', ours.publicKey);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await clientClosure('client-ours'), closure.paths);
  });

  it('nix copy substitutes it trusting only the upstream key that signed the paths beforehand', async () => {
    const r = await nixCopy('client-upstream', upstream.publicKey);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await clientClosure('client-upstream'), closure.paths);
  });

  it('a client trusting neither key refuses the unsigned-for-it paths (signature checking is really on)', async () => {
    const r = await nixCopy('client-stranger', stranger.publicKey);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /not signed by any of the keys|lacks a valid signature/);
  });

  it('narinfos carry the store’s signatures plus ours, and every field Nix reads', async () => {
    const infos = await host.pathInfoJson([closure.top]);
    const r = await get(`${base}/${H(closure.top)}.narinfo`);
    assert.equal(r.status, 200);
    const text = r.body.toString();
    assert.equal(narinfoField(text, 'StorePath'), closure.top);
    assert.equal(narinfoField(text, 'Compression'), 'none');
    assert.equal(Number(narinfoField(text, 'NarSize')), infos[0].narSize);
    assert.equal(narinfoField(text, 'Deriver'), closure.derivers[closure.top].slice('/nix/store/'.length));
    const sigs = text.split('\n').filter((l) => l.startsWith('Sig: '));
    assert.equal(sigs.length, 2);
    assert.ok(sigs.some((s) => s.startsWith('Sig: upstream-cache-1:')));
    assert.ok(sigs.some((s) => s.startsWith('Sig: peernix-test-1:')));
    const refs = narinfoField(text, 'References')!.split(' ').sort();
    assert.deepEqual(refs, infos[0].references.map((p) => p.slice('/nix/store/'.length)).sort());
    const head = await get(`${base}/${H(closure.top)}.narinfo`, {}, 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.body.length, 0);
    assert.equal((await get(`${base}/nix-cache/${H(closure.top)}.narinfo`)).status, 200);
    const data = await get(`${base}/${H(closure.data)}.narinfo`);
    assert.match(data.body.toString(), /^CA: fixed:r:sha256:/m);
  });

  it('NARs over HTTP are byte-identical to nix-store --dump, ranges included', async () => {
    for (const p of closure.paths) {
      const info = (await get(`${base}/${H(p)}.narinfo`)).body.toString();
      const url = `${base}/${narinfoField(info, 'URL')}`;
      const want = await host.dumpHash(p);
      const got = await sha256Of(url);
      assert.equal(got.status, 200);
      assert.equal(got.sha256, want.sha256.toString('hex'), p);
      assert.equal(got.size, want.size);
    }
    const info = (await get(`${base}/${H(closure.large)}.narinfo`)).body.toString();
    const url = `${base}/${narinfoField(info, 'URL')}`;
    const whole = (await get(url)).body;
    const part = await get(url, { Range: 'bytes=1000000-' });
    assert.equal(part.status, 206);
    assert.equal(part.headers['content-range'], `bytes 1000000-${whole.length - 1}/${whole.length}`);
    assert.ok(part.body.equals(whole.subarray(1000000)));
    const mid = await get(url, { Range: 'bytes=10-19' });
    assert.ok(mid.body.equals(whole.subarray(10, 20)));
    const tail = await get(url, { Range: 'bytes=-7' });
    assert.ok(tail.body.equals(whole.subarray(whole.length - 7)));
    const beyond = await get(url, { Range: `bytes=${whole.length}-` });
    assert.equal(beyond.status, 416);
    assert.equal(beyond.headers['content-range'], `bytes */${whole.length}`);
    const head = await get(url, {}, 'HEAD');
    assert.equal(head.headers['content-length'], String(whole.length));
    assert.equal(head.headers['accept-ranges'], 'bytes');
  });

  it('answers 404 to malformed, traversing or mismatched requests, fast and without touching the daemon', async () => {
    const info = (await get(`${base}/${H(closure.top)}.narinfo`)).body.toString();
    const narUrl = narinfoField(info, 'URL')!;
    const wrongHash = narUrl.replace(/-([0-9a-z]{52})\.nar$/, (_m, h: string) => `-${h.startsWith('0') ? '1' : '0'}${h.slice(1)}.nar`);
    const bad = [
      '/../../etc/passwd',
      '/nix-cache/../../etc/passwd',
      '/%2e%2e/%2e%2e/etc/passwd',
      `/${H(closure.top).slice(1)}.narinfo`,
      `/${H(closure.top)}x.narinfo`,
      `/${'e'.repeat(32)}.narinfo`,
      `/${'0'.repeat(32)}.narinfo`,
      `/${wrongHash}`,
      `/${narUrl.replace('.nar', '.nar.xz')}`,
      `/nar/${'0'.repeat(32)}-${'0'.repeat(52)}.nar`,
    ];
    for (const path of bad) {
      const r = await rawExchange('127.0.0.1', Number(new URL(base).port), `GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      assert.match(r, /^HTTP\/1\.1 404 /, path);
    }
  });

  it('refuses oversized headers with 431 and keeps serving', async () => {
    const port = Number(new URL(base).port);
    const r = await rawExchange('127.0.0.1', port, `GET /nix-cache-info HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(64 * 1024)}\r\n\r\n`);
    assert.match(r, /^HTTP\/1\.1 431 /);
    assert.equal((await get(`${base}/nix-cache-info`)).status, 200);
  });

  async function narUrlOf(p: string): Promise<string> {
    const info = (await get(`${base}/${H(p)}.narinfo`)).body.toString();
    return `${base}/${narinfoField(info, 'URL')}`;
  }

  /** Starts a NAR download and stops reading after the first bytes, holding the transfer open. */
  function pausedDownload(url: string): Promise<{ received: () => number; resume: () => Promise<{ bytes: number; complete: boolean }>; abort: () => void }> {
    return new Promise((resolve, reject) => {
      const req = request(url, { agent: false }, (res) => {
        let received = 0;
        res.once('data', (c: Buffer) => {
          received += c.length;
          res.pause();
          resolve({
            received: () => received,
            resume: () =>
              new Promise((done) => {
                res.on('data', (c2: Buffer) => (received += c2.length));
                res.on('end', () => done({ bytes: received, complete: res.complete }));
                res.on('error', () => done({ bytes: received, complete: false }));
                res.on('close', () => done({ bytes: received, complete: res.complete }));
                res.resume();
              }),
            abort: () => req.destroy(),
          });
        });
      });
      req.on('error', reject);
      req.end();
    });
  }

  async function daemonChildren(): Promise<number> {
    const r = await run('pgrep', ['-P', String(host.pid())]);
    return r.stdout.trim() === '' ? 0 : r.stdout.trim().split('\n').length;
  }

  it('holds a GC temp root while a NAR streams: delete refused during, allowed after', async () => {
    const url = await narUrlOf(big);
    const dl = await pausedDownload(url);
    const during = await host.nixStore(['--delete', big]);
    assert.notEqual(during.code, 0, 'deleting a path while it streams must be refused');
    assert.match(during.stderr, /still alive/);
    const done = await dl.resume();
    assert.ok(done.complete);
    await waitFor('the path to be deletable once the transfer is over', async () => (await host.nixStore(['--delete', big])).code === 0, 5000);
    assert.equal((await get(url)).status, 404, 'a deleted path is a 404, not an error');
    assert.equal((await get(`${base}/${H(big)}.narinfo`)).status, 404);
  });

  it('a client that disconnects mid-stream leaves no daemon connection behind', async () => {
    const url = await narUrlOf(closure.large);
    await get(`${base}/${H(closure.top)}.narinfo`);
    const baseline = await daemonChildren();
    const dl = await pausedDownload(url);
    assert.ok((await daemonChildren()) > baseline, 'the transfer has its own daemon connection');
    dl.abort();
    await waitFor('the transfer’s daemon connection to close', async () => (await daemonChildren()) <= baseline, 5000);
    assert.equal((await get(`${base}/nix-cache-info`)).status, 200);
  });

  it('survives the daemon being killed mid-request, with a clean error, and recovers after restart', async () => {
    const url = await narUrlOf(closure.large);
    const dl = await pausedDownload(url);
    host.kill('SIGKILL');
    const cut = await dl.resume();
    assert.equal(cut.complete, false, 'a NAR whose source died must not end cleanly');
    const down = await get(`${base}/${H(closure.top)}.narinfo`);
    assert.equal(down.status, 503, 'the store being down is not "not found"');
    assert.equal(pn.proc.exitCode, null, 'peernix is still running');
    await host.start();
    await waitFor('narinfos after the daemon restart', async () => (await get(`${base}/${H(closure.top)}.narinfo`)).status === 200, 10_000);
    const again = await sha256Of(url);
    assert.equal(again.sha256, (await host.dumpHash(closure.large)).sha256.toString('hex'));
  });

  it('stops cleanly on SIGTERM', async () => {
    const code = await pn.stop('SIGTERM');
    assert.equal(code, 0, pn.logs());
  });
});
