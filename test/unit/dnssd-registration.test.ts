// Registration by signed DNS UPDATE against a stand-in server on loopback that checks our TSIG with the
// same code BIND's vectors prove (tsig.test.ts) and signs its answers over our MAC, as BIND does.
// The end-to-end test runs the same against BIND itself; here: what is sent when, with a fake clock.
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { after, before, describe, it } from 'node:test';
import { DnsSdRegistration, instanceLabel, leaseRefreshMs, listenerAddresses } from '../../src/peers/dnssd-registration.ts';
import { dnsName, dnsQuestion, dnsRecord } from '../../src/wire/dns-codec.ts';
import { encodeLeaseOpt, findUpdateLease, withOpt } from '../../src/wire/dns-update-lease.ts';
import { findTsig, signMessage, type TsigKey, verifyMessage } from '../../src/wire/tsig.ts';
import { FakeClock } from '../support/fake-clock.ts';

const key: TsigKey = { name: 'office-key', algorithm: 'hmac-sha256', secret: Buffer.alloc(32, 7) };
const NOW = 1_800_000_000;

interface Seen {
  ok: boolean;
  lease: number | null;
  changes: { name: string; type: string; klass: number; data: unknown }[];
}

// Parses the update section of a message we sent (the class tells add / delete-RRset / delete-one).
function updates(msg: Buffer): Seen['changes'] {
  const t = findTsig(msg);
  const end = t ? t.offset : msg.length;
  const lease = findUpdateLease(msg);
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
  // The OPT (when there) is the last record before the TSIG, which stays the very last (RFC 8945 §5.1).
  assert.equal(o + (lease ? 1 + 10 + 4 + 4 : 0), end);
  return out;
}

