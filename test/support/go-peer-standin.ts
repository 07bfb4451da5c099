// A stand-in for the original Go peernix (github zw3rk/peernix), run as a process inside a test
// namespace. Written from what its main.go says, not from its code: main.go as stored at commit
// 93fc5118f620948ab3d1d68e07bed84fcc00291b (line numbers below are that file's, counted from the stored
// text), and hashicorp/mdns (zone.go 075c2148…, server.go 062c82cd…) for what its mDNS puts on the wire.
//
//   mDNS: startMDNSServer (l. 978–1002) announces instance "peernix", service "_peernix._tcp", domain
//     "" (→ "local"), port = http-port (l. 990), TXT strings version=2.0.0, platform=<GOARCH>-<GOOS>,
//     features=compression,parallel,health[,signing] (getSupportedFeatures l. 289–295),
//     pubkey=<keyName>:<base64> when signing (l. 980–988). hashicorp/mdns answers a PTR query with PTR +
//     SRV (priority 10, weight 1, target "<hostname>.") + A + AAAA + TXT, TTL 120, all as answers
//     (zone.go), written back to the asker's address and port (server.go sendResponse); at start it
//     multicasts SRV + A + TXT (no PTR) three times, 1 s then 2 s apart (server.go probe). Its own
//     browsing (updatePeersMDNS l. 1005–1091) takes any `_peernix._tcp` service's entry.Addr as a peer.
//   HTTP routes (l. 515–521): "/", "/health", "/status", "/ping", "/nix-cache/nix-cache-info",
//     "/nix-cache/", "/public-key". nix-cache-info (l. 550–557): StoreDir /nix/store, WantMassQuery: 0,
//     Priority: 10. handleNixCache (l. 1588 on): the part after "/nix-cache/" (l. 1590) ending in
//     ".narinfo" or ".nar" is stripped to the hash (l. 1597–1608; so "/nix-cache/nar/…" looks up the hash
//     "nar/…" and is a 404), anything else a 404. Held locally (hasPath, l. 1622): served from the store,
//     and a narinfo leaves a "localhost" marker (l. 1637). Not held: a .nar needs a peer remembered from
//     its narinfo, else 404 "Not found, peer for .nar not cached" (l. 1665–1695); a .narinfo asks the
//     peers by UDP (findPeerForHash l. 1536–1586) and remembers who said yes (l. 1698–1714); either is
//     then proxied to "http://" + peer + ":" + its own http-port + the same path (l. 1717).
//   narinfo (generateNarInfo l. 1155–1279): nix-store --query --references/--deriver/--size/--hash
//     (l. 1162–1186); URL "<hash>.nar" and Compression: none (".gz"/gzip only if compress, which is never
//     true for a narinfo: l. 1619, 1197–1202); FileHash = NarHash, FileSize = NarSize (l. 1188–1190);
//     References sorted basenames without the path itself (l. 1228–1244); Deriver basename or
//     "unknown-deriver" (l. 1248–1257); Sig = keyName + ":" + base64(Ed25519) (signNarInfo l. 269–276) over
//     "1;<path>;<narHash>;<narSize>;<full reference paths joined by ','>" (l. 1259–1276). keyName is
//     "peernix-1" by default on every host (l. 50, 108).
//   NAR (generateNar l. 1466–1520): `nix-store --dump` copied to the response (no Content-Length, so
//     chunked), through gzip with Content-Encoding only when Accept-Encoding has "gzip" (l. 1619, 1643);
//     Range is never looked at (always 200 with the whole NAR).
//   UDP: udpServer (l. 730–846) listens on config.UDPPort (l. 731–732; default "9999" like HTTPPort, l.
//     46–47, separate settings), reads 1024 bytes (l. 766); "has_path?<hash>" → hasPath → "yes" only,
//     nothing when not held (l. 776–784); "ping" → "pong" unless from itself (l. 785–792); JSON "{…"
//     is its discovery announce (l. 793–840). Asking (queryPeersParallel l. 1282–1464): per peer,
//     <peer address>:<its own UDPPort> (l. 1336), a connected socket (l. 1354), 1 s deadline (l. 1372),
//     "has_path?" + hash (l. 1374), exactly "yes" is found (l. 1414); attempts after 0, 100 ms, 500 ms,
//     2 s (l. 1314), all under one 2 s deadline (l. 1294).
//   hasPath (l. 1133–1153): findStorePath runs `nix store path-from-hash-part` (l. 1114); then the path
//     must exist (l. 1140) and have no ".lock" beside it (l. 1145).
//
// Today's Go (e74df7c, 2026-05-20; docs go-peernix.md, read from its main.go and seen on the wire) has
// moved on from 93fc511, and this stand-in follows it:
//   - UDP: a has_path? miss is answered "not_found"; "has_path_with_narhash?<hash>:<nix32 NarHash>" is
//     answered "yes", "narhash_mismatch" or "not_found" (udpServer).
//   - narinfo URL "<hash>-<nix32 NarHash>.nar"; handleNixCache serves that form statelessly (held locally
//     with that NarHash, else from a peer that answers has_path_with_narhash? "yes"), and the old
//     "<hash>.nar" only while its in-memory map has the hash.
//   - mDNS: it sends no unsolicited announcements; it browses `_peernix._tcp` at start, 5 s and 10 s
//     later and then every 30 s (udpServer, updatePeersMDNS), and keeps the last A or AAAA record of an
//     answer as the peer's address, written without brackets (hashicorp/mdns entry.Addr), so a peer whose
//     answer ends with a link-local AAAA is recorded at an address it cannot dial.
//
// Differences, for the test's sake: Nix 2.8 has no `nix store path-from-hash-part`, so the path is
// found by its name under the chroot store and checked with `nix-store --check-validity`; `nix store
// dump-path` stands for `nix-store --dump`, which ignores --store; its peers are given on the command
// line (it would learn them by mDNS or UDP broadcast); test hooks: /standin/ask/<hash> asks the peers
// exactly as a narinfo miss does, /standin/slow/<ms> makes it a loaded host (see slowMs), /standin/udp-delay/<ms> delays its UDP answers, /standin/cut/<hash>/<bytes> holds the next NAR of that hash after so
// many bytes, /standin/release/<hash> then cuts it; it prints one JSON line per event for the test to read.

