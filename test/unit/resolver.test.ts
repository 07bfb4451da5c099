import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { request } from 'node:http';
import { describe, it, type TestContext } from 'node:test';
import { AffinityCache, LOCAL } from '../../src/domain/affinity.ts';
import type { PeernixEvent } from '../../src/base/api.ts';
import { cacheListenerHandler } from '../support/share-route.ts';
import { listen, type HttpListener } from '../../src/cache/http-listener.ts';
import { EventLog } from '../../src/base/events.ts';
import { silentLogger } from '../../src/base/log.ts';
import { contentAddressedPath, parseContentAddress } from '../../src/nix/content-address.ts';
import { parseNarInfo, type NarInfo } from '../../src/nix/narinfo.ts';
import { encodeNix32 } from '../../src/nix/nix32.ts';
import { generateKeyPair, parseSecretKey, type SecretKey } from '../../src/nix/signing.ts';
import { PeerClient, type PeerLimits, type PeerTimeouts } from '../../src/peers/peer-client.ts';
import type { HealthOptions } from '../../src/peers/health.ts';
import { PeerRegistry } from '../../src/peers/registry.ts';
import type { NarWatchOptions } from '../../src/peers/resuming-nar.ts';
import { Resolver } from '../../src/domain/resolver.ts';
import { policyFromKeys, type TrustPolicy } from '../../src/domain/trust.ts';
import { waitFor } from '../support/wait.ts';
import { FakeClock } from '../support/fake-clock.ts';
import { FakeLocalStore, FakePeer, makePath, narInfoFor, otherBytes, type TestPath } from '../support/fake-peer.ts';
import { get } from '../support/http.ts';
import { LocalBackend } from '../../src/cache/local-backend.ts';

// Every way a substituter request can end, driven through the real HTTP handler (what Nix sees)
// against real HTTP peers that misbehave on request.

const key = (name: string): SecretKey => parseSecretKey(generateKeyPair(name).secretKeyText);
const ownKey = key('this-machine-1'); // the resolver's own key (signs local narinfos)
const upstream = key('cache.example.org-1'); // what the local Nix trusts, like cache.nixos.org-1
const stranger = key('stranger-1'); // a peer's own key, not trusted here

const T = { timeout: 15_000 };
const TIMEOUTS: Partial<PeerTimeouts> = { connectMs: 300, narInfoMs: 600, narHeadersMs: 2000, narIdleMs: 3000 };

interface WorldOptions {
  peers?: number;
  requireSigs?: boolean;
  hedgeMs?: number;
  negativeTtlMs?: number;
  lookupReuseMs?: number;
  health?: Partial<HealthOptions>;
  /** The registry's health clock, which the resolver's expiries also follow (default: the real one). */
  clock?: FakeClock;
  /** Peer client timeouts over TIMEOUTS: a long one makes an outcome that would need it impossible within the test's own timeout. */
  timeouts?: Partial<PeerTimeouts>;
  narWatch?: Partial<NarWatchOptions>;
  limits?: Partial<PeerLimits>;
}

interface World {
  peers: FakePeer[];
  store: FakeLocalStore;
  registry: PeerRegistry;
  client: PeerClient;
  affinity: AffinityCache;
  events: EventLog;
  resolver: Resolver;
  listener: HttpListener;
  trust: TrustPolicy;
  /** Starts another fake peer and brings it up in the registry. */
  addPeer(): Promise<FakePeer>;
  idOf(p: FakePeer): string;
  nameOf(p: FakePeer): string;
  narInfo(hashPart: string): Promise<{ status: number; info: NarInfo | null; text: string; ms: number }>;
  nar(p: TestPath, headers?: Record<string, string>, method?: string): ReturnType<typeof get>;
  fallbacks(): Extract<PeernixEvent, { type: 'fallback' }>[];
  transfers(): Extract<PeernixEvent, { type: 'transfer' }>[];
}

const NAMES = ['alice', 'bob', 'carol', 'dave', 'erin'];

async function world(t: TestContext, o: WorldOptions = {}): Promise<World> {
  const store = new FakeLocalStore();
  const client = new PeerClient({ ...TIMEOUTS, ...o.timeouts }, 'peernix-test', o.limits);
  const trust = policyFromKeys([upstream.publicKey.text], o.requireSigs ?? true);
  // A probe's deadline well past a loaded machine's delays: no case here turns on a probe timing out.
  const registry = new PeerRegistry({ client, healthTimeoutMs: 10_000, health: o.health, clock: o.clock, isTrusted: () => false });
  const affinity = new AffinityCache();
  const events = new EventLog();
  const resolver = new Resolver({
    local: new LocalBackend(store, ownKey),
    registry,
    client,
    affinity,
    events,
    log: silentLogger,
    trust: () => trust,
    // No hedge unless a case asks for one: a 150 ms hedge fires on a loaded machine whenever it pleases.
    hedgeMs: o.hedgeMs ?? 30_000,
    negativeTtlMs: o.negativeTtlMs,
    lookupReuseMs: o.lookupReuseMs,
    narWatch: o.narWatch,
  });
  const listener = await listen({
    host: '127.0.0.1',
    port: 0,
    handler: cacheListenerHandler({ backend: resolver, log: silentLogger, priority: 30 }),
    log: silentLogger,
    loopbackOnly: true,
  });
  const peers: FakePeer[] = [];
  const ids = new Map<FakePeer, number>();
  t.after(async () => {
    registry.stop();
    await listener.close(0);
    client.close();
    await Promise.all(peers.map((p) => p.close()));
  });

  const w: World = {
    peers,
    store,
    registry,
    client,
    affinity,
    events,
    resolver,
    listener,
    trust,
    async addPeer() {
      const peer = await FakePeer.start();
      const n = peers.length;
      peers.push(peer);
      ids.set(peer, n);
      registry.upsert({
        id: `peer-${n}`,
        name: NAMES[n],
        url: peer.url,
        address: '127.0.0.1',
        port: peer.port,
        platform: null,
        publicKey: null,
        source: 'static',
      });
      await registry.checkAll();
      assert.equal(registry.get(`peer-${n}`)?.state, 'up', 'fake peer passes its health probe');
      return peer;
    },
    idOf: (p) => `peer-${ids.get(p)}`,
    nameOf: (p) => NAMES[ids.get(p)!],
    async narInfo(hashPart) {
      const t0 = performance.now();
      const r = await get(`${listener.url}/${hashPart}.narinfo`);
      const ms = performance.now() - t0;
      const text = r.body.toString('utf8');
      return { status: r.status, text, info: r.status === 200 ? parseNarInfo(text) : null, ms };
    },
    nar: (p, headers = {}, method = 'GET') => get(narUrlOf(listener, p), headers, method),
    fallbacks: () =>
      events
        .recent()
        .filter((e) => e.type === 'fallback')
        .reverse() as Extract<PeernixEvent, { type: 'fallback' }>[],
    transfers: () =>
      events
        .recent()
        .filter((e) => e.type === 'transfer')
        .reverse() as Extract<PeernixEvent, { type: 'transfer' }>[],
  };
  for (let i = 0; i < (o.peers ?? 0); i++) await w.addPeer();
  return w;
}

const narUrlOf = (listener: HttpListener, p: TestPath) => `${listener.url}/nar/${p.hashPart}-${p.narHash32}.nar`;

