import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import type { Peer } from '../../src/peers/registry.ts';
import type { NarSource } from '../../src/peers/resuming-nar.ts';
import { SwarmNarStream, type SwarmTuning } from '../../src/peers/swarm-nar.ts';
import { FakeClock } from '../support/fake-clock.ts';

// One NAR from several holders at once (swarm-nar.ts): pieces by Range from each, put back in NAR
// order; a failing or silent holder's piece goes to the others; claimed pieces stay within the
// bound ahead of the one being sent; with one holder, one stream as before. Holders here are
// in-memory streams; the clock is driven by the test.

const KiB = 1024;
const MiB = 1024 * KiB;
const TUNING: Partial<SwarmTuning> = {
  pieceBytes: 256 * KiB,
  aheadBytes: 1 * MiB,
  graceMs: 1000,
  tickMs: 250,
  stallMs: 2500,
  minStealBytes: 32 * KiB,
  firstPieceBytes: 128 * KiB,
};

const source = (name: string): NarSource => ({ peer: { id: name, name } as Peer, url: `http://${name}/nar/x.nar` });

/** The bytes [from, to) in 64 KiB chunks, then the end; `failAfter`: an error after that many bytes; `stallAfter`: silence after that many. */
function rangeStream(nar: Buffer, from: number, to: number, how: { failAfter?: number; stallAfter?: number } = {}): Readable {
  let at = from;
  return new Readable({
    read() {
      setImmediate(() => {
        if (how.failAfter !== undefined && at - from >= how.failAfter) return this.destroy(new Error('connection reset'));
        if (how.stallAfter !== undefined && at - from >= how.stallAfter) return; // never another byte
        if (at >= to) return this.push(null);
        const n = Math.min(64 * KiB, to - at);
        this.push(nar.subarray(at, at + n));
        at += n;
      });
    },
  });
}

interface Run {
  out: Buffer;
  swarm: SwarmNarStream;
  /** `at`: the fake clock's time when the range was asked for, from the swarm's start. */
  opened: { holder: string; start: number; end: number; at: number }[];
  failures: string[];
  /** Holders given up on (onGivenUp), in order. */
  givenUp: string[];
  /** Most bytes held in pieces not yet sent, seen at any step. */
  maxHeld: number;
  /** Per holder that failed, how many ranges had been opened by then. */
  failedAt: Map<string, number>;
  /** Per holder, the most pieces it was sending at once, seen at any step. */
  mostLanes: Map<string, number>;
}

async function fetchSwarm(
  nar: Buffer,
  holders: string[],
  head: { stallAfter?: number; failAfter?: number },
  ranges: (holder: string) => { failAfter?: number; stallAfter?: number; refuse?: boolean } = () => ({}),
  makeHead?: (clock: FakeClock) => Readable,
  watch?: (holder: string, stream: Readable, bytes: number) => void,
  firstHeld?: number,
): Promise<Run> {
  const clock = new FakeClock();
  const t0 = clock.now();
  const sources = new Map(holders.map((h) => [h, source(h)]));
  const opened: Run['opened'] = [];
  const failures: string[] = [];
  const failedAt = new Map<string, number>();
  const givenUp: string[] = [];
  const swarm = new SwarmNarStream({
    head: makeHead ? makeHead(clock) : rangeStream(nar, 0, nar.length, head),
    headSource: sources.get(holders[0])!,
    narSize: nar.length,
    holders: () => [...sources.values()],
    openRange: async (src, start, end) => {
      opened.push({ holder: src.peer.name, start, end, at: clock.now() - t0 });
      // A holder the caller could not open a range on (it reported why itself): null.
      if (ranges(src.peer.name).refuse) return null;
      const stream = rangeStream(nar, start, end + 1, ranges(src.peer.name));
      watch?.(src.peer.name, stream, end + 1 - start);
      return stream;
    },
    onFailure: (src, why) => {
      failures.push(`${src.peer.name}: ${why}`);
      if (!failedAt.has(src.peer.name)) failedAt.set(src.peer.name, opened.length);
    },
    onGivenUp: (src) => givenUp.push(src.peer.name),
    onBytes: () => {},
    firstHeld,
    clock,
    tuning: TUNING,
  });
  const parts: Buffer[] = [];
  let maxHeld = 0;
  const mostLanes = new Map<string, number>();
  let ended = false;
  let failed: Error | null = null;
  swarm.on('data', (b: Buffer) => parts.push(b));
  swarm.once('end', () => (ended = true));
  swarm.once('error', (e) => (failed = e));
  for (let step = 0; !ended && !failed && step < 4000; step++) {
    await new Promise((r) => setImmediate(r));
    const held = (swarm as unknown as { pieces: { bufs: Buffer[] }[] }).pieces.reduce((n, p) => n + p.bufs.reduce((m, b) => m + b.length, 0), 0);
    maxHeld = Math.max(maxHeld, held);
    const busy = new Map<string, number>();
    for (const w of (swarm as unknown as { workers: { source: NarSource; piece: unknown }[] }).workers)
      if (w.piece) busy.set(w.source.peer.name, (busy.get(w.source.peer.name) ?? 0) + 1);
    for (const [h, n] of busy) mostLanes.set(h, Math.max(mostLanes.get(h) ?? 0, n));
    if (step % 4 === 0) clock.advance(125);
  }
  if (failed) throw failed;
  assert.ok(ended, 'the swarm ended');
  return { out: Buffer.concat(parts), swarm, opened, failures, failedAt, givenUp, maxHeld, mostLanes };
}

