// Registration by signed DNS UPDATE against a stand-in server on loopback that checks our TSIG with the
// same code BIND's vectors prove (tsig.test.ts) and signs its answers over our MAC, as BIND does.
// The end-to-end test runs the same against BIND itself; here: what is sent when, with a fake clock.
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { after, before, describe, it } from 'node:test';
import { DnsSdRegistration, instanceLabel } from '../../src/peers/dnssd-registration.ts';
import { dnsName, dnsQuestion, dnsRecord } from '../../src/wire/dns-codec.ts';
import { findTsig, signMessage, type TsigKey, verifyMessage } from '../../src/wire/tsig.ts';
import { FakeClock } from '../support/fake-clock.ts';

const key: TsigKey = { name: 'office-key', algorithm: 'hmac-sha256', secret: Buffer.alloc(32, 7) };
const NOW = 1_800_000_000;

interface Seen {
  ok: boolean;
  changes: { name: string; type: string; klass: number; data: unknown }[];
}

// Parses the update section of a message we sent (the class tells add / delete-RRset / delete-one).
function updates(msg: Buffer): Seen['changes'] {
  const t = findTsig(msg);
  const end = t ? t.offset : msg.length;
  let o = 12;
  dnsQuestion.decode(msg, o);
  o += dnsQuestion.decode.bytes;
  const out: Seen['changes'] = [];
  for (let i = 0; i < msg.readUInt16BE(8); i++) {
    const name = dnsName.decode(msg, o);
    const nameLen = dnsName.decode.bytes;
    const klass = msg.readUInt16BE(o + nameLen + 2);
    const rec = dnsRecord.decode(msg, o);
    o += dnsRecord.decode.bytes;
    out.push({ name, type: rec.type, klass, data: (rec as { data?: unknown }).data });
  }
  assert.equal(o, end);
  return out;
}