/** Asks for `url` and hangs up after `ms` unanswered, as a Ctrl-C'd Nix does; resolves with when it left. */
function leaveAfter(url: string, ms: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false }, () => reject(new Error('answered before the client left')));
    req.on('error', () => {});
    setTimeout(() => {
      req.destroy();
      resolve(performance.now());
    }, ms);
    req.end();
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function assertSameNar(r: Awaited<ReturnType<typeof get>>, p: TestPath): void {
  assert.equal(r.status, 200);
  assert.equal(r.complete, true, 'body ends cleanly');
  assert.equal(r.headers['content-length'], String(p.narSize));
  assert.equal(r.body.length, p.narSize);
  assert.ok(r.body.equals(p.nar), 'byte-exact NAR');
}

describe('resolver: narinfo', () => {
  it('local hit: served from this machine, entry local, own signature added, no peer asked', T, async (t) => {
    const w = await world(t, { peers: 1 });
    const p = makePath('hello-2.12');
    w.store.add(p, [`${upstream.name}:${'A'.repeat(86)}==`]);
    w.peers[0].add(p, narInfoFor(p, { signers: [upstream] }));
    const r = await w.narInfo(p.hashPart);
    assert.equal(r.status, 200);
    assert.equal(r.info!.storePath, p.storePath);
    assert.equal(r.info!.url, `nar/${p.hashPart}-${p.narHash32}.nar`);
    assert.equal(r.info!.sigs.length, 2, 'the store signature plus our own');
    assert.ok(r.info!.sigs.some((s) => s.startsWith(`${ownKey.name}:`)));
    const e = w.affinity.get(p.hashPart)!;
    assert.equal(e.source, LOCAL);
    assert.equal(e.sourceName, 'this machine');
    assert.equal(e.narHash32, p.narHash32);
    assert.equal(w.peers[0].counts.narInfo, 0);
  });

  it('peer hit: URL rewritten to come back through us, every other line and Sig untouched, entry = that peer', T, async (t) => {
    const w = await world(t, { peers: 1 });
    const p = makePath('ripgrep-14.1.0');
    const original = narInfoFor(p, { signers: [upstream, stranger], references: [p.storePath.slice(11)] });
    w.peers[0].add(p, original);
    const r = await w.narInfo(p.hashPart);
    assert.equal(r.status, 200);
    assert.deepEqual(r.info, { ...original, url: `nar/${p.hashPart}-${p.narHash32}.nar` });
    const sigLines = r.text.split('\n').filter((l) => l.startsWith('Sig: '));
    assert.deepEqual(
      sigLines,
      original.sigs.map((s) => `Sig: ${s}`),
    );
    const e = w.affinity.get(p.hashPart)!;
    assert.equal(e.source, w.idOf(w.peers[0]));
    assert.equal(e.sourceName, 'alice');
    assert.equal(e.peerNarUrl, `${w.peers[0].url}/nar/${p.hashPart}-${p.narHash32}.nar`);
  });

  it('prefers a trusted answer over an earlier untrusted one', T, async (t) => {
    const w = await world(t, { peers: 2 });
    const [fast, slow] = w.peers;
    const p = makePath('jq-1.7');
    fast.add(p, narInfoFor(p, { signers: [stranger] }));
    slow.add(p, narInfoFor(p, { signers: [upstream] }));
    slow.knobs.narInfoDelayMs = 200;
    const r = await w.narInfo(p.hashPart);
    assert.equal(r.status, 200);
    assert.deepEqual(r.info!.sigs, narInfoFor(p, { signers: [upstream] }).sigs);
    assert.equal(w.affinity.get(p.hashPart)!.source, w.idOf(slow));
  });

  it('untrusted answers only, with require-sigs: 404 (Nix would reject them)', T, async (t) => {
    const w = await world(t, { peers: 2 });
    const p = makePath('untrusted');
    w.peers[0].add(p, narInfoFor(p, { signers: [stranger] }));
    w.peers[1].add(p, narInfoFor(p));
    const r = await w.narInfo(p.hashPart);
    assert.equal(r.status, 404);
    assert.equal(w.affinity.get(p.hashPart), undefined);
  });

  it('untrusted answer with require-sigs off: accepted', T, async (t) => {
    const w = await world(t, { peers: 1, requireSigs: false });
    const p = makePath('unsigned');
    w.peers[0].add(p, narInfoFor(p));
    const r = await w.narInfo(p.hashPart);
    assert.equal(r.status, 200);
    assert.deepEqual(r.info!.sigs, []);
    assert.equal(w.affinity.get(p.hashPart)!.source, w.idOf(w.peers[0]));
  });

  it('content-addressed narinfo without any Sig: accepted even with require-sigs', T, async (t) => {
    const w = await world(t, { peers: 1 });
    const bytes = makePath('source.tar.gz');
    const ca = `fixed:r:sha256:${encodeNix32(bytes.narHash)}`;
    // The store path must be the one the CA determines, or the CA proves nothing.
    const storePath = contentAddressedPath(parseContentAddress(ca)!, 'source.tar.gz', [])!;
    const p: TestPath = { ...bytes, storePath, hashPart: storePath.slice(11, 43) };
    w.peers[0].add(p, narInfoFor(p, { ca }));
    const r = await w.narInfo(p.hashPart);
    assert.equal(r.status, 200);
    assert.equal(r.info!.ca, ca);
    assert.deepEqual(r.info!.sigs, []);
  });

  const badAnswers: [string, (p: TestPath) => NarInfo][] = [
    ['an answer for a different store path', (p) => narInfoFor(p, { signers: [upstream], storePath: makePath('other').storePath })],
    ['a compressed NAR', (p) => narInfoFor(p, { signers: [upstream], compression: 'xz', url: `nar/${p.narHash32}.nar.xz` })],
    ['a URL pointing to another origin', (p) => narInfoFor(p, { signers: [upstream], url: `http://198.51.100.7:5000/nar/${p.hashPart}-${p.narHash32}.nar` })],
  ];
  for (const [what, make] of badAnswers) {
    it(`ignores ${what}`, T, async (t) => {
      const w = await world(t, { peers: 2 });
      const p = makePath('bad-answer');
      w.peers[0].add(p, make(p));
      const r = await w.narInfo(p.hashPart);
      assert.equal(r.status, 404);
      assert.equal(w.affinity.get(p.hashPart), undefined);
      // ...while a good answer from a slower peer still wins.
      const q = makePath('good-answer');
      w.peers[0].add(q, make(q));
      w.peers[1].add(q, narInfoFor(q, { signers: [upstream] }));
      w.peers[1].knobs.narInfoDelayMs = 100;
      const r2 = await w.narInfo(q.hashPart);
      assert.equal(r2.status, 200);
      assert.equal(r2.info!.storePath, q.storePath);
      assert.equal(w.affinity.get(q.hashPart)!.source, w.idOf(w.peers[1]));
    });
  }

  it('miss: 404, remembered briefly (no peer asked again), then asked again once it expires', T, async (t) => {
    const clock = new FakeClock();
    const w = await world(t, { peers: 2, negativeTtlMs: 1000, lookupReuseMs: 100, clock });
    const p = makePath('nowhere');
    const r = await w.narInfo(p.hashPart);
    assert.equal(r.status, 404);
    assert.deepEqual(
      w.peers.map((x) => x.counts.narInfo),
      [1, 1],
    );
    clock.advance(200); // past the window in which a finished lookup is shared (lookupReuseMs)
    const again = await w.narInfo(p.hashPart);
    assert.equal(again.status, 404);
    assert.deepEqual(
      w.peers.map((x) => x.counts.narInfo),
      [1, 1],
      'the negative cache answered',
    );
    clock.advance(799); // just before negativeTtlMs
    assert.equal((await w.narInfo(p.hashPart)).status, 404);
    assert.deepEqual(
      w.peers.map((x) => x.counts.narInfo),
      [1, 1],
      'still remembered',
    );
    clock.advance(1); // negativeTtlMs after the miss
    assert.equal((await w.narInfo(p.hashPart)).status, 404);
    assert.deepEqual(
      w.peers.map((x) => x.counts.narInfo),
      [2, 2],
      'expired: the peers are asked again',
    );
  });

  it('a remembered miss is forgotten when a peer comes up', T, async (t) => {
    const clock = new FakeClock();
    const w = await world(t, { peers: 2, lookupReuseMs: 100, clock }); // the default negative TTL (5s), passed as undefined
    const p = makePath('not-yet');
    const q = makePath('not-yet-either');
    assert.equal((await w.narInfo(q.hashPart)).status, 404);
    clock.advance(200); // past lookupReuseMs
    assert.equal((await w.narInfo(p.hashPart)).status, 404); // just now: a finished lookup is shared for a moment
    assert.equal((await w.narInfo(q.hashPart)).status, 404); // long ago: the negative cache
    assert.deepEqual(
      w.peers.map((x) => x.counts.narInfo),
      [2, 2],
    );

    const newcomer = await w.addPeer();
    newcomer.add(p, narInfoFor(p, { signers: [upstream] })).add(q, narInfoFor(q, { signers: [upstream] }));
    assert.equal((await w.narInfo(p.hashPart)).status, 200, 'the newcomer was asked at once');
    assert.equal((await w.narInfo(q.hashPart)).status, 200);
    assert.equal(newcomer.counts.narInfo, 2);
    assert.deepEqual(
      w.peers.slice(0, 2).map((x) => x.counts.narInfo),
      [4, 4],
    );
  });

  it('a miss with no live peer at all is a 404 without waiting', T, async (t) => {
    const w = await world(t);
    const r = await w.narInfo(makePath('alone').hashPart);
    assert.equal(r.status, 404);
  });

  it('concurrent identical lookups share one fan-out (each peer asked once)', T, async (t) => {
    const w = await world(t, { peers: 3 });
    const p = makePath('popular');
    for (const peer of w.peers) peer.knobs.narInfoDelayMs = 100;
    w.peers[2].add(p, narInfoFor(p, { signers: [upstream] }));
    const rs = await Promise.all(Array.from({ length: 8 }, () => w.narInfo(p.hashPart)));
    for (const r of rs) assert.equal(r.status, 200);
    assert.deepEqual(
      w.peers.map((x) => x.counts.narInfo),
      [1, 1, 1],
    );
    const misses = await Promise.all(Array.from({ length: 8 }, () => w.narInfo(makePath('nope', 1, 'z'.repeat(32)).hashPart)));
    for (const r of misses) assert.equal(r.status, 404);
    assert.deepEqual(
      w.peers.map((x) => x.counts.narInfo),
      [2, 2, 2],
    );
  });

  it('a slow peer does not delay a fast trusted answer from another', T, async (t) => {
    const w = await world(t, { peers: 2 });
    const p = makePath('fast');
    // Past the test's own timeout: only the fast peer's answer can end this lookup in time.
    w.peers[0].knobs.narInfoDelayMs = 60_000;
    w.peers[0].add(p, narInfoFor(p, { signers: [upstream] }));
    w.peers[1].add(p, narInfoFor(p, { signers: [upstream] }));
    const r = await w.narInfo(p.hashPart);
    assert.equal(r.status, 200);
    assert.equal(w.affinity.get(p.hashPart)!.source, w.idOf(w.peers[1]));
  });

  it('a peer that never answers costs a miss no more than the narinfo timeout', T, async (t) => {
    const w = await world(t, { peers: 2 });
    w.peers[0].knobs.narInfoDelayMs = 60_000; // past the test's own timeout: the lookup's must end it
    const r = await w.narInfo(makePath('hang').hashPart);
    assert.equal(r.status, 404);
    assert.equal(w.registry.get(w.idOf(w.peers[0]))!.state, 'suspect', 'the timeout marks it');
    assert.ok(!w.registry.live().some((x) => x.id === w.idOf(w.peers[0])));
  });

  it('a dead peer (connection refused) is asked once, then skipped until a probe passes', T, async (t) => {
    const w = await world(t, { peers: 2 });
    const [dead, good] = w.peers;
    const asked = new Map<string, number>();
    const narInfo = w.client.narInfo.bind(w.client);
    w.client.narInfo = (base, hashPart, signal) => {
      asked.set(base, (asked.get(base) ?? 0) + 1);
      return narInfo(base, hashPart, signal);
    };
    await dead.close();
    const p = makePath('one');
    const q = makePath('two');
    good.add(p, narInfoFor(p, { signers: [upstream] })).add(q, narInfoFor(q, { signers: [upstream] }));
    assert.equal((await w.narInfo(p.hashPart)).status, 200);
    assert.equal(w.registry.get(w.idOf(dead))!.state, 'suspect');
    const r = await w.narInfo(q.hashPart);
    assert.equal(r.status, 200);
    assert.equal(asked.get(dead.url), 1, 'the dead peer was asked once');
    assert.equal(asked.get(good.url), 2);
    assert.equal((await w.narInfo(makePath('three').hashPart)).status, 404);
    assert.equal(asked.get(dead.url), 1);
  });
});

