import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { arpMac, defaultRoutes, recogniseNetwork } from '../../src/peers/network-id.ts';
import { NetworkWatch, type NetworkClock, type NetworkInputs } from '../../src/peers/network-watch.ts';
import type { Interfaces } from '../../src/peers/local-address.ts';

// The network recogniser on captured /proc/net/route, /proc/net/arp and interface lists (taken
// from a Debian machine, a laptop with a VPN, and a test namespace), and its polling on a hand clock.

const ROUTE_HEAD = 'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n';
const ARP_HEAD = 'IP address       HW type     Flags       HW address            Mask     Device\n';

const home = {
  route: ROUTE_HEAD + 'wlp2s0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\nwlp2s0\t0001A8C0\t00000000\t0001\t0\t0\t600\t00FFFFFF\t0\t0\t0\n',
  arp:
    ARP_HEAD +
    '192.168.1.1      0x1         0x2         A4:91:B1:0C:22:7E     *        wlp2s0\n192.168.1.40     0x1         0x0         00:00:00:00:00:00     *        wlp2s0\n',
};

function ifaces(entries: Record<string, [address: string, netmask: string, mac: string][]>): Interfaces {
  const out: Interfaces = {
    lo: [{ address: '127.0.0.1', netmask: '255.0.0.0', family: 'IPv4', mac: '00:00:00:00:00:00', internal: true, cidr: '127.0.0.1/8' }],
  };
  for (const [name, list] of Object.entries(entries)) {
    out[name] = list.map(([address, netmask, mac]) =>
      address.includes(':')
        ? { address, netmask, family: 'IPv6' as const, mac, internal: false, cidr: `${address}/64`, scopeid: 0 }
        : { address, netmask, family: 'IPv4' as const, mac, internal: false, cidr: `${address}/24` },
    );
  }
  return out;
}

const laptop = ifaces({
  wlp2s0: [
    ['192.168.1.23', '255.255.255.0', '3c:a9:f4:11:22:33'],
    ['fe80::3ea9:f4ff:fe11:2233', 'ffff:ffff:ffff:ffff::', '3c:a9:f4:11:22:33'],
  ],
});