import { spawn } from 'node:child_process';
import { createPrivateKey, sign } from 'node:crypto';
import dgram from 'node:dgram';
import { promises as fsp, readFileSync } from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import path from 'node:path';
import { createGzip } from 'node:zlib';

export interface StandinConfig {
  root: string; // chroot store root
  address: string; // this host's LAN address
  hostName: string;
  httpPort: number;
  udpPort: number;
  secretKeyFile: string; // a Nix secret key named peernix-1
  peers: string[]; // peer addresses (Go learns these by mDNS or UDP broadcast)
}

const cfg = JSON.parse(process.argv[2] ?? '{}') as StandinConfig;
const say = (o: object) => process.stdout.write(JSON.stringify(o) + '\n');

// ---- signing: a Nix secret key file is "<name>:<base64 of the 64-byte Ed25519 secret>" ----
const [keyName, keyB64] = readFileSync(cfg.secretKeyFile, 'utf8').trim().split(':');
const seed = Buffer.from(keyB64, 'base64').subarray(0, 32);
const privateKey = createPrivateKey({ key: Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]), format: 'der', type: 'pkcs8' });
const publicKeyText = `${keyName}:${Buffer.from(keyB64, 'base64').subarray(32).toString('base64')}`;

// ---- the store, as its nix-store calls see it ----
function run(cmd: string, args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.on('close', (code) => resolve({ code, out }));
    child.on('error', () => resolve({ code: -1, out: '' }));
  });
}
const nixStore = (args: string[]) => run('nix-store', ['--store', cfg.root, ...args]);

async function findStorePath(hash: string): Promise<string | null> {
  if (!/^[0-9a-z]{32}$/.test(hash)) return null;
  const names = await fsp.readdir(path.join(cfg.root, 'nix/store')).catch(() => [] as string[]);
  const name = names.find((n) => n.startsWith(`${hash}-`) && !n.endsWith('.lock'));
  return name ? `/nix/store/${name}` : null;
}

