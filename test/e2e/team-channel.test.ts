// Scoped sharing and the team channel between real Peernix hosts in network namespaces: an owner, a
// team member and a stranger (curl, a real Nix pointed straight at the owner's share port, and a
// Peernix not in the team). The owner holds a public path (signed by a stand-in public cache key in
// its publicKeys), a team path (unsigned, `nix-store --add`), an excluded path (a name that looks
// like a secret, signed by the public key all the same) and knows a hash it does not hold.
//   - The stranger gets the public path byte-exact, and for the others exactly what it gets for the
//     absent hash on every route: narinfo (both forms), NAR (every form, Range, HEAD), summary
//     membership, and the Go UDP questions.
//   - The member's Nix substitutes the team path through its own Peernix with signatures required,
//     and a capture of the owner's link during that transfer holds no byte of its plaintext (nor the
//     hash part asked for: summaries and lookups ride the channel too). Those captured connections,
//     replayed byte for byte by the stranger to the owner and to another server, get no answer.
//   - The stranger's Peernix fetching the public path crosses in clear, which shows the capture would have seen it.

import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { chmod, chown, copyFile, readFile, writeFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { parseSha256 } from '../../src/nix/hash.ts';
import { encodeNix32 } from '../../src/nix/nix32.ts';
import { decodeSummary, SUMMARY_PATH } from '../../src/wire/summary-wire.ts';
import { nodeBin, skippedWithoutNetns } from '../support/netns.ts';
import { addPath, makeSigningKey, nixEnv, run, signPaths } from '../support/nix-host.ts';
import { PROJECT_ROOT } from '../support/peernix-process.ts';
import { ensureUser, releaseUser, type OsUser } from '../support/os-user.ts';
import { createPnLan, hashPart as H, SUBST, upPeers, waitFor, type PnHost, type PnLan } from '../support/peernix-lan.ts';

for (const who of ['root', 'a non-root user'] as const)
  describe(`scoped sharing between an owner (as ${who}), a team member and a stranger`, { timeout: 900_000 }, () => {
    if (skippedWithoutNetns()) return;
    let user: OsUser | undefined;
    let pl: PnLan;
    let owner: PnHost;
    let member: PnHost;
    let stranger: PnHost;
    let publicKey: string;
    const paths = { public: '', team: '', never: '' };
    const narHash32: Record<string, string> = {};
    const absent = encodeNix32(randomBytes(20));
    const markers = {
      public: `peernix-public-marker-${randomBytes(8).toString('hex')}`,
      team: `peernix-team-marker-${randomBytes(8).toString('hex')}`,
      never: `peernix-never-marker-${randomBytes(8).toString('hex')}`,
    };
    // A marker among random bytes: no compression would hide it, and nothing else looks like it.
    const contents = (m: string) => `${m}\n${randomBytes(48 * 1024).toString('base64')}\n${m}\n`;

    before(async () => {
      pl = await createPnLan('pn-scope', ['owner', 'member', 'stranger'], { scoped: true });
      [owner, member, stranger] = pl.hosts;
      const pub = await makeSigningKey(owner.nix, pl.dir, 'public-stand-in-1');
      publicKey = pub.publicKey;
      paths.public = await addPath(owner.nix, 'public-tool', { type: 'file', contents: contents(markers.public) });
      paths.team = await addPath(owner.nix, 'team-tool', { type: 'file', contents: contents(markers.team) });
      paths.never = await addPath(owner.nix, 'deploy.env', { type: 'file', contents: contents(markers.never) });
      await signPaths(owner.nix, pub.secretKeyFile, [paths.public, paths.never]);
      for (const info of await owner.nix.pathInfoJson(Object.values(paths))) narHash32[H(info.path)] = encodeNix32(parseSha256(info.narHash));
      narHash32[absent] = encodeNix32(randomBytes(32));
      // Compression off on the askers: a plain transfer must carry the marker as it is.
      const ownerArgs = ['--team', member.key.publicKey, '--public-key', publicKey];
      if (who === 'root') await pl.start(owner, ownerArgs);
      else {
        user = await ensureUser('pnscope');
        await chmod(pl.dir, 0o755);
        // The owner's identity key, readable by the owner alone.
        const keyFile = `${pl.dir}/owner-identity.sec`;
        await copyFile(owner.key.secretKeyFile, keyFile);
        await chown(keyFile, user.uid, user.gid);
        await chmod(keyFile, 0o600);
        await pl.start(owner, [...ownerArgs, '--secret-key-file', keyFile], { as: user });
        assert.equal(uidOf(owner.pn!.proc.pid!), user.uid, 'the owner runs as the user');
      }
      await pl.start(member, ['--team', owner.key.publicKey, '--no-peer-compression']);
      await pl.start(stranger, ['--no-peer-compression']);
      for (const h of [member, stranger])
        await waitFor(`${h.name} to see the owner`, async () => upPeers(await pl.status(h)).includes('owner') || null, 30_000);
    });
    after(async () => {
      await pl?.teardown();
      await releaseUser(user);
    });

    const share = () => `http://${owner.lan.address}:9999`;

    /** Every URL form that names a path on the share listener. */
    const urls = (h: string) => [
      `/${h}.narinfo`,
      `/nix-cache/${h}.narinfo`,
      `/nar/${h}-${narHash32[h]}.nar`,
      `/nix-cache/nar/${h}-${narHash32[h]}.nar`,
      `/nix-cache/${h}-${narHash32[h]}.nar`,
      `/nix-cache/${h}.nar`,
    ];

    /** The stranger's curl: status line, headers but the date, and body, as one text. */
    async function seen(url: string, extra: string[] = []): Promise<string> {
      const r = await pl.curl(stranger, ['-i', ...extra, share() + url]);
      return r.stdout.replace(/^date: .*\r\n/gim, '');
    }

    it('the stranger: the public path byte-exact, the team and excluded paths exactly as an absent one on every route', async () => {
      for (const u of urls(H(paths.public))) {
        const body = (await pl.curl(stranger, ['-f', share() + u])).stdout;
        if (u.endsWith('.narinfo')) assert.match(body, new RegExp(`^StorePath: ${paths.public}$`, 'm'), u);
        else assert.ok(body.includes(markers.public), u);
      }
      for (const [i, u] of urls(absent).entries()) {
        for (const extra of [[], ['-H', 'Range: bytes=0-99'], ['-H', 'Range: bytes=100-'], ['-I']]) {
          const expected = await seen(u, extra);
          assert.match(expected, /^HTTP\/1\.1 404/, `${u} ${extra.join(' ')}`);
          for (const k of ['team', 'never'] as const) assert.equal(await seen(urls(H(paths[k]))[i], extra), expected, `${k}: ${u} ${extra.join(' ')}`);
        }
      }
    });

    it("the stranger's summary admits the public path only; the Go UDP questions hear not_found for the rest", async () => {
      const file = `${pl.dir}/stranger-summary`;
      const r = await pl.curl(stranger, ['-f', '-o', file, share() + SUMMARY_PATH]);
      assert.equal(r.code, 0, r.stderr);
      const { filter } = decodeSummary(await readFile(file));
      assert.equal(filter.test(H(paths.public)), true);
      assert.equal(filter.test(H(paths.team)), false);
      assert.equal(filter.test(H(paths.never)), false);

      const script = `${pl.dir}/go-udp-ask.ts`;
      await writeFile(
        script,
        `import dgram from 'node:dgram';
import { encodeHasPath, encodeHasPathWithNarHash } from '${PROJECT_ROOT}/src/wire/go-udp.ts';
import { decodeNix32 } from '${PROJECT_ROOT}/src/nix/nix32.ts';
const [host, ...asks] = process.argv.slice(2);
const sock = dgram.createSocket('udp4');
const answers = [];
for (const ask of asks) {
  const [hashPart, narHash] = ask.split(':');
  const q = narHash ? encodeHasPathWithNarHash(hashPart, decodeNix32(narHash, 32)) : encodeHasPath(hashPart);
  answers.push(await new Promise((resolve) => {
    const t = setTimeout(() => resolve('(silence)'), 3000);
    sock.once('message', (m) => { clearTimeout(t); resolve(m.toString()); });
    sock.send(q, 9999, host);
  }));
}
sock.close();
process.stdout.write(JSON.stringify(answers));
`,
      );
      const hs = [paths.public, paths.team, paths.never].map(H).concat(absent);
      const asks = [...hs, ...hs.map((h) => `${h}:${narHash32[h]}`)];
      const got = await stranger.lan.run(nodeBin(), [script, owner.lan.address, ...asks], { timeoutMs: 60_000 });
      assert.equal(got.code, 0, got.stderr);
      assert.deepEqual(JSON.parse(got.stdout), ['yes', 'not_found', 'not_found', 'not_found', 'yes', 'not_found', 'not_found', 'not_found']);
    });

    /** `nix copy` of a path from a cache with signatures required; the path arrives byte-exact or it fails. */
    async function nixCopy(h: PnHost, from: string, path: string, keys: string, tag: string): Promise<{ ok: boolean; stderr: string }> {
      const to = `${pl.dir}/client-${h.name}-${tag}`;
      const r = await h.lan.run(
        'nix',
        ['copy', '--from', from, '--to', to, path, '--option', 'trusted-public-keys', keys, '--option', 'require-sigs', 'true'],
        {
          env: nixEnv({ XDG_CACHE_HOME: `${pl.dir}/xdg-${h.name}-${tag}` }),
          timeoutMs: 120_000,
        },
      );
      if (r.code !== 0) return { ok: false, stderr: r.stderr };
      const got = await run('cat', [`${to}${path}`], { check: true });
      const marker = path === paths.public ? markers.public : path === paths.team ? markers.team : markers.never;
      assert.ok(got.stdout.startsWith(`${marker}\n`), 'the path arrived byte-exact');
      return { ok: true, stderr: r.stderr };
    }

    it("a real Nix pointed straight at the owner's share port gets the public path and nothing else", async () => {
      const keys = `${publicKey} ${owner.key.publicKey}`;
      const pub = await nixCopy(stranger, share(), paths.public, keys, 'direct-public');
      assert.ok(pub.ok, pub.stderr);
      for (const k of ['team', 'never'] as const) {
        const r = await nixCopy(stranger, share(), paths[k], keys, `direct-${k}`);
        assert.equal(r.ok, false, `${k} must not be served`);
        assert.match(r.stderr, /no substituter that can build it|does not exist|not valid/i, r.stderr);
      }
    });

    // Captures the owner's side of the LAN (its eth0, inside its namespace) while `work` runs.
    async function capture(work: () => Promise<void>): Promise<Buffer> {
      const file = `${pl.dir}/capture-${randomBytes(4).toString('hex')}.pcap`;
      const dump: ChildProcess = owner.lan.exec('tcpdump', ['-i', 'eth0', '--immediate-mode', '-U', '-s', '0', '-w', file, 'tcp port 9999']);
      let stderr = '';
      dump.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      await waitFor('tcpdump to listen', async () => stderr.includes('listening on') || null, 10_000);
      try {
        await work();
      } finally {
        // Packets already taken by the kernel's filter are written before tcpdump is told to stop.
        await new Promise((r) => setTimeout(r, 500));
        const exited = new Promise((r) => dump.once('exit', r));
        dump.kill('SIGINT');
        await exited;
      }
      const pcap = await readFile(file);
      assert.ok(pcap.length > 1024, `tcpdump captured nothing: ${stderr}`);
      return pcap;
    }

    let teamCapture: Buffer | null = null;

    it("the member's Nix substitutes the team path through its own Peernix, and the link never carries it in clear", async () => {
      const pcap = await capture(async () => {
        const r = await nixCopy(member, SUBST, paths.team, owner.key.publicKey, 'team');
        assert.ok(r.ok, r.stderr);
      });
      assert.ok(pcap.length > 48 * 1024, `the capture holds the transfer (${pcap.length} bytes)`);
      assert.ok(!pcap.includes(markers.team), 'no plaintext of the NAR crossed the LAN');
      assert.ok(!pcap.includes(H(paths.team)), 'not even the hash part asked for');
      teamCapture = pcap;
      const excluded = await nixCopy(member, SUBST, paths.never, `${owner.key.publicKey} ${publicKey}`, 'never');
      assert.equal(excluded.ok, false, 'an excluded path is served to no one, team included');
    });

    it("the member's captured team connections, replayed byte for byte by the stranger to the owner and to another server, get nothing", async () => {
      assert.ok(teamCapture, 'the team transfer was captured');
      const streams = tlsStreamsFrom(teamCapture, member.lan.address, 9999);
      assert.ok(streams.length > 0, 'the capture holds the member’s TLS connections to the owner');
      const script = `${pl.dir}/replay.ts`;
      await writeFile(
        script,
        `import net from 'node:net';
const [host, file] = process.argv.slice(2);
const bytes = (await import('node:fs')).readFileSync(file);
const got = [];
await new Promise((resolve) => {
  const s = net.connect(9999, host, () => s.write(bytes));
  s.on('data', (d) => got.push(d));
  s.on('close', resolve);
  s.on('error', resolve);
  setTimeout(() => { s.destroy(); resolve(); }, 5000);
});
process.stdout.write(Buffer.concat(got).toString('latin1'));
`,
      );
      // The replayer itself works: a plain request sent the same way is answered.
      const control = `${pl.dir}/replay-control.bin`;
      await writeFile(control, `GET /nix-cache-info HTTP/1.1\r\nHost: ${owner.lan.address}\r\nConnection: close\r\n\r\n`);
      const plain = await stranger.lan.run(nodeBin(), [script, owner.lan.address, control], { timeoutMs: 30_000 });
      assert.match(plain.stdout, /^HTTP\/1\.1 200/, plain.stderr);
      // Against the owner it came from, and against another server (the member's own share port).
      for (const [i, stream] of streams.slice(0, 4).entries()) {
        const file = `${pl.dir}/replay-${i}.bin`;
        await writeFile(file, stream);
        for (const target of [owner, member]) {
          const r = await stranger.lan.run(nodeBin(), [script, target.lan.address, file], { timeoutMs: 30_000 });
          assert.equal(r.code, 0, r.stderr);
          assert.ok(!r.stdout.includes('HTTP/1.1'), `replay ${i} to ${target.name} got no HTTP answer`);
          assert.ok(!r.stdout.includes(markers.team) && !r.stdout.includes(H(paths.team)), `replay ${i} to ${target.name} revealed nothing`);
        }
      }
      // And the owner still serves the member: the replays broke nothing.
      const again = await nixCopy(member, SUBST, paths.team, owner.key.publicKey, 'team-after-replay');
      assert.ok(again.ok, again.stderr);
    });

    it("the stranger's Peernix gets the public path in plain (the capture sees it), and not the team path", async () => {
      const pcap = await capture(async () => {
        const r = await nixCopy(stranger, SUBST, paths.public, `${owner.key.publicKey} ${publicKey}`, 'peernix-public');
        assert.ok(r.ok, r.stderr);
      });
      assert.ok(pcap.includes(markers.public), 'a plain transfer is visible to the capture');
      const team = await nixCopy(stranger, SUBST, paths.team, owner.key.publicKey, 'peernix-team');
      assert.equal(team.ok, false, 'the team path is not the stranger’s');
    });
  });

/** The real uid of a process (the one setpriv gave it). */
function uidOf(pid: number): number {
  return Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
}

/**
 * The bytes each TCP connection from `src` to port `port` carried, in sequence order, for the
 * connections that began with a TLS handshake record: what a LAN host capturing them could replay.
 * Reads a pcap of Ethernet frames (tcpdump on a veth), IPv4 and IPv6.
 */
function tlsStreamsFrom(pcap: Buffer, src: string, port: number): Buffer[] {
  const le = pcap.readUInt32LE(0) === 0xa1b2c3d4;
  const u32 = (o: number) => (le ? pcap.readUInt32LE(o) : pcap.readUInt32BE(o));
  const streams = new Map<string, Map<number, Buffer>>();
  for (let o = 24; o + 16 <= pcap.length; ) {
    const len = u32(o + 8);
    const frame = pcap.subarray(o + 16, o + 16 + len);
    o += 16 + len;
    const type = frame.readUInt16BE(12);
    let ip = 14;
    let from: string;
    let end: number;
    if (type === 0x0800 && frame[ip + 9] === 6) {
      from = [...frame.subarray(ip + 12, ip + 16)].join('.');
      end = ip + frame.readUInt16BE(ip + 2);
      ip += (frame[ip] & 0x0f) * 4;
    } else if (type === 0x86dd && frame[ip + 6] === 6) {
      from = frame.subarray(ip + 8, ip + 24).toString('hex');
      end = ip + 40 + frame.readUInt16BE(ip + 4);
      ip += 40;
    } else continue;
    if (from !== src || frame.readUInt16BE(ip + 2) !== port) continue;
    const seq = frame.readUInt32BE(ip + 4);
    const payload = frame.subarray(ip + (frame[ip + 12] >> 4) * 4, end);
    if (payload.length === 0) continue;
    const key = `${from}:${frame.readUInt16BE(ip)}`;
    if (!streams.has(key)) streams.set(key, new Map());
    streams.get(key)!.set(seq, Buffer.from(payload));
  }
  const out: Buffer[] = [];
  for (const segments of streams.values()) {
    const ordered = [...segments.entries()].sort((a, b) => a[0] - b[0]).map(([, b]) => b);
    if (ordered[0]?.[0] === 0x16) out.push(Buffer.concat(ordered));
  }
  return out;
}