describe('network-id', () => {
  test('a default route: the gateway MAC with the subnet of the interface that reaches it', () => {
    const r = recogniseNetwork({ ...home, interfaces: laptop });
    assert.deepEqual(r.network, { id: 'gateway a4:91:b1:0c:22:7e 192.168.1.0/24', name: '192.168.1.0/24 (router a4:91:b1:0c:22:7e)' });
  });

  test('the same subnet behind another router is another network; so is the same router on another subnet', () => {
    const otherRouter = { route: home.route, arp: ARP_HEAD + '192.168.1.1      0x1         0x2         f0:9f:c2:00:00:01     *        wlp2s0\n' };
    const a = recogniseNetwork({ ...home, interfaces: laptop }).network!;
    const b = recogniseNetwork({ ...otherRouter, interfaces: laptop }).network!;
    assert.notEqual(a.id, b.id);
    const wide = ifaces({ wlp2s0: [['192.168.1.23', '255.255.0.0', '3c:a9:f4:11:22:33']] });
    assert.equal(recogniseNetwork({ ...home, interfaces: wide }).network!.id, 'gateway a4:91:b1:0c:22:7e 192.168.0.0/16');
  });

  test('a gateway whose MAC is not learnt yet (or only being asked for) is unresolved, not a network', () => {
    const asking = ARP_HEAD + '192.168.1.1      0x1         0x0         00:00:00:00:00:00     *        wlp2s0\n';
    for (const arp of [ARP_HEAD, asking]) {
      const r = recogniseNetwork({ route: home.route, arp, interfaces: laptop });
      assert.equal(r.network, null);
      assert.deepEqual(r.gatewayUnresolved, { address: '192.168.1.1', iface: 'wlp2s0' });
    }
  });

  test('a VPN default route (tun, no hardware address) is passed over for the LAN under it', () => {
    const route =
      ROUTE_HEAD + 'tun0\t00000000\t0100080A\t0003\t0\t0\t50\t00000000\t0\t0\t0\n' + 'wlp2s0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n';
    const withTun = {
      ...laptop,
      tun0: [{ address: '10.8.0.6', netmask: '255.255.255.0', family: 'IPv4' as const, mac: '00:00:00:00:00:00', internal: false, cidr: '10.8.0.6/24' }],
    };
    assert.equal(defaultRoutes(route)[0].iface, 'tun0');
    assert.equal(recogniseNetwork({ route, arp: home.arp, interfaces: withTun }).network!.id, 'gateway a4:91:b1:0c:22:7e 192.168.1.0/24');
  });

  test('no default route (a direct cable, a test LAN): the subnets alone, named as such', () => {
    const route = ROUTE_HEAD + 'eth0\t00004D0A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n';
    const ns = ifaces({ eth0: [['10.77.0.3', '255.255.255.0', '2a:11:00:00:00:03']], eth1: [['169.254.9.9', '255.255.0.0', '2a:11:00:00:00:04']] });
    assert.deepEqual(recogniseNetwork({ route, arp: ARP_HEAD, interfaces: ns }).network, { id: 'subnet 10.77.0.0/24', name: '10.77.0.0/24 (no router)' });
  });

  test('loopback only is no network', () => {
    assert.deepEqual(recogniseNetwork({ route: ROUTE_HEAD, arp: ARP_HEAD, interfaces: ifaces({}) }), { network: null });
  });

  test('hostile-looking lines are skipped, not trusted', () => {
    assert.deepEqual(
      defaultRoutes(ROUTE_HEAD + 'eth0\t00000000\tZZZZZZZZ\t0003\t0\t0\t0\t00000000\n' + 'eth0\t00000000\t0101A8C0\t0001\t0\t0\t0\t00000000\n'),
      [],
    );
    assert.equal(arpMac(ARP_HEAD + '192.168.1.1 0x1 0x2 not-a-mac * wlp2s0\n', '192.168.1.1', 'wlp2s0'), null);
    assert.equal(arpMac(home.arp, '192.168.1.1', 'eth9'), null);
  });
});

class HandClock implements NetworkClock {
  private timers: { at: number; fn: () => void; id: number }[] = [];
  private nextId = 1;
  now = 0;
  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.nextId++;
    this.timers.push({ at: this.now + ms, fn, id });
    return id;
  }
  clearTimeout(h: unknown): void {
    this.timers = this.timers.filter((t) => t.id !== h);
  }
  advance(ms: number): void {
    const end = this.now + ms;
    for (;;) {
      this.timers.sort((a, b) => a.at - b.at);
      const t = this.timers[0];
      if (!t || t.at > end) break;
      this.timers.shift();
      this.now = t.at;
      t.fn();
    }
    this.now = end;
  }
}