describe('one NAR from several holders at once', () => {
  const nar = randomBytes(8 * MiB + 12345);

  it('splits once the first holder sets the pace, and the pieces come back in order', async (t) => {
    // The first holder sends 1 MiB and then trickles nothing: the others take the rest by Range.
    const r = await fetchSwarm(nar, ['b', 'c', 'd'], { stallAfter: 1 * MiB });
    const shares = r.swarm.shares.map((s) => `${s.source.peer.name} ${s.narBytes}`).join(', ');
    t.diagnostic(
      `8 MiB from b (stalls after 1 MiB), c, d: ${shares}; ${r.opened.length} ranges; most held ${r.maxHeld} bytes; failures: ${r.failures.join('; ')}`,
    );
    assert.ok(r.out.equals(nar), 'byte-exact');
    assert.ok(r.swarm.split);
    assert.ok(r.opened.some((o) => o.holder === 'c') && r.opened.some((o) => o.holder === 'd'));
    for (const o of r.opened) assert.ok(o.start <= o.end && o.end < nar.length, `range ${o.start}-${o.end}`);
    assert.ok(r.maxHeld <= 1 * MiB + 256 * KiB, `held ${r.maxHeld} bytes ahead, bound ${1 * MiB} + a piece`);
    assert.ok(
      r.failures.some((f) => f.startsWith('b: nothing for')),
      'the silent first holder was cut',
    );
  });

  it("moves a failing holder's piece to the others", async (t) => {
    const r = await fetchSwarm(nar, ['b', 'c', 'd'], { stallAfter: 512 * KiB }, (h) => (h === 'c' ? { failAfter: 100 * KiB } : {}));
    t.diagnostic(
      `c fails 100 KiB into its first piece: ${r.swarm.shares.map((s) => `${s.source.peer.name} ${s.narBytes}`).join(', ')}; failures: ${r.failures.join('; ')}`,
    );
    assert.ok(r.out.equals(nar));
    assert.ok(r.failures.some((f) => f.startsWith('c: connection reset')));
    const after = r.opened.slice(r.failedAt.get('c')).filter((o) => o.holder === 'c');
    assert.deepEqual(after, [], 'a holder that failed is not asked again for this NAR');
    assert.ok(r.swarm.resumed);
    assert.equal(r.givenUp.filter((h) => h === 'c').length, 1, `given up on c once, whatever its lanes: ${r.givenUp.join(', ')}`);
    assert.ok(!r.swarm.working.some((x) => x.peer.name === 'c'), 'c no longer works on this NAR');
  });

  it('says a holder was given up on even when its failure was already reported (a range it could not open)', async (t) => {
    const r = await fetchSwarm(nar, ['b', 'c', 'd'], { stallAfter: 512 * KiB }, (h) => (h === 'd' ? { refuse: true } : {}));
    t.diagnostic(`d refuses its ranges: given up on ${r.givenUp.join(', ')}; failures: ${r.failures.join('; ')}`);
    assert.ok(r.out.equals(nar));
    assert.ok(!r.failures.some((f) => f.startsWith('d:')), 'the caller reported it; the swarm does not again');
    assert.equal(r.givenUp.filter((h) => h === 'd').length, 1);
  });

  it("takes a silent holder's piece (a cut link) and carries on without it", async (t) => {
    const r = await fetchSwarm(nar, ['b', 'c', 'd'], { stallAfter: 512 * KiB }, (h) => (h === 'd' ? { stallAfter: 64 * KiB } : {}));
    t.diagnostic(`d goes silent: ${r.swarm.shares.map((s) => `${s.source.peer.name} ${s.narBytes}`).join(', ')}; failures: ${r.failures.join('; ')}`);
    assert.ok(r.out.equals(nar));
    assert.ok(r.failures.some((f) => f.startsWith('d: nothing for')));
  });

  /** The whole NAR, 32 KiB per tick of the fake clock (a slow link), its wire bytes `ratio` of the NAR's (a framed stream). */
  function slowHead(clock: FakeClock, ratio: number): Readable {
    let at = 0;
    let last = -1;
    const head = Object.assign(
      new Readable({
        read() {
          const next = () => {
            if (at >= nar.length) return this.push(null);
            if (clock.now() === last) return void setImmediate(next);
            last = clock.now();
            const n = Math.min(32 * KiB, nar.length - at);
            head.wireBytes += Math.round(n * ratio);
            this.push(nar.subarray(at, at + n));
            at += n;
          };
          setImmediate(next);
        },
      }),
      { wireBytes: 0 },
    );
    return head;
  }

  it('a slow first holder is split whether its frames come compressed or raw (pieces are framed too)', async () => {
    for (const ratio of [0.3, 1]) {
      const r = await fetchSwarm(nar, ['b', 'c', 'd'], {}, undefined, (clock) => slowHead(clock, ratio));
      assert.ok(r.out.equals(nar), `byte-exact at wire ratio ${ratio}`);
      assert.ok(r.swarm.split, `split at wire ratio ${ratio}`);
      assert.ok(r.opened.some((o) => o.holder === 'c') && r.opened.some((o) => o.holder === 'd'));
    }
  });

  it("lets a complete piece's response end by itself: the peer client measures the holder's link from it", async () => {
    // b stalls at once; c, alone, sends every piece (no other holder takes a part of one).
    const ends: { ended: boolean; destroyedEarly: boolean }[] = [];
    const r = await fetchSwarm(nar, ['b', 'c'], { stallAfter: 512 * KiB }, undefined, undefined, (_holder, stream) => {
      const e = { ended: false, destroyedEarly: false };
      ends.push(e);
      stream.once('end', () => (e.ended = true));
      stream.once('close', () => (e.destroyedEarly = !e.ended));
    });
    assert.ok(r.out.equals(nar));
    // The last piece's end comes a turn after its last byte, which may have ended the NAR.
    for (let i = 0; i < 4; i++) await new Promise((res) => setImmediate(res));
    assert.ok(ends.length > 4 && ends.every((e) => e.ended && !e.destroyedEarly), 'every piece ended by itself');
  });

  it('keeps two pieces in flight per holder once its first, smaller piece (which measures its link) is done', async () => {
    // Whether c's first response had ended when each of c's ranges was opened.
    let cFirstEnded = false;
    const cEndedAtOpen: boolean[] = [];
    const r = await fetchSwarm(nar, ['b', 'c', 'd'], { stallAfter: 512 * KiB }, undefined, undefined, (holder, stream) => {
      if (holder !== 'c') return;
      cEndedAtOpen.push(cFirstEnded);
      if (cEndedAtOpen.length === 1) stream.once('end', () => (cFirstEnded = true));
    });
    assert.ok(r.out.equals(nar));
    const cFirst = r.opened.find((o) => o.holder === 'c')!;
    assert.equal(cFirst.end - cFirst.start + 1, 128 * KiB, "c's first piece is the small one");
    assert.deepEqual(cEndedAtOpen.slice(0, 3), [false, true, true], "c's next pieces waited for its first response to end");
    assert.equal(r.mostLanes.get('c'), 2, 'c sent two pieces at once');
    assert.equal(r.mostLanes.get('d'), 2, 'd sent two pieces at once');
    assert.deepEqual(
      r.swarm.sources.map((x) => x.peer.name),
      [...new Set(r.swarm.sources.map((x) => x.peer.name))],
      'each holder named once, its lanes together',
    );
    assert.ok(r.maxHeld <= 1 * MiB + 256 * KiB, `held ${r.maxHeld} bytes ahead, bound ${1 * MiB} + a piece`);
  });

  it('splits at once, without the grace, when recent transfers from the first holder were link-bound', async () => {
    // Our side held b's recent transfers up 5% of their time (b's link set their pace), or 90% (this machine did).
    const known = await fetchSwarm(nar, ['b', 'c', 'd'], { stallAfter: 512 * KiB }, undefined, undefined, undefined, 0.05);
    assert.ok(known.out.equals(nar));
    assert.equal(known.opened[0].at, 0, 'the first range was asked for before any time passed');
    assert.ok(known.opened.some((o) => o.holder === 'c') && known.opened.some((o) => o.holder === 'd'));
    const busy = await fetchSwarm(nar, ['b', 'c', 'd'], { stallAfter: 512 * KiB }, undefined, undefined, undefined, 0.9);
    assert.ok(busy.out.equals(nar));
    assert.ok(busy.opened[0].at >= TUNING.graceMs!, `held up by this machine: the grace first (first range at ${busy.opened[0].at} ms)`);
  });

  it('with one holder, one stream: nothing split, no range asked', async () => {
    const r = await fetchSwarm(nar, ['b'], {});
    assert.ok(r.out.equals(nar));
    assert.equal(r.swarm.split, false);
    assert.equal(r.opened.length, 0);
  });

  it('fails, rather than send a short NAR, when every holder fails', async () => {
    await assert.rejects(
      fetchSwarm(nar, ['b', 'c'], { failAfter: 512 * KiB }, () => ({ failAfter: 10 * KiB })),
      /every holder failed/,
    );
  });
});
