// DNS-SD browsing against a fake zone (a Lookup over a table of records) and a fake clock: the chain
// PTR → SRV + TXT → A, TTL-driven rounds, records leaving, and the bounds on hostile answers.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type dnsPacket from 'dns-packet';
import type { QueryType } from '../../src/peers/dns-client.ts';
import { type Lookup, type LookupResult, readAnswer } from '../../src/peers/dns-lookup.ts';
import { DnsSdBrowser } from '../../src/peers/dnssd-browser.ts';
import type { DiscoveredPeer } from '../../src/peers/discovered-service.ts';
import { FakeClock } from '../support/fake-clock.ts';

const PK = 'alice-1:11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=';
const ID = 'aaaaaaaaaaaaaaaa-1';

type Zone = Map<string, dnsPacket.Answer[]>;

function zoneLookup(zone: Zone, asked: string[] = [], ttl = 30): Lookup {
  return async (name: string, type: QueryType): Promise<LookupResult> => {
    asked.push(`${name} ${type}`);
    const records = (zone.get(`${name.toLowerCase()} ${type}`) ?? []).map((r) => ({ ...r, ttl }) as dnsPacket.Answer);
    return records.length ? { state: 'found', records, ttl } : { state: 'empty', records: [], ttl: 5 };
  };
}

function addPeer(zone: Zone, domain: string, label: string, address: string, id = ID, target = `${label}.${domain}`): void {
  const service = `_peernix._tcp.${domain}`;
  const instance = `${label}.${service}`;
  const ptr = zone.get(`${service} PTR`) ?? [];
  ptr.push({ name: service, type: 'PTR', data: instance });
  zone.set(`${service} PTR`, ptr);
  zone.set(`${instance} SRV`, [{ name: instance, type: 'SRV', data: { port: 9999, target, priority: 0, weight: 0 } }]);
  zone.set(`${instance} TXT`, [
    { name: instance, type: 'TXT', data: [Buffer.from('v=1'), Buffer.from(`id=${id}`), Buffer.from(`pk=${PK}`), Buffer.from(`name=${label}`)] },
  ]);
  zone.set(`${target} A`, [{ name: target, type: 'A', data: address }]);
}

function browse(zone: Zone, opts: Partial<ConstructorParameters<typeof DnsSdBrowser>[0]> = {}) {
  const clock = new FakeClock();
  const events: string[] = [];
  const up: DiscoveredPeer[] = [];
  const b = new DnsSdBrowser({ domains: ['office.test'], searchDomains: [], lookup: zoneLookup(zone), ownInstanceId: 'self-self-self-self', clock, ...opts });
  b.on('up', (p) => (up.push(p), events.push(`up ${p.key}`)));
  b.on('down', (_id, key) => events.push(`down ${key}`));
  return { b, clock, events, up };
}

