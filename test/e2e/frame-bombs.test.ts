import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { encodeNix32 } from '../../src/nix/nix32.ts';
import { parseSecretKey, signNarInfo } from '../../src/nix/signing.ts';
import { nodeBin, skippedWithoutNetns } from '../support/netns.ts';
import { makeSigningKey, nixEnv, run } from '../support/nix-host.ts';
import { PROJECT_ROOT } from '../support/peernix-process.ts';
import { createPnLan, SUBST, waitFor, type PnHost, type PnLan } from '../support/peernix-lan.ts';

// Peers that answer a genuinely signed narinfo (anyone can replay one) with framed bodies built to
// hurt: zstd bombs and floods of tiny frames (test/fixtures/frame-bomb-peer.ts, in its own network
// namespace). A real Nix on A asks its Peernix for the paths with signatures required. Nix must
// never accept them, Peernix must stay small and keep answering, and the peers must be marked bad.

const BOMB_NAR_SIZE = 128 * 1024 * 1024;
/** The slow readers' bombs: big enough that a reader at 10 MB/s is still reading when the test looks. */
const SLOW_BOMB_NAR_SIZE = 1024 * 1024 * 1024;

describe('hostile frames from a peer', { timeout: 900_000 }, () => {
  if (skippedWithoutNetns()) return;
  let pl: PnLan;
  let dir: string;
  let A: PnHost;
  const hostile: ChildProcess[] = [];
  const paths: Record<string, string> = {};

  /** A narinfo for a path no one has, signed by the upstream key, its NAR at nar/<kind>-… on the hostile peer. */
  async function narinfo(into: string, kind: string, signKey: string, narSize: number): Promise<string> {
    const hash = encodeNix32(randomBytes(20));
    const storePath = `/nix/store/${hash}-${kind}`;
    const narHash = `sha256:${encodeNix32(randomBytes(32))}`;
    const sig = signNarInfo({ storePath, narHash, narSize, references: [] }, parseSecretKey(signKey));
    const text = [
      `StorePath: ${storePath}`,
      `URL: nar/${kind}-${hash}.nar`,
      'Compression: none',
      `NarHash: ${narHash}`,
      `NarSize: ${narSize}`,
      'References: ',
      `Sig: ${sig}`,
      '',
    ].join('\n');
    await writeFile(`${into}/${hash}.narinfo`, text);
    return storePath;
  }

  before(async () => {
    pl = await createPnLan('pn-bombs', ['host-a', 'host-b']);
    dir = pl.dir;
    A = pl.hosts[0];
    const B = pl.hosts[1];
    const upstream = await makeSigningKey(A.nix, dir, 'upstream-1');
    pl.trustedKeys += ` ${upstream.publicKey}`;
    const key = (await readFile(upstream.secretKeyFile, 'utf8')).trim();
    // Two hostile peers: one for the bombs, one for the tiny frames, so each is marked for its own.
    for (const [port, kinds] of [
      [9997, ['bomb-1', 'bomb-2', 'bomb-3', 'bomb-4']],
      [9996, ['tinyraw', 'tinyzstd']],
    ] as const) {
      const d = `${dir}/hostile-${port}`;
      await mkdir(d, { recursive: true });
      for (const k of kinds)
        paths[k] = await narinfo(d, k.replace(/-\d$/, ''), key, k === 'bomb-4' ? BOMB_NAR_SIZE : k.startsWith('bomb') ? SLOW_BOMB_NAR_SIZE : 64 * 1024 * 1024);
      hostile.push(B.lan.exec(nodeBin(), [`${PROJECT_ROOT}test/fixtures/frame-bomb-peer.ts`, d, '0.0.0.0', String(port)]));
    }
    // As bin/peernix runs it: large buffers mapped on their own, so freed ones leave the RSS.
    process.env.MALLOC_MMAP_THRESHOLD_ ??= '131072';
    await pl.start(A, ['--no-mdns', '--peer', `http://${B.lan.address}:9997`, '--peer', `http://${B.lan.address}:9996`]);
    await waitFor('both hostile peers up', async () => (await pl.status(A)).peers.filter((p) => p.state === 'up').length === 2, 20_000);
  });

  after(async () => {
    for (const h of hostile) h.kill('SIGKILL');
    await pl?.teardown();
  });

  const nixCopy = (storePath: string, to: string) =>
    A.lan.run('nix', ['copy', '--from', SUBST, '--to', `${dir}/${to}`, storePath, '--option', 'require-sigs', 'true'], {
      env: nixEnv({ XDG_CACHE_HOME: `${dir}/${to}-xdg`, NIX_CONFIG: `experimental-features = nix-command\ntrusted-public-keys = ${pl.trustedKeys}` }),
      timeoutMs: 600_000,
    });

  const rssMb = async () => {
    const s = await readFile(`/proc/${A.pn!.proc.pid}/status`, 'utf8');
    return Number(/^VmRSS:\s+(\d+) kB/m.exec(s)![1]) / 1024;
  };

  it('three zstd bombs read at 10 MB/s at once: Peernix stays under 300 MB and keeps answering', async (tc) => {
    const before = await rssMb();
    let most = before;
    let answers = 0;
    let slowest = 0;
    let done = false;
    const watch = (async () => {
      while (!done) {
        most = Math.max(most, await rssMb().catch(() => 0));
        const t0 = performance.now();
        const r = await pl.curl(A, ['-o', '/dev/null', '-w', '%{http_code}', '--max-time', '10', `${SUBST}/${'1'.repeat(32)}.narinfo`]);
        assert.equal(r.stdout, '404', 'a miss still answers during the bombs');
        slowest = Math.max(slowest, performance.now() - t0);
        answers++;
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    // Readers as slow as in the report that found the bomb (2.2 GB in 45 s at 10 MB/s, unpaced).
    const readers = ['bomb-1', 'bomb-2', 'bomb-3'].map(async (k) => {
      const info = await pl.curl(A, [`${SUBST}/${paths[k].slice(11, 43)}.narinfo`]);
      const url = /^URL: (.*)$/m.exec(info.stdout)![1];
      return pl.curl(A, ['-o', '/dev/null', '-w', '%{size_download}', '--limit-rate', '10M', '--max-time', '20', `${SUBST}/${url}`]);
    });
    const got = await Promise.all(readers);
    done = true;
    await watch;
    tc.diagnostic(
      `three bombs at 10 MB/s: RSS ${before.toFixed(0)} MB before, peak ${most.toFixed(0)} MB; read ${got.map((g) => g.stdout).join(', ')} bytes; ${answers} misses answered meanwhile, slowest ${slowest.toFixed(0)} ms`,
    );
    assert.ok(most < 300, `peak RSS ${most} MB`);
    assert.ok(answers > 0);
  });

  it('a zstd bomb read by Nix: refused, the peer marked bad', async (tc) => {
    await waitFor('the bomb peer up', async () => (await pl.status(A)).peers.some((p) => p.url.endsWith(':9997') && p.state === 'up'), 20_000);
    const r = await nixCopy(paths['bomb-4'], 'client-bomb');
    assert.notEqual(r.code, 0, 'Nix must not accept a bomb');
    assert.notEqual((await run('nix-store', ['--store', `${dir}/client-bomb`, '--check-validity', paths['bomb-4']])).code, 0);
    const s = await pl.status(A);
    const peer = s.peers.find((p) => p.url.endsWith(':9997'));
    if (!peer?.bad)
      tc.diagnostic(
        `${r.stderr.slice(-800)}\n${A.pn!.logs()
          .split('\n')
          .filter((l) => !/GET \/1{32}|HEAD|narinfo 200/.test(l))
          .slice(-30)
          .join('\n')}`,
      );
    assert.ok(peer?.bad, 'the bomb peer is marked bad');
    tc.diagnostic(`marked bad: ${peer.bad.reason}`);
  });

  for (const kind of ['tinyraw', 'tinyzstd']) {
    it(`endless ${kind === 'tinyraw' ? '1-byte raw' : 'tiny zstd'} frames: cut, refused by Nix, the peer marked bad`, async (tc) => {
      if (kind === 'tinyzstd') {
        // The same peer served the 1-byte frames and is marked for them: let it be tried again.
        const s = await pl.status(A);
        const peer = s.peers.find((p) => p.url.endsWith(':9996'))!;
        const c = await pl.cli(A, ['peer', 'clear', peer.id]);
        assert.equal(c.code, 0, c.stderr);
        await waitFor(
          'the tiny-frames peer up again',
          async () => (await pl.status(A)).peers.some((p) => p.url.endsWith(':9996') && p.state === 'up' && !p.bad),
          20_000,
        );
      }
      const r = await nixCopy(paths[kind], `client-${kind}`);
      assert.notEqual(r.code, 0, 'Nix must not accept it');
      const s = await pl.status(A);
      const peer = s.peers.find((p) => p.url.endsWith(':9996'));
      assert.ok(peer?.bad, 'the peer is marked bad');
      assert.match(peer.bad.reason, /frames too small/);
      const t = s.events.find((e) => e.type === 'transfer' && e.storePath === paths[kind]);
      tc.diagnostic(`${kind}: ${t?.type === 'transfer' ? `${t.bytes} NAR bytes, ${t.wireBytes ?? '?'} on the wire` : 'no transfer event'}; ${peer.bad.reason}`);
    });
  }
});
