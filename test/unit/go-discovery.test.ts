import { format } from 'node:util';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MdnsDiscovery, type DiscoveredPeer } from '../../src/peers/discovery.ts';

// Discovery of Go peernix hosts, fed the responses hashicorp/mdns sends (PTR, SRV, A, TXT in one
// packet, instance name "peernix" on every host) without a network: a unit test of the one module.

const KEY = `peernix-1:${Buffer.alloc(32, 3).toString('base64')}`;
const NAME = 'peernix._peernix._tcp.local';

function goResponse(
  port: number,
  host = 'gohost.',
  ttl = 120,
  txt = ['version=2.0.0', 'platform=amd64-linux', 'features=compression,parallel,health,signing', `pubkey=${KEY}`],
) {
  return {
    answers: [
      { name: '_peernix._tcp.local', type: 'PTR', ttl, data: NAME },
      { name: NAME, type: 'SRV', ttl, data: { priority: 10, weight: 1, port, target: host } },
      { name: host, type: 'A', ttl, data: '127.0.1.1' }, // what a Go host's name often resolves to: useless
      { name: NAME, type: 'TXT', ttl, data: txt.map((s) => Buffer.from(s)) },
    ],
    additionals: [],
  };
}

function make(opts: { maxPeers?: number; maxPerSource?: number } = {}) {
  const d = new MdnsDiscovery({
    self: { instanceId: 'a1b2c3d4-e5f6-4711-8899-aabbccddeeff', name: 'me', port: 9999, publicKey: KEY, platform: 'linux', protocol: 1 },
    isLocalAddress: (a) => a.startsWith('10.'),
    addressCheckMs: 0,
    requeryMs: 0,
    expiryCheckMs: 0,
    ...opts,
  });
  const ups: DiscoveredPeer[] = [];
  const downs: string[] = [];
  d.on('up', (p) => ups.push(p));
  d.on('down', (id) => downs.push(id));
  const feed = (packet: unknown, address: string) =>
    (d as unknown as { onResponse: (p: unknown, r: unknown) => void }).onResponse(packet, { address, port: 5353 });
  return { d, ups, downs, feed };
}

describe('discovery of Go peernix hosts', { timeout: 10_000 }, () => {
  it('tells Go hosts with the same instance name apart by address and port, at their /nix-cache/ URL, with no key', (t) => {
    const { d, ups, feed } = make();
    feed(goResponse(9999), '10.0.0.2');
    feed(goResponse(9999, 'otherhost.'), '10.0.0.3');
    feed(goResponse(9999), '10.0.0.2'); // answering again: no news
    feed(goResponse(8080), '10.0.0.2');
    t.diagnostic(format('up:', ups.map((p) => `${p.id} ${p.url}`).join(', ')));
    assert.deepEqual(
      ups.map((p) => p.url),
      ['http://10.0.0.2:9999/nix-cache', 'http://10.0.0.3:9999/nix-cache', 'http://10.0.0.2:8080/nix-cache'],
    );
    assert.deepEqual(new Set(ups.map((p) => p.id)).size, 3);
    for (const p of ups) {
      assert.equal(p.publicKey, null, 'a claimed Go key is never carried as the peer key');
      assert.equal(p.dialect, 'go');
      assert.equal(p.platform, 'amd64-linux');
      assert.equal(p.key, p.id);
    }
    assert.equal(d.peers().length, 3);
  });

  it('ignores non-local senders, records without a Go TXT, and our own kind of record', () => {
    const { d, ups, feed } = make();
    feed(goResponse(9999), '192.0.2.7');
    feed(goResponse(9999, 'h.', 120, ['platform=amd64-linux']), '10.0.0.2');
    feed(goResponse(9999, 'h.', 120, ['v=1', 'id=a1b2c3d4e5f6a7b8c9d0']), '10.0.0.2');
    feed({ answers: 'nonsense' }, '10.0.0.2');
    feed(null, '10.0.0.2');
    feed(goResponse(0), '10.0.0.2');
    feed(goResponse(9999), 'not-an-address');
    assert.equal(ups.length, 0);
    assert.equal(d.peers().length, 0);
  });

  it('holds a flood from one address to its quota, and the quota leaves room for others', (t) => {
    const { d, ups, feed } = make({ maxPeers: 16, maxPerSource: 4 });
    for (let port = 1000; port < 1200; port++) feed(goResponse(port), '10.0.0.9');
    const fromFlooder = d.peers().filter((p) => p.address === '10.0.0.9').length;
    feed(goResponse(9999), '10.0.0.2');
    t.diagnostic(`200 Go services announced from one address: ${fromFlooder} held; table ${d.peers().length}; events up ${ups.length}`);
    assert.equal(fromFlooder, 4);
    assert.ok(d.peers().some((p) => p.address === '10.0.0.2'));
  });

  it('a goodbye (TTL 0) from one Go host removes that host only', () => {
    const { d, downs, feed } = make();
    feed(goResponse(9999), '10.0.0.2');
    feed(goResponse(9999), '10.0.0.3');
    feed(goResponse(9999, 'gohost.', 0), '10.0.0.2');
    assert.deepEqual(downs, ['go:10.0.0.2:9999']);
    assert.deepEqual(
      d.peers().map((p) => p.address),
      ['10.0.0.3'],
    );
  });
});
