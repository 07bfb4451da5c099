import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import type Bonjour from 'bonjour-service';
import type { MdnsSocket } from '../../src/peers/bonjour-internals.ts';
import type { DiscoveredPeer } from '../../src/peers/discovered-service.ts';
import type { LocalNetworks } from '../../src/peers/local-networks.ts';
import { MdnsBrowser } from '../../src/peers/mdns-browser.ts';
import { answerOnlyTheUnknown, knownAnswerQuery, PTR_TTL_S } from '../../src/peers/mdns-known-answers.ts';

// Known-answer and duplicate question suppression (RFC 6762 §7.1, §7.3), without a network: our
// responder stays silent for an asker that knows our service, our periodic query lists the services
// whose peers answer over HTTP and is skipped after another host's query that brings the same answers,
// and such services outlive their mDNS lifetime while their peers answer.

const TYPE = '_peernix._tcp.local';
const OWN = 'me-a1b2c3d4._peernix._tcp.local';

describe('answering only what the asker does not know', () => {
  function responder() {
    const mdns = new EventEmitter();
    const heard: unknown[][] = [];
    mdns.on('query', (packet: { questions: unknown[] }) => heard.push(packet.questions));
    answerOnlyTheUnknown(mdns, TYPE, () => OWN);
    const ask = (answers: unknown[], questions: unknown[] = [{ name: TYPE, type: 'PTR' }]) => mdns.emit('query', { questions, answers });
    return { heard, ask };
  }

  it('an asker listing our service with at least half its TTL left gets no answer; less than half, or not listed, does', () => {
    const { heard, ask } = responder();
    ask(knownAnswerQuery(TYPE, [{ fqdn: OWN, ttlS: PTR_TTL_S }]).answers);
    ask(knownAnswerQuery(TYPE, [{ fqdn: OWN.toUpperCase(), ttlS: PTR_TTL_S / 2 }]).answers);
    assert.equal(heard.length, 0);
    ask(knownAnswerQuery(TYPE, [{ fqdn: OWN, ttlS: PTR_TTL_S / 2 - 1 }]).answers);
    ask(knownAnswerQuery(TYPE, [{ fqdn: `other._peernix._tcp.local`, ttlS: PTR_TTL_S }]).answers);
    ask([]);
    assert.equal(heard.length, 3);
  });

  it('other questions in the same query are still answered, and junk known answers change nothing', () => {
    const { heard, ask } = responder();
    const known = knownAnswerQuery(TYPE, [{ fqdn: OWN, ttlS: PTR_TTL_S }]).answers;
    ask(known, [
      { name: TYPE, type: 'PTR' },
      { name: 'me.local', type: 'A' },
    ]);
    assert.deepEqual(heard, [[{ name: 'me.local', type: 'A' }]]);
    ask([null, 7, { type: 'PTR', name: TYPE, data: OWN, ttl: 'x' }, { type: 'PTR', name: 'other', data: OWN, ttl: PTR_TTL_S }]);
    assert.equal(heard.length, 2);
  });
});

const KEY = `peernix-1:${Buffer.alloc(32, 3).toString('base64')}`;

// A Go host's answer (hashicorp/mdns): one packet makes a tracked service with a peer.
function goResponse(port: number) {
  const name = `peernix-${port}._peernix._tcp.local`;
  const txt = ['version=2.0.0', 'platform=amd64-linux', 'features=compression,parallel,health,signing', `pubkey=${KEY}`];
  return {
    answers: [
      { name: TYPE, type: 'PTR', ttl: 120, data: name },
      { name, type: 'SRV', ttl: 120, data: { priority: 10, weight: 1, port, target: 'gohost.' } },
      { name, type: 'TXT', ttl: 120, data: txt.map((s) => Buffer.from(s)) },
    ],
    additionals: [],
  };
}

