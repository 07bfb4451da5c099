import assert from 'node:assert/strict';
import net from 'node:net';
import { afterEach, describe, test } from 'node:test';
import { listen } from '../../src/cache/http-listener.ts';
import { EventLog } from '../../src/base/events.ts';
import { createLogger } from '../../src/base/log.ts';
import { SharingSwitch } from '../../src/domain/sharing-switch.ts';
import { NetworkTrust } from '../../src/domain/network-trust.ts';
import { NETWORK_POLL_MS, NetworkWatch, type NetworkClock, type NetworkInputs } from '../../src/peers/network-watch.ts';
import type { Interfaces } from '../../src/peers/local-address.ts';

// Sharing gated by the network: the watcher on a hand clock reading captured kernel tables, the
// trust decisions, and a real sharing switch with a real listener on loopback. Moving networks
// pauses within one poll, without touching the saved choice; trusting resumes; every step agrees
// across listener, announcement, saved settings and events.

const T = { timeout: 10_000 };
const log = createLogger('error');

const ROUTE = (gwHex: string) =>
  'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n' + `eth0\t00000000\t${gwHex}\t0003\t0\t0\t0\t00000000\t0\t0\t0\n`;
const ARP = (ip: string, mac: string) =>
  'IP address       HW type     Flags       HW address            Mask     Device\n' + `${ip}  0x1  0x2  ${mac}  *  eth0\n`;
const IFACES: Interfaces = {
  eth0: [{ address: '10.77.0.3', netmask: '255.255.255.0', family: 'IPv4', mac: '2a:00:00:00:00:03', internal: false, cidr: '10.77.0.3/24' }],
};
const NET_A: NetworkInputs = { route: ROUTE('FE004D0A'), arp: ARP('10.77.0.254', '02:00:00:00:00:0a'), interfaces: IFACES };
const NET_B: NetworkInputs = { route: ROUTE('FD004D0A'), arp: ARP('10.77.0.253', '02:00:00:00:00:0b'), interfaces: IFACES };
const ID_A = 'gateway 02:00:00:00:00:0a 10.77.0.0/24';
const ID_B = 'gateway 02:00:00:00:00:0b 10.77.0.0/24';

class HandClock implements NetworkClock {
  private timers: { at: number; fn: () => void; id: number }[] = [];
  private n = 1;
  private now = 0;
  setTimeout(fn: () => void, ms: number): unknown {
    this.timers.push({ at: this.now + ms, fn, id: this.n++ });
    return this.n - 1;
  }
  clearTimeout(h: unknown): void {
    this.timers = this.timers.filter((t) => t.id !== h);
  }
  advance(ms: number): void {
    const end = this.now + ms;
    for (let t = this.next(end); t; t = this.next(end)) {
      this.now = t.at;
      t.fn();
    }
    this.now = end;
  }
  private next(end: number) {
    this.timers.sort((a, b) => a.at - b.at);
    return this.timers[0] && this.timers[0].at <= end ? this.timers.shift() : undefined;
  }
}

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

async function answers(port: number): Promise<boolean> {
  try {
    return (await fetch(`http://127.0.0.1:${port}/`)).ok;
  } catch {
    return false;
  }
}

// A failed assertion must not leave a listener holding the test process open.
const running: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const stop of running.splice(0)) await stop();
});