describe('resolver: NAR', () => {
  it('entry local: served from the local store, byte-exact, no peer asked', T, async (t) => {
    const w = await world(t, { peers: 1 });
    const p = makePath('local-nar', 200_000);
    w.store.add(p);
    w.peers[0].add(p);
    assert.equal((await w.narInfo(p.hashPart)).status, 200);
    assertSameNar(await w.nar(p), p);
    assert.equal(w.peers[0].counts.nar, 0);
    assert.equal(w.peers[0].counts.narInfo, 0);
    assert.deepEqual(w.fallbacks(), []);
    await waitFor('the temp root released', async () => w.store.released.length === 1, 3000);
    assert.equal(w.affinity.get(p.hashPart)!.hits, 1);
  });

  it('entry peer: served from that peer, byte-exact, verified, transfer event ok', T, async (t) => {
    const w = await world(t, { peers: 2 });
    const p = makePath('peer-nar', 300_000);
    w.peers[0].add(p, narInfoFor(p, { signers: [upstream] }));
    w.peers[1].add(p, narInfoFor(p, { signers: [upstream] }));
    w.peers[1].knobs.narInfoDelayMs = 100;
    assert.equal((await w.narInfo(p.hashPart)).status, 200);
    assert.equal(w.affinity.get(p.hashPart)!.source, w.idOf(w.peers[0]));
    assertSameNar(await w.nar(p), p);
    assert.equal(w.peers[0].counts.nar, 1);
    assert.equal(w.peers[1].counts.nar, 0);
    await waitFor('transfer event', async () => w.transfers().length === 1, 3000);
    assert.deepEqual(
      { ...w.transfers()[0], id: 0, time: 0 },
      { type: 'transfer', id: 0, time: 0, storePath: p.storePath, direction: 'in', peerName: 'alice', bytes: p.narSize, wireBytes: p.narSize, outcome: 'ok' },
    );
    assert.deepEqual(w.fallbacks(), []);
    assert.equal(w.registry.get(w.idOf(w.peers[0]))!.bytesFrom, p.narSize);
  });

  it('seed case: entry local, path garbage-collected → a peer with the same NarHash serves, entry re-pointed, fallback gc', T, async (t) => {
    const w = await world(t, { peers: 2 });
    const p = makePath('gc-victim', 150_000);
    w.store.add(p);
    assert.equal((await w.narInfo(p.hashPart)).status, 200);
    assert.equal(w.affinity.get(p.hashPart)!.source, LOCAL);
    w.store.delete(p);
    w.peers[1].add(p, narInfoFor(p, { signers: [stranger] })); // no trust needed: the URL pins the NarHash
    assertSameNar(await w.nar(p), p);
    const e = w.affinity.get(p.hashPart)!;
    assert.equal(e.source, w.idOf(w.peers[1]));
    assert.equal(e.sourceName, 'bob');
    assert.equal(e.narHash32, p.narHash32);
    const [f, ...more] = w.fallbacks();
    assert.deepEqual(more, []);
    assert.deepEqual(
      { ...f, id: 0, time: 0 },
      { type: 'fallback', id: 0, time: 0, storePath: p.storePath, from: 'this machine', to: 'bob', reason: 'gc', outcome: 'served' },
    );
  });

  it('entry local, local path now holds other bytes → fallback mismatch', T, async (t) => {
    const w = await world(t, { peers: 1 });
    const p = makePath('rebuilt');
    w.store.add(p);
    assert.equal((await w.narInfo(p.hashPart)).status, 200);
    w.store.add(otherBytes(p));
    w.peers[0].add(p);
    assertSameNar(await w.nar(p), p);
    assert.deepEqual(
      w.fallbacks().map((f) => [f.from, f.to, f.reason, f.outcome]),
      [['this machine', 'alice', 'mismatch', 'served']],
    );
    assert.equal(w.affinity.get(p.hashPart)!.source, w.idOf(w.peers[0]));
  });

  it('entry peer answers 404 for the NAR → another peer serves, fallback peer-failed', T, async (t) => {
    const w = await world(t, { peers: 2 });
    const [first, second] = w.peers;
    const p = makePath('moved');
    first.add(p, narInfoFor(p, { signers: [upstream] }));
    assert.equal((await w.narInfo(p.hashPart)).status, 200);
    first.knobs.nar404 = true;
    second.add(p);
    assertSameNar(await w.nar(p), p);
    assert.equal(first.counts.nar, 1);
    assert.equal(second.counts.nar, 1);
    assert.deepEqual(
      w.fallbacks().map((f) => [f.from, f.to, f.reason, f.outcome]),
      [['alice', 'bob', 'peer-failed', 'served']],
    );
    assert.equal(w.affinity.get(p.hashPart)!.source, w.idOf(second));
    assert.ok(
      w.registry.live().some((x) => x.id === w.idOf(first)),
      'a peer that merely lost the path is not down',
    );
  });

  it('entry peer busy (503: its share listener is at its cap) → another peer serves, and the busy one is not marked down', T, async (t) => {
    const w = await world(t, { peers: 2 });
    const [first, second] = w.peers;
    const p = makePath('busy');
    first.add(p, narInfoFor(p, { signers: [upstream] }));
    assert.equal((await w.narInfo(p.hashPart)).status, 200);
    first.knobs.nar503 = true;
    second.add(p);
    assertSameNar(await w.nar(p), p);
    assert.equal(second.counts.nar, 1);
    assert.ok(
      w.registry.live().some((x) => x.id === w.idOf(first)),
      'a busy peer is still up',
    );
  });

  it('the only holder busy (503) for a while → the NAR waits for it and is served, not a 404 after the narinfo 200', T, async (t) => {
    const w = await world(t, { peers: 1 });
    const [only] = w.peers;
    const p = makePath('busy-only');
    only.add(p, narInfoFor(p, { signers: [upstream] }));
    assert.equal((await w.narInfo(p.hashPart)).status, 200);
    only.knobs.nar503 = true;
    let answered = false;
    const nar = w.nar(p).finally(() => (answered = true));
    // Evidence that it was refused several times (more than the two tries a 404 used to follow) …
    while (only.narRequests.length < 4 && !answered) await sleep(20);
    only.knobs.nar503 = false; // … and then its share listener has a free slot again.
    assertSameNar(await nar, p);
    assert.ok(
      w.registry.live().some((x) => x.id === w.idOf(only)),
      'a busy peer is still up',
    );
  });

  it('entry peer removed from the registry → another peer serves, fallback peer-gone', T, async (t) => {
    const w = await world(t, { peers: 2 });
    const [first, second] = w.peers;
    const p = makePath('left');
    first.add(p, narInfoFor(p, { signers: [upstream] }));
    assert.equal((await w.narInfo(p.hashPart)).status, 200);
    w.registry.remove(w.idOf(first));
    second.add(p);
    assertSameNar(await w.nar(p), p);
    assert.equal(first.counts.nar, 0, 'a peer that left is not asked');
    assert.deepEqual(
      w.fallbacks().map((f) => [f.from, f.to, f.reason, f.outcome]),
      [['alice', 'bob', 'peer-gone', 'served']],
    );
  });

  it('no entry (a fresh resolver, as after a restart) → served from the URL alone, fallback none', T, async (t) => {
    const w = await world(t, { peers: 2 });
    const p = makePath('remembered-by-nix', 100_000);
    w.peers[1].add(p);
    assertSameNar(await w.nar(p), p);
    assert.deepEqual(
      w.fallbacks().map((f) => [f.from, f.to, f.reason, f.outcome]),
      [['none', 'bob', 'none', 'served']],
    );
    assert.equal(w.affinity.get(p.hashPart)!.source, w.idOf(w.peers[1]));
    // and when the local store has it, from there, with no peer asked
    const q = makePath('local-after-restart');
    w.store.add(q);
    assertSameNar(await w.nar(q), q);
    assert.equal(w.affinity.get(q.hashPart)!.source, LOCAL);
    assert.equal(w.peers[0].counts.urls.filter((u) => u.includes(q.hashPart)).length, 0);
  });

  it('peers holding the path with a different NarHash are never used', T, async (t) => {
    const w = await world(t, { peers: 2 });
    const p = makePath('nondeterministic');
    const other = otherBytes(p);
    w.peers[0].add(other, narInfoFor(other, { signers: [upstream] }));
    const r = await w.nar(p);
    assert.equal(r.status, 404);
    assert.equal(w.peers[0].counts.nar, 0);
    w.peers[1].add(p);
    w.store.add(p);
    assert.equal((await w.narInfo(p.hashPart)).status, 200); // entry local
    w.store.delete(p);
    assertSameNar(await w.nar(p), p);
    assert.equal(w.peers[0].counts.nar, 0, 'the peer with other bytes was never asked for its NAR');
    assert.equal(w.affinity.get(p.hashPart)!.source, w.idOf(w.peers[1]));
  });

  it('nothing anywhere → 404, with a not-found fallback event when there was an entry', T, async (t) => {
    const w = await world(t, { peers: 2 });
    const p = makePath('gone-everywhere');
    w.store.add(p);
    assert.equal((await w.narInfo(p.hashPart)).status, 200);
    w.store.delete(p);
    const r = await w.nar(p);
    assert.equal(r.status, 404);
    assert.deepEqual(
      w.peers.map((x) => x.counts.nar),
      [0, 0],
      'no peer was asked or waited for: none said it had it',
    );
    assert.deepEqual(
      w.fallbacks().map((f) => [f.from, f.to, f.reason, f.outcome]),
      [['this machine', null, 'gc', 'not-found']],
    );
    const q = makePath('never-known');
    assert.equal((await w.nar(q)).status, 404);
    assert.equal(w.fallbacks().length, 1, 'no entry, no fallback to report');
  });

  it('a peer dying mid-NAR: the client still gets the whole NAR, resumed with Range from another peer', T, async (t) => {
    const w = await world(t, { peers: 2 });
    const [dying, backup] = w.peers;
    const p = makePath('big', 2 * 1024 * 1024);
    dying.add(p, narInfoFor(p, { signers: [upstream] }));
    backup.add(p, narInfoFor(p, { signers: [upstream] }));
    backup.knobs.narInfoDelayMs = 100;
    assert.equal((await w.narInfo(p.hashPart)).status, 200);
    assert.equal(w.affinity.get(p.hashPart)!.source, w.idOf(dying));
    dying.knobs.dieAfterBytes = 700_000;
    assertSameNar(await w.nar(p), p);
    assert.equal(backup.counts.ranged, 1);
    const [asked] = backup.rangesAsked;
    assert.ok(Number(asked.slice(0, -1)) > 0, `resumed from byte ${asked}`);
    await waitFor('transfer event', async () => w.transfers().length === 1, 3000);
    const tr = w.transfers()[0];
    assert.equal(tr.outcome, 'resumed');
    assert.equal(tr.peerName, 'bob');
    assert.equal(tr.bytes, p.narSize);
    assert.deepEqual(
      w.fallbacks().map((f) => [f.from, f.to, f.reason, f.outcome]),
      [['alice', 'bob', 'peer-failed', 'served']],
    );
    assert.equal(w.affinity.get(p.hashPart)!.source, w.idOf(backup));
    assert.ok(!w.registry.live().some((x) => x.id === w.idOf(dying)));
  });

  it('a peer dying mid-NAR with nobody to resume from: the client connection is cut, never ended cleanly', T, async (t) => {
    const w = await world(t, { peers: 1 });
    const p = makePath('orphan', 1024 * 1024);
    w.peers[0].add(p, narInfoFor(p, { signers: [upstream] }));
    w.peers[0].knobs.dieAfterBytes = 300_000;
    const r = await w.nar(p);
    assert.equal(r.status, 200);
    assert.equal(r.complete, false);
    assert.ok(r.body.length < p.narSize);
    assert.ok(r.body.equals(p.nar.subarray(0, r.body.length)), 'what was sent is a correct prefix');
    assert.ok(!w.registry.live().some((x) => x.id === w.idOf(w.peers[0])), 'the dead peer is not asked again');
  });

  it('a peer transfer that fails mid-way is reported as a failed transfer', T, async (t) => {
    const w = await world(t, { peers: 1 });
    const p = makePath('orphan-event', 1024 * 1024);
    w.peers[0].add(p);
    w.peers[0].knobs.dieAfterBytes = 300_000;
    assert.equal((await w.nar(p)).complete, false);
    await waitFor('transfer event', async () => w.transfers().length === 1, 1000);
    assert.equal(w.transfers()[0].outcome, 'failed');
  });

  it('corrupted bytes: the client connection is cut short and the peer is marked bad', T, async (t) => {
    const w = await world(t, { peers: 2 });
    const [liar, honest] = w.peers;
    const p = makePath('tampered', 500_000);
    liar.add(p, narInfoFor(p, { signers: [upstream] }));
    honest.add(p, narInfoFor(p, { signers: [upstream] }));
    honest.knobs.narInfoDelayMs = 100;
    assert.equal((await w.narInfo(p.hashPart)).status, 200);
    liar.knobs.corruptAt = 123_456;
    const r = await w.nar(p);
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-length'], String(p.narSize));
    assert.equal(r.complete, false, 'never a clean end');
    assert.ok(r.body.length < p.narSize, `got ${r.body.length} of ${p.narSize} bytes`);
    await waitFor('the liar marked bad', async () => !w.registry.live().some((x) => x.id === w.idOf(liar)), 3000);
    assert.ok(w.registry.health.isBad(w.registry.get(w.idOf(liar))!));
    await waitFor('transfer event', async () => w.transfers().length === 1, 3000);
    assert.equal(w.transfers()[0].outcome, 'failed');
    // Even once its health probe passes again, the liar stays out for a while.
    await w.registry.checkAll();
    assert.ok(!w.registry.live().some((x) => x.id === w.idOf(liar)));
    assertSameNar(await w.nar(p), p);
    assert.equal(liar.counts.nar, 1);
    assert.equal(honest.counts.nar, 1);
  });

  it('hedging: when the first peer is slow to answer the NAR, a second peer serves it', T, async (t) => {
    const w = await world(t, { peers: 2, hedgeMs: 100 });
    const [slow, quick] = w.peers;
    const p = makePath('hedged', 100_000);
    slow.add(p);
    quick.add(p);
    quick.knobs.narInfoDelayMs = 50; // slow is first in line
    slow.knobs.narDelayMs = 60_000; // past the test's own timeout: only the hedge can serve it
    assertSameNar(await w.nar(p), p);
    assert.equal(slow.counts.nar, 1);
    assert.equal(quick.counts.nar, 1);
    assert.equal(w.affinity.get(p.hashPart)!.source, w.idOf(quick));
  });

  it('hedging: when the entry peer is slow to answer the NAR, a second peer serves it', T, async (t) => {
    const w = await world(t, { peers: 2, hedgeMs: 100 });
    const [slow, quick] = w.peers;
    const p = makePath('hedged-entry', 100_000);
    slow.add(p, narInfoFor(p, { signers: [upstream] }));
    quick.add(p, narInfoFor(p, { signers: [upstream] }));
    quick.knobs.narInfoDelayMs = 50;
    assert.equal((await w.narInfo(p.hashPart)).status, 200);
    assert.equal(w.affinity.get(p.hashPart)!.source, w.idOf(slow));
    slow.knobs.narDelayMs = 60_000; // past the test's own timeout: only the hedge can serve it
    assertSameNar(await w.nar(p), p);
    assert.equal(quick.counts.nar, 1);
  });

  it('HEAD of a peer NAR: headers only, and the peer request is let go', T, async (t) => {
    const w = await world(t, { peers: 1 });
    const p = makePath('head-only', 1024 * 1024);
    w.peers[0].add(p, narInfoFor(p, { signers: [upstream] }));
    assert.equal((await w.narInfo(p.hashPart)).status, 200);
    const r = await w.nar(p, {}, 'HEAD');
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-length'], String(p.narSize));
    assert.equal(r.body.length, 0);
    await waitFor('the peer connection closed', async () => w.peers[0].openNarConnections === 0, 1000);
  });

  it('a Range request on a peer NAR gets exactly that slice, verified against the whole NAR', T, async (t) => {
    const w = await world(t, { peers: 1 });
    const p = makePath('ranged', 400_000);
    w.peers[0].add(p);
    const r = await w.nar(p, { range: 'bytes=100000-' });
    assert.equal(r.status, 206);
    assert.equal(r.complete, true);
    assert.ok(r.body.equals(p.nar.subarray(100_000)));
  });
});

