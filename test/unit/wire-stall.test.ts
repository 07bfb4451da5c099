import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { connect } from 'node:net';
import { Readable, pipeline } from 'node:stream';
import { after, describe, it } from 'node:test';
import { listen, type HttpListener } from '../../src/cache/http-listener.ts';
import { ResponseSink } from '../../src/cache/response-sink.ts';
import { canonicalAddress, parseSendQueues, sendQueueKey } from '../../src/cache/tcp-send-queues.ts';
import { createLogger } from '../../src/base/log.ts';
import { FakeClock } from '../support/fake-clock.ts';
import { generateKeyPair, parseSecretKey } from '../../src/nix/signing.ts';
import { makeTeamCertificate } from '../../src/wire/team-certificate.ts';

// A response whose client stopped taking bytes is cut after stallMs of fake time, whatever sits in
// Node's and the kernel's buffers; its source (the daemon connection's stand-in) is destroyed with it.
// A client that keeps reading, however slowly, and a long poll with nothing to send are never cut.
// Real sockets on loopback; only time is fake.

const STALL_MS = 60_000;
const CHECK_MS = 5000;
const NAR = 40 * 1024 * 1024;
const log = createLogger('error');

/** A 40 MiB body in 256 KiB chunks; `destroyed` resolves when the pipeline lets it go. */
function bigBody(): { stream: Readable; destroyed: Promise<unknown> } {
  let sent = 0;
  const stream = new Readable({
    read() {
      if (sent >= NAR) return this.push(null);
      sent += 256 * 1024;
      this.push(Buffer.alloc(256 * 1024, 7));
    },
  });
  return { stream, destroyed: new Promise((r) => stream.once('close', r)) };
}

/** Python's socket: the one client here that sets SO_RCVBUF before it connects. Reads `first` bytes, says so, then reads nothing. */
function stoppedReader(port: number, first: number): ChildProcess {
  const py = [
    'import socket, sys, time',
    's = socket.socket()',
    's.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)',
    `s.connect(("127.0.0.1", ${port}))`,
    `s.sendall(b"GET /nar HTTP/1.1\\r\\nHost: 127.0.0.1:${port}\\r\\n\\r\\n")`,
    'got = 0',
    `while got < ${first}: got += len(s.recv(${first} - got))`,
    'print("read", got, flush=True)',
    'time.sleep(600)',
  ].join('\n');
  return spawn('python3', ['-c', py], { stdio: ['ignore', 'pipe', 'inherit'] });
}

/** Moves fake time one check at a time (each check really run) until `until` holds or `maxMs` of fake time passed. */
async function drive(l: HttpListener, clock: FakeClock, until: () => boolean, maxMs: number): Promise<number> {
  const start = clock.now();
  while (!until() && clock.now() - start < maxMs) {
    const n = l.stalls.checks;
    clock.advance(CHECK_MS);
    while (l.stalls.checks === n && l.stalls.size > 0) await new Promise((r) => setImmediate(r));
    // Let socket events the check caused (a destroy) be delivered.
    await new Promise((r) => setImmediate(r));
  }
  return clock.now() - start;
}

