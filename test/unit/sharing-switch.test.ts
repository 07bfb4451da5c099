import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, test } from 'node:test';
import { listen } from '../../src/cache/http-listener.ts';
import { EventLog } from '../../src/base/events.ts';
import { createLogger } from '../../src/base/log.ts';
import { SharingSwitch } from '../../src/domain/sharing-switch.ts';
import dgram from 'node:dgram';
import { encodeHasPath } from '../../src/wire/go-udp.ts';
import { UdpResponder } from '../../src/peers/udp-responder.ts';

// The switch with real listeners on loopback: a port held by another socket, and a settings write
// that fails, must each fail one attempt only and leave listener, state, saved choice and events
// agreeing.

const T = { timeout: 10_000 };
const log = createLogger('error');

async function busyPort(): Promise<{ port: number; free(): Promise<void> }> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return { port, free: () => new Promise((resolve) => server.close(() => resolve())) };
}

async function freePort(): Promise<number> {
  const probe = await busyPort();
  await probe.free();
  return probe.port;
}

function rig(port: number, persist?: (on: boolean) => void) {
  const events = new EventLog();
  const saved: boolean[] = [];
  const announced: (number | 'gone')[] = [];
  let changes = 0;
  const sw = new SharingSwitch({
    bind: () => listen({ host: '127.0.0.1', port, log, handler: (_req, res) => res.end('ok') }),
    announce: (p) => announced.push(p),
    unannounce: async () => void announced.push('gone'),
    persist: (on) => {
      persist?.(on);
      saved.push(on);
    },
    events,
    log,
    changed: () => changes++,
  });
  return { sw, events, saved, announced, changes: () => changes };
}