async function rig(
  o: { start?: NetworkInputs; trusted?: string[]; trustAll?: boolean; trustFirst?: boolean; wanted?: boolean; failSave?: () => boolean } = {},
) {
  const port = await freePort();
  const events = new EventLog();
  const clock = new HandClock();
  const announced: (number | 'gone')[] = [];
  const savedSharing: boolean[] = [];
  const savedNetworks: string[][] = [];
  const poked: string[] = [];
  let inputs = o.start ?? NET_A;
  const sw = new SharingSwitch({
    bind: () => listen({ host: '127.0.0.1', port, log, handler: (_q, res) => res.end('ok') }),
    announce: (p) => announced.push(p),
    unannounce: async () => void announced.push('gone'),
    persist: (on) => savedSharing.push(on),
    events,
    log,
    changed: () => {},
  });
  const trust = new NetworkTrust({
    trusted: o.trusted ?? [],
    trustAll: o.trustAll ?? false,
    trustFirstNetwork: o.trustFirst ?? false,
    wanted: () => sw.wantedOn,
    pause: (r) => sw.pause(r),
    persist: (ids) => {
      if (o.failSave?.()) throw new Error('EROFS: read-only file system');
      savedNetworks.push(ids);
    },
    events,
    log,
    changed: () => {},
  });
  const moves: Promise<void>[] = [];
  const watch = new NetworkWatch({
    read: () => inputs,
    poke: (a) => poked.push(a),
    mayPoke: () => !trust.trustAll,
    clock,
    onChange: (n) => moves.push(trust.moved(n)),
  });
  await watch.start();
  await sw.startUp(o.wanted ?? true);
  running.push(async () => {
    watch.stop();
    await sw.stop(0);
  });
  return {
    port,
    sw,
    trust,
    events,
    announced,
    savedSharing,
    savedNetworks,
    poked,
    /** Moves the machine, lets one poll pass, and waits for what it decided. */
    async move(to: NetworkInputs, ms = NETWORK_POLL_MS) {
      inputs = to;
      clock.advance(ms);
      await Promise.all(moves);
    },
    async stop() {
      watch.stop();
      await sw.stop(0);
    },
  };
}

const types = (e: EventLog) =>
  e
    .recent()
    .reverse()
    .map((x) =>
      x.type === 'sharing'
        ? `sharing ${x.enabled ? 'on' : 'off'}${x.reason ? ' paused' : ''}`
        : x.type === 'network'
          ? `network ${x.trusted ? 'trusted' : 'untrusted'}${x.note ? ' noted' : ''}`
          : x.type,
    );

