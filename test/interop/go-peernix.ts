// Interop with the real Go peernix (github zw3rk/peernix), both ways, on a dual-stack LAN of network
// namespaces (IPv6 link-local on everywhere). Not part of `npm test`: it needs the Go program's source,
// which this repository does not carry (no licence to copy it). Run as root:
//
//   node test/interop/go-peernix.ts <dir with the Go source (main.go)> [--runs N]
//
// It builds the Go program from that directory in GOPATH mode with Debian's golang-go and
// golang-github-hashicorp-mdns-dev (docs go-peernix.md), then on one LAN of three hosts — `pn` (our
// Peernix), `gohost` (the Go program) and `peer2` (another Peernix) — measures and checks:
//   1. a Go host that starts after us: how long until our status lists it up;
//   2. our Nix substituting 20 paths at once from the Go host, `--runs` times (default 3);
//   3. the Go host's Nix substituting a path from us, then, with a narinfo it fetched before the Go
//      program restarted, its NAR after the restart (the stateless <hash>-<narhash>.nar form);
//   4. a resume from the Range-less Go host after peer2, serving the same NAR by Range, is cut off.
// Every check is Nix's: signatures required, bytes compared by NarHash. It prints one line per figure
// and exits non-zero when a check fails.
//
// The Go host runs in its own mount namespace with its chroot store's /nix bind-mounted on /nix (it
// stats store paths and runs `nix-store --dump` on them), a `nix store path-from-hash-part` shim for
// Nix 2.8, and a hosts entry for its host name with the trailing dot (/etc/netns/<ns>/hosts, which
// `ip netns exec` mounts over /etc/hosts): without one its mDNS start hangs on DNS.

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { nixEnv, addPath, addTestClosure, makeSigningKey } from '../support/nix-host.ts';
import { createPnLan, hashPart, SUBST, waitFor, type PnHost, type PnLan } from '../support/peernix-lan.ts';

const args = process.argv.slice(2);
const srcDir = args.find((a) => !a.startsWith('--'));
const runsArg = args.indexOf('--runs');
const RUNS = runsArg >= 0 ? Number(args[runsArg + 1]) : 3;
if (!srcDir || !fs.existsSync(path.join(srcDir, 'main.go'))) {
  console.error('usage: node test/interop/go-peernix.ts <Go peernix source dir (with main.go)> [--runs N]');
  process.exit(2);
}
if (process.getuid?.() !== 0) {
  console.error('interop: needs root (network namespaces, mounts)');
  process.exit(2);
}