async function answers(port: number): Promise<boolean> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/`);
    return res.ok;
  } catch {
    return false;
  }
}

describe('SharingSwitch', () => {
  test('a busy port fails one switch only: state off, nothing saved, an error event; once free, the next switch works', T, async () => {
    const busy = await busyPort();
    const r = rig(busy.port);
    await assert.rejects(r.sw.set(true), /share port is in use/);
    assert.equal(r.sw.on, false);
    assert.match(r.sw.error ?? '', /in use/);
    assert.deepEqual(r.saved, [], 'the failed choice is not saved');
    assert.deepEqual(r.announced, [], 'nothing announced');
    assert.deepEqual(
      r.events.recent().map((e) => e.type),
      ['error'],
    );

    await assert.rejects(r.sw.set(true), /in use/, 'still busy: fails again, with the current cause');
    await busy.free();
    await r.sw.set(true);
    assert.equal(r.sw.on, true);
    assert.equal(r.sw.error, null, 'the error clears once it works');
    assert.deepEqual(r.saved, [true]);
    assert.deepEqual(r.announced, [busy.port]);
    assert.equal(await answers(busy.port), true);
    assert.deepEqual(
      r.events.recent().map((e) => e.type),
      ['sharing', 'error', 'error'],
    );
    await r.sw.set(false);
    assert.equal(await answers(busy.port), false);
    assert.deepEqual(r.saved, [true, false]);
    assert.ok(r.changes() >= 3, `status change notices: ${r.changes()}`);
  });

  test('turning on when the setting cannot be saved closes the listener again; the next attempt works', T, async () => {
    const port = await freePort();
    let failWrites = 1;
    const r = rig(port, () => {
      if (failWrites-- > 0) throw new Error('EROFS: read-only file system');
    });
    await assert.rejects(r.sw.set(true), /saving the setting failed \(EROFS/);
    assert.equal(r.sw.on, false);
    assert.equal(await answers(port), false, 'no listener left behind');
    assert.deepEqual(r.announced, []);
    assert.equal(r.events.recent().filter((e) => e.type === 'sharing').length, 0, 'no "sharing on" event for a failed switch');
    await r.sw.set(true);
    assert.equal(r.sw.on, true);
    assert.equal(await answers(port), true);
    await r.sw.stop(0);
  });

  test('turning off always takes effect, and a failed save is reported rather than hidden', T, async () => {
    const port = await freePort();
    let failWrites = 0;
    const r = rig(port, () => {
      if (failWrites-- > 0) throw new Error('EACCES: permission denied');
    });
    await r.sw.set(true);
    failWrites = 1;
    await assert.rejects(r.sw.set(false), /sharing is off, but the setting could not be saved/);
    assert.equal(r.sw.on, false);
    assert.equal(await answers(port), false, 'the store is not shared any more');
    assert.deepEqual(r.announced, [port, 'gone']);
    assert.deepEqual(
      r.events.recent().map((e) => e.type),
      ['error', 'sharing', 'sharing'],
    );
    await r.sw.set(false);
    assert.equal(r.sw.error, null, 'saved on the next try; the warning clears');
    assert.deepEqual(r.saved, [true, false]);
  });

  test('at start-up a busy port leaves sharing off with an error, and the saved choice untouched', T, async () => {
    const busy = await busyPort();
    const r = rig(busy.port);
    await r.sw.startUp(true);
    assert.equal(r.sw.on, false);
    assert.match(r.sw.error ?? '', /in use.*off for this run/);
    assert.deepEqual(r.saved, []);
    await busy.free();
    await r.sw.set(true);
    assert.equal(r.sw.on, true);
    await r.sw.stop(0);
    assert.equal(r.sw.on, false);
    await assert.rejects(r.sw.set(true), /stopping/, 'no switching after stop');
  });

  test('switches run one at a time, in order', T, async () => {
    const port = await freePort();
    const r = rig(port);
    await Promise.all([r.sw.set(true), r.sw.set(false), r.sw.set(true)]);
    assert.equal(r.sw.on, true);
    assert.deepEqual(r.saved, [true, false, true]);
    await r.sw.stop(0);
  });

  // The Go peers' UDP responder rides along: bound exactly while sharing; a busy UDP port is reported
  // like any sharing error but does not take HTTP sharing down with it.
  test('the UDP responder follows the listener: open while on, closed when off; a busy UDP port is an error, not the end of sharing', T, async (t) => {
    const HELD = '0123456789abcdfghijklmnpqrsvwxyz';
    const udpPort = await new Promise<number>((resolve) => {
      const s = dgram.createSocket('udp4');
      s.bind(0, '127.0.0.1', () => {
        const p = s.address().port;
        s.close(() => resolve(p));
      });
    });
    const udp = new UdpResponder({ host: '127.0.0.1', port: udpPort, log, narHash: (h) => (h === HELD ? Buffer.alloc(32) : null) });
    const companion = {
      open: () =>
        udp.bind().catch((e: NodeJS.ErrnoException) => {
          throw new Error(`the Go-peer UDP port ${udpPort} is in use by another program (${e.message})`);
        }),
      close: () => udp.close(),
    };
    const port = await freePort();
    const events = new EventLog();
    const sw = new SharingSwitch({
      bind: () => listen({ host: '127.0.0.1', port, log, handler: (_q, res) => res.end('ok') }),
      companion,
      announce: () => {},
      unannounce: async () => {},
      events,
      log,
      changed: () => {},
    });
    const squatter = dgram.createSocket('udp4');
    let squatterOpen = false;
    t.after(async () => {
      await sw.stop(0);
      await udp.close();
      if (squatterOpen) await new Promise<void>((r) => squatter.close(() => r()));
    });
    // One question; it ends with the answer, or with the refusal a closed port sends back (the evidence
    // that nothing listens, rather than a wait that happened to hear nothing).
    const ask = async (): Promise<string[] | 'refused'> => {
      const c = dgram.createSocket('udp4');
      await new Promise<void>((r) => c.connect(udpPort, '127.0.0.1', () => r()));
      const answer = new Promise<string[] | 'refused'>((resolve) => {
        c.on('message', (m) => resolve([m.toString()]));
        c.on('error', (e: NodeJS.ErrnoException) => e.code === 'ECONNREFUSED' && resolve('refused'));
      });
      c.send(encodeHasPath(HELD));
      let bound: NodeJS.Timeout | undefined;
      const r = await Promise.race([answer, new Promise<string[]>((resolve) => (bound = setTimeout(() => resolve([]), 10_000)))]);
      clearTimeout(bound);
      c.close();
      return r;
    };

    assert.equal(await ask(), 'refused');
    await sw.set(true);
    assert.equal(udp.open, true);
    assert.deepEqual(await ask(), ['yes']);
    await sw.set(false);
    assert.equal(udp.open, false);
    assert.equal(await ask(), 'refused', 'sharing off: no answer at all, the port is closed');
    assert.equal(await answers(port), false);

    // Someone else holds the UDP port: HTTP sharing goes on, the failure is shown and sent as an event.
    await new Promise<void>((r) => squatter.bind(udpPort, '127.0.0.1', () => r()));
    squatterOpen = true;
    await sw.set(true);
    assert.equal(sw.on, true);
    assert.equal(await answers(port), true, 'the share listener is up');
    assert.equal(udp.open, false);
    assert.match(sw.error ?? '', /^sharing is on, but the Go-peer UDP port .* in use/);
    assert.equal(events.recent().filter((e) => e.type === 'error').length, 1);
    // Switched off and on once the port is free: answered again, the error gone.
    await new Promise<void>((r) => squatter.close(() => r()));
    squatterOpen = false;
    await sw.set(false);
    assert.equal(sw.error, null);
    await sw.set(true);
    assert.equal(sw.error, null);
    assert.deepEqual(await ask(), ['yes']);
    await sw.stop(0);
    assert.equal(udp.open, false);
    t.diagnostic(
      `responder stats: ${JSON.stringify(udp.stats)}; events ${events
        .recent()
        .map((e) => e.type)
        .join(',')}`,
    );
  });
});
