import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { answerShaper, shapeResponses } from '../../src/peers/mdns-answer-order.ts';

// Our mDNS responses as both kinds of client need them: the Go peernix (hashicorp/mdns) keeps the last
// address record it reads, so the A record must come last; an address gone from the interface must
// leave our answers at once, while goodbyes (TTL 0) still name it.

const PTR = { name: '_peernix._tcp.local', type: 'PTR', ttl: 28800, data: 'x._peernix._tcp.local' };
const SRV = { name: 'x._peernix._tcp.local', type: 'SRV', ttl: 120, data: { port: 9999, target: 'h.local' } };
const TXT = { name: 'x._peernix._tcp.local', type: 'TXT', ttl: 4500, data: [] };
const A = { name: 'h.local', type: 'A', ttl: 120, data: '10.0.0.1' };
const AAAA = { name: 'h.local', type: 'AAAA', ttl: 120, data: 'fe80::1' };
const AAAA2 = { name: 'h.local', type: 'AAAA', ttl: 120, data: 'fd00::1' };

/** The address hashicorp/mdns records for a response: the last A or AAAA of answers then additionals. */
function goClientAddress(p: { answers: any[]; additionals: any[] }): string | undefined {
  let addr: string | undefined;
  for (const r of [...p.answers, ...p.additionals]) if (r.type === 'A' || r.type === 'AAAA') addr = r.data;
  return addr;
}

describe('mDNS answers: address order and freshness', () => {
  it('puts AAAA records before A records, keeping every other record in place', () => {
    const shape = answerShaper({ addresses: () => new Set(['10.0.0.1', 'fe80::1', 'fd00::1']) });
    const before = { answers: [PTR], additionals: [SRV, TXT, A, AAAA, AAAA2] };
    assert.equal(goClientAddress(before), 'fd00::1', 'bonjour-service order ends with an AAAA');
    const after = { answers: shape(before.answers), additionals: shape(before.additionals) };
    assert.deepEqual(after.additionals, [SRV, TXT, AAAA, AAAA2, A]);
    assert.equal(goClientAddress(after), '10.0.0.1');
    assert.deepEqual(shape([PTR, SRV, TXT]), [PTR, SRV, TXT]);
  });

  it('drops address records no longer on an interface, but keeps them in goodbyes (TTL 0)', () => {
    let held = new Set(['10.0.0.1', 'fe80::1']);
    let t = 0;
    const shape = answerShaper({ addresses: () => held, now: () => t });
    assert.deepEqual(shape([SRV, A, AAAA]), [SRV, AAAA, A]);
    held = new Set(['10.0.0.1']); // the IPv6 address left the interface
    t += 1000;
    assert.deepEqual(shape([SRV, A, AAAA]), [SRV, A]);
    const bye = [
      { ...A, ttl: 0 },
      { ...AAAA, ttl: 0 },
    ];
    assert.deepEqual(shape(bye), [bye[1], bye[0]]);
  });

  it('reads the interfaces at most once a second', () => {
    let reads = 0;
    let t = 0;
    const shape = answerShaper({ addresses: () => (reads++, new Set(['10.0.0.1'])), now: () => t });
    for (let i = 0; i < 100; i++) shape([A]);
    assert.equal(reads, 1);
    t += 1000;
    shape([A]);
    assert.equal(reads, 2);
  });

  it('shapes every response sent through a multicast-dns instance, in both call forms, once', () => {
    const sent: unknown[] = [];
    const mdns = { respond: (res: unknown) => void sent.push(res) };
    shapeResponses(mdns, { addresses: () => new Set(['10.0.0.1', 'fe80::1']) });
    shapeResponses(mdns, { addresses: () => new Set() }); // a second call must not wrap again
    mdns.respond({ answers: [PTR], additionals: [SRV, A, AAAA] });
    mdns.respond([A, AAAA, TXT]);
    assert.deepEqual(sent, [{ answers: [PTR], additionals: [SRV, AAAA, A] }, [AAAA, A, TXT]]);
  });
});
