// The DNS exchange against stand-in servers on loopback: a truncated UDP answer is asked again over
// TCP, answers with the wrong id or question are not taken, and a silent server costs its timeout only.
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import dnsPacket from 'dns-packet';
import { encodeQuery, exchange, parseServer, query } from '../../src/peers/dns-client.ts';

function answerTo(msg: Buffer, opts: { truncated?: boolean; id?: number; name?: string; records?: number } = {}): Buffer {
  const q = dnsPacket.decode(msg);
  const name = opts.name ?? q.questions?.[0].name ?? '';
  return dnsPacket.encode({
    type: 'response',
    id: opts.id ?? q.id,
    flags: opts.truncated ? dnsPacket.TRUNCATED_RESPONSE : 0,
    questions: [{ name, type: 'PTR', class: 'IN' }],
    answers: Array.from({ length: opts.truncated ? 0 : (opts.records ?? 1) }, (_, i) => ({
      name,
      type: 'PTR',
      ttl: 30,
      data: `p${i}._peernix._tcp.office.test`,
    })),
  });
}

describe('DNS exchange', () => {
  let udp: dgram.Socket;
  let tcp: net.Server;
  let port = 0;
  let mode: 'truncate' | 'wrong-first' | 'silent' = 'truncate';
  let tcpAsked = 0;

  before(async () => {
    tcp = net.createServer((s) => {
      s.once('data', (d: Buffer) => {
        tcpAsked++;
        const a = answerTo(d.subarray(2), { records: 300 });
        const len = Buffer.alloc(2);
        len.writeUInt16BE(a.length);
        s.end(Buffer.concat([len, a]));
      });
    });
    await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', () => r()));
    port = (tcp.address() as net.AddressInfo).port;
    udp = dgram.createSocket('udp4');
    udp.on('message', (msg, rinfo) => {
      if (mode === 'silent') return;
      if (mode === 'wrong-first') {
        udp.send(answerTo(msg, { id: (msg.readUInt16BE(0) + 1) & 0xffff }), rinfo.port, rinfo.address);
        udp.send(answerTo(msg, { name: 'other.test' }), rinfo.port, rinfo.address);
        udp.send(answerTo(msg, { records: 2 }), rinfo.port, rinfo.address);
        return;
      }
      udp.send(answerTo(msg, { truncated: true }), rinfo.port, rinfo.address);
    });
    await new Promise<void>((r) => udp.bind(port, '127.0.0.1', () => r()));
  });
  after(() => {
    udp.close();
    tcp.close();
  });

  it('asks again over TCP when the UDP answer is truncated', async () => {
    mode = 'truncate';
    const a = await query({ host: '127.0.0.1', port }, '_peernix._tcp.office.test', 'PTR');
    assert.equal(a.answers?.length, 300);
    assert.equal(tcpAsked, 1);
  });

  it('takes only the answer with its id and question', async () => {
    mode = 'wrong-first';
    const a = await query({ host: '127.0.0.1', port }, '_peernix._tcp.office.test', 'PTR');
    assert.equal(a.answers?.length, 2);
  });

  it('gives up on a silent server after its tries', async () => {
    mode = 'silent';
    await assert.rejects(
      exchange({ host: '127.0.0.1', port }, encodeQuery('x.test', 'A'), { timeoutMs: 100, tries: 2 }),
      /no answer from DNS server 127\.0\.0\.1:\d+ over UDP/,
    );
  });

  it('reads server addresses as the settings give them', () => {
    assert.deepEqual(parseServer('10.0.0.53'), { host: '10.0.0.53', port: 53 });
    assert.deepEqual(parseServer('10.0.0.53:5353'), { host: '10.0.0.53', port: 5353 });
    assert.deepEqual(parseServer('[fd00::53]:54'), { host: 'fd00::53', port: 54 });
    assert.deepEqual(parseServer('fd00::53'), { host: 'fd00::53', port: 53 });
    for (const bad of ['ns.example', '10.0.0.53:0', '10.0.0.53:99999', '', '[fd00::53']) assert.equal(parseServer(bad), null, bad);
  });
});

describe('DNS answers that are garbage', () => {
  it('a malformed answer with the right id is an error, never a crash or a hang past the timeout', async () => {
    const udp = dgram.createSocket('udp4');
    udp.on('message', (msg, rinfo) => {
      // The header of an answer to this query, then a question whose name points forwards (a loop).
      const bad = Buffer.concat([msg.subarray(0, 12), Buffer.from([0xc0, 0x0e, 0xc0, 0x0c, 0, 12, 0, 1])]);
      bad.writeUInt16BE(0x8180, 2);
      udp.send(bad, rinfo.port, rinfo.address);
    });
    await new Promise<void>((r) => udp.bind(0, '127.0.0.1', () => r()));
    try {
      const { serverLookup } = await import('../../src/peers/dns-lookup.ts');
      const lookup = serverLookup({ host: '127.0.0.1', port: udp.address().port }, { timeoutMs: 150, tries: 1 });
      await assert.rejects(lookup('_peernix._tcp.office.test', 'PTR'), /no answer from DNS server|undecodable answer/);
    } finally {
      udp.close();
    }
  });
});