describe('network-watch', () => {
  test('polls every second, reports each change once, and pokes an unresolved gateway once', async () => {
    const clock = new HandClock();
    let inputs: NetworkInputs = { ...home, interfaces: laptop };
    const seen: (string | null)[] = [];
    const poked: string[] = [];
    const w = new NetworkWatch({ read: () => inputs, poke: (a) => poked.push(a), mayPoke: () => true, onChange: (n) => seen.push(n?.id ?? null), clock });
    await w.start();
    assert.deepEqual(seen, ['gateway a4:91:b1:0c:22:7e 192.168.1.0/24']);
    clock.advance(3000);
    assert.equal(seen.length, 1, 'no change, no report');

    // Roaming: a new router whose MAC the kernel hasn't learnt.
    const route2 = ROUTE_HEAD + 'wlp2s0\t00000000\t0100000A\t0003\t0\t0\t600\t00000000\t0\t0\t0\n';
    const roamed = ifaces({ wlp2s0: [['10.0.0.5', '255.255.255.0', '3c:a9:f4:11:22:33']] });
    inputs = { route: route2, arp: ARP_HEAD, interfaces: roamed };
    clock.advance(1000);
    assert.deepEqual(seen.slice(1), [], 'asks for the new gateway and looks again before calling it a move');
    clock.advance(250);
    assert.deepEqual(seen.slice(1), [null]);
    clock.advance(3000);
    assert.deepEqual(poked, ['10.0.0.1'], 'one poke per gateway, not one a second');
    inputs = { route: route2, arp: ARP_HEAD + '10.0.0.1         0x1         0x2         00:1b:2c:3d:4e:5f     *        wlp2s0\n', interfaces: roamed };
    clock.advance(1000);
    assert.deepEqual(seen.slice(1), [null, 'gateway 00:1b:2c:3d:4e:5f 10.0.0.0/24']);
    w.stop();
    inputs = { ...home, interfaces: laptop };
    clock.advance(5000);
    assert.equal(seen.length, 3, 'stopped means no more reads');
  });

  test('the first look always counts: offline at start is reported as no network', async () => {
    const seen: (string | null)[] = [];
    const w = new NetworkWatch({
      read: () => ({ route: ROUTE_HEAD, arp: ARP_HEAD, interfaces: ifaces({}) }),
      mayPoke: () => true,
      onChange: (n) => seen.push(n?.id ?? null),
      clock: new HandClock(),
    });
    await w.start();
    w.stop();
    assert.deepEqual(seen, [null]);
  });

  test('a gateway unresolved at start is asked for once and waited for, then reported as itself', async () => {
    const clock = new HandClock();
    let arp = ARP_HEAD;
    const seen: (string | null)[] = [];
    const poked: string[] = [];
    const w = new NetworkWatch({
      read: () => ({ route: home.route, arp, interfaces: laptop }),
      poke: (a) => (poked.push(a), (arp = home.arp)),
      mayPoke: () => true,
      onChange: (n) => seen.push(n?.id ?? null),
      clock,
    });
    const started = w.start();
    for (let i = 0; i < 5; i++) await Promise.resolve();
    clock.advance(200);
    await started;
    w.stop();
    assert.deepEqual(poked, ['192.168.1.1']);
    assert.deepEqual(seen, ['gateway a4:91:b1:0c:22:7e 192.168.1.0/24'], 'no "no network" in between');
  });

  test('an idle gateway entry the kernel dropped is asked for again without reporting a move', async () => {
    const clock = new HandClock();
    let arp = home.arp;
    const seen: (string | null)[] = [];
    const w = new NetworkWatch({
      read: () => ({ route: home.route, arp, interfaces: laptop }),
      poke: () => void clock.setTimeout(() => (arp = home.arp), 20),
      mayPoke: () => true,
      onChange: (n) => seen.push(n?.id ?? null),
      clock,
    });
    await w.start();
    arp = ARP_HEAD;
    clock.advance(1000);
    clock.advance(1000);
    w.stop();
    assert.deepEqual(seen, ['gateway a4:91:b1:0c:22:7e 192.168.1.0/24'], 'no flap');
  });

  test('never pokes while pokes are not wanted (every network trusted)', async () => {
    const clock = new HandClock();
    const poked: string[] = [];
    const w = new NetworkWatch({
      read: () => ({ route: home.route, arp: ARP_HEAD, interfaces: laptop }),
      poke: (a) => poked.push(a),
      mayPoke: () => false,
      onChange: () => {},
      clock,
    });
    await w.start();
    clock.advance(10_000);
    w.stop();
    assert.deepEqual(poked, []);
  });

  test('a platform with no recogniser is one network, "unrecognised"', async () => {
    const w = new NetworkWatch({ read: () => null, mayPoke: () => true, onChange: () => {}, clock: new HandClock() });
    await w.start();
    w.stop();
    assert.equal(w.network?.id, 'unrecognised');
  });
});