async function hasPath(hash: string): Promise<string | null> {
  const p = await findStorePath(hash);
  if (!p) return null;
  if (
    !(await fsp.stat(cfg.root + p).then(
      () => true,
      () => false,
    ))
  )
    return null;
  if (
    await fsp.stat(cfg.root + p + '.lock').then(
      () => true,
      () => false,
    )
  )
    return null;
  return (await nixStore(['--check-validity', p])).code === 0 ? p : null;
}

/** The nix32 part of a held path's NarHash (Go's narHashToURLSafe). */
async function narHashOf(full: string): Promise<string> {
  return (await nixStore(['--query', '--hash', full])).out.trim().replace(/^sha256:/, '');
}

async function narInfo(full: string, hash: string): Promise<string> {
  const refs = (await nixStore(['--query', '--references', full])).out
    .split(/\s+/)
    .filter((r) => r && r !== full)
    .sort();
  const deriverOut = (await nixStore(['--query', '--deriver', full])).out.trim();
  const size = (await nixStore(['--query', '--size', full])).out.trim();
  const narHash = (await nixStore(['--query', '--hash', full])).out.trim();
  let deriver = deriverOut.replace(/^\/nix\/store\//, '');
  if (deriver === '' || deriver === 'unknown-deriver') deriver = 'unknown-deriver';
  const fingerprint = `1;${full};${narHash};${size};${refs.join(',')}`;
  const sig = `${keyName}:${sign(null, Buffer.from(fingerprint), privateKey).toString('base64')}`;
  return [
    `StorePath: ${full}`,
    `URL: ${hash}-${narHash.slice('sha256:'.length)}.nar`,
    'Compression: none',
    `FileHash: ${narHash}`,
    `FileSize: ${size}`,
    `NarHash: ${narHash}`,
    `NarSize: ${size}`,
    `References: ${refs.map((r) => r.slice('/nix/store/'.length)).join(' ')}`,
    `Deriver: ${deriver}`,
    `Sig: ${sig}`,
    '',
  ].join('\n');
}

// Test hook: a loaded Go host, whose nix-store runs are slow. A narinfo of a held path takes this much
// longer, and a UDP "yes" a fifth of it, at most 300 ms (Go runs nix-store five times for the one, once
// for the other; past 1.5 s the narinfo stands for a wedged host that says "yes" and then stalls).
let slowMs = 0;
// Test hook: its UDP answers (yes and not_found alike) come this much later (a host whose nix-store
// runs queue up behind 20 lookups at once).
let udpDelayMs = 0;
const later = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---- UDP: answering and asking ----
const udp = dgram.createSocket('udp4');
udp.on('message', (msg, rinfo) => {
  const text = msg.subarray(0, 1024).toString('latin1');
  if (text.startsWith('has_path_with_narhash?')) {
    const [hash, want] = text.slice('has_path_with_narhash?'.length).split(':', 2);
    if (want === undefined) return void udp.send('invalid_format', rinfo.port, rinfo.address);
    void hasPath(hash).then(async (p) => {
      const answer = !p ? 'not_found' : (await narHashOf(p)) === want ? 'yes' : 'narhash_mismatch';
      udp.send(answer, rinfo.port, rinfo.address);
      say({ event: 'udp-asked', from: rinfo.address, hash, narHash: want, answer });
    });
  } else if (text.startsWith('has_path?')) {
    const hash = text.slice('has_path?'.length);
    void hasPath(hash).then(async (p) => {
      if (p) await later(Math.min(slowMs / 5, 300));
      await later(udpDelayMs);
      udp.send(p ? 'yes' : 'not_found', rinfo.port, rinfo.address);
      say({ event: 'udp-asked', from: rinfo.address, hash, answer: p ? 'yes' : 'not_found' });
    });
  } else if (text === 'ping' && rinfo.address !== cfg.address) udp.send('pong', rinfo.port, rinfo.address);
});
udp.on('error', (e) => say({ event: 'error', where: 'udp', message: e.message }));

async function askPeer(peer: string, hash: string, deadline: number, replies: (string | null)[], question = `has_path?${hash}`): Promise<boolean> {
  for (const delay of [0, 100, 500, 2000]) {
    await new Promise((r) => setTimeout(r, delay));
    if (Date.now() >= deadline) return false;
    const sock = dgram.createSocket('udp4');
    sock.on('error', () => {});
    const reply = await new Promise<Buffer | null>((resolve) => {
      const timer = setTimeout(() => resolve(null), Math.min(1000, deadline - Date.now()));
      sock.once('message', (m) => {
        clearTimeout(timer);
        resolve(m);
      });
      sock.connect(cfg.udpPort, peer, () => sock.send(question));
    });
    sock.close();
    replies.push(reply === null ? null : reply.toString('latin1'));
    say({ event: 'udp-reply', peer, hash, reply: reply === null ? null : reply.toString('latin1') });
    if (reply?.toString('latin1') === 'yes') return true;
    if (reply !== null) return false; // "not_found" (or anything but yes) is definitive: no retry
  }
  return false;
}

async function findPeerForHash(hash: string, replies: (string | null)[] = [], narHash?: string): Promise<string | null> {
  const t0 = Date.now();
  const deadline = t0 + 2000;
  const peers = allPeers();
  const found = await new Promise<string | null>((resolve) => {
    let left = peers.length;
    if (left === 0) resolve(null);
    for (const p of peers) {
      void askPeer(p, hash, deadline, replies, narHash ? `has_path_with_narhash?${hash}:${narHash}` : undefined).then((yes) => {
        if (yes) resolve(p);
        else if (--left === 0) resolve(null);
      });
    }
  });
  say({ event: 'udp-query', hash, found, ms: Date.now() - t0 });
  return found;
}

// Peers from the command line and those its mDNS browse recorded (address → when heard), as Go merges them.
const discovered = new Map<string, number>();
const allPeers = (): string[] => [...new Set([...cfg.peers, ...discovered.keys()])];

// ---- HTTP ----
const narInfoPeer = new Map<string, string>();
// Test hook: the next NAR served for a hash stops after this many bytes and is cut when released (a Go
// host dying mid-transfer, at a moment the test chooses).
const cuts = new Map<string, number>();
const held = new Map<string, () => void>();

async function handleNixCache(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const p = (req.url ?? '').split('?')[0].slice('/nix-cache/'.length);
  const isNarInfo = p.endsWith('.narinfo');
  const isNar = p.endsWith('.nar');
  if (!isNarInfo && !isNar) return void res.writeHead(404).end('Not found\n');
  const base = isNarInfo ? p.slice(0, -'.narinfo'.length) : p.slice(0, -'.nar'.length);
  // "<hash>-<narhash>" is today's stateless form; anything else is taken whole as the hash, as Go does.
  const stateless = isNar && base.length > 32 && base[32] === '-';
  const hash = stateless ? base.slice(0, 32) : base;
  const wantNarHash = stateless ? base.slice(33) : null;
  const compress = isNar && /gzip/i.test(String(req.headers['accept-encoding'] ?? ''));
  say({ event: 'http', url: req.url, range: req.headers.range ?? null, from: req.socket.remoteAddress });

  let full = await hasPath(hash);
  if (full && wantNarHash !== null && (await narHashOf(full)) !== wantNarHash) full = null;
  if (full) {
    if (isNarInfo) {
      await later(slowMs);
      res.writeHead(200, { 'Content-Type': 'text/x-nix-narinfo' }).end(await narInfo(full, hash));
      narInfoPeer.set(hash, 'localhost');
      return;
    }
    // No Content-Length: Node then sends the body chunked, as Go's ResponseWriter does.
    res.writeHead(200, { 'Content-Type': 'application/x-nix-nar', ...(compress ? { 'Content-Encoding': 'gzip' } : {}) });
    const dump = spawn('nix', ['--store', cfg.root, 'store', 'dump-path', full], { stdio: ['ignore', 'pipe', 'ignore'] });
    const body = compress ? dump.stdout.pipe(createGzip()) : dump.stdout;
    const cutAfter = cuts.get(hash);
    cuts.delete(hash);
    if (cutAfter === undefined) body.pipe(res);
    else {
      let sent = 0;
      body.on('data', (chunk: Buffer) => {
        if (sent >= cutAfter) return;
        const part = chunk.subarray(0, cutAfter - sent);
        sent += part.length;
        res.write(part);
        if (sent >= cutAfter) {
          say({ event: 'held', hash, after: sent });
          held.set(hash, () => {
            say({ event: 'cut', hash, after: sent });
            res.socket?.destroy();
          });
        }
      });
    }
    res.on('close', () => dump.kill());
    return;
  }

  let peer: string | null = null;
  if (wantNarHash !== null) {
    peer = await findPeerForHash(hash, [], wantNarHash);
    if (!peer) return void res.writeHead(404).end('Not found in local store or peers\n');
  } else if (isNar) {
    peer = narInfoPeer.get(hash) ?? null;
    if (peer === 'localhost') peer = await findPeerForHash(hash);
    if (!peer) return void res.writeHead(404).end('Not found, peer for .nar not cached\n');
  } else {
    peer = await findPeerForHash(hash);
    if (!peer) return void res.writeHead(404).end('Not found in local store or peers\n');
    narInfoPeer.set(hash, peer);
  }
  // Go writes "http://" + peer + ":" + port: an IPv6 peer's URL is then malformed, and the request fails.
  let upstream: http.ClientRequest;
  try {
    upstream = http.get(`http://${peer}:${cfg.httpPort}${req.url}`, (up) => {
      const headers = { ...up.headers };
      res.writeHead(up.statusCode ?? 502, headers);
      up.pipe(res);
      say({ event: 'proxied', url: req.url, peer, status: up.statusCode });
    });
  } catch (e) {
    say({ event: 'proxy-failed', url: req.url, peer, message: String(e) });
    return void res.writeHead(502).end('Failed to fetch from peer\n');
  }
  upstream.on('error', () => {
    if (!res.headersSent) res.writeHead(502).end('Failed to fetch from peer\n');
    else res.destroy();
  });
}

const server = http.createServer((req, res) => {
  const url = (req.url ?? '').split('?')[0];
  if (url === '/nix-cache/nix-cache-info') {
    res.writeHead(200, { 'Content-Type': 'text/x-nix-cache-info' }).end('StoreDir: /nix/store\nWantMassQuery: 0\nPriority: 10\n');
    return;
  }
  if (url.startsWith('/nix-cache/')) {
    handleNixCache(req, res).catch((e: unknown) => {
      say({ event: 'error', where: 'http', message: String(e) });
      if (!res.headersSent) res.writeHead(500).end(String(e));
    });
    return;
  }
  // Test hook (not Go's): ask the peers about a hash exactly as a narinfo miss would, and say what came back.
  const ask = /^\/standin\/ask\/([0-9a-z]{32})$/.exec(url);
  if (ask) {
    const replies: (string | null)[] = [];
    const t0 = Date.now();
    void findPeerForHash(ask[1], replies).then((found) =>
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ found, replies, ms: Date.now() - t0 })),
    );
    return;
  }
  const slow = /^\/standin\/slow\/([0-9]{1,5})$/.exec(url);
  if (slow) {
    slowMs = Number(slow[1]);
    return void res.writeHead(200).end('slow\n');
  }
  const udpDelay = /^\/standin\/udp-delay\/([0-9]{1,5})$/.exec(url);
  if (udpDelay) {
    udpDelayMs = Number(udpDelay[1]);
    return void res.writeHead(200).end('udp-delay\n');
  }
  const cut = /^\/standin\/cut\/([0-9a-z]{32})\/([0-9]{1,12})$/.exec(url);
  if (cut) {
    cuts.set(cut[1], Number(cut[2]));
    return void res.writeHead(200).end('armed\n');
  }
  const release = /^\/standin\/release\/([0-9a-z]{32})$/.exec(url);
  if (release) {
    const cutNow = held.get(release[1]);
    held.delete(release[1]);
    cutNow?.();
    return void res.writeHead(200).end(cutNow ? 'cut\n' : 'nothing held\n');
  }
  if (url === '/') return void res.writeHead(200, { 'Content-Type': 'text/plain' }).end('peernix server running\n');
  res.writeHead(404).end('404 page not found\n');
});