const figures: string[] = [];
const failures: string[] = [];
const figure = (line: string) => {
  figures.push(line);
  console.log(`FIGURE ${line}`);
};
async function check(what: string, fn: () => Promise<void>): Promise<void> {
  const t0 = Date.now();
  try {
    await fn();
    console.log(`ok   ${what} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  } catch (e) {
    failures.push(`${what}: ${(e as Error).message}`);
    console.log(`FAIL ${what}: ${(e as Error).message}`);
  }
}

function run(cmd: string, argv: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const c = spawn(cmd, argv, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    c.stdout.on('data', (d) => (out += d));
    c.stderr.on('data', (d) => (out += d));
    c.on('close', (code) => resolve({ code, out }));
    c.on('error', (e) => resolve({ code: -1, out: String(e) }));
  });
}

// ---- build ----
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'pn-interop-'));
const goBin = path.join(work, 'peernix-go');
{
  const gopath = path.join(work, 'gopath');
  fs.mkdirSync(path.join(gopath, 'src/github.com/zw3rk'), { recursive: true });
  fs.symlinkSync(path.resolve(srcDir), path.join(gopath, 'src/github.com/zw3rk/peernix'));
  const t0 = Date.now();
  const env = { ...process.env, GO111MODULE: 'off', GOPATH: `${gopath}:/usr/share/gocode`, GOCACHE: path.join(os.tmpdir(), 'pn-interop-gocache'), GOFLAGS: '' };
  const b = await run('go', ['build', '-o', goBin, '.'], { env, cwd: path.join(gopath, 'src/github.com/zw3rk/peernix') });
  if (b.code !== 0) {
    console.error(`go build failed (apt-get install golang-go golang-github-hashicorp-mdns-dev):\n${b.out}`);
    process.exit(1);
  }
  const rev = await run('git', ['-C', srcDir, 'log', '-1', '--format=%h %cs']);
  figure(`built the Go peernix ${rev.code === 0 ? rev.out.trim() : '(no git)'} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

// ---- the LAN ----
let pl: PnLan | null = null;
let goProc: ChildProcess | null = null;
let goLog = '';
const hostsDirs: string[] = [];

async function teardown(): Promise<void> {
  if (goProc && goProc.exitCode === null) goProc.kill('SIGKILL');
  await pl?.teardown().catch((e) => console.error(`teardown: ${e}`));
  for (const d of hostsDirs) fs.rmSync(d, { recursive: true, force: true });
  fs.rmSync(work, { recursive: true, force: true });
}
process.on('SIGINT', () => void teardown().then(() => process.exit(130)));

try {
  pl = await createPnLan('pn-interop', ['pn', 'gohost', 'peer2']);
  const [pn, go, p2] = pl.hosts as [PnHost, PnHost, PnHost];
  console.log(
    `LAN ${pl.lan.subnet}: pn ${pn.lan.address} ${pn.lan.linkLocal}; gohost ${go.lan.address} ${go.lan.linkLocal}; peer2 ${p2.lan.address} ${p2.lan.linkLocal}`,
  );

  // The Go host: its key (raw 64-byte secret, named peernix-1 as on every Go host), config, shim, hosts entry.
  const goKey = await makeSigningKey(go.nix, `${pl.dir}/gohost`, 'peernix-1');
  const goDir = `${pl.dir}/gohost/run`;
  fs.mkdirSync(`${goDir}/bin`, { recursive: true });
  const secret = fs.readFileSync(goKey.secretKeyFile, 'utf8').trim().split(':')[1];
  fs.writeFileSync(`${goDir}/key`, Buffer.from(secret, 'base64'));
  fs.writeFileSync(
    `${goDir}/peernix.conf`,
    `http-port = 9999\nudp-port = 9999\nsigning-enabled = true\nkey-file = ${goDir}/key\ncompression-enabled = false\n`,
  );
  // Nix 2.8 lacks `nix store path-from-hash-part`: answered from the (bind-mounted) store.
  const realNix = (await run('sh', ['-c', 'command -v nix'])).out.trim();
  fs.writeFileSync(
    `${goDir}/bin/nix`,
    `#!/bin/sh\nif [ "$1" = store ] && [ "$2" = path-from-hash-part ]; then\n  for p in /nix/store/"$3"-*; do case "$p" in *.lock|*'*'*) continue;; esac; nix-store --check-validity "$p" 2>/dev/null && { echo "$p"; exit 0; }; done\n  echo "error: no path with hash part '$3'" >&2; exit 1\nfi\nexec ${realNix} "$@"\n`,
    { mode: 0o755 },
  );
  const hostsDir = `/etc/netns/${go.lan.ns}`;
  fs.mkdirSync(hostsDir, { recursive: true });
  hostsDirs.push(hostsDir);
  fs.writeFileSync(`${hostsDir}/hosts`, `127.0.0.1 localhost\n${go.lan.address} ${os.hostname()} ${os.hostname()}.\n`);
  const startGo = () => {
    goLog += `--- start ${new Date().toISOString()}\n`;
    const script = `mount --make-rprivate / && mount --bind ${go.nix.root}/nix /nix && cd ${goDir} && exec ${goBin}`;
    // No NIX_REMOTE: its nix-store calls use the local store at /nix, the bind-mounted chroot store.
    const env = nixEnv({ PATH: `${goDir}/bin:${process.env.PATH}`, NIX_CONFIG: 'experimental-features = nix-command', HOME: goDir });
    goProc = go.lan.exec('unshare', ['-m', 'sh', '-c', script], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    goProc.stdout!.on('data', (d) => (goLog = (goLog + d).slice(-200_000)));
    goProc.stderr!.on('data', (d) => (goLog = (goLog + d).slice(-200_000)));
  };
  const goUp = () =>
    waitFor(
      'the Go program to answer /ping',
      async () => (await go.lan.run('curl', ['-sf', '--max-time', '2', 'http://127.0.0.1:9999/ping'])).code === 0,
      60_000,
    );
  const stopGo = async () => {
    const p = goProc;
    if (!p || p.exitCode !== null) return;
    p.kill('SIGTERM');
    await new Promise((r) => (p.exitCode !== null ? r(null) : p.once('exit', r)));
  };

  // Content: 20 small paths and a large closure on the Go host; two paths only we hold.
  const tag = randomBytes(3).toString('hex');
  const twenty: string[] = [];
  for (let i = 0; i < 20; i++) twenty.push(await addPath(go.nix, `go-${tag}-${i}`, { type: 'file', size: 64 * 1024 + i, seed: `${tag}-${i}` }));
  const closure = await addTestClosure(go.nix, { largeSize: 40 * 1024 * 1024, smallFiles: 20 });
  const onlyUs1 = await addPath(pn.nix, `pn-${tag}-before`, { type: 'file', size: 200_000, seed: `${tag}-b` });
  const onlyUs2 = await addPath(pn.nix, `pn-${tag}-after`, { type: 'file', size: 300_000, seed: `${tag}-a` });
  const goNix = (argv: string[], xdg: string) => go.lan.run('nix-store', argv, { env: nixEnv({ XDG_CACHE_HOME: xdg }), timeoutMs: 300_000 });

  pl.trustedKeys = `${pl.trustedKeys} ${goKey.publicKey}`;
  await pl.start(pn);
  const goUrl = `http://${go.lan.address}:9999/nix-cache`;

  await check('a Go host that starts after us is found within seconds', async () => {
    const t0 = Date.now();
    startGo();
    await goUp();
    const upMs = Date.now() - t0;
    await waitFor('our status to list the Go host up', async () => (await pl!.status(pn)).peers.some((p) => p.url === goUrl && p.state === 'up'), 60_000);
    figure(
      `Go host started after us: answering HTTP after ${(upMs / 1000).toFixed(1)} s, listed up by us ${((Date.now() - t0) / 1000).toFixed(1)} s after its start`,
    );
  });

  await check('the Go host records our IPv4 address from our mDNS answer (not our link-local AAAA)', async () => {
    const found = await waitFor(
      'the Go host to discover us',
      async () => {
        const m = [...goLog.matchAll(/Discovered peer via mDNS: (\S+)/g)].map((x) => x[1]);
        return m.length > 0 ? m : null;
      },
      45_000,
    );
    figure(`Go host discovered by mDNS: ${[...new Set(found)].join(', ')} (ours: ${pn.lan.address}, ${pn.lan.linkLocal})`);
    assert.ok(found.includes(pn.lan.address), `it recorded ${found.join(', ')}`);
    assert.ok(!found.some((a) => a.includes(':')), 'no IPv6 address recorded');
  });

  await check('the Go host answers 20 narinfos at once (its own speed, no Peernix involved)', async () => {
    const fmt = '%{http_code} %{time_total}';
    const all = await Promise.all(
      twenty.map((p) => pn.lan.run('curl', ['-s', '-o', '/dev/null', '-w', fmt, '--max-time', '30', `${goUrl}/${hashPart(p)}.narinfo`], { timeoutMs: 40_000 })),
    );
    const secs = all.map((r) => Number(r.stdout.split(' ')[1] ?? 'NaN')).sort((a, b) => a - b);
    figure(
      `20 narinfos at once straight from the Go host: ${all.filter((r) => r.stdout.startsWith('200')).length}/20 HTTP 200, median ${secs[10]?.toFixed(2)} s, slowest ${secs[19]?.toFixed(2)} s (our wait for a Go narinfo after its UDP yes: 2.4 s)`,
    );
  });

  await check(`our Nix substitutes 20 paths at once from the Go host (${RUNS} runs)`, async () => {
    const times: string[] = [];
    let ok = 0;
    for (let r = 0; r < RUNS; r++) {
      const client = `${pl!.dir}/client20-${r}`;
      const t0 = Date.now();
      const res = await pn.lan.run(
        'nix-store',
        [
          '--store',
          client,
          '-r',
          ...twenty,
          '--option',
          'substituters',
          SUBST,
          '--option',
          'trusted-public-keys',
          goKey.publicKey,
          '--option',
          'require-sigs',
          'true',
          '--option',
          'max-jobs',
          '20',
        ],
        { env: nixEnv({ XDG_CACHE_HOME: `${client}-xdg` }), timeoutMs: 300_000 },
      );
      const secs = (Date.now() - t0) / 1000;
      if (res.code === 0) {
        const here = JSON.parse((await pn.nix.run('nix', ['--store', client, 'path-info', '--json', ...twenty], { check: true })).stdout) as {
          path: string;
          narHash: string;
        }[];
        const there = await go.nix.pathInfoJson(twenty);
        const same = here.filter((h) => there.find((t) => t.path === h.path)?.narHash === h.narHash).length;
        if (same === 20) ok++;
        times.push(`${secs.toFixed(2)} s (${same}/20 NarHash equal)`);
      } else {
        const missing = res.stderr.match(/don't know how to build|does not exist in binary cache|lacks a valid signature|error: [^\n]{0,160}/)?.[0] ?? 'error';
        times.push(`${secs.toFixed(2)} s FAILED (${missing})`);
        if (r === 0) {
          const lines = pn
            .pn!.logs()
            .split('\n')
            .filter((l) => /resolver|go-udp|warn|error/.test(l))
            .slice(-25);
          console.log(`nix-store said:\n${res.stderr.slice(-1200)}\nour log:\n${lines.join('\n')}`);
        }
      }
    }
    figure(`20 paths at once from the Go host: ${ok}/${RUNS} runs complete: ${times.join('; ')}`);
    assert.equal(ok, RUNS);
  });

  await check("the Go host's Nix substitutes from us, and after the Go program restarts follows a narinfo from before", async () => {
    const xdg = `${pl!.dir}/goclient-xdg`;
    const client = `${pl!.dir}/goclient`;
    const opts = [
      '--option',
      'substituters',
      'http://127.0.0.1:9999/nix-cache',
      '--option',
      'trusted-public-keys',
      pn.key.publicKey,
      '--option',
      'require-sigs',
      'true',
    ];
    let t0 = Date.now();
    const before = await goNix(['--store', client, '-r', onlyUs1, ...opts], xdg);
    assert.equal(before.code, 0, `before the restart: ${before.stderr.slice(-600)}`);
    const beforeS = (Date.now() - t0) / 1000;
    // Its Nix fetches (and caches) the narinfo of the second path now; the NAR only after the restart.
    const info = await go.lan.run('nix', ['path-info', '--store', 'http://127.0.0.1:9999/nix-cache', onlyUs2, ...opts], {
      env: nixEnv({ XDG_CACHE_HOME: xdg, NIX_CONFIG: 'experimental-features = nix-command' }),
      timeoutMs: 60_000,
    });
    assert.equal(info.code, 0, `narinfo before the restart: ${info.stderr.slice(-600)}`);
    const narUrl = (await go.lan.run('curl', ['-s', `http://127.0.0.1:9999/nix-cache/${hashPart(onlyUs2)}.narinfo`])).stdout.match(/^URL: (.*)$/m)?.[1] ?? '?';
    await stopGo();
    t0 = Date.now();
    startGo();
    await goUp();
    const restartS = (Date.now() - t0) / 1000;
    // It knows us again once its start-up browse (0, 5 and 10 s after start; 3 s each) is merged; until
    // then it knows no peer at all and answers every NAR it lacks with a 404.
    await waitFor(
      'the restarted Go host to know us again',
      async () => /Discovered peer via mDNS: [\s\S]*updated peer count: [1-9]/.test(goLog.split('--- start').pop()!),
      30_000,
    );
    const legacy = (await go.lan.run('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', `http://127.0.0.1:9999/nix-cache/${hashPart(onlyUs2)}.nar`]))
      .stdout;
    t0 = Date.now();
    const after = await goNix(['--store', client, '-r', onlyUs2, ...opts], xdg);
    if (after.code !== 0) {
      console.log(
        `Go log for ${hashPart(onlyUs2)}:\n${goLog
          .split('\n')
          .filter((l) => l.includes(hashPart(onlyUs2)))
          .slice(-20)
          .join('\n')}`,
      );
      console.log(
        `our log:\n${pn
          .pn!.logs()
          .split('\n')
          .filter((l) => l.includes(hashPart(onlyUs2)) || /go-udp/.test(l))
          .slice(-20)
          .join('\n')}`,
      );
    }
    assert.equal(after.code, 0, `after the restart: ${after.stderr.slice(-600)}`);
    const afterS = (Date.now() - t0) / 1000;
    const here = await go.nix.run('nix', ['--store', client, 'path-info', '--json', onlyUs1, onlyUs2], { check: true });
    const there = await pn.nix.pathInfoJson([onlyUs1, onlyUs2]);
    const same = (JSON.parse(here.stdout) as { path: string; narHash: string }[]).filter(
      (h) => there.find((t) => t.path === h.path)?.narHash === h.narHash,
    ).length;
    figure(
      `Go host's Nix from us: before its restart ${beforeS.toFixed(2)} s; NAR URL we gave it "${narUrl}"; restart to HTTP ${restartS.toFixed(1)} s; after it, the legacy <hash>.nar is HTTP ${legacy} and the narinfo from before is followed in ${afterS.toFixed(2)} s; ${same}/2 NarHash equal`,
    );
    assert.equal(same, 2);
    assert.match(narUrl, /^[0-9a-z]{32}-[0-9a-z]{52}\.nar$/);
  });

  await check('a resume from the Range-less Go host when a Range-capable holder is cut off', async () => {
    const large = closure.large;
    await go.nix.run('nix', ['copy', '--no-check-sigs', '--from', go.nix.root, '--to', p2.nix.root, large], { check: true });
    await pl!.start(p2);
    await waitFor('peer2 up', async () => (await pl!.status(pn)).peers.some((p) => p.name === 'peer2' && p.state === 'up'), 60_000);
    // peer2 slow enough (20 Mbit/s: 17 s for 40 MiB) that it is cut mid-way.
    await p2.lan.run('tc', ['qdisc', 'add', 'dev', 'eth0', 'root', 'tbf', 'rate', '20mbit', 'burst', '64kb', 'latency', '50ms']);
    // The Go host must be a live holder (the 20-path case can leave it struck for a while on a loaded machine).
    await waitFor('the Go host up', async () => (await pl!.status(pn)).peers.some((p) => p.url === goUrl && p.state === 'up'), 90_000);
    const goStateBefore = (await pl!.status(pn)).peers.find((p) => p.url === goUrl)?.state;
    const size = (await go.nix.pathInfoJson([large]))[0].narSize;
    const client = `${pl!.dir}/client-resume`;
    const t0 = Date.now();
    const copying = pn.lan.run(
      'nix-store',
      [
        '--store',
        client,
        '-r',
        large,
        '--option',
        'substituters',
        SUBST,
        '--option',
        'trusted-public-keys',
        `${goKey.publicKey} ${p2.key.publicKey}`,
        '--option',
        'require-sigs',
        'true',
      ],
      { env: nixEnv({ XDG_CACHE_HOME: `${client}-xdg` }), timeoutMs: 300_000 },
    );
    // Once peer2 has sent part of it, peer2's Peernix dies (the kernel resets its connections).
    const p2Bytes = async () => (await pl!.status(pn)).peers.find((p) => p.name === 'peer2')?.bytesFrom ?? 0;
    let cutAt = 0;
    const started = await waitFor('peer2 to be streaming the NAR', async () => ((cutAt = await p2Bytes()) > size / 8 ? true : null), 60_000).catch(() => false);
    const goBefore = goLog.split(`/nix-cache/${hashPart(large)}-`).length - 1;
    if (started) await p2.pn!.stop('SIGKILL');
    const r = await copying;
    const secs = (Date.now() - t0) / 1000;
    if (r.code !== 0)
      console.log(
        `our log:\n${pn
          .pn!.logs()
          .split('\n')
          .filter((l) => l.includes(hashPart(large)) || /resum|peer (up|down)/.test(l))
          .slice(-25)
          .join('\n')}`,
      );
    assert.equal(r.code, 0, `nix-store -r: ${r.stderr.slice(-800)}`);
    const here = JSON.parse((await pn.nix.run('nix', ['--store', client, 'path-info', '--json', large], { check: true })).stdout)[0];
    const there = (await go.nix.pathInfoJson([large]))[0];
    const s = await pl!.status(pn);
    const goPeer = s.peers.find((p) => p.url === goUrl);
    const goNars = goLog.split(`/nix-cache/${hashPart(large)}-`).length - 1 - goBefore;
    figure(
      `resume: NAR of ${size} bytes, peer2 cut after ~${cutAt} bytes${started ? '' : ' (peer2 never started it: not a resume)'}; finished in ${secs.toFixed(1)} s with ${goNars} NAR request(s) to the Go host; NarHash ${here.narHash === there.narHash ? 'equal' : 'DIFFERENT'}; Go host ${goStateBefore} before, ${goPeer?.state}${goPeer?.bad ? ' (marked bad)' : ''} after`,
    );
    assert.ok(started, 'peer2 streamed part of the NAR first');
    assert.equal(here.narHash, there.narHash);
    assert.equal(goPeer?.state, 'up', 'the Range-less holder is not struck');
    assert.ok(goNars >= 1, 'the rest came from the Go host');
  });
} catch (e) {
  failures.push(`setup: ${(e as Error).stack ?? e}`);
} finally {
  if (failures.length > 0) console.log(`Go log (tail):\n${goLog.slice(-3000)}`);
  await teardown();
}
console.log(`\n${figures.map((f) => `- ${f}`).join('\n')}`);
if (failures.length > 0) {
  console.log(`\n${failures.length} check(s) failed:\n${failures.map((f) => `- ${f}`).join('\n')}`);
  process.exit(1);
}
console.log('\nall checks passed');
process.exit(0);