describe('NetworkTrust with a sharing switch', () => {
  test('a fresh install on an untrusted network neither serves nor announces, and asks; trusting it shares', T, async () => {
    const r = await rig();
    assert.equal(r.sw.on, false);
    assert.equal(await answers(r.port), false);
    assert.deepEqual(r.announced, []);
    assert.match(r.sw.paused ?? '', /10\.77\.0\.0\/24 \(router 02:00:00:00:00:0a\) is not a trusted network/);
    assert.equal(r.trust.view().ask, true);
    assert.equal(r.trust.view().current?.id, ID_A);

    const view = await r.trust.act({ trust: 'current' });
    assert.equal(view.trusted, true);
    assert.equal(view.ask, false);
    assert.deepEqual(r.savedNetworks, [[ID_A]]);
    assert.equal(r.sw.on, true);
    assert.equal(r.sw.paused, null);
    assert.equal(await answers(r.port), true);
    assert.deepEqual(r.announced, [r.port]);
    assert.deepEqual(r.savedSharing, [], 'the saved sharing choice was never touched');
    assert.deepEqual(types(r.events), ['network untrusted', 'network trusted noted', 'sharing on']);
    await r.stop();
  });

  test('moving to another router pauses within one poll and withdraws the announcement; moving back or trusting resumes', T, async () => {
    const r = await rig({ trusted: [ID_A] });
    assert.equal(r.sw.on, true);
    await r.move(NET_B);
    assert.equal(r.sw.on, false);
    assert.equal(await answers(r.port), false);
    assert.deepEqual(r.announced, [r.port, 'gone']);
    assert.equal(r.sw.wantedOn, true, 'a pause is a reason, not the user’s choice');
    assert.deepEqual(r.savedSharing, []);
    const paused = r.events.recent().find((e) => e.type === 'sharing');
    assert.ok(paused?.type === 'sharing' && !paused.enabled && /not a trusted network/.test(paused.reason ?? ''));

    await r.move(NET_A);
    assert.equal(r.sw.on, true);
    assert.equal(await answers(r.port), true);
    await r.move(NET_B);
    await r.trust.act({ trust: 'current' });
    assert.equal(r.sw.on, true);
    assert.deepEqual(r.savedNetworks, [[ID_A, ID_B]]);
    await r.trust.act({ forget: 'current' });
    assert.equal(r.sw.on, false, 'forgetting the network it is on pauses at once');
    assert.deepEqual(r.savedNetworks, [[ID_A, ID_B], [ID_A]]);
    assert.deepEqual(types(r.events), [
      // start-up shares without an event of its own (as before); every later change has one
      'network trusted',
      'network untrusted',
      'sharing off paused',
      'network trusted',
      'sharing on',
      'network untrusted',
      'sharing off paused',
      'network trusted noted',
      'sharing on',
      'network untrusted noted',
      'sharing off paused',
    ]);
    await r.stop();
  });

  test('an unresolved gateway is no network: paused, and poked once so the next poll can tell', T, async () => {
    const r = await rig({ trusted: [ID_A] });
    await r.move({ ...NET_B, arp: ARP('10.77.0.9', '02:00:00:00:00:99') }, NETWORK_POLL_MS + 250);
    assert.equal(r.sw.on, false);
    assert.equal(r.sw.paused, 'this machine is on no recognised network');
    assert.deepEqual(r.poked, ['10.77.0.253']);
    await assert.rejects(r.trust.act({ trust: 'current' }), /no network Peernix can recognise/);
    await r.stop();
  });

  test('offline at start (no network at all): sharing does not start, whatever is trusted', T, async () => {
    const r = await rig({ start: { route: ROUTE('FE004D0A').split('\n')[0] + '\n', arp: '', interfaces: {} }, trusted: [ID_A] });
    assert.equal(r.sw.on, false);
    assert.equal(r.sw.paused, 'this machine is on no recognised network');
    assert.equal(await answers(r.port), false);
    await r.move(NET_A);
    assert.equal(r.sw.on, true, 'and starts once on a trusted one');
    await r.stop();
  });

  test('trustAllNetworks shares anywhere and never pokes a gateway', T, async () => {
    const r = await rig({ trustAll: true });
    assert.equal(r.sw.on, true);
    await r.move({ ...NET_B, arp: ARP('10.77.0.9', '02:00:00:00:00:99') });
    await r.move(NET_B);
    assert.equal(r.sw.on, true);
    assert.deepEqual(r.announced, [r.port]);
    assert.deepEqual(r.poked, []);
    assert.equal(r.trust.view().ask, false);
    await r.stop();
  });

  test('an upgraded install trusts the network it starts on once, and says so', T, async () => {
    const r = await rig({ trustFirst: true });
    assert.equal(r.sw.on, true);
    assert.deepEqual(r.savedNetworks, [[ID_A]]);
    const ev = r.events.recent().find((e) => e.type === 'network');
    assert.ok(ev?.type === 'network' && ev.trusted && /shared before Peernix asked about networks/.test(ev.note ?? ''));
    await r.move(NET_B);
    assert.equal(r.sw.on, false, 'only the first network');
    await r.stop();
  });

  test('while paused, the user’s on/off is saved and honoured when the pause lifts; a failed save changes nothing', T, async () => {
    let fail = false;
    const r = await rig({ failSave: () => fail });
    await r.sw.set(false);
    assert.deepEqual(r.savedSharing, [false]);
    assert.equal(r.trust.view().ask, false, 'not asked when sharing is off anyway');
    await r.trust.act({ trust: 'current' });
    assert.equal(r.sw.on, false, 'trusted, but the user said off');
    await r.trust.act({ forget: 'current' });
    await r.sw.set(true);
    assert.deepEqual(r.savedSharing, [false, true]);
    assert.equal(r.sw.on, false, 'wanted, but still paused');
    fail = true;
    await assert.rejects(r.trust.act({ trust: 'current' }), /could not save trusted networks: EROFS/);
    assert.equal(r.sw.on, false);
    assert.equal(r.trust.view().trusted, false);
    fail = false;
    r.trust.act({ dismiss: ID_A });
    assert.equal(r.trust.view().ask, false, 'answered "not here": asked once');
    await r.trust.act({ trust: 'current' });
    assert.equal(r.sw.on, true);
    assert.equal(await answers(r.port), true);
    await r.stop();
  });
});
