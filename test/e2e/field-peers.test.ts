import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { Snapshot } from '../../src/base/api.ts';
import { encodeNix32 } from '../../src/nix/nix32.ts';
import { startCpuHogs } from '../support/cpu-hogs.ts';
import { nodeBin, skippedWithoutNetns } from '../support/netns.ts';
import { importPaths, makeSigningKey, nixEnv } from '../support/nix-host.ts';
import { PROJECT_ROOT } from '../support/peernix-process.ts';
import { createPnLan, hashPart as H, SUBST, upPeers, waitFor, type PnHost, type PnLan } from '../support/peernix-lan.ts';

// The field (issue #8, items 6, 8, 9, 10): hosts in network namespaces with real Nix and real
// Peernix, next to a slow peer (tbf on its link), a peer that sends wrong bytes, one that drips,
// one that answers health checks but stalls lookups, and one whose link is cut.
//
//   A  Peernix + the Nix that substitutes through it
//   B  Peernix, a good peer (slowed with tbf for one test, its link cut in the last)
//   C  no Peernix: the misbehaving fixtures, as static peers of A

const MiB = 1024 * 1024;

describe('the field: slow, lying, dripping, stalling and vanished peers', { timeout: 900_000 }, () => {
  if (skippedWithoutNetns()) return;
  let pl: PnLan;
  let dir: string;
  let A: PnHost, B: PnHost, C: PnHost;
  let upstream: { secretKeyFile: string; publicKey: string };
  let allKeys: string;
  const fixtures: ChildProcess[] = [];
  const fixtureOut = new Map<string, string>();
  let evilUrl: string, dripUrl: string, stallUrl: string;
  let slowPaths: string[];
  let lyingPaths: string[];
  let drippedPath: string;

  const status = (h: PnHost) => pl.status(h);
  const peerByUrl = (s: Snapshot, url: string) => s.peers.find((p) => p.url === url);
  const storePath = (name: string) => `/nix/store/${encodeNix32(randomBytes(20))}-${name}`;
  const fileTree = (size: number, seed: string) => ({ type: 'file' as const, size, seed });

  async function narInfoOf(path: string): Promise<{ url: string; narSize: number }> {
    const r = await pl.curl(A, [`${SUBST}/${H(path)}.narinfo`]);
    const url = /^URL: (.*)$/m.exec(r.stdout)?.[1];
    assert.ok(url, `narinfo of ${path} via A: ${r.stdout}`);
    return { url, narSize: Number(/^NarSize: (\d+)$/m.exec(r.stdout)![1]) };
  }

  /** Hash parts of the misses asked so far, in order. */
  const missesAsked: string[] = [];
  async function timedMiss(): Promise<number> {
    const h = encodeNix32(randomBytes(20));
    missesAsked.push(h);
    const r = await pl.curl(A, ['-o', '/dev/null', '-w', '%{http_code} %{time_total}', `${SUBST}/${h}.narinfo`]);
    const [code, secs] = r.stdout.split(' ');
    assert.equal(code, '404');
    return Number(secs) * 1000;
  }

  function startFixture(script: string, args: string[], name: string): Promise<void> {
    const child = C.lan.exec(nodeBin(), [`${PROJECT_ROOT}test/fixtures/${script}`, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    fixtures.push(child);
    fixtureOut.set(name, '');
    child.stdout!.on('data', (d) => fixtureOut.set(name, fixtureOut.get(name) + String(d)));
    child.stderr!.on('data', (d) => fixtureOut.set(name, fixtureOut.get(name) + String(d)));
    return waitFor(`${name} listening`, async () => /listening/.test(fixtureOut.get(name)!), 10_000).then(() => {});
  }

  async function restartA(opts: { trustedKeys: string; peers: string[] }): Promise<void> {
    await A.pn?.stop();
    A.pn = null;
    const saved = pl.trustedKeys;
    pl.trustedKeys = opts.trustedKeys;
    try {
      await pl.start(
        A,
        opts.peers.flatMap((p) => ['--peer', p]),
      );
    } finally {
      pl.trustedKeys = saved;
    }
  }

  before(async () => {
    pl = await createPnLan('pn-field', ['host-a', 'host-b', 'host-c']);
    ({ dir } = pl);
    [A, B, C] = pl.hosts;
    upstream = await makeSigningKey(C.nix, dir, 'upstream-1');
    allKeys = `${pl.trustedKeys} ${upstream.publicKey}`;

    // (a) forty 1 MiB paths only B has.
    const slow = Array.from({ length: 40 }, (_, i) => ({ path: storePath(`slow-${i}`), tree: fileTree(MiB, `slow-${i}`), references: [] }));
    await importPaths(B.nix, slow);
    slowPaths = slow.map((s) => s.path);

    // (b), (c): paths C's fixtures serve signed by "upstream" (what A trusts), and B holds unsigned
    // by upstream (only B's own key, which A does not trust): A's narinfo then always comes from the
    // fixture, and B is the other holder a NAR can be resumed from.
    const lying = Array.from({ length: 4 }, (_, i) => ({ path: storePath(`lying-${i}`), tree: fileTree(2 * MiB, `lying-${i}`), references: [] }));
    const dripped = { path: storePath('dripped'), tree: fileTree(2 * MiB, 'dripped'), references: [] };
    await importPaths(C.nix, [...lying, dripped]);
    lyingPaths = lying.map((l) => l.path);
    drippedPath = dripped.path;
    await C.nix.nix(['copy', '--to', `file://${dir}/evilcache?compression=none&secret-key=${upstream.secretKeyFile}`, ...lyingPaths], { check: true });
    await C.nix.nix(['copy', '--to', `file://${dir}/dripcache?compression=none&secret-key=${upstream.secretKeyFile}`, drippedPath], { check: true });
    await C.nix.nix(['copy', '--to', `file://${dir}/stallcache?compression=none`, drippedPath], { check: true });
    await C.nix.nix(['copy', '--no-check-sigs', '--to', B.nix.daemonUri, ...lyingPaths, drippedPath], { check: true });

    await startFixture('field-peer.ts', ['corrupt', `${dir}/evilcache`, '0.0.0.0', '9997'], 'evil');
    await startFixture('field-peer.ts', ['drip', `${dir}/dripcache`, '0.0.0.0', '9996'], 'drip');
    await startFixture('field-peer.ts', ['stall-narinfo', `${dir}/stallcache`, '0.0.0.0', '9995'], 'stall');
    evilUrl = `http://${C.lan.address}:9997`;
    dripUrl = `http://${C.lan.address}:9996`;
    stallUrl = `http://${C.lan.address}:9995`;

    await pl.start(B);
    await pl.start(A);
    await waitFor('A to see B', async () => upPeers(await status(A)).includes('host-b'), 15_000);
  });

  after(async () => {
    for (const f of fixtures) f.kill('SIGKILL');
    await pl?.teardown();
  });

  it('(a) one slow peer on a busy machine: 40 concurrent NARs all complete, none 404 after a 200 narinfo, and misses stay fast', async (t) => {
    const infos = await Promise.all(slowPaths.map(narInfoOf));
    const shaped = await B.lan.run('tc', ['qdisc', 'add', 'dev', 'eth0', 'root', 'tbf', 'rate', '20mbit', 'burst', '32kb', 'latency', '50ms']);
    assert.equal(shaped.code, 0, shaped.stderr);
    // Two CPU busy-loops beside it, as a build on both cores of a laptop (issue #27: 6 of 40 were
    // answered 404 after their narinfo said 200 on such a machine).
    const hogs = startCpuHogs(2, 120);
    try {
      const t0 = Date.now();
      const nars = Promise.all(infos.map((i) => pl.curl(A, ['-o', '/dev/null', '-w', '%{http_code} %{size_download}', `${SUBST}/${i.url}`])));
      await new Promise((r) => setTimeout(r, 2000));
      const misses: number[] = [];
      for (let i = 0; i < 5; i++) misses.push(await timedMiss());
      const results = await nars;
      const took = Date.now() - t0;
      const codes = new Map<string, number>();
      let complete = 0;
      results.forEach((r, i) => {
        const [code, size] = r.stdout.split(' ');
        codes.set(code, (codes.get(code) ?? 0) + 1);
        if (r.code === 0 && code === '200' && Number(size) === infos[i].narSize) complete++;
      });
      const bState = (await status(A)).peers.find((p) => p.name === 'host-b')?.state;
      if (codes.get('404'))
        t.diagnostic(
          A.pn!.logs()
            .split('\n')
            .filter((l) => /host-b|fallback|NAR/.test(l))
            .slice(-30)
            .join('\n'),
        );
      t.diagnostic(
        `40 NARs of 1 MiB from B at 20 mbit beside two CPU hogs: HTTP ${JSON.stringify(Object.fromEntries(codes))}, ${complete} complete in ${took} ms; misses meanwhile ${misses.map(Math.round).join(', ')} ms; B is ${bState}`,
      );
      assert.equal(codes.get('404') ?? 0, 0, 'no NAR 404 after its narinfo said 200');
      assert.equal(complete, 40);
      // The misses' times are shown (bench:busy-peer quotes them); each was checked to be a 404.
      assert.equal(bState, 'up');
    } finally {
      await hogs.stop();
      await B.lan.run('tc', ['qdisc', 'del', 'dev', 'eth0', 'root']);
    }
  });

  it('(b) a peer that sends wrong bytes: Nix never keeps a resumed wrong prefix; the peer shows as bad and clearing works', async (t) => {
    // A trusts only "upstream": its narinfos come from the liar, B is the holder a resume would use.
    await restartA({ trustedKeys: upstream.publicKey, peers: [evilUrl, dripUrl] });
    await waitFor(
      'A to see B and the liar',
      async () => {
        const s = await status(A);
        return upPeers(s).includes('host-b') && peerByUrl(s, evilUrl)?.state === 'up';
      },
      20_000,
    );
    const outcomes: string[] = [];
    const clears: string[] = [];
    const wrongPrefix: string[] = [];
    let ok = 0;
    for (const [i, path] of lyingPaths.entries()) {
      if (i > 0) {
        // The liar was marked bad by the last copy: the user clears it, so this copy meets it again.
        const before = peerByUrl(await status(A), evilUrl)!;
        const cleared = await pl.cli(A, ['peer', 'clear', before.name]);
        clears.push(`${before.bad ? 'bad' : 'not marked'} → ${cleared.code === 0 ? cleared.stdout.trim() : `exit ${cleared.code}: ${cleared.stderr.trim()}`}`);
        await waitFor(
          'the liar back in use',
          async () => {
            const p = peerByUrl(await status(A), evilUrl)!;
            return !p.bad && p.state === 'up';
          },
          15_000,
        ).catch(() => clears.push('(not back in use)'));
      }
      const r = await A.lan.run(
        'nix-store',
        [
          '--store',
          `${dir}/client-lying`,
          '-r',
          path,
          '--option',
          'substituters',
          `${SUBST} http://${B.lan.address}:9999?priority=50`,
          '--option',
          'trusted-public-keys',
          `${upstream.publicKey} ${B.key.publicKey}`,
          '--option',
          'require-sigs',
          'true',
        ],
        { env: nixEnv({ XDG_CACHE_HOME: `${dir}/client-lying-xdg-${i}` }), timeoutMs: 180_000 },
      );
      const valid = await C.nix.run('nix-store', ['--store', `${dir}/client-lying`, '--verify-path', path]);
      const good = r.code === 0 && valid.code === 0;
      if (good) ok++;
      outcomes.push(good ? 'ok' : `failed: ${(r.stderr.match(/error: .*/) ?? [r.stderr.slice(-200)])[0]}`);
      // With B as a second substituter the copy ends well either way; what must never happen is
      // Nix checking a resumed transfer built on the liar's prefix.
      if (/hash mismatch/.test(r.stderr)) wrongPrefix.push(r.stderr.match(/.*hash mismatch.*/)![0].trim());
    }
    const s = await status(A);
    const liar = peerByUrl(s, evilUrl)!;
    const evilNars = (fixtureOut.get('evil')!.match(/^nar /gm) ?? []).length;
    const refused = s.events.filter((e) => e.type === 'fallback' && e.reason === 'mismatch' && e.outcome === 'not-found').length;
    t.diagnostic(
      `copies through a liar: ${ok} of ${lyingPaths.length} good (${outcomes.join('; ')}); liar served ${evilNars} NARs; resumes refused: ${refused}; liar now ${JSON.stringify(liar.bad)}`,
    );
    t.diagnostic(`between copies: ${clears.join('; ')}`);
    t.diagnostic(`copies where Nix got a resumed wrong prefix: ${wrongPrefix.length}${wrongPrefix.length ? ` (${wrongPrefix[0]})` : ''}`);
    assert.equal(wrongPrefix.length, 0, 'never completed onto the wrong prefix');
    assert.equal(refused, lyingPaths.length, 'each resume after the cut was refused');
    for (const c of clears) assert.match(c, /^bad → .*no longer marked bad/);
    assert.equal(ok, lyingPaths.length, 'every copy ends with the right path');
    assert.equal(evilNars, lyingPaths.length, 'the liar met every copy once');
    assert.ok(liar.bad, 'shown as bad in `peernix status --json`');
    assert.ok(liar.bad.until - liar.bad.since >= 60 * 60_000, 'for hours');
    const text = await pl.cli(A, ['status']);
    assert.match(text.stdout, /^\s+bad\s+\S+:9997 .*\n\s+not used: served bytes that do not match the NarHash/m);
  });

  it('(c) a dripping peer (1 byte/s) is abandoned and the NAR completes from another holder', async (t) => {
    const { url, narSize } = await narInfoOf(drippedPath);
    assert.equal((await status(A)).entries.find((e) => e.storePath === drippedPath)?.sourceName, new URL(dripUrl).host);
    const t0 = Date.now();
    const r = await pl.curl(A, ['--max-time', '60', '-o', `${dir}/dripped.nar`, '-w', '%{http_code} %{size_download}', `${SUBST}/${url}`]);
    const took = Date.now() - t0;
    const [code, size] = r.stdout.split(' ');
    const s = await status(A);
    const fb = s.events.find((e) => e.type === 'fallback' && e.storePath === drippedPath);
    t.diagnostic(`dripped NAR: curl exit ${r.code}, HTTP ${code}, ${size} of ${narSize} bytes in ${took} ms; ${JSON.stringify(fb)}`);
    assert.equal(r.code, 0, 'the transfer completed');
    assert.equal(code, '200');
    assert.equal(Number(size), narSize);
    const sum = (await C.nix.run('sha256sum', [`${dir}/dripped.nar`])).stdout.split(' ')[0];
    assert.equal(sum, (await B.nix.dumpHash(drippedPath)).sha256.toString('hex'));
    assert.ok(fb && fb.type === 'fallback' && fb.to === 'host-b', 'the rest came from B');
  });

  it('(d) a peer that stalls lookups and a peer whose link is cut each cost at most one slow lookup', async (t) => {
    await restartA({ trustedKeys: allKeys, peers: [stallUrl] });
    await waitFor(
      'A to see B and know the staller',
      async () => {
        const s = await status(A);
        return upPeers(s).includes('host-b') && peerByUrl(s, stallUrl) !== undefined;
      },
      20_000,
    );
    await new Promise((r) => setTimeout(r, 3000)); // a health-probe round or two: /nix-cache-info answers
    const firstStall = await timedMiss();
    const askedBefore = missesAsked.length;
    const afterStall: number[] = [];
    for (let i = 0; i < 20; i++) {
      afterStall.push(await timedMiss());
      await new Promise((r) => setTimeout(r, 250)); // spans several health-probe rounds
    }
    const stallState = peerByUrl(await status(A), stallUrl)?.state;
    // Which of those misses reached the staller, by its own account (it prints each narinfo asked).
    const stallerSaw = missesAsked.slice(askedBefore).filter((h) => fixtureOut.get('stall')!.includes(`narinfo ${h}.narinfo`)).length;

    // B vanishes the way a laptop does: its link goes down, nothing is sent.
    const beforeCut = await timedMiss(); // B was just asked, on a kept-alive connection
    const veth = B.lan.ns.replace(/n(\d+)$/, 'v$1');
    const down = await C.nix.run('ip', ['link', 'set', veth, 'down']);
    assert.equal(down.code, 0, down.stderr);
    try {
      const burst = await Promise.all(Array.from({ length: 10 }, (_, i) => new Promise((r) => setTimeout(r, i * 30)).then(timedMiss)));
      const bAfterBurst = upPeers(await status(A)).includes('host-b');
      const afterCut: number[] = [];
      for (let i = 0; i < 20; i++) {
        afterCut.push(await timedMiss());
        await new Promise((r) => setTimeout(r, 250));
      }
      const slow = (xs: number[]) => xs.filter((ms) => ms > 100).length;
      t.diagnostic(
        `staller: first miss ${Math.round(firstStall)} ms, then ${slow(afterStall)} of 20 misses > 100 ms (max ${Math.round(Math.max(...afterStall))} ms), ${stallerSaw} of them reached it; staller ${stallState}`,
      );
      t.diagnostic(
        `cut link: a miss just before took ${Math.round(beforeCut)} ms; 10 misses in flight took at most ${Math.round(Math.max(...burst))} ms, B then ${bAfterBurst ? 'still up' : 'not up'}; then ${slow(afterCut)} of 20 misses > 100 ms (max ${Math.round(Math.max(...afterCut))} ms)`,
      );
      // Counted, not timed (the times above are shown only: on a loaded machine they are the machine's).
      assert.equal(stallerSaw, 0, 'a probe alone does not bring back a peer whose lookups stall');
      assert.notEqual(stallState, 'up');
      // After the cut every miss is still a 404 (timedMiss checks each); whether one waited on B is
      // not told apart here (B's summary keeps most misses from asking it at all): the unit test
      // 'a peer whose link is cut' counts what reached the cut peer on a driven clock.
    } finally {
      await C.nix.run('ip', ['link', 'set', veth, 'up']);
    }
  });
});