describe('DNS-SD registration', () => {
  let server: dgram.Socket;
  let port = 0;
  const seen: Seen[] = [];
  let answer: 'ok' | 'badsig' | 'silent' = 'ok';

  before(async () => {
    server = dgram.createSocket('udp4');
    server.on('message', (msg, rinfo) => {
      const check = verifyMessage(msg, key, NOW);
      const mac = findTsig(msg)?.mac;
      seen.push({ ok: check.ok, changes: updates(msg) });
      if (answer === 'silent') return;
      const head = Buffer.from(msg.subarray(0, 12));
      head.writeUInt16BE(0x8000 | (5 << 11) | (answer === 'badsig' ? 9 : 0), 2);
      head.writeUInt16BE(0, 8);
      head.writeUInt16BE(0, 10);
      let o = 12;
      dnsQuestion.decode(msg, o);
      o += dnsQuestion.decode.bytes;
      const reply = Buffer.concat([head, msg.subarray(12, o)]);
      if (answer === 'badsig') {
        // BIND's answer to a bad signature: NOTAUTH, and a TSIG with error BADSIG and no MAC.
        const signed = signMessage(reply, key, NOW).message;
        const t = findTsig(signed);
        assert.ok(t);
        const macSizeAt = signed.length - 6 - 32 - 2;
        const noMac = Buffer.concat([signed.subarray(0, macSizeAt), Buffer.from([0, 0]), signed.subarray(signed.length - 6)]);
        noMac.writeUInt16BE(noMac.readUInt16BE(t.offset + dnsName.encodingLength(key.name) + 8) - 32, t.offset + dnsName.encodingLength(key.name) + 8);
        noMac.writeUInt16BE(16, noMac.length - 4);
        server.send(noMac, rinfo.port, rinfo.address);
      } else server.send(signMessage(reply, key, NOW, 300, mac).message, rinfo.port, rinfo.address);
    });
    await new Promise<void>((r) => server.bind(0, '127.0.0.1', () => r()));
    port = server.address().port;
  });
  after(() => server.close());

  function registration(addresses: { now: string[] }, clock: FakeClock) {
    return new DnsSdRegistration({
      domain: 'office.test',
      server: { host: '127.0.0.1', port },
      key,
      label: instanceLabel('Alice’s laptop', 'abcdef0123456789-x'),
      txt: { v: '1', id: 'abcdef0123456789-x' },
      ttl: 30,
      addresses: () => addresses.now,
      clock,
      wallSeconds: () => NOW,
      timeoutMs: 300,
    });
  }

  it('registers PTR, SRV, TXT and the routable addresses, signed, replacing what a crash left', async () => {
    seen.length = 0;
    answer = 'ok';
    const clock = new FakeClock();
    const r = registration({ now: ['10.1.0.5', '127.0.0.1', 'fe80::1', '2001:db8::5'] }, clock);
    await r.publish(9999);
    assert.equal(r.status.state, 'registered', r.status.detail ?? '');
    assert.equal(r.status.instance, 'alice-s-laptop-abcdef01._peernix._tcp.office.test');
    assert.deepEqual(r.status.addresses, ['10.1.0.5', '2001:db8::5']);
    assert.equal(seen.length, 1);
    assert.equal(seen[0].ok, true);
    const host = 'alice-s-laptop-abcdef01.office.test';
    assert.deepEqual(
      seen[0].changes.map((c) => `${c.klass} ${c.name} ${c.type}`),
      [
        `255 ${host} ANY`,
        `1 ${host} A`,
        `1 ${host} AAAA`,
        `255 ${r.status.instance} ANY`,
        `1 ${r.status.instance} SRV`,
        `1 ${r.status.instance} TXT`,
        '1 _peernix._tcp.office.test PTR',
        '1 _services._dns-sd._udp.office.test PTR',
      ],
    );
    await r.unpublish();
  });

  it('updates when the addresses change, only then, and removes its own records on stop', async () => {
    seen.length = 0;
    answer = 'ok';
    const clock = new FakeClock();
    const addrs = { now: ['10.1.0.5'] };
    const r = registration(addrs, clock);
    await r.publish(9999);
    clock.advance(5000);
    await new Promise((res) => setTimeout(res, 50));
    assert.equal(seen.length, 1, 'nothing changed, nothing sent');
    addrs.now = ['10.2.0.9'];
    clock.advance(5000);
    for (let i = 0; i < 50 && seen.length < 2; i++) await new Promise((res) => setTimeout(res, 10));
    assert.equal(seen.length, 2);
    assert.ok(seen[1].changes.some((c) => c.type === 'A' && c.data === '10.2.0.9'));
    await r.unpublish();
    assert.equal(r.status.state, 'removed');
    assert.deepEqual(
      seen[2].changes.map((c) => `${c.klass} ${c.type}`),
      ['254 PTR', '255 ANY', '255 ANY'],
      'its PTR only (class NONE), then everything at its own names',
    );
  });

  it("shows a refusal with the server's rcode and TSIG error, and retries later with a backoff", async () => {
    seen.length = 0;
    answer = 'badsig';
    const clock = new FakeClock();
    const r = registration({ now: ['10.1.0.5'] }, clock);
    const changes: string[] = [];
    r.onChange = (s) => changes.push(`${s.state}: ${s.detail}`);
    await r.publish(9999);
    assert.equal(r.status.state, 'refused');
    assert.equal(r.status.detail, `127.0.0.1:${port} refused the update for office.test: NOTAUTH (BADSIG)`);
    assert.ok(changes.some((c) => c.startsWith('refused: ')));
    clock.advance(4000);
    await new Promise((res) => setTimeout(res, 50));
    assert.equal(seen.length, 1, 'not retried before the backoff');
    answer = 'ok';
    clock.advance(2000);
    for (let i = 0; i < 50 && (r.status.state as string) !== 'registered'; i++) await new Promise((res) => setTimeout(res, 10));
    assert.equal(r.status.state as string, 'registered');
    await r.unpublish();
  });

  it('a server that does not answer leaves it "unreachable", saying so', async () => {
    answer = 'silent';
    const clock = new FakeClock();
    const r = registration({ now: ['10.1.0.5'] }, clock);
    await r.publish(9999);
    assert.equal(r.status.state, 'unreachable');
    assert.match(r.status.detail ?? '', /no answer from DNS server 127\.0\.0\.1:\d+ over UDP/);
    answer = 'ok';
  });
});