describe('the wire stall watch', () => {
  const children: ChildProcess[] = [];
  const listeners: HttpListener[] = [];
  after(async () => {
    for (const c of children) c.kill('SIGKILL');
    for (const l of listeners) await l.close(0);
  });

  it('reads the kernel send queues of /proc/net/tcp and tcp6 by connection', () => {
    const v4 = [
      '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
      '   1: 0100007F:270F 0200007F:C868 01 0003F000:00000000 01:00000014 00000000     0        0 4242 1 0000000000000000 20 4 1 10 -1',
      'garbage line',
    ].join('\n');
    const v6 = [
      '  sl  local_address                         remote_address                        st tx_queue rx_queue',
      '   0: 0000000000000000FFFF00000100007F:270F 0000000000000000FFFF00000300007F:D431 01 00001000:00000000 00:00000000 00000000 0 0 1 1',
      '   1: 000080FE00000000FF00000000000000:270F 000080FE00000000FF01000000000000:D432 01 00000010:00000000 00:00000000 00000000 0 0 1 1',
    ].join('\n');
    const q = parseSendQueues(v6, parseSendQueues(v4));
    assert.equal(q.get(sendQueueKey(9999, '127.0.0.2', 51304)), 0x3f000);
    assert.equal(q.get(sendQueueKey(9999, '::ffff:127.0.0.3', 54321)), 0x1000);
    assert.equal(q.get(sendQueueKey(9999, 'fe80::1ff:0:0%eth0', 54322)), 0x10);
    assert.equal(q.size, 3);
    assert.equal(canonicalAddress('FE80::0001'), 'fe80:0:0:0:0:0:0:1');
  });

  it('cuts a client that read 200 bytes and stopped (4 KiB window) after stallMs, and frees its source at once', async () => {
    const clock = new FakeClock();
    let body: ReturnType<typeof bigBody> | null = null;
    let closedAt = 0;
    const l = await listen({
      host: '127.0.0.1',
      port: 0,
      log,
      stallMs: STALL_MS,
      clock,
      handler: (_req, res) => {
        body = bigBody();
        res.writeHead(200, { 'Content-Length': String(NAR) });
        res.once('close', () => (closedAt = clock.now()));
        pipeline(body.stream, new ResponseSink(res), () => {});
      },
    });
    listeners.push(l);
    const client = stoppedReader(l.port, 200);
    children.push(client);
    const [line] = (await once(client.stdout!, 'data')) as [Buffer];
    assert.match(String(line), /^read 200/);
    const t0 = clock.now();
    const took = await drive(l, clock, () => closedAt > 0, 20 * STALL_MS);
    assert.ok(closedAt > 0, `not cut after ${took} ms of fake time`);
    assert.ok(closedAt - t0 >= STALL_MS, `cut after ${closedAt - t0} ms of fake time, before ${STALL_MS}`);
    await body!.destroyed; // the source goes with the response, not at some later timeout
    assert.equal(l.stalls.size, 0);
  });

  it('never cuts a client that keeps reading, however slowly, nor a long poll with nothing to send', async () => {
    const clock = new FakeClock();
    const closed: string[] = [];
    const l = await listen({
      host: '127.0.0.1',
      port: 0,
      log,
      stallMs: STALL_MS,
      clock,
      handler: (req, res) => {
        res.once('close', () => closed.push(req.url!));
        if (req.url === '/poll') {
          res.writeHead(200, { 'Content-Type': 'text/plain' });
          res.write('waiting\n'); // and then nothing: a long poll between events
          return;
        }
        res.writeHead(200, { 'Content-Length': String(NAR) });
        pipeline(bigBody().stream, new ResponseSink(res), () => {});
      },
    });
    listeners.push(l);
    const slow = connect(l.port, '127.0.0.1');
    const poll = connect(l.port, '127.0.0.1');
    slow.write(`GET /nar HTTP/1.1\r\nHost: x\r\n\r\n`);
    poll.write(`GET /poll HTTP/1.1\r\nHost: x\r\n\r\n`);
    await once(poll, 'data');
    slow.pause();
    await once(slow, 'readable');
    let taken = 0;
    // Four fake minutes, the slow client taking 64 KiB between checks (a few KiB/s at fake time).
    const start = clock.now();
    while (clock.now() - start < 4 * STALL_MS) {
      for (let got = 0; got < 64 * 1024; ) {
        const c = slow.read() as Buffer | null;
        if (c) {
          got += c.length;
          taken += c.length;
        } else await once(slow, 'readable');
      }
      await drive(l, clock, () => false, CHECK_MS);
    }
    assert.deepEqual(closed, [], `cut while reading (${taken} bytes taken) or while polling`);
    assert.equal(l.stalls.size, 2);
    slow.destroy();
    poll.destroy();
  });
  it("leaves a response with bytes waiting to the watch when Node's idle timer fires, and still lets that timer cut a silent source", async () => {
    // Node's idle timer runs on real time (here 300 ms); the watch's fake clock is moved only at the end.
    const clock = new FakeClock();
    const closed: string[] = [];
    let timeouts = 0;
    const l = await listen({
      host: '127.0.0.1',
      port: 0,
      log,
      stallMs: 300,
      clock,
      // As the share listener is: TLS on the same port, so the plain connection passes the first-byte sniff.
      tls: await makeTeamCertificate(parseSecretKey(generateKeyPair('stall-1').secretKeyText)),
      handler: (req, res) => {
        res.once('close', () => closed.push(req.url!));
        res.writeHead(200, { 'Content-Length': String(NAR) });
        if (req.url === '/silent')
          res.write('x'); // and then the source says nothing
        else pipeline(bigBody().stream, new ResponseSink(res), () => {});
      },
    });
    listeners.push(l);
    l.server.on('timeout', () => timeouts++);
    const client = stoppedReader(l.port, 200);
    children.push(client);
    await once(client.stdout!, 'data');
    const silent = connect(l.port, '127.0.0.1');
    silent.on('error', () => {});
    silent.write(`GET /silent HTTP/1.1\r\nHost: x\r\n\r\n`);
    // Evidence that Node's timer judged both: the silent one is cut by it, the stopped reader is not.
    while (!closed.includes('/silent') || timeouts < 2) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(closed, ['/silent']);
    await drive(l, clock, () => closed.includes('/nar'), 20 * 300);
    assert.deepEqual(closed, ['/silent', '/nar'], 'the watch, on its own clock, cuts the stopped reader');
    silent.destroy();
  });
});
