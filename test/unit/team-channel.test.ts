import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { request as httpsRequest } from 'node:https';
import { connect as netConnect, createServer as createTcpServer, type AddressInfo, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { createLogger } from '../../src/base/log.ts';
import { askerClassifier, type AskerClass } from '../../src/cache/asker-class.ts';
import { listen, type HttpListener } from '../../src/cache/http-listener.ts';
import { generateKeyPair, parseSecretKey } from '../../src/nix/signing.ts';
import { PeerClient, PeerError } from '../../src/peers/peer-client.ts';
import { TeamAgent, TeamKeyMismatch } from '../../src/peers/team-agent.ts';
import { ed25519KeyOfCertificate, makeTeamCertificate, type TeamCertificate } from '../../src/wire/team-certificate.ts';
import { get } from '../support/http.ts';

// The team channel on loopback with real TLS: one port answers plain HTTP and TLS, each request is
// classified by the key its client proved in the handshake, the client refuses a server holding another
// key than the one it expects, and a captured team connection replayed byte for byte gets nothing.

const key = (name: string) => parseSecretKey(generateKeyPair(name).secretKeyText);
const owner = key('owner-1');
const member = key('member-1');
const stranger = key('stranger-1');
const b64 = (k: ReturnType<typeof key>) => k.publicKey.key.toString('base64');

let ownerCert: TeamCertificate;
let memberCert: TeamCertificate;
let strangerCert: TeamCertificate;
let server: HttpListener;
const seen: { url: string; asker: AskerClass }[] = [];

before(async () => {
  [ownerCert, memberCert, strangerCert] = await Promise.all([owner, member, stranger].map((k) => makeTeamCertificate(k)));
  const classify = askerClassifier(() => new Set([b64(member)]));
  server = await listen({
    host: '127.0.0.1',
    port: 0,
    log: createLogger('error'),
    tls: ownerCert,
    handler: (req, res) => {
      const asker = classify(req);
      seen.push({ url: req.url ?? '', asker });
      res.end(`${asker}\n`);
    },
  });
});
after(() => server.close(0));

function tlsGet(path: string, opts: { cert?: TeamCertificate; agent?: TeamAgent } = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const tls = opts.agent
      ? { agent: opts.agent }
      : { agent: false as const, rejectUnauthorized: false, ...(opts.cert ? { cert: opts.cert.cert, key: opts.cert.key } : {}) };
    const req = httpsRequest({ host: '127.0.0.1', port: server.port, path, ...tls }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('team certificate', () => {
  test('its subject public key is the identity key, and nothing else passes for one', () => {
    const der = new X509Certificate(ownerCert.cert).raw;
    assert.deepEqual(ed25519KeyOfCertificate(der), owner.publicKey.key);
    assert.equal(ed25519KeyOfCertificate(Buffer.from('not a certificate')), null);
    assert.equal(ed25519KeyOfCertificate(undefined), null);
  });
});

describe('share listener with the team channel', () => {
  test('plain HTTP still answers, as anonymous', async () => {
    const r = await get(`${server.url}/plain`);
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), 'anonymous\n');
  });

  test('a connection reset before its first byte leaves the listener answering', async () => {
    // The listener's own end of that connection: once it has closed, the reset reached the listener
    // (as an error no listener handled, it would have ended the process first).
    const listenerEnd = new Promise<Socket>((r) => server.server.once('connection', r));
    await new Promise<void>((resolve) => {
      const s = netConnect(server.port, '127.0.0.1', () => {
        s.resetAndDestroy();
        resolve();
      });
    });
    const raw = await listenerEnd;
    if (!raw.closed) await new Promise((r) => raw.once('close', r));
    assert.equal((await tlsGet('/after-reset', { cert: memberCert })).body, 'team\n');
  });

  test('a team member proving its key over TLS is team; no certificate or a stranger key is anonymous', async () => {
    assert.equal((await tlsGet('/m', { cert: memberCert })).body, 'team\n');
    assert.equal((await tlsGet('/none')).body, 'anonymous\n');
    assert.equal((await tlsGet('/s', { cert: strangerCert })).body, 'anonymous\n');
  });

  test('the team agent talks to a server holding the expected key, and refuses one holding another before sending a request', async () => {
    const good = new TeamAgent(memberCert, b64(owner));
    const bad = new TeamAgent(memberCert, b64(stranger));
    try {
      assert.deepEqual(await tlsGet('/agent', { agent: good }), { status: 200, body: 'team\n' });
      const before = seen.length;
      await assert.rejects(tlsGet('/wrong-server', { agent: bad }), TeamKeyMismatch);
      assert.equal(seen.length, before, 'no request reached a server with the wrong key');
    } finally {
      good.destroy();
      bad.destroy();
    }
  });

  test('a captured team connection replayed byte for byte by a stranger is refused; its own TLS request is anonymous', async () => {
    // A relay in the middle records what the member's client sends, as a capture of the LAN would.
    const captured: Buffer[] = [];
    const relay = createTcpServer((client: Socket) => {
      const upstream = netConnect(server.port, '127.0.0.1');
      client.on('data', (d: Buffer) => captured.push(d));
      client.pipe(upstream).pipe(client);
      client.on('error', () => upstream.destroy());
      upstream.on('error', () => client.destroy());
    });
    await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
    const relayPort = (relay.address() as AddressInfo).port;
    try {
      const agent = new TeamAgent(memberCert, b64(owner), { keepAlive: false });
      const r = await new Promise<string>((resolve, reject) => {
        const req = httpsRequest({ host: '127.0.0.1', port: relayPort, path: '/secret-team-path', agent }, (res) => {
          let body = '';
          res.on('data', (d: Buffer) => (body += d));
          res.on('end', () => resolve(body));
        });
        req.on('error', reject);
        req.end();
      });
      agent.destroy();
      assert.equal(r, 'team\n');
      assert.ok(captured.length > 0);
      assert.ok(!Buffer.concat(captured).includes('secret-team-path'), 'the request line never crossed in clear');

      const before = seen.length;
      const replay = netConnect(server.port, '127.0.0.1');
      const answer: Buffer[] = [];
      replay.on('data', (d: Buffer) => answer.push(d));
      await new Promise<void>((resolve) => {
        replay.on('connect', () => replay.write(Buffer.concat(captured)));
        replay.on('close', () => resolve());
        replay.on('error', () => resolve());
      });
      assert.equal(seen.length, before, 'the replayed stream carried no request the server accepted');
      assert.ok(!Buffer.concat(answer).includes('team'), 'nothing readable came back');

      assert.equal((await tlsGet('/stranger-own', { cert: strangerCert })).body, 'anonymous\n');
    } finally {
      relay.close();
    }
  });
});

describe('peer client over the team channel', () => {
  const narInfoAsker = async (keyOf: (origin: string) => string | null) => {
    const client = new PeerClient({ narInfoMs: 3000 }, 'test', {}, { team: { cert: memberCert, keyOf } });
    const before = seen.length;
    try {
      await client.narInfo(server.url, 'a'.repeat(32));
    } catch (e) {
      return { error: e as PeerError, asked: seen.slice(before) };
    } finally {
      client.close();
    }
    return { error: null, asked: seen.slice(before) };
  };

  test('asks a member over TLS with its own key, a non-member in plain, and a member holding another key not at all', async () => {
    const origin = new URL(server.url).origin;
    const member = await narInfoAsker((o) => (o === origin ? b64(owner) : null));
    assert.deepEqual(
      member.asked.map((s) => s.asker),
      ['team'],
    );
    const plain = await narInfoAsker(() => null);
    assert.deepEqual(
      plain.asked.map((s) => s.asker),
      ['anonymous'],
    );
    const impostor = await narInfoAsker(() => b64(stranger));
    assert.ok(impostor.error instanceof PeerError, 'a server without the expected key is an error');
    assert.deepEqual(impostor.asked, []);
  });
});
