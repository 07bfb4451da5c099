import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, it } from 'node:test';
import { zstdCompressSync } from 'node:zlib';
import { FrameEncoder, type FrameStats, slotWaitMs } from '../../src/cache/adaptive-frames.ts';
import { CompressionBudget } from '../../src/cache/compression-budget.ts';
import { FRAME_CREDIT, FRAME_RAW, FRAME_ZSTD, FrameDecoder, FrameError, frameHeader, MAX_FRAME_NAR_BYTES } from '../../src/wire/nar-frames.ts';
import { FakeClock } from '../support/fake-clock.ts';

// NAR frames between Peernix peers: what goes in comes out byte for byte; compression happens only
// when the consumer (the link) is what holds the transfer back and the bytes shrink; a hostile
// framed body is refused without inflating or holding more than one frame.

/** Text-like content that compresses a few times over, as most store paths do. */
function compressible(bytes: number): Buffer {
  const words = ['lib', 'share', 'bin', 'python3.12', 'site-packages', '__init__.py', 'def ', 'return ', 'import ', 'self.', '\n'];
  const parts: string[] = [];
  let n = 0;
  let seed = 7;
  while (n < bytes) {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    const w = words[seed % words.length] + (seed % 97).toString(36);
    parts.push(w);
    n += w.length;
  }
  return Buffer.from(parts.join('')).subarray(0, bytes);
}

function chunks(buf: Buffer, size = 256 * 1024): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; i += size) out.push(Buffer.from(buf.subarray(i, i + size)));
  return out;
}

/**
 * A consumer that takes `bytesPerSec` (Infinity: at once), like a socket on a link of that speed.
 * Its time is the fake clock's, which only it moves: the encoder's own work costs no time there, so
 * what the encoder decides depends on the link's speed and never on how busy this machine is.
 */
function link(bytesPerSec: number, into: Buffer[], clock?: FakeClock): Writable {
  return new Writable({
    highWaterMark: 256 * 1024,
    write(chunk: Buffer, _e, cb) {
      into.push(chunk);
      if (bytesPerSec === Infinity || !clock) return cb();
      clock.advance((chunk.length / bytesPerSec) * 1000);
      setImmediate(cb);
    },
  });
}

async function roundTrip(nar: Buffer, bytesPerSec: number, receiverHeld: number | null = null, linkRate: number | null = null) {
  const wire: Buffer[] = [];
  const stats: FrameStats = { narBytes: 0, wireBytes: 0, zstdFrames: 0, rawFrames: 0 };
  const clock = new FakeClock();
  const budget = new CompressionBudget(3, false, clock);
  await pipeline(Readable.from(chunks(nar)), new FrameEncoder(budget, stats, { client: 'client', receiverHeld, linkRate }), link(bytesPerSec, wire, clock));
  const decoder = new FrameDecoder();
  const out: Buffer[] = [];
  await pipeline(Readable.from(chunks(Buffer.concat(wire), 64 * 1024 + 3)), decoder, link(Infinity, out));
  return { stats, out: Buffer.concat(out), wire: Buffer.concat(wire), decoderWire: decoder.wireBytes };
}