describe('DNS-SD registration', () => {
  let server: dgram.Socket;
  let port = 0;
  const seen: Seen[] = [];
  let answer: 'ok' | 'badsig' | 'silent' = 'ok';
  // The lease the stand-in grants by echoing the option (as a server implementing RFC 9664), or null: it
  // ignores it, as BIND 9.18 does.
  let grant: number | null = null;

  before(async () => {
    server = dgram.createSocket('udp4');
    server.on('message', (msg, rinfo) => {
      const check = verifyMessage(msg, key, NOW);
      const mac = findTsig(msg)?.mac;
      seen.push({ ok: check.ok, lease: findUpdateLease(msg)?.lease ?? null, changes: updates(msg) });
      if (answer === 'silent') return;
      const head = Buffer.from(msg.subarray(0, 12));
      head.writeUInt16BE(0x8000 | (5 << 11) | (answer === 'badsig' ? 9 : 0), 2);
      head.writeUInt16BE(0, 8);
      head.writeUInt16BE(0, 10);
      let o = 12;
      dnsQuestion.decode(msg, o);
      o += dnsQuestion.decode.bytes;
      const bare = Buffer.concat([head, msg.subarray(12, o)]);
      const reply = grant !== null && findUpdateLease(msg) ? withOpt(bare, encodeLeaseOpt({ lease: grant, keyLease: null })) : bare;
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
      leaseSeconds: 3600,
      random: () => 0.5,
    });
  }

  async function sent(n: number): Promise<void> {
    for (let i = 0; i < 100 && seen.length < n; i++) await new Promise((res) => setTimeout(res, 10));
    assert.equal(seen.length, n);
  }

  it('asks for an update lease on every registration, and honours the one the server grants: refreshed at ~80 % of it', async () => {
    seen.length = 0;
    answer = 'ok';
    grant = 600;
    try {
      const clock = new FakeClock();
      const r = registration({ now: ['10.1.0.5'] }, clock);
      await r.publish(9999);
      assert.equal(r.status.state, 'registered');
      assert.equal(seen[0].ok, true, 'signed over the OPT too');
      assert.equal(seen[0].lease, 3600, 'the lease asked for');
      assert.equal(r.status.leaseRequested, 3600);
      assert.equal(r.status.leaseGranted, 600, 'the lease granted');
      const due = leaseRefreshMs(600, 0.5);
      assert.equal(due, 465_000);
      assert.equal(r.status.refreshAt, clock.now() + due);
      clock.advance(due - 1);
      await new Promise((res) => setTimeout(res, 30));
      assert.equal(seen.length, 1, 'not refreshed early');
      clock.advance(1);
      await sent(2);
      assert.equal(seen[1].lease, 3600);
      assert.ok(
        seen[1].changes.some((c) => c.type === 'SRV'),
        'the refresh sends the registration again',
      );
      // Each refresh schedules the next one.
      for (let i = 0; i < 50 && r.status.refreshAt !== clock.now() + due; i++) await new Promise((res) => setTimeout(res, 10));
      clock.advance(due);
      await sent(3);
      await r.unpublish();
      assert.equal(seen[3].lease, null, 'the removal asks for no lease');
      assert.equal(r.status.refreshAt, null);
      clock.advance(10 * due);
      await new Promise((res) => setTimeout(res, 30));
      assert.equal(seen.length, 4, 'no refresh after a clean stop');
    } finally {
      grant = null;
    }
  });

  it('a lease granted longer than asked (up to 2^32-1 s) is refreshed on the one asked for, never in a loop', async () => {
    seen.length = 0;
    answer = 'ok';
    grant = 0xffffffff;
    try {
      const clock = new FakeClock();
      const r = registration({ now: ['10.1.0.5'] }, clock);
      await r.publish(9999);
      assert.equal(r.status.leaseGranted, 0xffffffff, 'shown as granted');
      assert.equal(r.status.refreshAt, clock.now() + leaseRefreshMs(3600, 0.5), 'refreshed within the lease asked for');
      await new Promise((res) => setTimeout(res, 30));
      assert.equal(seen.length, 1, 'no refresh storm');
      await r.unpublish();
    } finally {
      grant = null;
    }
  });

  it('a server that ignores the lease: nothing is refreshed, and the status says no lease was granted', async () => {
    seen.length = 0;
    answer = 'ok';
    const clock = new FakeClock();
    const r = registration({ now: ['10.1.0.5'] }, clock);
    await r.publish(9999);
    assert.equal(r.status.state, 'registered');
    assert.equal(seen[0].lease, 3600, 'asked all the same');
    assert.equal(r.status.leaseGranted, null);
    assert.equal(r.status.refreshAt, null);
    clock.advance(4 * 3600_000);
    await new Promise((res) => setTimeout(res, 30));
    assert.equal(seen.length, 1);
    await r.unpublish();
  });

  it('a failed refresh is retried with the backoff, and a tiny granted lease is not refreshed in a loop', async () => {
    assert.equal(leaseRefreshMs(1, 0), 5000, 'floored');
    assert.equal(leaseRefreshMs(7200, 0), 5_760_000, '80 %');
    const late = leaseRefreshMs(7200, 0.999_999);
    assert.ok(late >= 5_400_000 && late < 5_401_000, `just over 75 % (${late})`);
    seen.length = 0;
    answer = 'ok';
    grant = 100;
    try {
      const clock = new FakeClock();
      const r = registration({ now: ['10.1.0.5'] }, clock);
      await r.publish(9999);
      answer = 'silent';
      clock.advance(leaseRefreshMs(100, 0.5));
      for (let i = 0; i < 100 && r.status.state !== 'unreachable'; i++) await new Promise((res) => setTimeout(res, 10));
      assert.equal(r.status.state, 'unreachable');
      answer = 'ok';
      const before = seen.length;
      clock.advance(5000);
      await sent(before + 1);
      for (let i = 0; i < 50 && (r.status.state as string) !== 'registered'; i++) await new Promise((res) => setTimeout(res, 10));
      assert.equal(r.status.state as string, 'registered');
      await r.unpublish();
    } finally {
      grant = null;
    }
  });

  it('registers only the addresses the share listener accepts: 0.0.0.0 no AAAA, :: both, one address itself', () => {
    const ours = ['10.1.0.5', 'fd25::5', '192.168.7.2'];
    assert.deepEqual(listenerAddresses('0.0.0.0', ours), ['10.1.0.5', '192.168.7.2']);
    assert.deepEqual(listenerAddresses('::', ours), ours);
    assert.deepEqual(listenerAddresses('fd25::5', ours), ['fd25::5']);
    assert.deepEqual(listenerAddresses('10.9.9.9', ours), [], 'an address this machine no longer has: none');
    assert.deepEqual(listenerAddresses('peernix.local', ours), ours, 'a name: whatever it resolves to, all are offered');
  });

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
