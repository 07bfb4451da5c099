import assert from 'node:assert/strict';
import { createServer, request, type IncomingMessage } from 'node:http';
import { describe, it } from 'node:test';
import { MessageChannel } from 'node:worker_threads';
import { type PipeMessage, PortDuplex } from '../../src/base/port-duplex.ts';
import { defaultShareThreads } from '../../src/app/share-loops.ts';

// Node's HTTP client and server over a pair of message streams on a real MessageChannel, as a share
// worker relays a request to the main thread.

function pair(address: string) {
  const { port1, port2 } = new MessageChannel();
  const client = new PortDuplex(1, (m) => port1.postMessage(m));
  const server = new PortDuplex(1, (m) => port2.postMessage(m), address);
  port1.on('message', (m: PipeMessage) => client.receive(m));
  port2.on('message', (m: PipeMessage) => server.receive(m));
  return { client, server, close: () => (port1.close(), port2.close()) };
}

function ask(client: PortDuplex, path: string): Promise<{ res: IncomingMessage; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ createConnection: () => client as never, path, headers: { connection: 'close' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ res, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('PortDuplex', () => {
  it('carries a request and its answer, with the address the first loop saw', async (t) => {
    const big = 'x'.repeat(300_000);
    const server = createServer((req, res) => {
      res.setHeader('X-Seen', `${req.socket.remoteAddress} ${req.url}`);
      res.end(big);
    });
    const p = pair('192.0.2.7');
    t.after(p.close);
    server.emit('connection', p.server);
    const { res, body } = await ask(p.client, '/peernix/summary?epoch=1');
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['x-seen'], '192.0.2.7 /peernix/summary?epoch=1');
    assert.equal(body, big);
  });

  it('a client that leaves closes the answer still waiting on the other side (a long poll ends)', async (t) => {
    let closed!: () => void;
    const answerClosed = new Promise<void>((r) => (closed = r));
    let asked!: () => void;
    const held = new Promise<void>((r) => (asked = r));
    const server = createServer((_req, res) => {
      res.once('close', closed); // never answered: held like a summary's wait
      asked();
    });
    const p = pair('192.0.2.8');
    t.after(p.close);
    server.emit('connection', p.server);
    const req = request({ createConnection: () => p.client as never, path: '/wait' });
    req.on('error', () => {});
    req.end();
    await held; // the request reached the other side and waits there
    req.destroy();
    await answerClosed;
    assert.ok(p.server.destroyed);
  });
});

describe('defaultShareThreads', () => {
  it('uses the cores beyond the second up to 3 on Linux, none elsewhere', () => {
    assert.deepEqual(
      [1, 2, 3, 4, 5, 8].map((n) => defaultShareThreads('linux', n)),
      [0, 0, 1, 2, 3, 3],
    );
    assert.equal(defaultShareThreads('darwin', 8), 0);
    assert.equal(defaultShareThreads('win32', 8), 0);
  });
});
