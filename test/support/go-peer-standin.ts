// A stand-in for the original Go peernix (github zw3rk/peernix), run as a process inside a test
// namespace. Written from what its main.go says (read at commit 93fc5118f620948ab3d1d68e07bed84fcc00291b,
// the newest stored; line numbers are that file's), not from its code. What it does, and where it says so:
//
//   mDNS (startMDNSServer; hashicorp/mdns zone.go + server.go for the wire form):
//     instance "peernix", service "_peernix._tcp", domain "local", port = its http-port; TXT strings
//     version=2.0.0, platform=<GOARCH>-<GOOS>, features=compression,parallel,health[,signing],
//     pubkey=<key-name>:<base64> (signing on). A PTR query is answered with PTR + SRV (priority 10,
//     weight 1, target "<hostname>.") + A + TXT, TTL 120, all in the answer section, sent back to the
//     asker's address and port (hashicorp sendResponse); at start an unsolicited SRV + A + TXT (no PTR)
//     is multicast three times, 1 s and 2 s apart (hashicorp probe).
//   HTTP (main; handleNixCacheInfo; handleNixCache):
//     /nix-cache/nix-cache-info: "StoreDir: /nix/store", "WantMassQuery: 0", "Priority: 10".
//     /nix-cache/<X>.narinfo and /nix-cache/<X>.nar: X is everything between "/nix-cache/" and the
//     suffix, taken as a hash part (so /nix-cache/nar/… is a 404); anything else under it is a 404.
//     A path held locally is served from the store; otherwise a narinfo is looked for on its peers by
//     UDP (findPeerForHash), the answering peer is remembered for the hash, and the request is proxied
//     to http://<peer>:<its own http-port><the same path>; a .nar for a hash no narinfo was proxied
//     for is a 404 ("peer for .nar not cached").
//   narinfo (generateNarInfo): StorePath; URL "<hash>.nar" (".gz" never: compression is
//     only for .nar requests); Compression: none; FileHash = NarHash; FileSize = NarSize; NarHash from
//     `nix-store --query --hash`; References from --references, sorted, basenames, the path itself
//     left out; Deriver: basename or "unknown-deriver"; Sig "<key-name>:<base64>" over
//     "1;<path>;<narHash>;<narSize>;<full reference paths joined by ','>". The key name is "peernix-1"
//     on every host (config default KeyName; var keyName).
//   NAR (generateNar): `nix-store --dump` streamed, no Content-Length (chunked), gzip
//     with Content-Encoding only when Accept-Encoding has "gzip"; no Range support (always 200).
//   UDP (udpServer; queryPeersParallel): one socket on :<udp-port> (default
//     9999, apart from the HTTP port), 1024-byte reads; "has_path?<hash>" answered "yes" only when held
//     (nothing otherwise); "ping" answered "pong" unless from its own address. Asking: per peer, a
//     connected socket to <peer>:<its own udp-port> sends "has_path?<hash>" and reads 1 s; attempts
//     at 0, +100 ms, +500 ms, +2 s, all within a 2 s deadline; exactly "yes" means found.
//   hasPath (with findStorePath): `nix store path-from-hash-part`, then the path exists and has no ".lock".
//
// Differences, for the test's sake: Nix 2.8 has no `nix store path-from-hash-part`, so the path is
// found by its name under the chroot store and checked with `nix-store --check-validity`; its peers
// are given on the command line (it would learn them by mDNS or UDP broadcast); it prints one JSON line
// per event on stdout for the test to read. Everything runs against a chroot store (--store <root>).

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
  if (!(await fsp.stat(cfg.root + p).then(() => true, () => false))) return null;
  if (await fsp.stat(cfg.root + p + '.lock').then(() => true, () => false)) return null;
  return (await nixStore(['--check-validity', p])).code === 0 ? p : null;
}

async function narInfo(full: string, hash: string): Promise<string> {
  const refs = (await nixStore(['--query', '--references', full])).out.split(/\s+/).filter((r) => r && r !== full).sort();
  const deriverOut = (await nixStore(['--query', '--deriver', full])).out.trim();
  const size = (await nixStore(['--query', '--size', full])).out.trim();
  const narHash = (await nixStore(['--query', '--hash', full])).out.trim();
  let deriver = deriverOut.replace(/^\/nix\/store\//, '');
  if (deriver === '' || deriver === 'unknown-deriver') deriver = 'unknown-deriver';
  const fingerprint = `1;${full};${narHash};${size};${refs.join(',')}`;
  const sig = `${keyName}:${sign(null, Buffer.from(fingerprint), privateKey).toString('base64')}`;
  return [
    `StorePath: ${full}`,
    `URL: ${hash}.nar`,
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

// ---- UDP: answering and asking ----
const udp = dgram.createSocket('udp4');
udp.on('message', (msg, rinfo) => {
  const text = msg.subarray(0, 1024).toString('latin1');
  if (text.startsWith('has_path?')) {
    const hash = text.slice('has_path?'.length);
    void hasPath(hash).then((p) => {
      if (p) udp.send('yes', rinfo.port, rinfo.address);
      say({ event: 'udp-asked', from: rinfo.address, hash, answer: p ? 'yes' : null });
    });
  } else if (text === 'ping' && rinfo.address !== cfg.address) udp.send('pong', rinfo.port, rinfo.address);
});
udp.on('error', (e) => say({ event: 'error', where: 'udp', message: e.message }));

async function askPeer(peer: string, hash: string, deadline: number, replies: (string | null)[]): Promise<boolean> {
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
      sock.connect(cfg.udpPort, peer, () => sock.send(`has_path?${hash}`));
    });
    sock.close();
    replies.push(reply === null ? null : reply.toString('latin1'));
    say({ event: 'udp-reply', peer, hash, reply: reply === null ? null : reply.toString('latin1') });
    if (reply?.toString('latin1') === 'yes') return true;
  }
  return false;
}

