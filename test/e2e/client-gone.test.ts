import { format } from 'node:util';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import { generateKeyPair, parseSecretKey } from '../../src/nix/signing.ts';
import { FakePeer, makePath, narInfoFor } from '../support/fake-peer.ts';
import { get } from '../support/http.ts';
import { cleanup, makeTempDir, nixEnv, startNixHost, type NixHost } from '../support/nix-host.ts';
import { startPeernixProcess, type PeernixProcess } from '../support/peernix-process.ts';
import { waitFor } from '../support/wait.ts';

// A real `peernix serve` whose client goes away while the NAR is still being looked for: an
// unmodified Nix 2.8, interrupted (SIGINT, as Ctrl-C) while the only peer holding the path sits on
// the NAR request without answering its head. The peer is a real HTTP server on loopback.

const HEADERS_MS = 3000; // the peer client's default wait for a NAR's response head (DEFAULT_TIMEOUTS)

describe('peernix serve: a client that leaves before its NAR is found', { timeout: 120_000 }, () => {
  const upstream = parseSecretKey(generateKeyPair('upstream-cache-1').secretKeyText);
  let dir: string;
  let host: NixHost;
  let peer: FakePeer;
  let pn: PeernixProcess;

  before(async () => {
    dir = await makeTempDir('pn-client-gone');
    host = await startNixHost(`${dir}/host`); // this machine's own store: empty, so every NAR is a peer's
    peer = await FakePeer.start();
    pn = await startPeernixProcess(
      ['--store', host.storeUri, '--no-share', '--listen', '127.0.0.1:0', '--state-dir', `${dir}/state`, '--no-mdns', '--peer', peer.url],
      // The local Nix's trust, as Peernix reads it: the key the peer's narinfos are signed with.
      { env: nixEnv({ NIX_CONF_DIR: `${host.dir}/etc`, NIX_CONFIG: `trusted-public-keys = ${upstream.publicKey.text}` }) },
    );
  });

  after(async () => {
    await pn?.stop();
    await peer?.close();
    await host?.stop();
    if (dir) await cleanup(dir);
  });

  const narUrl = (p: ReturnType<typeof makePath>) => `${pn.substituterUrl}/nar/${p.hashPart}-${p.narHash32}.nar`;

  it('a client that stays gets its NAR from the peer, byte-exact', async (t) => {
    const p = makePath('stays', 300_000);
    peer.add(p, narInfoFor(p, { signers: [upstream] }));
    // The static peer is in use once its first health probe passed.
    await waitFor('the narinfo from the peer', async () => (await get(`${pn.substituterUrl}/${p.hashPart}.narinfo`)).status === 200, 15_000);
    const r = await get(narUrl(p));
    t.diagnostic(`NAR: HTTP ${r.status}, ${r.body.length} of ${p.narSize} bytes, complete ${r.complete}`);
    assert.equal(r.status, 200);
    assert.equal(r.complete, true);
    assert.ok(r.body.equals(p.nar), 'byte-exact NAR');
  });

  it('Nix interrupted while the peer sits on the NAR: the peer request is cut at once, no retry, no fallback', async (t) => {
    const p = makePath('interrupted', 100_000);
    peer.add(p, narInfoFor(p, { signers: [upstream] }));
    peer.knobs.narDelayMs = 60_000; // accepts the NAR request, never answers its head within the test
    const before = peer.narRequests.length;
    const nix = spawn(
      'nix-store',
      [
        '--store',
        `${dir}/client`,
        '-r',
        p.storePath,
        '--option',
        'substituters',
        pn.substituterUrl,
        '--option',
        'trusted-public-keys',
        upstream.publicKey.text,
      ],
      {
        env: nixEnv({ XDG_CACHE_HOME: `${dir}/client-xdg` }),
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    let stderr = '';
    nix.stderr!.on('data', (d) => (stderr += d));
    const exited = once(nix, 'exit');
    try {
      const asked = await waitFor('Nix asks for the NAR', async () => peer.narRequests[before], 30_000);
      await new Promise((r) => setTimeout(r, 200));
      const interruptedAt = performance.now();
      nix.kill('SIGINT');
      await exited;
      const exitedAt = performance.now();
      const closedAt = await waitFor("the peer's request closed", async () => peer.narRequests[before].closedAt, HEADERS_MS + 2000);
      t.diagnostic(
        format(
          `Nix interrupted ${Math.round(interruptedAt - asked.at)} ms after the peer was asked, exited (${nix.exitCode ?? nix.signalCode}) ${Math.round(exitedAt - interruptedAt)} ms later; ` +
            `the peer's request closed ${Math.round(closedAt - interruptedAt)} ms after the interrupt (header timeout ${HEADERS_MS} ms)`,
        ),
      );
      // Nix's own way out is in this bound; the header timeout it must beat is three times as long.
      assert.ok(closedAt - interruptedAt < 1000, `the peer's request stayed open ${Math.round(closedAt - interruptedAt)} ms after the interrupt`);
      // Past the header timeout: before, the search went on to retry the holder and record a fallback.
      await new Promise((r) => setTimeout(r, HEADERS_MS + 500));
      const fallbacks = pn
        .logs()
        .split('\n')
        .filter((l) => l.includes(`fallback ${p.storePath}`));
      t.diagnostic(`NAR requests for it at the peer: ${peer.narRequests.length - before}; fallback log lines: ${fallbacks.length}`);
      assert.equal(peer.narRequests.length - before, 1, 'no retry for a client that left');
      assert.deepEqual(fallbacks, [], 'a client that left is no fallback');
    } finally {
      if (nix.exitCode === null && nix.signalCode === null) {
        nix.kill('SIGKILL');
        await exited;
      }
      t.diagnostic(`Nix said: ${stderr.trim().split('\n').slice(-2).join(' | ')}`);
    }
  });
});