function browser() {
  const clock = { t: 1_000_000, now: () => clock.t };
  const sent: { questions: unknown[]; answers?: { data: string; ttl: number }[] }[] = [];
  const mdns = { on() {}, removeListener() {}, query: (p: (typeof sent)[number]) => sent.push(p) } as unknown as MdnsSocket;
  const found = Object.assign(new EventEmitter(), { stop() {}, update() {} });
  const live = new Set<string>();
  const ups: DiscoveredPeer[] = [];
  const downs: string[] = [];
  const b = new MdnsBrowser({
    ownFqdn: OWN,
    ownInstanceId: 'a1b2c3d4-e5f6-4711-8899-aabbccddeeff',
    maxPeers: 64,
    maxPerSource: undefined,
    isProven: undefined,
    isLive: (key) => live.has(key),
    requeryMs: 60_000,
    networks: { isLocal: (a: string) => a.startsWith('10.') } as LocalNetworks,
    up: (p) => ups.push(p),
    down: (_id, key) => downs.push(key),
    ownSeen: () => {},
    fail: (err) => {
      throw err;
    },
    clock,
  });
  b.attach({ find: () => found } as unknown as Bonjour, mdns);
  b.readResponse(goResponse(9001), { address: '10.0.0.2' });
  b.readResponse(goResponse(9002), { address: '10.0.0.3' });
  assert.equal(ups.length, 2);
  return { b, clock, sent, live, keys: ups.map((p) => p.key), downs };
}

describe('our periodic query', () => {
  it('lists the services whose peers answer over HTTP, with what is left of their TTL, until half of it is gone', () => {
    const { b, clock, sent, live, keys } = browser();
    live.add(keys[0]);
    clock.t += 60_000;
    b.query();
    assert.deepEqual(sent.at(-1)!.questions, [{ name: TYPE, type: 'PTR' }]);
    assert.deepEqual(
      sent.at(-1)!.answers!.map((a) => [a.data, a.ttl]),
      [[keys[0], PTR_TTL_S - 60]],
    );
    clock.t += (PTR_TTL_S / 2) * 1000;
    b.query();
    assert.deepEqual(sent.at(-1)!.answers, [], 'past half its TTL: its host is asked to answer again');
  });

  it('lists at most 20 (one datagram), the freshest; a host that lists 20 of the 30 we know asked what we would', () => {
    const { b, clock, sent, live, keys } = browser();
    for (let i = 10; i < 38; i++) {
      clock.t += 1000;
      b.readResponse(goResponse(9000 + i), { address: `10.0.0.${i}` });
    }
    const all = [...keys];
    for (const t of b.peers()) all.includes(t.key) || all.push(t.key);
    for (const k of all) live.add(k);
    b.query();
    assert.equal(all.length, 30);
    assert.equal(sent.at(-1)!.answers!.length, 20);
    assert.ok(!sent.at(-1)!.answers!.some((a) => a.data === keys[0]), 'the stalest are left out');
    b.heardQuery(
      knownAnswerQuery(
        TYPE,
        all.slice(10).map((fqdn) => ({ fqdn, ttlS: PTR_TTL_S })),
      ),
    );
    clock.t += 1000;
    b.periodicQuery();
    assert.equal(sent.length, 1);
  });

  it('is skipped for a round after another host asked, listing nothing we would not; not after a query listing more', () => {
    const { b, clock, sent, live, keys } = browser();
    live.add(keys[0]);
    live.add(keys[1]);
    b.heardQuery(
      knownAnswerQuery(TYPE, [
        { fqdn: keys[0], ttlS: PTR_TTL_S },
        { fqdn: OWN, ttlS: PTR_TTL_S },
      ]),
    );
    clock.t += 50_000;
    b.periodicQuery();
    assert.equal(sent.length, 0);
    clock.t += 5_000; // 55 s after it: past 0.9 of a round
    b.periodicQuery();
    assert.equal(sent.length, 1);
    b.heardQuery(knownAnswerQuery(TYPE, [{ fqdn: 'stranger._peernix._tcp.local', ttlS: PTR_TTL_S }]));
    clock.t += 1000;
    b.heardQuery({ questions: [{ name: 'other._tcp.local', type: 'PTR' }], answers: [] });
    b.periodicQuery();
    assert.equal(sent.length, 2, 'a query that knows more than we do does not answer for us');
  });

  it('a service whose peer answers over HTTP outlives its mDNS lifetime; once it does not, it expires', () => {
    const { b, clock, live, keys, downs } = browser();
    live.add(keys[0]);
    clock.t += 10 * 60_000;
    b.expire();
    assert.deepEqual(downs, [keys[1]]);
    live.delete(keys[0]);
    clock.t += 10 * 60_000;
    b.expire();
    assert.deepEqual(downs, [keys[1], keys[0]]);
  });
});