// ---- mDNS, the way hashicorp/mdns answers ----
interface Mdns {
  on(event: string, listener: (...args: any[]) => void): void;
  respond(packet: { answers: object[] }, rinfo: object | undefined, cb: () => void): void;
  query(packet: object, rinfo: undefined, cb: () => void): void;
  destroy(): void;
}
const mdns = (createRequire(import.meta.url)('multicast-dns') as (o: object) => Mdns)({ interface: cfg.address, bind: '0.0.0.0' });
const SERVICE = '_peernix._tcp.local';
const INSTANCE = `peernix.${SERVICE}`;
const HOST = `${cfg.hostName}.`;
const txt = ['version=2.0.0', 'platform=amd64-linux', 'features=compression,parallel,health,signing', `pubkey=${publicKeyText}`];
const srv = { name: INSTANCE, type: 'SRV', ttl: 120, data: { priority: 10, weight: 1, port: cfg.httpPort, target: HOST } };
const a = { name: HOST, type: 'A', ttl: 120, data: cfg.address };
const txtRr = { name: INSTANCE, type: 'TXT', ttl: 120, data: txt.map((t) => Buffer.from(t)) };
let mdnsAnswered = 0;
mdns.on('query', (q: { questions?: { name: string; type: string }[] }, rinfo: object) => {
  const answers: object[] = [];
  for (const question of q.questions ?? []) {
    const name = question.name.toLowerCase().replace(/\.$/, '');
    if (name === SERVICE && (question.type === 'PTR' || question.type === 'ANY'))
      answers.push({ name: SERVICE, type: 'PTR', ttl: 120, data: INSTANCE }, srv, a, txtRr);
    else if (name === INSTANCE.toLowerCase() && question.type === 'ANY') answers.push(srv, a, txtRr);
    else if (name === INSTANCE.toLowerCase() && question.type === 'SRV') answers.push(srv, a);
    else if (name === INSTANCE.toLowerCase() && question.type === 'TXT') answers.push(txtRr);
  }
  if (answers.length === 0) return;
  mdns.respond({ answers }, rinfo, () => {});
  if (++mdnsAnswered <= 3) say({ event: 'mdns-answered', to: rinfo });
});
mdns.on('error', (e: unknown) => say({ event: 'error', where: 'mdns', message: String(e) }));
mdns.on('warning', () => {});