async function findPeerForHash(hash: string, replies: (string | null)[] = []): Promise<string | null> {
  const t0 = Date.now();
  const deadline = t0 + 2000;
  const found = await new Promise<string | null>((resolve) => {
    let left = cfg.peers.length;
    if (left === 0) resolve(null);
    for (const p of cfg.peers) {
      void askPeer(p, hash, deadline, replies).then((yes) => {
        if (yes) resolve(p);
        else if (--left === 0) resolve(null);
      });
    }
  });
  say({ event: 'udp-query', hash, found, ms: Date.now() - t0 });
  return found;
}

// ---- HTTP ----
const narInfoPeer = new Map<string, string>();

async function handleNixCache(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const p = (req.url ?? '').split('?')[0].slice('/nix-cache/'.length);
  const isNarInfo = p.endsWith('.narinfo');
  const isNar = p.endsWith('.nar');
  if (!isNarInfo && !isNar) return void res.writeHead(404).end('Not found\n');
  const hash = isNarInfo ? p.slice(0, -'.narinfo'.length) : p.slice(0, -'.nar'.length);
  const compress = isNar && /gzip/i.test(String(req.headers['accept-encoding'] ?? ''));
  say({ event: 'http', url: req.url, range: req.headers.range ?? null, from: req.socket.remoteAddress });

  const full = await hasPath(hash);
  if (full) {
    if (isNarInfo) {
      res.writeHead(200, { 'Content-Type': 'text/x-nix-narinfo' }).end(await narInfo(full, hash));
      narInfoPeer.set(hash, 'localhost');
      return;
    }
    // No Content-Length: Node then sends the body chunked, as Go's ResponseWriter does.
    res.writeHead(200, { 'Content-Type': 'application/x-nix-nar', ...(compress ? { 'Content-Encoding': 'gzip' } : {}) });
    const dump = spawn('nix', ['--store', cfg.root, 'store', 'dump-path', full], { stdio: ['ignore', 'pipe', 'ignore'] });
    const body = compress ? dump.stdout.pipe(createGzip()) : dump.stdout;
    body.pipe(res);
    res.on('close', () => dump.kill());
    return;
  }

  let peer: string | null = null;
  if (isNar) {
    peer = narInfoPeer.get(hash) ?? null;
    if (peer === 'localhost') peer = await findPeerForHash(hash);
    if (!peer) return void res.writeHead(404).end('Not found, peer for .nar not cached\n');
  } else {
    peer = await findPeerForHash(hash);
    if (!peer) return void res.writeHead(404).end('Not found in local store or peers\n');
    narInfoPeer.set(hash, peer);
  }
  const upstream = http.get(`http://${peer}:${cfg.httpPort}${req.url}`, (up) => {
    const headers = { ...up.headers };
    res.writeHead(up.statusCode ?? 502, headers);
    up.pipe(res);
    say({ event: 'proxied', url: req.url, peer, status: up.statusCode });
  });
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
    void findPeerForHash(ask[1], replies).then((found) => res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ found, replies, ms: Date.now() - t0 })));
    return;
  }
  if (url === '/') return void res.writeHead(200, { 'Content-Type': 'text/plain' }).end('peernix server running\n');
  res.writeHead(404).end('404 page not found\n');
});

// ---- mDNS, the way hashicorp/mdns answers ----
interface Mdns {
  on(event: string, listener: (...args: any[]) => void): void;
  respond(packet: { answers: object[] }, rinfo: object | undefined, cb: () => void): void;
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
    if (name === SERVICE && (question.type === 'PTR' || question.type === 'ANY')) answers.push({ name: SERVICE, type: 'PTR', ttl: 120, data: INSTANCE }, srv, a, txtRr);
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

udp.bind(cfg.udpPort, '0.0.0.0', () => {
  server.listen(cfg.httpPort, '0.0.0.0', () => {
    say({ event: 'ready', publicKey: publicKeyText });
    let n = 0;
    const announce = () => {
      mdns.respond({ answers: [srv, a, txtRr] }, undefined, () => {});
      if (++n < 3) setTimeout(announce, 1000 * n);
    };
    announce();
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