describe('NAR frames', () => {
  it('compresses compressible bytes on a slow link, and they come back exact', async (t) => {
    // A one-second raw trial, a one-second compressed one, then compressed for good; with a budget
    // of three, two blocks compress at once, and the frames still come out in NAR order.
    const nar = compressible(64 * 1024 * 1024);
    const r = await roundTrip(nar, 20e6);
    t.diagnostic(
      `64 MiB text at 20 MB/s: ${r.stats.zstdFrames} zstd frames, ${r.stats.rawFrames} raw, ${r.wire.length} bytes on the wire (${(nar.length / r.wire.length).toFixed(2)}×)`,
    );
    assert.ok(r.out.equals(nar));
    assert.equal(r.decoderWire, r.wire.length);
    assert.equal(r.stats.wireBytes, r.wire.length);
    assert.ok(r.stats.zstdFrames >= 30, `${r.stats.zstdFrames} zstd frames`);
    assert.ok(r.wire.length < nar.length / 2);
  });

  it('tries no compression for a receiver that says its own side holds its transfers up', async (t) => {
    // The same slow, backed-up consumer as above; but the receiver measured that its raw transfers
    // waited on it, not on the link (peers/receiver-load.ts), and a peer that listens to it and one
    // that is told its receiver keeps up must differ exactly there.
    const nar = compressible(48 * 1024 * 1024);
    const held = await roundTrip(nar, 20e6, 0.8);
    const free = await roundTrip(nar, 20e6, 0.05);
    t.diagnostic(`48 MiB text at 20 MB/s: receiver held 0.8 → ${held.stats.zstdFrames} zstd frames; held 0.05 → ${free.stats.zstdFrames}`);
    assert.ok(held.out.equals(nar));
    assert.equal(held.stats.zstdFrames, 0);
    // After a one-second raw phase (about 20 blocks), the rest may go compressed: how many depends on timing.
    assert.ok(free.stats.zstdFrames >= 5, `${free.stats.zstdFrames} zstd frames`);
  });

  it('starts compressed when the receiver already measured its link slow, raw when fast or unknown', async (t) => {
    // The first frame tells: a known-slow link gets no raw phase first (phase-plan.ts knownLink).
    const nar = compressible(8 * 1024 * 1024);
    const firstKind = (wire: Buffer) => wire[0];
    const slow = await roundTrip(nar, 20e6, 0.05, 12_500_000);
    const fast = await roundTrip(nar, 20e6, 0.05, 400_000_000);
    const unknown = await roundTrip(nar, 20e6, 0.05, null);
    const busy = await roundTrip(nar, 20e6, 0.8, 12_500_000);
    t.diagnostic(
      `8 MiB text, first NAR: link 12.5 MB/s → ${slow.stats.zstdFrames} zstd / ${slow.stats.rawFrames} raw; 400 MB/s → ${fast.stats.zstdFrames}; unknown → ${unknown.stats.zstdFrames}; busy receiver → ${busy.stats.zstdFrames}`,
    );
    for (const r of [slow, fast, unknown, busy]) assert.ok(r.out.equals(nar));
    assert.equal(firstKind(slow.wire), FRAME_ZSTD);
    assert.equal(slow.stats.rawFrames, 0, 'compressed from the first byte');
    assert.ok(slow.wire.length < nar.length / 2);
    for (const r of [fast, unknown, busy]) {
      assert.equal(firstKind(r.wire), FRAME_RAW);
      assert.equal(r.stats.zstdFrames, 0, 'an 8 MiB NAR is done before any compressed trial');
    }
  });

  it('a block waits for a compression slot up to half its raw time on a link known slow, the usual 20 ms otherwise', () => {
    // Pieces of one NAR from several holders at once come two at a time from each holder
    // (peers/swarm-nar.ts); with one slot, a block that gave up after 20 ms went raw, every other
    // one, on a link where raw costs three times the wire.
    const MiB = 1024 * 1024;
    assert.equal(slotWaitMs(MiB, null), 20, 'no link figure: the budget wait');
    assert.equal(slotWaitMs(MiB, 12.5e6), (MiB / 12.5e6) * 1000 * 0.5, '100 Mbit/s: half of 84 ms');
    assert.equal(slotWaitMs(MiB, 125e6), 20, 'a fast link: never less than the budget wait');
    assert.equal(slotWaitMs(MiB, 1e6), 250, 'a very slow link: bounded');
  });

  it('a known-slow link with incompressible bytes goes raw after a look, looking again now and then', async (t) => {
    const nar = randomBytes(24 * 1024 * 1024);
    const r = await roundTrip(nar, 40e6, 0, 12_500_000);
    t.diagnostic(
      `24 MiB random, link known at 12.5 MB/s: ${r.stats.zstdFrames} zstd frames, ${r.stats.rawFrames} raw, ${r.stats.blocksCompressed ?? 0} blocks compressed`,
    );
    assert.ok(r.out.equals(nar));
    assert.equal(r.stats.zstdFrames, 0);
    // The first blocks (two encode at once here), then one in eight to see whether they shrink again.
    assert.ok((r.stats.blocksCompressed ?? 0) <= 2 + 24 / 8, 'CPU spent on looks, not on every block');
  });

  it('sends raw when the link keeps up', async (t) => {
    const nar = compressible(16 * 1024 * 1024);
    const r = await roundTrip(nar, Infinity);
    t.diagnostic(`16 MiB text on an unlimited link: ${r.stats.zstdFrames} zstd frames, ${r.stats.rawFrames} raw`);
    assert.ok(r.out.equals(nar));
    assert.equal(r.stats.zstdFrames, 0);
  });

  it('sends incompressible bytes raw after a look, and looks again now and then', async (t) => {
    const nar = randomBytes(40 * 1024 * 1024);
    const r = await roundTrip(nar, 80e6);
    t.diagnostic(`40 MiB random at 80 MB/s: ${r.stats.zstdFrames} zstd frames, ${r.stats.rawFrames} raw, overhead ${r.wire.length - nar.length} bytes`);
    assert.ok(r.out.equals(nar));
    assert.equal(r.stats.zstdFrames, 0);
    assert.ok(r.wire.length - nar.length < 1024, 'only frame headers added');
  });

  it('stays raw for a receiver that decoding slows down, and remembers it for the client’s next NAR', async (t) => {
    // A receiver that takes 30 MB/s of NAR however it comes, and 1.3× longer for what it must decompress:
    // the consumer backs up, the bytes shrink, and yet compressing loses.
    const clock = new FakeClock();
    const receiver = (into: number[]) => {
      let left = 0; // payload bytes of the current raw frame still to come
      return new Writable({
        highWaterMark: 256 * 1024,
        write(chunk: Buffer, _e, cb) {
          let nar = chunk.length;
          if (left === 0) {
            const kind = chunk[0];
            const narBytes = chunk.readUInt32BE(1);
            if (kind === 1) nar = narBytes * 1.3;
            else {
              left = narBytes;
              nar = 0;
            }
            into.push(kind);
          } else left -= chunk.length;
          clock.advance((nar / 30e6) * 1000);
          setImmediate(cb);
        },
      });
    };
    const budget = new CompressionBudget(2, false, clock);
    const runs: FrameStats[] = [];
    for (let i = 0; i < 2; i++) {
      const stats: FrameStats = { narBytes: 0, wireBytes: 0, zstdFrames: 0, rawFrames: 0 };
      await pipeline(Readable.from(chunks(compressible(80 * 1024 * 1024))), new FrameEncoder(budget, stats, { client: '10.0.0.7' }), receiver([]));
      runs.push(stats);
    }
    t.diagnostic(`receiver-bound: first NAR ${runs[0].zstdFrames} zstd / ${runs[0].rawFrames} raw frames, second ${runs[1].zstdFrames} / ${runs[1].rawFrames}`);
    assert.ok(
      runs[0].zstdFrames > 0 && runs[0].zstdFrames <= 35,
      'one compressed trial (about a second: under 30 MB/s of NAR, plus two blocks queued), then raw',
    );
    assert.equal(runs[1].zstdFrames, 0, 'the next NAR goes on raw: the raw phase after a lost trial is longer than it');
  });

  it('the compression budget: a slot at once while one is free, a short wait, then raw', async () => {
    const clock = new FakeClock();
    const budget = new CompressionBudget(1, false, clock);
    assert.equal(await budget.take(0), true);
    assert.equal(await budget.take(0), false, 'full, and not waiting');
    let outcome: boolean | null = null;
    const short = budget.take(30).then((ok) => {
      outcome = ok;
    });
    clock.advance(29);
    await Promise.resolve();
    assert.equal(outcome, null, 'still waiting before its wait is up');
    clock.advance(1);
    await short;
    assert.equal(outcome, false, 'full for longer than the wait');
    const waiting = budget.take(500);
    clock.advance(20);
    budget.give();
    assert.equal(await waiting, true, 'the slot given back passes to the one waiting');
    budget.give();
    assert.equal(await budget.take(0), true);
  });
});