describe('resolver: the field (slow, lying, dripping and stalling peers)', () => {
  it('one slow peer: 40 concurrent NARs all complete (none 404 after its narinfo said 200) and a miss meanwhile stays fast', { timeout: 60_000 }, async (t) => {
    const w = await world(t, { peers: 1 });
    const slow = w.peers[0];
    const paths = Array.from({ length: 40 }, (_, i) => makePath(`slow-${i}`, 100_000));
    for (const p of paths) slow.add(p, narInfoFor(p, { signers: [upstream] }));
    for (const p of paths) assert.equal((await w.narInfo(p.hashPart)).status, 200);
    // Each body takes ~2.5 s: 32 fill the old shared pool, and everything else queued behind them.
    slow.knobs.drip = { afterBytes: 0, bytes: 10_000, everyMs: 250 };
    const t0 = performance.now();
    let narsDone = false;
    const nars = Promise.all(paths.map((p) => w.nar(p))).finally(() => {
      narsDone = true;
    });
    await waitFor('the NARs under way', async () => slow.counts.nar >= 1, 30_000);
    const miss = await w.narInfo(makePath('not-there').hashPart);
    const missBeforeNars = !narsDone; // not queued behind the bodies, which drip for seconds
    const results = await nars;
    const statuses = new Map<number, number>();
    for (const r of results) statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
    const complete = results.filter((r, i) => r.status === 200 && r.complete && r.body.equals(paths[i].nar)).length;
    t.diagnostic(
      `40 NARs from one slow peer: statuses ${JSON.stringify(Object.fromEntries(statuses))}, ${complete} complete and byte-exact, in ${Math.round(performance.now() - t0)} ms; a miss meanwhile took ${Math.round(miss.ms)} ms; peer ${w.registry.get(w.idOf(slow))!.state}`,
    );
    assert.equal(statuses.get(404) ?? 0, 0, 'no NAR 404 after its narinfo said 200');
    assert.equal(complete, 40);
    assert.equal(miss.status, 404);
    assert.ok(missBeforeNars, 'the miss was answered while the NARs were still coming');
    assert.equal(w.registry.get(w.idOf(slow))!.state, 'up', 'a busy peer is not a dead one');
  });

  it(
    'a resume of a transfer cut for wrong bytes is refused with 404; a fresh request is served by an honest peer; the liar is marked bad until cleared',
    T,
    async (t) => {
      const w = await world(t, { peers: 2 });
      const [liar, honest] = w.peers;
      const p = makePath('tampered-resume', 600_000);
      liar.add(p, narInfoFor(p, { signers: [upstream] }));
      honest.add(p, narInfoFor(p, { signers: [upstream] }));
      honest.knobs.narInfoDelayMs = 100;
      assert.equal((await w.narInfo(p.hashPart)).status, 200);
      liar.knobs.corruptAt = 200_000;
      const cut = await w.nar(p);
      assert.equal(cut.complete, false);
      const reached = cut.body.length;
      assert.ok(reached > 200_000, `the wrong byte reached the client (${reached} bytes sent)`);
      // What Nix does next: resume at the cut, holding a prefix with the wrong byte in it.
      const resumed = await w.nar(p, { range: `bytes=${reached}-` });
      const fresh = await w.nar(p);
      const view = w.registry.views().find((v) => v.id === w.idOf(liar))!;
      t.diagnostic(
        `cut after ${reached} of ${p.narSize} bytes; resume → ${resumed.status}; fresh request → ${fresh.status} (${fresh.body.length} bytes); liar bad: ${JSON.stringify(view.bad)}; honest NAR requests: ${honest.counts.nar}`,
      );
      assert.equal(resumed.status, 404, 'never complete a wrong prefix with a right suffix');
      assertSameNar(fresh, p);
      assert.ok(view.bad && view.bad.until - view.bad.since >= 60 * 60_000, 'bad for hours');
      assert.match(view.bad!.reason, /NarHash/);
      assert.equal(liar.counts.nar, 1, 'the liar is not asked for NARs again');
      assert.ok(!w.registry.live().some((x) => x.id === w.idOf(liar)));
      assert.deepEqual(
        w
          .fallbacks()
          .filter((f) => f.reason === 'mismatch')
          .map((f) => [f.to, f.outcome]),
        [[null, 'not-found']],
      );
      // The user clears it: it is asked again once a probe passes.
      assert.equal(w.registry.clearBad(w.idOf(liar)), true);
      assert.equal(w.registry.views().find((v) => v.id === w.idOf(liar))!.bad, null);
      await w.registry.checkAll();
      await waitFor('the liar back', async () => w.registry.live().some((x) => x.id === w.idOf(liar)), 5000);
      assert.equal(w.registry.clearBad(w.idOf(liar)), false, 'nothing left to clear');
    },
  );

  it('a dripping peer (1 byte per tick) is abandoned mid-stream; the rest comes from another holder by Range', { timeout: 30_000 }, async (t) => {
    const w = await world(t, { peers: 2, narWatch: { tickMs: 200, graceMs: 600, windowTicks: 3, minBytesPerSec: 16 * 1024 } });
    const [dripper, backup] = w.peers;
    const p = makePath('dripped', 1024 * 1024);
    dripper.add(p, narInfoFor(p, { signers: [upstream] }));
    backup.add(p, narInfoFor(p, { signers: [upstream] }));
    backup.knobs.narInfoDelayMs = 100;
    assert.equal((await w.narInfo(p.hashPart)).status, 200);
    assert.equal(w.affinity.get(p.hashPart)!.source, w.idOf(dripper));
    dripper.knobs.drip = { afterBytes: 300_000, bytes: 1, everyMs: 200 };
    const t0 = performance.now();
    const r = await Promise.race([w.nar(p), sleep(10_000).then(() => null)]);
    const ms = Math.round(performance.now() - t0);
    t.diagnostic(
      `drip: ${r ? `${r.status}, ${r.body.length} bytes, complete ${r.complete}` : 'still dripping'} after ${ms} ms; backup ranges asked ${JSON.stringify(backup.rangesAsked)}`,
    );
    assert.ok(r, 'the NAR completed within 10 s');
    assertSameNar(r, p);
    assert.equal(backup.counts.ranged, 1);
    assert.ok(Number(backup.rangesAsked[0].slice(0, -1)) >= 300_000, 'resumed where the drip had got to');
    assert.ok(
      w.registry.live().some((x) => x.id === w.idOf(dripper)),
      'slow is not dead: the dripper still answers lookups',
    );
  });

  it('the entry peer missed a beat (suspect, not gone): its NAR waits for it instead of a 404', T, async (t) => {
    const w = await world(t, { peers: 1 });
    const [holder] = w.peers;
    const p = makePath('held', 200_000);
    holder.add(p, narInfoFor(p, { signers: [upstream] }));
    assert.equal((await w.narInfo(p.hashPart)).status, 200);
    w.registry.reportFailure(w.registry.get(w.idOf(holder))!, 'one lookup timed out');
    const r = await w.nar(p);
    t.diagnostic(`holder ${w.registry.get(w.idOf(holder))!.state}: NAR ${r.status}, ${r.body.length} bytes`);
    assertSameNar(r, p);
  });

  it('a slow source with no other holder is kept, not cut', { timeout: 30_000 }, async (t) => {
    const w = await world(t, { peers: 1, narWatch: { tickMs: 200, graceMs: 400, windowTicks: 3, minBytesPerSec: 1024 * 1024, retryMs: 500 } });
    const p = makePath('slow-only', 200_000);
    w.peers[0].add(p, narInfoFor(p, { signers: [upstream] }));
    w.peers[0].knobs.drip = { afterBytes: 0, bytes: 20_000, everyMs: 200 };
    const r = await w.nar(p);
    t.diagnostic(`slow sole holder: ${r.status}, ${r.body.length} bytes, complete ${r.complete}`);
    assertSameNar(r, p);
  });

  // The stall tests run the health clock by hand: a stall is time passing with the peer silent, so
  // the test moves the clock once the lookup is waiting on the staller, and the verdicts follow from
  // what the peers were asked, never from how long a miss took. Peer timeouts are far beyond the
  // test's own so that only the stall can end a lookup.

  /** Starts a miss; once it is waiting on `peer` (or ended without asking it), says which. */
  async function missWaitingOn(w: World, peer: FakePeer, name: string) {
    const asked = peer.counts.narInfo + peer.counts.urls.filter((u) => u.endsWith('.narinfo')).length;
    let ended = false;
    const miss = w.narInfo(makePath(name).hashPart).finally(() => {
      ended = true;
    });
    const waitedOn = () => peer.counts.narInfo + peer.counts.urls.filter((u) => u.endsWith('.narinfo')).length > asked;
    await waitFor(`the miss ${name} ends or waits on the peer`, async () => ended || waitedOn(), 10_000);
    return { miss, waiting: !ended && waitedOn() };
  }

  it('a peer that passes health checks but stalls lookups costs one stalled lookup, not one per probe', { timeout: 180_000 }, async (t) => {
    const clock = new FakeClock();
    const w = await world(t, { peers: 2, clock, health: { stallMs: 300, backoffBaseMs: 1000 }, timeouts: { narInfoMs: 60_000 } });
    const [staller] = w.peers;
    staller.knobs.narInfoDelayMs = 60_000; // /nix-cache-info still answers at once
    const first = await missWaitingOn(w, staller, 'first-miss');
    assert.ok(first.waiting, 'the first miss waits on the staller');
    clock.advance(300); // its stall: released by that, since no timeout is near
    assert.equal((await first.miss).status, 404);
    let waitedOn = 0;
    for (let i = 0; i < 20; i++) {
      if (i % 4 === 0) await w.registry.checkAll(); // the health probes, as the timer would run them
      clock.advance(40); // well within the backoff
      const m = await missWaitingOn(w, staller, `miss-${i}`);
      if (m.waiting) {
        waitedOn++;
        clock.advance(300);
      }
      assert.equal((await m.miss).status, 404);
    }
    t.diagnostic(
      `stalling peer: of 20 later misses (probes between), ${waitedOn} waited on it; ${staller.counts.probe} probes; state ${w.registry.get(w.idOf(staller))!.state}`,
    );
    assert.equal(waitedOn, 0, 'a passing probe does not bring a staller back within its backoff');
    assert.equal(staller.counts.narInfo, 1);
    assert.notEqual(w.registry.get(w.idOf(staller))!.state, 'up');
  });

  it('a peer that answers probes (lookups of them too) but stalls real lookups is tried again only after a doubling backoff', {
    timeout: 180_000,
  }, async (t) => {
    const clock = new FakeClock();
    const w = await world(t, { peers: 2, clock, health: { stallMs: 200, backoffBaseMs: 600 }, timeouts: { narInfoMs: 60_000 } });
    const [staller] = w.peers;
    staller.knobs.narInfoDelayMs = 60_000;
    staller.knobs.fastProbeLookups = true;
    const slowAt: number[] = [];
    const t0 = clock.now();
    while (clock.now() - t0 < 6000) {
      await w.registry.checkAll(); // probes every 100 ms: far more often than the real timer
      const m = await missWaitingOn(w, staller, 'm');
      if (m.waiting) {
        slowAt.push(clock.now() - t0);
        clock.advance(200); // the stall
      }
      assert.equal((await m.miss).status, 404);
      clock.advance(100);
    }
    const gaps = slowAt.slice(1).map((x, i) => x - slowAt[i]);
    const peer = w.registry.get(w.idOf(staller))!;
    t.diagnostic(
      `stalled lookups, passing probes: ${staller.counts.probe} probes, lookups waiting on it at ${slowAt.join(', ')} ms (gaps ${gaps.join(', ')}), strikes ${peer.strikes}`,
    );
    assert.ok(slowAt.length >= 2 && slowAt.length <= 4, `${slowAt.length} stalled misses in 6 s`);
    for (let i = 1; i < gaps.length; i++) assert.ok(gaps[i] > gaps[i - 1], 'each retry waits longer');
  });

  it('a peer whose link is cut: misses in flight end together at its stall, and later ones do not ask it', { timeout: 30_000 }, async (t) => {
    const clock = new FakeClock();
    const w = await world(t, { peers: 2, clock, health: { stallMs: 200 }, timeouts: { narInfoMs: 60_000 } });
    const [cut] = w.peers;
    cut.knobs.blackhole = true;
    const asked = () => cut.counts.urls.filter((u) => u.endsWith('.narinfo')).length;
    const askedBefore = asked();
    let ended = 0;
    const burst = Array.from({ length: 10 }, (_, i) =>
      w.narInfo(makePath(`burst-${i}`).hashPart).finally(() => {
        ended++;
      }),
    );
    await waitFor('all ten misses waiting on the cut peer', async () => asked() - askedBefore === 10, 10_000);
    assert.equal(ended, 0, 'none ends before the stall');
    clock.advance(200); // one stall releases all of them
    for (const r of await Promise.all(burst)) assert.equal(r.status, 404);
    const afterBurst = asked();
    for (let i = 0; i < 20; i++) assert.equal((await w.narInfo(makePath(`later-${i}`).hashPart)).status, 404);
    t.diagnostic(`cut link: 10 misses in flight ended at one stall; of 20 later misses ${asked() - afterBurst} asked the cut peer`);
    assert.equal(asked(), afterBurst, 'later misses do not wait on the cut peer');
  });

  it('a lookup timeout covers the whole exchange, body included', T, async (t) => {
    const w = await world(t, { peers: 1, health: { stallMs: 60_000 } });
    // Headers at once, then the body never finishes: the old per-phase timers allowed twice narInfoMs.
    const { createServer } = await import('node:http');
    const server = createServer((req, res) => {
      if (req.url === '/nix-cache-info') return void res.end('StoreDir: /nix/store\n');
      // Headers late but in time, then a body that trickles and never finishes.
      setTimeout(() => {
        res.writeHead(200, { 'Content-Length': '100000' });
        res.write('StorePath: ');
        const drip = setInterval(() => (res.destroyed ? clearInterval(drip) : res.write(' ')), 50);
        res.once('close', () => clearInterval(drip));
      }, 400);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    t.after(
      () =>
        new Promise<void>((r) => {
          server.closeAllConnections();
          server.close(() => r());
        }),
    );
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    // Headers in time, then a body that keeps trickling: timers per phase or per idle gap would
    // never end it, and the test's own timeout would; one deadline for the whole exchange does.
    await assert.rejects(w.client.narInfo(url, makePath('x').hashPart));
  });
});

describe('resolver: a client that leaves before its NAR is found', () => {
  it('the peer request made for it is cut at once; no hedge, retry or fallback follows', T, async (t) => {
    // The peer's headers would take 60 s, past the test's own timeout: its request ends only because
    // the client left. The hedge waits on the health clock, which the test moves past it afterwards.
    const clock = new FakeClock();
    const w = await world(t, { peers: 2, hedgeMs: 1000, clock, timeouts: { narHeadersMs: 60_000 } });
    const [alice, bob] = w.peers;
    const p = makePath('left-early', 100_000);
    alice.add(p, narInfoFor(p, { signers: [upstream] }));
    bob.add(p, narInfoFor(p, { signers: [upstream] }));
    bob.knobs.narInfoDelayMs = 50; // alice answers first: the entry points at her
    assert.equal((await w.narInfo(p.hashPart)).status, 200);
    assert.equal(w.affinity.get(p.hashPart)!.source, w.idOf(alice));
    // Both accept the NAR request and never answer its head (within the test).
    alice.knobs.narDelayMs = bob.knobs.narDelayMs = 60_000;
    const leftAt = await leaveAfter(narUrlOf(w.listener, p), 200);
    const asked = await waitFor('the entry peer was asked', async () => alice.narRequests[0], 1000);
    const closedAt = await waitFor("the entry peer's request closed", async () => alice.narRequests[0].closedAt, 10_000);
    t.diagnostic(
      `the client left ${Math.round(leftAt - asked.at)} ms after the peer was asked; the peer's request closed ${Math.round(closedAt - leftAt)} ms after the client left`,
    );
    // Past the hedge delay: nobody else is asked, nothing is recorded (a hedge still set would run here, at once).
    clock.advance(2000);
    t.diagnostic(`NAR requests: alice ${alice.counts.nar}, bob ${bob.counts.nar}; fallback events ${w.fallbacks().length}`);
    assert.equal(alice.counts.nar, 1);
    assert.equal(bob.counts.nar, 0, 'no hedge for a client that left');
    assert.deepEqual(w.fallbacks(), [], 'a client that left is no fallback');
    assert.deepEqual(w.transfers(), []);
    assert.equal(w.registry.get(w.idOf(alice))!.state, 'up', 'a request we cut is no failure of the peer');
  });

  it('its wait for a peer NAR slot ends: the peer never sees its request, the live client behind it goes first and gets its NAR', T, async (t) => {
    const w = await world(t, { peers: 1, limits: { narSlots: 1 } });
    const [alice] = w.peers;
    const [a, b, c] = ['streaming', 'departed', 'stayed'].map((n) => makePath(n, 256 * 1024));
    for (const p of [a, b, c]) {
      alice.add(p, narInfoFor(p, { signers: [upstream] }));
      assert.equal((await w.narInfo(p.hashPart)).status, 200);
    }
    // A holds the only slot for about 1.5 s.
    alice.knobs.drip = { afterBytes: 16 * 1024, bytes: 16 * 1024, everyMs: 100 };
    const first = w.nar(a);
    await waitFor('A streaming', async () => alice.counts.nar === 1, 1000);
    const left = leaveAfter(narUrlOf(w.listener, b), 300);
    await waitFor('B waiting for the slot', async () => w.client.narsWaiting === 1, 10_000); // B queues first, C behind it
    const third = w.nar(c);
    await left;
    assertSameNar(await first, a);
    assertSameNar(await third, c);
    // C was served after B's place in the queue was judged: with nothing left waiting, no request for B can follow.
    assert.equal(w.client.narsWaiting, 0);
    const order = alice.narRequests.map((r) => [a, b, c].find((p) => r.path.includes(p.hashPart))!.storePath.slice(44));
    t.diagnostic(`NAR requests the peer saw, in order: ${order.join(', ')}`);
    assert.deepEqual(order, ['streaming', 'stayed'], 'no request for the client that left');
    assert.deepEqual(w.fallbacks(), []);
    assert.deepEqual(
      w.transfers().map((e) => [e.storePath.slice(44), e.outcome]),
      [
        ['streaming', 'ok'],
        ['stayed', 'ok'],
      ],
    );
  });

  it('nar() itself gives up at once when its signal aborts, and leaves no listener on the signal either way', T, async (t) => {
    const w = await world(t, { peers: 1, timeouts: { narHeadersMs: 60_000 } });
    const [alice] = w.peers;
    const p = makePath('signal', 50_000);
    alice.add(p, narInfoFor(p, { signers: [upstream] }));
    assert.equal((await w.narInfo(p.hashPart)).status, 200);
    // Stays: the body comes back, and nothing is left listening on the signal.
    const staying = new AbortController();
    const body = await w.resolver.nar(p.hashPart, p.narHash, { signal: staying.signal });
    assert.ok(body);
    body.release('aborted');
    assert.equal(getEventListeners(staying.signal, 'abort').length, 0, 'no listener left after an answer');
    // Leaves mid-open: null well before the header timeout, no listener, nothing recorded.
    alice.knobs.narDelayMs = 60_000;
    const leaving = new AbortController();
    const pending = w.resolver.nar(p.hashPart, p.narHash, { signal: leaving.signal });
    await waitFor('the peer was asked', async () => alice.counts.nar === 2, 1000);
    leaving.abort();
    assert.equal(await pending, null); // the peer's headers would take 60 s, past the test's own timeout
    t.diagnostic(`listeners left: ${getEventListeners(leaving.signal, 'abort').length}`);
    assert.equal(getEventListeners(leaving.signal, 'abort').length, 0, 'no listener left after leaving');
    await waitFor('the peer request closed', async () => alice.narRequests[1].closedAt, 500);
    assert.deepEqual(w.fallbacks(), []);
  });

  it('a client that stays through a hedge gets its NAR byte-exact, and the losing peer request is let go', T, async (t) => {
    const w = await world(t, { peers: 2, hedgeMs: 100 });
    const [slow, quick] = w.peers;
    const p = makePath('stays', 200_000);
    slow.add(p, narInfoFor(p, { signers: [upstream] }));
    quick.add(p, narInfoFor(p, { signers: [upstream] }));
    quick.knobs.narInfoDelayMs = 50;
    assert.equal((await w.narInfo(p.hashPart)).status, 200);
    slow.knobs.narDelayMs = 60_000;
    assertSameNar(await w.nar(p), p);
    const closedAt = await waitFor("the slow peer's request closed", async () => slow.narRequests[0]?.closedAt, 1000);
    t.diagnostic(`served by the hedge; the slow peer's request closed ${Math.round(closedAt - slow.narRequests[0].at)} ms after it was made`);
    assert.equal(quick.counts.nar, 1);
    await waitFor('transfer event', async () => w.transfers().length === 1, 3000);
    assert.equal(w.transfers()[0].outcome, 'ok');
    assert.equal(w.fallbacks().length, 1, 'served by another peer than the entry: one fallback');
  });
});