// Its browse: a PTR query for the service type; each answer naming a `_peernix._tcp` instance gives one
// peer, at the last A or AAAA record of answers then additionals (hashicorp/mdns overwrites entry.Addr
// with each), formatted as Go's net.IP.String() does (IPv6 bare). It skips its own address.
let browsing = false;
mdns.on('response', (packet: { answers?: { name: string; type: string; data: unknown }[]; additionals?: { name: string; type: string; data: unknown }[] }) => {
  if (!browsing) return;
  const records = [...(packet.answers ?? []), ...(packet.additionals ?? [])];
  if (!records.some((r) => (r.type === 'PTR' || r.type === 'SRV') && String(r.name).toLowerCase().replace(/\.$/, '').endsWith(SERVICE))) return;
  let addr: string | null = null;
  for (const r of records) if ((r.type === 'A' || r.type === 'AAAA') && typeof r.data === 'string') addr = r.data;
  if (!addr || addr === cfg.address) return;
  const fresh = !discovered.has(addr);
  discovered.set(addr, Date.now());
  if (fresh) say({ event: 'mdns-discovered', address: addr });
});
const browse = () => {
  browsing = true;
  mdns.query({ questions: [{ name: SERVICE, type: 'PTR' }] }, undefined, () => {});
  say({ event: 'mdns-browse' });
  // hashicorp/mdns listens for 3 s per browse (updatePeersMDNS).
  setTimeout(() => (browsing = false), 3000).unref();
};

udp.bind(cfg.udpPort, '0.0.0.0', () => {
  server.listen(cfg.httpPort, '0.0.0.0', () => {
    say({ event: 'ready', publicKey: publicKeyText });
    // No announcement (today's Go sends none); browses at 0, 5 and 10 s, then every 30 s.
    browse();
    setTimeout(browse, 5000).unref();
    setTimeout(browse, 10_000).unref();
    setTimeout(() => setInterval(browse, 30_000).unref(), 15_000).unref();
  });
});

const stop = () => {
  mdns.destroy();
  udp.close();
  server.close();
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 200).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