describe('FrameDecoder against hostile bodies', () => {
  const decode = async (body: Buffer) => {
    const out: Buffer[] = [];
    await pipeline(Readable.from([body]), new FrameDecoder(), link(Infinity, out));
    return Buffer.concat(out);
  };
  const zstd = (b: Buffer) => zstdCompressSync(b);

  it('decodes well-formed frames', async () => {
    const a = Buffer.from('hello ');
    const b = Buffer.alloc(100_000, 'x');
    const z = zstd(b);
    const out = await decode(Buffer.concat([frameHeader(FRAME_RAW, a.length, a.length), a, frameHeader(FRAME_ZSTD, b.length, z.length), z]));
    assert.ok(out.equals(Buffer.concat([a, b])));
  });

  const cases: [string, () => Buffer, RegExp][] = [
    ['an unknown kind', () => Buffer.concat([frameHeader(7, 4, 4), Buffer.alloc(4)]), /unknown frame kind/],
    ['a frame larger than allowed', () => frameHeader(FRAME_RAW, MAX_FRAME_NAR_BYTES + 1, MAX_FRAME_NAR_BYTES + 1), /NAR bytes/],
    ['an empty frame', () => frameHeader(FRAME_RAW, 0, 0), /NAR bytes/],
    ['a raw frame whose payload differs from its size', () => frameHeader(FRAME_RAW, 10, 11), /payload/],
    ['a zstd payload larger than what it stands for', () => frameHeader(FRAME_ZSTD, 10, 11), /payload/],
    [
      'a zstd bomb (decodes past its stated size)',
      () => {
        const z = zstd(Buffer.alloc(4 * 1024 * 1024));
        return Buffer.concat([frameHeader(FRAME_ZSTD, 1000, z.length), z]);
      },
      /does not decode|decoded to/,
    ],
    [
      'a zstd frame that decodes short',
      () => {
        const z = zstd(Buffer.alloc(500, 1));
        return Buffer.concat([frameHeader(FRAME_ZSTD, 1000, z.length), z]);
      },
      /decoded to 500/,
    ],
    ['garbage as zstd', () => Buffer.concat([frameHeader(FRAME_ZSTD, 1000, 20), randomBytes(20)]), /does not decode/],
    ['a body cut inside a frame', () => Buffer.concat([frameHeader(FRAME_RAW, 100, 100), Buffer.alloc(50)]), /ended inside a frame/],
    ['a body cut inside a header', () => frameHeader(FRAME_RAW, 100, 100).subarray(0, 5), /ended inside a frame/],
  ];
  for (const [what, body, error] of cases) {
    it(`refuses ${what}`, async () => {
      await assert.rejects(decode(body()), error);
    });
  }

  it('a body cut short (a peer that died or lost its link) is a failure, not a broken bound that marks the peer bad', async () => {
    for (const body of [Buffer.concat([frameHeader(FRAME_RAW, 100, 100), Buffer.alloc(50)]), frameHeader(FRAME_RAW, 100, 100).subarray(0, 5)]) {
      await assert.rejects(decode(body), (e: Error) => /ended inside a frame/.test(e.message) && !(e instanceof FrameError));
    }
    await assert.rejects(decode(Buffer.concat([frameHeader(FRAME_ZSTD, 1000, 20), randomBytes(20)])), FrameError);
  });

  it('decodes no further ahead of its reader than a buffer and a frame, however far a bomb expands', async (t) => {
    // 64 zstd frames of 4 MiB of zeros: about 10 KB on the wire, 256 MiB decoded, all in one read.
    const z = zstd(Buffer.alloc(MAX_FRAME_NAR_BYTES));
    const frame = Buffer.concat([frameHeader(FRAME_ZSTD, MAX_FRAME_NAR_BYTES, z.length), z]);
    const decoder = new FrameDecoder();
    decoder.end(Buffer.concat(Array.from({ length: 64 }, () => frame)));
    // Nobody reads. Once the buffer is full, decoding must stop there until a reader comes: wait until
    // it says it waits for one, or (unpaced) until it has decoded all 64 frames into memory.
    let finished = false;
    decoder.once('finish', () => (finished = true));
    while (!decoder.waitingForReader && !finished) await new Promise((r) => setImmediate(r));
    t.diagnostic(`a bomb with no reader: ${decoder.narBytesOut} NAR bytes begun, ${decoder.readableLength} buffered`);
    assert.ok(decoder.narBytesOut <= 2 * MAX_FRAME_NAR_BYTES, `${decoder.narBytesOut} NAR bytes decoded ahead`);
    let taken = 0;
    await pipeline(decoder, new Writable({ write: (c: Buffer, _e, cb) => ((taken += c.length), cb()) }));
    assert.equal(taken, 64 * MAX_FRAME_NAR_BYTES, 'and a reader gets every byte');
  });

  it('refuses frames that stand for more NAR bytes than expected, before decoding them', async () => {
    const z = zstd(Buffer.alloc(MAX_FRAME_NAR_BYTES));
    const frame = Buffer.concat([frameHeader(FRAME_ZSTD, MAX_FRAME_NAR_BYTES, z.length), z]);
    const out: Buffer[] = [];
    const decoder = new FrameDecoder({ maxNarBytes: 10_000_000 });
    await assert.rejects(
      pipeline(Readable.from([Buffer.concat([frame, frame, frame])]), decoder, link(Infinity, out)),
      (e) => e instanceof FrameError && /more than the 10000000 NAR bytes/.test(e.message),
    );
    assert.ok(Buffer.concat(out).length <= 2 * MAX_FRAME_NAR_BYTES);
  });

  const tiny = (kind: number, n: number) => {
    const p = zstd(Buffer.alloc(64, 'x')); // the smallest a zstd frame can stand for is what its payload takes
    const one =
      kind === FRAME_RAW ? Buffer.concat([frameHeader(FRAME_RAW, 1, 1), Buffer.from('x')]) : Buffer.concat([frameHeader(FRAME_ZSTD, 64, p.length), p]);
    return Array.from({ length: n / 1000 }, () => Buffer.concat(Array.from({ length: 1000 }, () => one)));
  };
  for (const [what, kind] of [
    ['1-byte raw frames', FRAME_RAW],
    ['tiny zstd frames', FRAME_ZSTD],
  ] as const) {
    it(`cuts a stream of endless ${what} within its credit`, async (t) => {
      // A million frames offered; the decoder must stop long before, having given a few hundred bytes.
      const out: Buffer[] = [];
      const decoder = new FrameDecoder({ maxNarBytes: 1e9 });
      await assert.rejects(
        pipeline(Readable.from(tiny(kind, 1_000_000)), decoder, link(Infinity, out)),
        (e) => e instanceof FrameError && /frames too small/.test(e.message),
      );
      t.diagnostic(`${what}: cut after ${decoder.frames} frames, ${decoder.wireBytes} bytes read`);
      assert.ok(decoder.frames < 1000, `${decoder.frames} frames decoded`);
      assert.ok(Buffer.concat(out).length < FRAME_CREDIT);
    });
  }

  it('takes short frames mid-stream, as older Peernix sends them: 4 KiB raw and 64 KiB zstd', async () => {
    const nar = compressible(16 * 1024 * 1024);
    const parts: Buffer[] = [];
    for (let at = 0, i = 0; at < nar.length; i++) {
      const piece = nar.subarray(at, at + (i % 2 === 0 ? 4096 : 64 * 1024));
      at += piece.length;
      if (i % 2 === 0) parts.push(frameHeader(FRAME_RAW, piece.length, piece.length), piece);
      else {
        const p = zstd(piece);
        parts.push(frameHeader(FRAME_ZSTD, piece.length, p.length), p);
      }
    }
    const out = await decode(Buffer.concat(parts));
    assert.ok(out.equals(nar));
  });
});
