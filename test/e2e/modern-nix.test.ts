import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { appendFileSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import type { PeernixEvent, Snapshot } from '../../src/base/api.ts';
import { diagnose } from '../../src/doctor/doctor.ts';
import { gatherFacts } from '../../src/doctor/gather.ts';
import { get } from '../support/http.ts';
import { startModernNixHost, type ModernNixHost, type ModernSuite } from '../support/modern-nix.ts';
import { cleanup, makeTempDir, run, startNixHost } from '../support/nix-host.ts';
import { MAIN, startPeernixProcess, type PeernixProcess } from '../support/peernix-process.ts';
import { waitFor } from '../support/wait.ts';

// The end-to-end core against the Nix people run, not only Debian bookworm's 2.8 (which the other
// e2e files use): Debian sid's Nix 2.34 and trixie's 2.26, each in a root made by debootstrap
// (scripts/nix-root.sh, kept between runs). Per version, two hosts, each a chroot with its own store
// and nix-daemon and its own Peernix, A knowing B by --peer on loopback:
//   - B's Peernix serves its store (the daemon protocol those Nixes speak, 1.38);
//   - A's Nix substitutes a closure only B has through A's Peernix, signatures required, and the
//     NARs travel between the Peernix nodes compressed (B forced to compress every block);
//   - GC fallback: a narinfo answered from A's store, the path deleted, the NAR served from B;
//   - a ca-derivations Nix substitutes a content-addressed output through A from B, realisation first;
//   - the doctor reads the miss that version's Nix remembers in its own narinfo-cache file.
// About 80 s for everything here on 2 busy cores, once the roots exist (about 4 min each to make, once).

const SUITES: ModernSuite[] = ['sid', 'trixie'];
const H = (p: string) => p.slice(11, 43);

// A closure with a reference; its top holds compressible text (zstd frames pay off).
const CLOSURE = `
let
  sh = "/bin/sh";
  dep = derivation { name = "pn-dep"; system = builtins.currentSystem; builder = sh; args = [ "-c" "echo only-on-b > $out" ]; };
in derivation {
  name = "pn-top"; system = builtins.currentSystem; builder = sh;
  args = [ "-c" "export PATH=/usr/bin:/bin; mkdir $out && echo \${dep} > $out/ref && i=0 && while [ $i -lt 150000 ]; do echo line-$i-of-a-compressible-file; i=$((i+1)); done > $out/text" ];
}`;

// A content-addressed derivation (ca-derivations): its output path is known only once built, so Nix
// asks caches for the realisation first.
const CA = `derivation {
  name = "pn-ca"; system = builtins.currentSystem; builder = "/bin/sh";
  args = [ "-c" "echo built-on-b > $out" ];
  __contentAddressed = true; outputHashMode = "recursive"; outputHashAlgo = "sha256";
}`;

for (const suite of SUITES) {
  describe(`the core against Debian ${suite}'s Nix`, { timeout: 600_000 }, () => {
    let dir: string;
    let A: ModernNixHost, B: ModernNixHost;
    let pnA: PeernixProcess, pnB: PeernixProcess;
    let keyB: string, keyA: string;
    let top: string, dep: string, seed: string;
    let peerB: string;

    const status = async (pn: PeernixProcess, stateDir: string): Promise<Snapshot> => {
      const r = await run(process.execPath, [MAIN, 'status', '--json', '--listen', new URL(pn.substituterUrl).host, '--state-dir', stateDir], {
        timeoutMs: 30_000,
      });
      assert.equal(r.code, 0, r.stderr);
      return JSON.parse(r.stdout) as Snapshot;
    };
    const narSha = async (h: ModernNixHost, p: string) => {
      const r = await h.exec('sh', ['-c', `nix-store --dump ${p} | sha256sum`], { check: true });
      return r.stdout.split(' ')[0];
    };
    // Peernix reads the host's nix.conf as its Nix does (which keys the local Nix trusts).
    const start = (h: ModernNixHost, name: string, extra: string[], env: Record<string, string> = {}) =>
      startPeernixProcess(
        [
          '--store',
          h.storeUri,
          '--share-listen',
          '127.0.0.1:0',
          '--listen',
          '127.0.0.1:0',
          '--state-dir',
          `${dir}/${name}-state`,
          '--name',
          name,
          '--secret-key-file',
          h.outside(`/etc/nix/${name}.sec`),
          '--no-mdns',
          '--log-level',
          'debug',
          ...extra,
        ],
        {
          env: { ...env, NIX_CONF_DIR: h.outside('/etc/nix'), NIX_CONFIG: undefined as unknown as string },
        },
      );
    const makeKey = async (h: ModernNixHost, name: string) => {
      await h.exec('nix-store', ['--generate-binary-cache-key', `${name}-1`, `/etc/nix/${name}.sec`, `/etc/nix/${name}.pub`], { check: true });
      return readFileSync(h.outside(`/etc/nix/${name}.pub`), 'utf8').trim();
    };

    before(async () => {
      dir = await makeTempDir(`pn-${suite}`);
      [A, B] = await Promise.all([startModernNixHost(`${dir}/a`, suite), startModernNixHost(`${dir}/b`, suite)]);
      await B.exec('sh', ['-c', `cat > /tmp/closure.nix <<'EOF'\n${CLOSURE}\nEOF`], { check: true });
      top = (await B.exec('nix-build', ['--no-out-link', '/tmp/closure.nix'], { check: true, timeoutMs: 300_000 })).stdout.trim();
      dep = (await B.exec('nix-store', ['-q', '--references', top], { check: true })).stdout.trim();
      // The same bytes on both hosts: a path A can lose to GC and B still holds.
      for (const h of [A, B]) await h.exec('sh', ['-c', 'seq 1 300000 > /tmp/seed-file'], { check: true });
      seed = (await A.exec('nix-store', ['--add', '/tmp/seed-file'], { check: true })).stdout.trim();
      assert.equal((await B.exec('nix-store', ['--add', '/tmp/seed-file'], { check: true })).stdout.trim(), seed);

      keyA = await makeKey(A, 'host-a');
      keyB = await makeKey(B, 'host-b');
      appendFileSync(A.outside('/etc/nix/nix.conf'), `trusted-public-keys = ${keyA} ${keyB}\n`);
      pnB = await start(B, 'host-b', [], { PEERNIX_FORCE_PEER_COMPRESSION: '1' });
      pnA = await start(A, 'host-a', ['--peer', pnB.shareUrl!]);
      peerB = await waitFor(
        'A to see B up',
        async () => (await status(pnA, `${dir}/host-a-state`)).peers.find((p) => p.url === pnB.shareUrl && p.state === 'up')?.name,
        20_000,
      );
    });

    after(async () => {
      await pnA?.stop();
      await pnB?.stop();
      await A?.stop();
      await B?.stop();
      if (dir) await cleanup(dir);
    });

    it('serves its store: a narinfo from the daemon, signed, and the NAR byte for byte', async () => {
      const info = await get(`${pnB.shareUrl}/${H(top)}.narinfo`);
      assert.equal(info.status, 200);
      const text = info.body.toString();
      assert.match(text, new RegExp(`^StorePath: ${top}$`, 'm'));
      assert.match(text, new RegExp(`^References: .*${dep.slice(11)}`, 'm'));
      assert.match(text, new RegExp(`^Sig: ${keyB.split(':')[0]}:`, 'm'));
      const nar = await get(`${pnB.shareUrl}/${/^URL: (.*)$/m.exec(text)![1]}`);
      assert.equal(nar.status, 200);
      assert.equal(createHash('sha256').update(nar.body).digest('hex'), await narSha(B, top));
    });

    it(`a ${suite} Nix substitutes a closure only B has through its own Peernix, signatures required; the NARs come compressed`, async (tc) => {
      tc.diagnostic(`${suite}: ${A.version}`);
      const r = await A.exec(
        'nix',
        ['copy', '--from', pnA.substituterUrl, '--to', '/tmp/client', top, '--option', 'require-sigs', 'true', '--option', 'trusted-public-keys', keyB],
        {
          env: { XDG_CACHE_HOME: '/tmp/client-xdg' },
          timeoutMs: 240_000,
        },
      );
      assert.equal(r.code, 0, r.stderr);
      const got = (await A.exec('nix-store', ['--store', '/tmp/client', '-qR', top], { check: true })).stdout.trim().split('\n').sort();
      assert.deepEqual(got, [dep, top].sort());
      // Through the nix-daemon too, the way a user's Nix substitutes (root is a trusted user).
      const d = await A.exec(
        'nix-store',
        ['--store', 'daemon', '-r', top, '--option', 'substituters', pnA.substituterUrl, '--option', 'trusted-public-keys', keyB],
        { timeoutMs: 240_000 },
      );
      assert.equal(d.code, 0, d.stderr);
      assert.equal(await narSha(A, top), await narSha(B, top));
      const s = await status(pnA, `${dir}/host-a-state`);
      const t = s.events.find((e): e is Extract<PeernixEvent, { type: 'transfer' }> => e.type === 'transfer' && e.direction === 'in' && e.storePath === top);
      assert.ok(t, 'a transfer of the top path from B');
      tc.diagnostic(`${suite}: ${top}: ${t.bytes} NAR bytes in ${t.wireBytes} on the wire (${(t.bytes / t.wireBytes).toFixed(2)}×)`);
      assert.ok(t.wireBytes < t.bytes * 0.5, `compressed: ${t.wireBytes} for ${t.bytes}`);
      assert.match(pnB.logs(), /[1-9]\d* zstd frames/);
    });

    it('GC fallback: the narinfo from A’s store, the path deleted, the NAR from B', async () => {
      const info = await get(`${pnA.substituterUrl}/${H(seed)}.narinfo`);
      assert.equal(info.status, 200);
      assert.equal((await status(pnA, `${dir}/host-a-state`)).entries.find((e) => e.storePath === seed)?.source, 'local');
      const del = await A.exec('nix-store', ['--delete', seed]);
      assert.equal(del.code, 0, del.stderr);
      const nar = await get(`${pnA.substituterUrl}/${/^URL: (.*)$/m.exec(info.body.toString())![1]}`);
      assert.equal(nar.status, 200);
      assert.equal(createHash('sha256').update(nar.body).digest('hex'), await narSha(B, seed));
      const s = await status(pnA, `${dir}/host-a-state`);
      assert.equal(s.entries.find((e) => e.storePath === seed)?.sourceName, peerB);
      const fb = s.events.find((e) => e.type === 'fallback' && e.storePath === seed);
      assert.ok(fb?.type === 'fallback' && fb.reason === 'gc' && fb.outcome === 'served', JSON.stringify(fb));
    });

    it(`a ca-derivations ${suite} Nix substitutes a content-addressed output through a peer, realisation first, instead of building it`, async () => {
      for (const h of [A, B]) writeFileSync(h.outside('/tmp/ca.nix'), CA);
      const summaryOfB = async () => (await status(pnA, `${dir}/host-a-state`)).peers.find((p) => p.url === pnB.shareUrl)?.summary?.paths ?? 0;
      const before = await summaryOfB();
      const built = await B.exec('nix-build', ['--no-out-link', '/tmp/ca.nix'], { check: true });
      const out = built.stdout.trim();
      // A learns what B holds from B's store summary, refreshed every few seconds: until then A's
      // Peernix answers a quick 404 without asking (and Nix would remember that miss for an hour).
      await waitFor('B’s summary to admit the new paths (the .drv and its output)', async () => (await summaryOfB()) >= before + 2, 30_000);
      const r = await A.exec(
        'nix-build',
        [
          '--store',
          'daemon',
          '--no-out-link',
          '/tmp/ca.nix',
          '--option',
          'substituters',
          pnA.substituterUrl,
          '--option',
          'trusted-public-keys',
          keyB,
          '--option',
          'require-sigs',
          'true',
        ],
        { timeoutMs: 120_000 },
      );
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.trim(), out);
      assert.match(r.stderr, new RegExp(`copying path '${out}' from 'http://127\\.0\\.0\\.1`));
      assert.doesNotMatch(r.stderr, /building '/);
      assert.equal(await narSha(A, out), await narSha(B, out));
      // B served its realisation, signed with its key; A passed it on to its Nix.
      assert.match(pnB.logs(), /GET \/realisations\/sha256:[0-9a-f]{64}%21out\.doi 200/);
      // Nix 2.34 percent-encodes the "!", 2.26 sends it as it is.
      assert.match(pnA.logs(), /GET \/realisations\/sha256:[0-9a-f]{64}(%21|!)out\.doi 200/);
      const id = /GET \/realisations\/(sha256:[0-9a-f]{64})%21out\.doi 200/.exec(pnB.logs())![1];
      const doi = JSON.parse((await get(`${pnB.shareUrl}/realisations/${id}!out.doi`)).body.toString()) as { outPath: string; signatures: string[] };
      assert.equal(`/nix/store/${doi.outPath}`, out);
      assert.ok(
        doi.signatures.some((s) => s.startsWith('host-b-1:')),
        JSON.stringify(doi),
      );
    });

    it(`the doctor finds the miss ${suite}'s Nix remembers, in the file that Nix wrote`, async (tc) => {
      const missing = `/nix/store/${'0'.repeat(32)}-nobody-has-this`;
      const r = await A.exec('nix-store', [
        '-r',
        missing,
        '--option',
        'substituters',
        pnA.substituterUrl,
        '--option',
        'trusted-public-keys',
        `${keyA} ${keyB}`,
      ]);
      assert.notEqual(r.code, 0);
      const cacheDir = A.outside('/root/.cache/nix');
      const files = readdirSync(cacheDir).filter((f) => /^binary-cache-v\d+\.sqlite$/.test(f));
      assert.equal(files.length, 1, files.join());
      const report = diagnose(
        await gatherFacts({
          env: { ...process.env, NIX_CONF_DIR: A.outside('/etc/nix'), NIX_CONFIG: undefined, NIX_USER_CONF_FILES: undefined, HOME: `${dir}/home` },
          stateDir: `${dir}/host-a-state`,
          storeUri: A.storeUri,
          listen: new URL(pnA.substituterUrl).host,
          shareListen: new URL(pnA.shareUrl!).host,
          snapshot: () => status(pnA, `${dir}/host-a-state`),
          narinfoCaches: [{ dir: cacheDir, owner: 'nix-daemon' }],
        }),
      );
      const daemon = report.checks.find((c) => c.id === 'daemon.reachable')!;
      const neg = report.checks.find((c) => c.id.startsWith('nix-cache.negative:nix-daemon'))!;
      tc.diagnostic(`${suite}: ${daemon.detail} | ${files[0]}: ${neg.status}: ${neg.detail}`);
      assert.equal(daemon.status, 'ok');
      assert.match(daemon.detail, /worker protocol 1\.38/);
      assert.equal(neg.status, 'warn', neg.detail);
      assert.match(neg.detail, /^1 path\(s\) missed/);
      assert.match(neg.fix!, new RegExp(`sqlite3 ${cacheDir}/${files[0]} "DELETE`));
    });
  });
}

// Nix 2.8's and 2.26's daemons abort a worker when asked for a realisation with ca-derivations off
// (an assertion in their SQLite layer). Peernix must not ask them then: a quick 404, never a 503 a
// ca-derivations client would retry, and no crashed workers in the daemon's log.
describe('realisations asked of daemons without ca-derivations', { timeout: 300_000 }, () => {
  let dir: string;
  const stops: (() => Promise<unknown>)[] = [];
  before(async () => {
    dir = await makeTempDir('pn-noca');
  });
  after(async () => {
    for (const s of stops.reverse()) await s();
    if (dir) await cleanup(dir);
  });

  const ask = async (storeUri: string, confDir: string, daemonLog: () => string, label: string) => {
    const pn = await startPeernixProcess(
      ['--store', storeUri, '--share-listen', '127.0.0.1:0', '--listen', '127.0.0.1:0', '--state-dir', `${dir}/${label}-state`, '--no-mdns'],
      {
        env: { NIX_CONF_DIR: confDir, NIX_CONFIG: undefined as unknown as string },
      },
    );
    stops.push(() => pn.stop());
    const id = `sha256:${'a'.repeat(64)}`;
    for (const url of [`${pn.shareUrl}/realisations/${id}!out.doi`, `${pn.substituterUrl}/realisations/${id}%21out.doi`]) {
      const r = await get(url);
      assert.equal(r.status, 404, `${label}: ${url}`);
    }
    await new Promise((r) => setTimeout(r, 300));
    assert.doesNotMatch(daemonLog(), /Assertion|FATAL|abort/i, `${label}'s daemon log`);
    // The daemon still answers everything else on the same pool.
    assert.equal((await get(`${pn.shareUrl}/nix-cache-info`)).status, 200);
  };

  it('Nix 2.8 (bookworm)', async () => {
    const h = await startNixHost(`${dir}/h28`);
    stops.push(() => h.stop());
    await ask(h.storeUri, `${dir}/h28/etc`, () => h.daemonLog(), 'nix-2.8');
  });

  it('Nix 2.26 (trixie)', async () => {
    const h = await startModernNixHost(`${dir}/h226`, 'trixie', ['experimental-features = nix-command']);
    stops.push(() => h.stop());
    await ask(h.storeUri, h.outside('/etc/nix'), () => h.daemonLog(), 'nix-2.26');
  });
});