describe('DNS-SD browser', () => {
  it('follows PTR → SRV + TXT → A to a peer off the link, and reports it once', async () => {
    const zone: Zone = new Map();
    addPeer(zone, 'office.test', 'alice', '10.9.8.7');
    const { b, events, up } = browse(zone);
    await b.round();
    await b.round();
    assert.deepEqual(events, ['up alice._peernix._tcp.office.test']);
    assert.deepEqual(up[0], {
      key: 'alice._peernix._tcp.office.test',
      id: ID,
      name: 'alice',
      address: '10.9.8.7',
      port: 9999,
      url: 'http://10.9.8.7:9999',
      publicKey: PK,
      platform: null,
    });
    assert.equal(b.state.found, 1);
    b.stop();
  });

  it('prefers the address family this machine has: an IPv6-only one reaches a dual-stack peer by its AAAA', async () => {
    const zone: Zone = new Map();
    addPeer(zone, 'office.test', 'alice', '10.9.8.7');
    zone.set('alice.office.test AAAA', [{ name: 'alice.office.test', type: 'AAAA', data: 'fd25:0:0:a::1' }]);
    const dual = browse(zone);
    await dual.b.round();
    assert.equal(dual.up[0].url, 'http://10.9.8.7:9999');
    dual.b.stop();
    const v6 = browse(zone, { families: () => new Set([6]) });
    await v6.b.round();
    assert.equal(v6.up[0].address, 'fd25:0:0:a::1');
    assert.equal(v6.up[0].url, 'http://[fd25:0:0:a::1]:9999');
    v6.b.stop();
    // A peer with only an address of the other family is still found (its route may exist).
    zone.delete('alice.office.test AAAA');
    const only4 = browse(zone, { families: () => new Set([6]) });
    await only4.b.round();
    assert.equal(only4.up[0].address, '10.9.8.7');
    only4.b.stop();
  });

  it('browses the domains the network advertises under its search domain (RFC 6763 §11)', async () => {
    const zone: Zone = new Map();
    zone.set('b._dns-sd._udp.corp.test PTR', [{ name: 'b._dns-sd._udp.corp.test', type: 'PTR', data: 'floor2.corp.test' }]);
    addPeer(zone, 'floor2.corp.test', 'bob', '10.2.0.5');
    const { b, events } = browse(zone, { domains: [], searchDomains: ['corp.test'] });
    await b.round();
    assert.deepEqual(b.state.domains, ['floor2.corp.test']);
    assert.deepEqual(events, ['up bob._peernix._tcp.floor2.corp.test']);
    b.stop();
  });

  it('re-reads at the shortest TTL it saw, and drops a peer whose PTR is gone', async () => {
    const zone: Zone = new Map();
    addPeer(zone, 'office.test', 'alice', '10.9.8.7');
    const asked: string[] = [];
    const { b, clock, events } = browse(zone, { lookup: zoneLookup(zone, asked, 10) });
    await b.round();
    const first = asked.length;
    clock.advance(9_000);
    await new Promise((r) => setImmediate(r));
    assert.equal(asked.length, first, 'nothing asked before the TTL ran out');
    zone.delete('_peernix._tcp.office.test PTR');
    clock.advance(1_000);
    for (let i = 0; i < 10 && events.length < 2; i++) await new Promise((r) => setImmediate(r));
    assert.ok(asked.length > first, 'asked again once the 10 s TTL was over');
    assert.deepEqual(events, ['up alice._peernix._tcp.office.test', 'down alice._peernix._tcp.office.test']);
    b.stop();
  });

  it('keeps its peers while the DNS server does not answer (health decides), and says why', async () => {
    const zone: Zone = new Map();
    addPeer(zone, 'office.test', 'alice', '10.9.8.7');
    let dead = false;
    const live = zoneLookup(zone);
    const { b, events } = browse(zone, {
      lookup: (n, t) => (dead ? Promise.reject(new Error('no answer from DNS server 10.0.0.53:53 over UDP')) : live(n, t)),
    });
    await b.round();
    dead = true;
    await b.round();
    assert.deepEqual(events, ['up alice._peernix._tcp.office.test']);
    assert.match(b.state.lastError ?? '', /no answer from DNS server/);
    b.stop();
  });

  it('ignores instances outside the domain, SRV targets outside the browsed domains, unroutable addresses and itself', async () => {
    const zone: Zone = new Map();
    addPeer(zone, 'office.test', 'far', '10.1.1.1', 'bbbbbbbbbbbbbbbb-1', 'far.evil.test');
    addPeer(zone, 'office.test', 'loop', '127.0.0.1', 'cccccccccccccccc-1');
    addPeer(zone, 'office.test', 'll', '169.254.3.4', 'dddddddddddddddd-1');
    addPeer(zone, 'office.test', 'me', '10.1.1.2', 'self-self-self-self');
    const ptr = zone.get('_peernix._tcp.office.test PTR') ?? [];
    ptr.push({ name: '_peernix._tcp.office.test', type: 'PTR', data: 'x._peernix._tcp.other.test' });
    ptr.push({ name: '_peernix._tcp.office.test', type: 'PTR', data: 'a.b._peernix._tcp.office.test' });
    const { b, events } = browse(zone);
    await b.round();
    assert.deepEqual(events, []);
    assert.match(b.state.lastError ?? '', /outside the browsed domains/);
    b.stop();
  });

  it('follows at most maxPeers of thousands of PTRs, the peers it knew first', async () => {
    const zone: Zone = new Map();
    addPeer(zone, 'office.test', 'alice', '10.9.8.7');
    const asked: string[] = [];
    const { b, events } = browse(zone, { maxPeers: 8, lookup: zoneLookup(zone, asked) });
    await b.round();
    const ptr = zone.get('_peernix._tcp.office.test PTR') ?? [];
    for (let i = 0; i < 5000; i++) {
      const id = `flood${String(i).padStart(11, '0')}`;
      addPeer(zone, 'office.test', `f${i}`, `10.50.${i >> 8}.${(i & 255) + 1}`, id);
    }
    ptr.unshift(...ptr.splice(1)); // the flood listed before alice
    asked.length = 0;
    await b.round();
    assert.ok(asked.length <= 1 + 8 * 4, `bounded lookups per round (${asked.length})`);
    assert.ok(
      b.peers().some((p) => p.name === 'alice'),
      'the known peer is kept',
    );
    assert.equal(b.peers().length, 8);
    assert.ok(!events.includes('down alice._peernix._tcp.office.test'));
    b.stop();
  });
});

describe('DNS answers', () => {
  const a = (name: string, data: string): dnsPacket.Answer => ({ name, type: 'A', ttl: 60, data });
  const cname = (name: string, data: string): dnsPacket.Answer => ({ name, type: 'CNAME', ttl: 20, data });

  it('follows CNAMEs inside the answer, keeping the shortest TTL', () => {
    const r = readAnswer({ answers: [cname('h.test', 'i.test'), a('i.test', '10.0.0.1')] }, 'h.test', 'A');
    assert.deepEqual({ state: r.state, ttl: r.ttl, n: r.records.length }, { state: 'found', ttl: 20, n: 1 });
  });

  it('refuses a CNAME loop and a chain too long', () => {
    assert.throws(() => readAnswer({ answers: [cname('h.test', 'i.test'), cname('i.test', 'h.test')] }, 'h.test', 'A'), /CNAME loop/);
    const chain = Array.from({ length: 20 }, (_, i) => cname(`c${i}.test`, `c${i + 1}.test`));
    assert.throws(() => readAnswer({ answers: chain }, 'c0.test', 'A'), /more than 8 CNAMEs/);
  });

  it('ignores records of other names, and takes the negative TTL from the SOA', () => {
    const r = readAnswer(
      {
        answers: [a('other.test', '10.0.0.9')],
        authorities: [
          { name: 'test', type: 'SOA', ttl: 300, data: { mname: 'ns.test', rname: 'h.test', serial: 1, refresh: 1, retry: 1, expire: 1, minimum: 7 } },
        ],
      },
      'h.test',
      'A',
    );
    assert.deepEqual(r, { state: 'empty', records: [], ttl: 7 });
  });

  it('says which error the server answered', () => {
    assert.throws(() => readAnswer({ answers: [], rcode: 'SERVFAIL' } as dnsPacket.Packet, 'h.test', 'A'), /SERVFAIL/);
  });
});
