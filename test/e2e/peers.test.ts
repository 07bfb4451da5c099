import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { nodeBin, skippedWithoutNetns } from '../support/netns.ts';
import { addPath, addTestClosure, makeSigningKey, nixEnv, run } from '../support/nix-host.ts';
import { PROJECT_ROOT } from '../support/peernix-process.ts';
import { createPnLan, hashPart as H, SUBST, upPeers, waitFor, type PnHost, type PnLan } from '../support/peernix-lan.ts';

// Three Peernix hosts in network namespaces, each with its own chroot store and nix-daemon,
// finding each other by mDNS alone — and the seed scenario, verbatim.

// A sequence on one LAN (three hosts are slow to set up): the last two cases kill hosts on purpose,
// the fast-404 case relies on the kill before it, and nothing before them depends on them.
describe('peers on a LAN: mDNS, the resolver, GC fallback, sharing', { timeout: 900_000 }, () => {
  if (skippedWithoutNetns()) return;
  let pl: PnLan;
  let dir: string;
  let hosts: PnHost[];
  let evil: ChildProcess | null = null;
  const [A, B, C] = [0, 1, 2];
  const curl = (h: PnHost, args: string[]) => pl.curl(h, args);
  const status = (h: PnHost) => pl.status(h);

  let onlyB: { top: string; paths: string[] };
  let seed: string;
  let big: string;
  let unseen: string;
  let evilPath: string;

  before(async () => {
    pl = await createPnLan('pn-peers', ['host-a', 'host-b', 'host-c']);
    ({ dir, hosts } = pl);
    // The upstream key plays cache.nixos.org: the evil peer's path is signed with it.
    const upstream = await makeSigningKey(hosts[A].nix, dir, 'upstream-1');
    pl.trustedKeys += ` ${upstream.publicKey}`;

    onlyB = await addTestClosure(hosts[B].nix, { largeSize: 4 * 1024 * 1024 });
    const seedTree = { type: 'file' as const, size: 3 * 1024 * 1024, seed: 'seed' };
    seed = await addPath(hosts[A].nix, 'seed-path', seedTree);
    assert.equal(await addPath(hosts[B].nix, 'seed-path', seedTree), seed);
    const bigTree = { type: 'file' as const, size: 96 * 1024 * 1024, seed: 'big' };
    big = await addPath(hosts[B].nix, 'big-path', bigTree);
    assert.equal(await addPath(hosts[C].nix, 'big-path', bigTree), big);
    unseen = await addPath(hosts[B].nix, 'only-on-b', { type: 'file', contents: 'never asked for before B leaves\n' });

    // The hostile peer's cache: a genuine, signed path that exists nowhere else.
    evilPath = (await run('nix-store', ['--store', `${dir}/evilstore`, '--add', `${PROJECT_ROOT}package.json`], { check: true })).stdout.trim();
    await run(
      'nix',
      ['copy', '--store', `${dir}/evilstore`, '--to', `file://${dir}/evilcache?compression=none&secret-key=${upstream.secretKeyFile}`, evilPath],
      { check: true },
    );
    evil = hosts[C].lan.exec(nodeBin(), [`${PROJECT_ROOT}test/fixtures/evil-cache.ts`, `${dir}/evilcache`, '0.0.0.0', '9997']);

    await pl.start(hosts[A], ['--peer', `http://${hosts[C].lan.address}:9997`]);
    await pl.start(hosts[B]);
    await pl.start(hosts[C]);
  });

  after(async () => {
    evil?.kill('SIGKILL');
    await pl?.teardown();
  });

  it('every host finds the other two by mDNS alone, never itself', async () => {
    for (const h of hosts) {
      const others = hosts
        .filter((o) => o !== h)
        .map((o) => o.name)
        .sort();
      const s = await waitFor(
        `${h.name} to see ${others}`,
        async () => {
          const st = await status(h);
          return others.every((o) => upPeers(st).includes(o)) ? st : null;
        },
        15_000,
      );
      assert.ok(!s.peers.some((p) => p.name === h.name), 'a host never lists itself');
      for (const p of s.peers.filter((x) => x.source === 'mdns')) {
        const o = hosts.find((x) => x.name === p.name)!;
        assert.equal(p.url, `http://${o.lan.address}:9999`);
        assert.equal(p.publicKey, o.key.publicKey);
        assert.equal(p.trusted, true);
      }
    }
  });

  it('a real Nix on A substitutes a closure that only B has, through its own Peernix', async () => {
    const r = await hosts[A].lan.run(
      'nix',
      [
        'copy',
        '--from',
        SUBST,
        '--to',
        `${dir}/client-a`,
        onlyB.top,
        '--option',
        'trusted-public-keys',
        hosts[B].key.publicKey,
        '--option',
        'require-sigs',
        'true',
      ],
      { env: nixEnv({ XDG_CACHE_HOME: `${dir}/client-a-xdg` }), timeoutMs: 180_000 },
    );
    assert.equal(r.code, 0, r.stderr);
    const got = (await run('nix-store', ['--store', `${dir}/client-a`, '-qR', onlyB.top], { check: true })).stdout.trim().split('\n').sort();
    assert.deepEqual(got, onlyB.paths);
    const s = await status(hosts[A]);
    const entry = s.entries.find((e) => e.storePath === onlyB.top);
    assert.equal(entry?.sourceName, 'host-b');
    assert.ok(s.peers.find((p) => p.name === 'host-b')!.bytesFrom > 0);
  });

  it('the seed scenario: narinfo from the local store, path GC-ed, NAR served from B, entry re-pointed, fallback event', async () => {
    const info = await curl(hosts[A], [`${SUBST}/${H(seed)}.narinfo`]);
    assert.match(info.stdout, new RegExp(`^StorePath: ${seed}$`, 'm'));
    let s = await status(hosts[A]);
    assert.equal(s.entries.find((e) => e.storePath === seed)?.source, 'local');

    const del = await hosts[A].nix.nixStore(['--delete', seed]);
    assert.equal(del.code, 0, del.stderr);

    const url = /^URL: (.*)$/m.exec(info.stdout)![1];
    const nar = await curl(hosts[A], ['-o', `${dir}/seed.nar`, '-w', '%{http_code}', `${SUBST}/${url}`]);
    assert.equal(nar.stdout, '200');
    const sum = (await run('sha256sum', [`${dir}/seed.nar`])).stdout.split(' ')[0];
    assert.equal(sum, (await hosts[B].nix.dumpHash(seed)).sha256.toString('hex'));

    s = await status(hosts[A]);
    const entry = s.entries.find((e) => e.storePath === seed)!;
    assert.equal(entry.sourceName, 'host-b');
    const fb = s.events.find((e) => e.type === 'fallback' && e.storePath === seed);
    assert.ok(fb?.type === 'fallback');
    assert.deepEqual(fb && { from: fb.from, to: fb.to, reason: fb.reason, outcome: fb.outcome }, {
      from: 'this machine',
      to: 'host-b',
      reason: 'gc',
      outcome: 'served',
    });
  });

  it('sharing off on B: A stops seeing B; back on, A finds it again', async (t) => {
    const off = await pl.cli(hosts[B], ['sharing', 'off']);
    assert.equal(off.code, 0, off.stderr);
    const t0 = Date.now();
    await waitFor('A to drop B', async () => !upPeers(await status(hosts[A])).includes('host-b'), 30_000);
    t.diagnostic(`A dropped B ${Date.now() - t0} ms after B's sharing went off (shown, not bounded: a loaded machine's figure)`);
    const refused = await curl(hosts[A], ['-o', '/dev/null', '-w', '%{http_code}', `http://${hosts[B].lan.address}:9999/nix-cache-info`]);
    assert.equal(refused.stdout, '000', 'B’s share listener refuses at once');
    assert.equal((await status(hosts[B])).status.sharing, false);
    const on = await pl.cli(hosts[B], ['sharing', 'on']);
    assert.equal(on.code, 0, on.stderr);
    await waitFor('A to see B again', async () => upPeers(await status(hosts[A])).includes('host-b'), 15_000);
  });

  it('a peer serving corrupted bytes is never accepted by Nix, and is marked bad', async () => {
    const r = await hosts[A].lan.run('nix', ['copy', '--from', SUBST, '--to', `${dir}/client-evil`, evilPath, '--option', 'require-sigs', 'true'], {
      env: nixEnv({ XDG_CACHE_HOME: `${dir}/client-evil-xdg`, NIX_CONFIG: `experimental-features = nix-command\ntrusted-public-keys = ${pl.trustedKeys}` }),
      timeoutMs: 120_000,
    });
    assert.notEqual(r.code, 0, 'Nix must not accept the path');
    const present = await run('nix-store', ['--store', `${dir}/client-evil`, '--check-validity', evilPath]);
    assert.notEqual(present.code, 0, 'the corrupted path is not in the client store');
    const s = await status(hosts[A]);
    const bad = s.peers.find((p) => p.url === `http://${hosts[C].lan.address}:9997`);
    assert.notEqual(bad?.state, 'up');
  });

  it('the peer serving a NAR is killed mid-transfer: the download completes from the other peer', async () => {
    const info = await curl(hosts[A], [`${SUBST}/${H(big)}.narinfo`]);
    const url = /^URL: (.*)$/m.exec(info.stdout)![1];
    const source = (await status(hosts[A])).entries.find((e) => e.storePath === big)!.sourceName;
    const victim = hosts.find((h) => h.name === source)!;
    const other = hosts.find((h) => h !== victim && h !== hosts[A])!;
    const dl = curl(hosts[A], ['--limit-rate', '8M', '-o', `${dir}/big.nar`, '-w', '%{http_code} %{size_download}', `${SUBST}/${url}`]);
    await new Promise((r) => setTimeout(r, 2000));
    victim.pn!.proc.kill('SIGKILL');
    const res = await dl;
    const aLog = () =>
      hosts[A]
        .pn!.logs()
        .split('\n')
        .filter((l) => /resum|fallback|NAR|cut|peer (down|up)/.test(l))
        .slice(-25)
        .join('\n');
    assert.equal(res.code, 0, `curl: ${res.stdout} ${res.stderr}\nA's log: ${aLog()}`);
    const sum = (await run('sha256sum', [`${dir}/big.nar`])).stdout.split(' ')[0];
    assert.equal(sum, (await other.nix.dumpHash(big)).sha256.toString('hex'));
    const s = await status(hosts[A]);
    const fb = s.events.find((e) => e.type === 'fallback' && e.storePath === big);
    const tr = s.events.find((e) => e.type === 'transfer' && e.storePath === big);
    assert.ok(
      fb && fb.type === 'fallback' && fb.to === other.name && fb.reason === 'peer-failed',
      `${JSON.stringify(fb)} ${JSON.stringify(tr)}\nA's log: ${aLog()}`,
    );
    assert.equal(s.entries.find((e) => e.storePath === big)?.sourceName, other.name);
    await victim.pn!.stop();
    victim.pn = null;
  });

  it('with every peer gone, a miss is a fast 404', async () => {
    for (const h of [hosts[B], hosts[C]]) {
      await h.pn?.stop('SIGTERM');
      h.pn = null;
    }
    evil?.kill('SIGTERM');
    await waitFor('A to see no live peers', async () => upPeers(await status(hosts[A])).length === 0, 10_000);
    const r = await curl(hosts[A], ['-o', '/dev/null', '-w', '%{http_code} %{time_total}', `${SUBST}/${H(unseen)}.narinfo`]);
    const [code, secs] = r.stdout.split(' ');
    assert.equal(code, '404', `a miss with no live peer (${secs} s)`);
  });
});
