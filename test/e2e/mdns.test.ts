// mDNS discovery for real: separate network namespaces on a private bridge, each running its own
// process, talking multicast DNS only to each other. Nothing here touches the machine's own network.

import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import type { DiscoveredPeer } from '../../src/peers/discovery.ts';
import { canUseNetns, createLan, nodeBin, PROJECT_ROOT } from '../support/netns.ts';
import type { Lan, LanHost } from '../support/netns.ts';

const netns = canUseNetns();
// In CI namespaces are available, so their absence is a failure there (in before()), not a skip.
const skip = !netns.ok && !process.env.CI ? `needs network namespaces (${netns.why})` : false;

const FIXTURE = path.join(PROJECT_ROOT, 'test', 'fixtures', 'mdns-peer.ts');

type Line = Record<string, any>;

// A process inside a namespace that prints JSON lines; lets tests wait for a line that matches.
class JsonProcess {
  readonly child: ChildProcess;
  readonly lines: Line[] = [];
  stderr = '';
  #waiters: { pred: (l: Line) => boolean; resolve: (l: Line) => void }[] = [];

  constructor(child: ChildProcess) {
    this.child = child;
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (this.stderr = (this.stderr + d).slice(-20_000)));
    createInterface({ input: child.stdout! }).on('line', (text) => {
      let line: Line;
      try {
        line = JSON.parse(text);
      } catch {
        return;
      }
      this.lines.push(line);
      for (const w of [...this.#waiters]) {
        if (w.pred(line)) {
          this.#waiters.splice(this.#waiters.indexOf(w), 1);
          w.resolve(line);
        }
      }
    });
  }

  send(text: string): void {
    this.child.stdin?.write(`${text}\n`);
  }

  waitFor(pred: (l: Line) => boolean, ms: number, what: string): Promise<Line> {
    const seen = this.lines.find(pred);
    if (seen) return Promise.resolve(seen);
    return this.next(pred, ms, what);
  }

  next(pred: (l: Line) => boolean, ms: number, what: string): Promise<Line> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w.pred !== pred);
        reject(new Error(`timed out after ${ms} ms waiting for ${what}; stderr: ${this.stderr.slice(-2000)}`));
      }, ms);
      this.#waiters.push({
        pred,
        resolve: (l) => {
          clearTimeout(timer);
          resolve(l);
        },
      });
    });
  }

  exited(ms: number): Promise<number | null> {
    if (this.child.exitCode !== null) return Promise.resolve(this.child.exitCode);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`process did not exit within ${ms} ms`)), ms);
      this.child.once('exit', (code) => {
        clearTimeout(timer);
        resolve(code);
      });
    });
  }

  alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }
}

interface PeerHost {
  host: LanHost;
  id: string;
  name: string;
  port: number;
  hostName: string;
  publicKey: string;
  proc: JsonProcess;
}

// What a peer currently believes, replaying its up/down events.
function view(p: PeerHost): Map<string, DiscoveredPeer> {
  const peers = new Map<string, DiscoveredPeer>();
  for (const l of p.proc.lines) {
    if (l.event === 'up') peers.set(l.peer.id, l.peer);
    if (l.event === 'down') peers.delete(l.id);
  }
  return peers;
}

async function askPeers(p: PeerHost): Promise<DiscoveredPeer[]> {
  const seq = p.proc.lines.length;
  p.proc.send('peers');
  const line = await p.proc.next((l) => l.event === 'peers' && p.proc.lines.indexOf(l) >= seq, 5000, 'peers list');
  return line.peers as DiscoveredPeer[];
}

const hex = (n: number): string => randomBytes(n).toString('hex');
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

// Sends whatever mDNS the test asks for, through bonjour-service or multicast-dns directly.
const ANNOUNCER = `
import Bonjour from 'bonjour-service';
import makeMdns from 'multicast-dns';
import dgram from 'node:dgram';
import { createInterface } from 'node:readline';
const say = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
const bonjour = new Bonjour({}, (e) => say({ event: 'error', message: String(e) }));
const mdns = makeMdns();
mdns.on('error', (e) => say({ event: 'error', message: String(e) }));
mdns.on('warning', () => {});
const raw = dgram.createSocket({ type: 'udp4', reuseAddr: true });
const bytes = (v) => (v && typeof v === 'object' && 'hex' in v ? Buffer.from(v.hex, 'hex') : v);
const record = (r) => (r.type === 'TXT' ? { ...r, data: r.data.map(bytes) } : r);
createInterface({ input: process.stdin }).on('line', (text) => {
  const cmd = JSON.parse(text);
  const done = (err) => say({ event: 'done', seq: cmd.seq, error: err ? String(err) : null });
  try {
    if (cmd.op === 'publish') {
      bonjour.publish({ ...cmd.service, probe: false });
      setTimeout(done, 300);
    } else if (cmd.op === 'respond') {
      mdns.respond({ answers: cmd.answers.map(record), additionals: (cmd.additionals || []).map(record) }, done);
    } else if (cmd.op === 'bytes') {
      raw.send(Buffer.from(cmd.hex, 'hex'), 5353, '224.0.0.251', done);
    }
  } catch (err) {
    done(err);
  }
});
say({ event: 'ready' });
`;

class Announcer {
  readonly proc: JsonProcess;
  #seq = 0;
  constructor(host: LanHost) {
    this.proc = new JsonProcess(host.exec(nodeBin(), ['--input-type=module', '-e', ANNOUNCER], { cwd: PROJECT_ROOT, stdio: ['pipe', 'pipe', 'pipe'] }));
  }
  async do(cmd: Record<string, unknown>): Promise<void> {
    const seq = ++this.#seq;
    this.proc.send(JSON.stringify({ ...cmd, seq }));
    const line = await this.proc.next((l) => l.event === 'done' && l.seq === seq, 5000, `announcer step ${seq}`);
    if (line.error) throw new Error(`announcer: ${line.error}`);
  }
}

// The records one DNS-SD service consists of, as multicast-dns takes them.
function serviceRecords(o: {
  instance: string;
  host: string;
  port: number;
  txt: (string | { hex: string })[];
  addresses: string[];
  ttl?: number;
}): Record<string, unknown>[] {
  const ttl = o.ttl ?? 120;
  const fqdn = `${o.instance}._peernix._tcp.local`;
  return [
    { name: '_peernix._tcp.local', type: 'PTR', ttl, data: fqdn },
    { name: fqdn, type: 'SRV', ttl, data: { port: o.port, target: o.host } },
    { name: fqdn, type: 'TXT', ttl, data: o.txt },
    ...o.addresses.map((a) => ({ name: o.host, type: 'A', ttl, data: a })),
  ];
}

// A sequence on one LAN: later cases follow the peers as earlier ones moved, renamed or stopped them.
describe('mDNS discovery between network namespaces', { skip, timeout: 180_000 }, () => {
  let lan: Lan | undefined;
  const peers: PeerHost[] = [];
  let tmp: string | undefined;

  before(async () => {
    if (!netns.ok) throw new Error(`network namespaces are required in CI: ${netns.why}`);
    tmp = mkdtempSync(path.join(os.tmpdir(), 'pnx-mdns-'));
    // 1–3: Peernix peers; 4: a scripted (and sometimes hostile) announcer; 5: Avahi.
    lan = await createLan(5);
    for (const host of lan.hosts.slice(0, 3)) {
      const i = host.index;
      const p = {
        host,
        id: `${hex(4)}-e2e-peer-${i}`,
        name: `Peer ${i}`,
        port: 37_500 + i,
        hostName: `${lan.name}h${i}`,
        publicKey: `peer-${i}-1:${randomBytes(32).toString('base64')}`,
      };
      const child = host.exec(nodeBin(), [FIXTURE, p.id, p.name, String(p.port), p.hostName, p.publicKey], {
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      peers.push({ ...p, proc: new JsonProcess(child) });
    }
    await Promise.all(peers.map((p) => p.proc.waitFor((l) => l.event === 'started', 10_000, 'fixture start')));
  });

  after(async () => {
    await lan?.teardown();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('three hosts find each other by mDNS alone, and never themselves', { timeout: 20_000 }, async () => {
    await Promise.all(
      peers.map(async (me) => {
        for (const other of peers.filter((p) => p !== me)) {
          await me.proc.waitFor((l) => l.event === 'up' && l.peer.id === other.id, 10_000, `${me.name} to see ${other.name}`);
        }
      }),
    );
    for (const me of peers) {
      assert.ok(!me.proc.lines.some((l) => l.event === 'up' && l.peer.id === me.id), `${me.name} reported itself`);
      const seen = view(me);
      assert.equal(seen.size, 2, `${me.name} sees ${[...seen.keys()].join(', ')}`);
      for (const other of peers.filter((p) => p !== me)) {
        assert.deepEqual(seen.get(other.id), {
          key: `peer-${other.host.index}-${other.id.slice(0, 8)}._peernix._tcp.local`.toLowerCase(),
          id: other.id,
          name: other.name,
          address: other.host.address,
          port: other.port,
          url: `http://${other.host.address}:${other.port}`,
          publicKey: other.publicKey,
          platform: 'linux',
        });
      }
      const listed = (await askPeers(me)).sort((a, b) => a.id.localeCompare(b.id));
      assert.deepEqual(
        listed,
        [...seen.values()].sort((a, b) => a.id.localeCompare(b.id)),
      );
    }
  });

  it('Avahi resolves our services (name, address, port, TXT), and we find what Avahi publishes', { timeout: 60_000 }, async (t) => {
    const host = lan!.hosts[4];
    const dir = mkdtempSync(path.join(tmp!, 'avahi-'));
    const bus = path.join(dir, 'bus');
    writeFileSync(
      path.join(dir, 'bus.conf'),
      `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=${bus}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
`,
    );
    const avahiHost = `${lan!.name}av`;
    writeFileSync(
      path.join(dir, 'avahi-daemon.conf'),
      `[server]
host-name=${avahiHost}
domain-name=local
use-ipv4=yes
use-ipv6=no
allow-interfaces=eth0
enable-dbus=yes
[wide-area]
enable-wide-area=no
[publish]
publish-hinfo=no
publish-workstation=no
[reflector]
enable-reflector=no
`,
    );
    const env = { ...process.env, DBUS_SYSTEM_BUS_ADDRESS: `unix:path=${bus}` };

    const started: ChildProcess[] = [];
    t.after(async () => {
      for (const child of started.reverse()) {
        if (child.exitCode !== null || child.signalCode !== null) continue;
        child.kill('SIGTERM');
        await new Promise((resolve) => {
          const timer = setTimeout(() => {
            child.kill('SIGKILL');
            resolve(undefined);
          }, 3000);
          child.once('exit', () => {
            clearTimeout(timer);
            resolve(undefined);
          });
        });
      }
    });
    const waitOutput = (child: ChildProcess, stream: 'stdout' | 'stderr', pattern: RegExp, what: string) =>
      new Promise<void>((resolve, reject) => {
        let text = '';
        const timer = setTimeout(() => reject(new Error(`${what} did not start: ${text.slice(-2000)}`)), 10_000);
        child[stream]?.setEncoding('utf8').on('data', (d: string) => {
          text += d;
          if (pattern.test(text)) {
            clearTimeout(timer);
            resolve();
          }
        });
        child.once('exit', (code) => reject(new Error(`${what} exited (${code}): ${text.slice(-2000)}`)));
      });

    // A private system bus: the machine's own bus (if any) is never involved.
    const dbus = host.exec('dbus-daemon', ['--config-file', path.join(dir, 'bus.conf'), '--nofork', '--print-address'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    started.push(dbus);
    await waitOutput(dbus, 'stdout', /unix:path=/, 'dbus-daemon');

    // `ip netns exec` gives the command its own mount namespace: a fresh /run keeps avahi's fixed pid
    // file (/run/avahi-daemon/pid) away from any other avahi-daemon, and an empty services directory
    // keeps the machine's static services out of the test.
    const avahi = host.exec(
      'sh',
      [
        '-c',
        'mount -t tmpfs -o mode=0755 tmpfs /run && ' +
          '{ [ ! -d /etc/avahi/services ] || mount -t tmpfs tmpfs /etc/avahi/services; } && ' +
          'exec avahi-daemon --no-drop-root --no-chroot --no-rlimits --no-proc-title -f "$0"',
        path.join(dir, 'avahi-daemon.conf'),
      ],
      { env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    started.push(avahi);
    await waitOutput(avahi, 'stderr', /Server startup complete/, 'avahi-daemon');

    // Our three services, as Avahi resolves them.
    type Resolved = { name: string; host: string; address: string; port: number; txt: string[] };
    let resolved: Resolved[] = [];
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      const out = await host.run('avahi-browse', ['-rpt', '_peernix._tcp'], { env, timeoutMs: 15_000 });
      resolved = out.stdout
        .split('\n')
        .filter((l) => l.startsWith('='))
        .map((l) => {
          const f = l.split(';');
          const txt = [
            ...f
              .slice(9)
              .join(';')
              .matchAll(/"((?:[^"\\]|\\.)*)"/g),
          ].map((m) => m[1]);
          return { name: f[3], host: f[6], address: f[7], port: Number(f[8]), txt };
        });
      if (peers.every((p) => resolved.some((r) => r.port === p.port))) break;
      await sleep(500);
    }
    for (const p of peers) {
      const r = resolved.find((x) => x.port === p.port);
      assert.ok(r, `avahi-browse did not resolve ${p.name}: ${JSON.stringify(resolved)}`);
      assert.equal(r.name, `Peer-${p.host.index}-${p.id.slice(0, 8)}`);
      assert.equal(r.host, `${p.hostName}.local`);
      assert.equal(r.address, p.host.address);
      assert.deepEqual(r.txt.sort(), [`id=${p.id}`, `name=${p.name}`, 'os=linux', `pk=${p.publicKey}`, 'v=1'].sort());
    }

    // The other way: a service Avahi announces is a peer to us, and its withdrawal a goodbye.
    const avahiId = `${hex(4)}-from-avahi`;
    const publisher = host.exec('avahi-publish', ['-s', 'Avahi Peer', '_peernix._tcp', '37600', 'v=1', `id=${avahiId}`, 'name=Avahi Peer', 'os=linux'], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    started.push(publisher);
    for (const me of peers) {
      const line = await me.proc.waitFor((l) => l.event === 'up' && l.peer.id === avahiId, 15_000, `${me.name} to see Avahi's service`);
      assert.equal(line.peer.address, host.address);
      assert.equal(line.peer.port, 37600);
      assert.equal(line.peer.name, 'Avahi Peer');
    }
    publisher.kill('SIGTERM'); // avahi-publish withdraws its service (goodbye) on exit
    for (const me of peers) {
      await me.proc.waitFor((l) => l.event === 'down' && l.id === avahiId, 5000, `${me.name} to see Avahi's goodbye`);
    }
  });

  it('follows a service whose port or address changes, and drops it on goodbye', { timeout: 30_000 }, async () => {
    const announcer = new Announcer(lan!.hosts[3]);
    await announcer.proc.waitFor((l) => l.event === 'ready', 10_000, 'announcer');
    const id = `${hex(4)}-moving-peer`;
    const base = lan!.hosts[0].address.replace(/\.\d+$/, '');
    const svc = { instance: 'mover', host: `${lan!.name}mv.local`, txt: ['v=1', `id=${id}`, 'name=Mover'] };
    const expectUp = async (address: string, port: number): Promise<void> => {
      for (const me of peers) {
        await me.proc.waitFor(
          (l) => l.event === 'up' && l.peer.id === id && l.peer.address === address && l.peer.port === port,
          5000,
          `${me.name} to see mover at ${address}:${port}`,
        );
      }
    };

    await announcer.do({ op: 'respond', answers: serviceRecords({ ...svc, port: 4000, addresses: [`${base}.201`] }) });
    await expectUp(`${base}.201`, 4000);
    // New port: an SRV change.
    await announcer.do({ op: 'respond', answers: serviceRecords({ ...svc, port: 4001, addresses: [`${base}.201`] }) });
    await expectUp(`${base}.201`, 4001);
    // New address, same SRV: bonjour-service's browser alone would keep the old address.
    await announcer.do({ op: 'respond', answers: serviceRecords({ ...svc, port: 4001, addresses: [`${base}.202`] }) });
    await expectUp(`${base}.202`, 4001);
    // Only the host's address records: the old address withdrawn (TTL 0), a new one announced.
    await announcer.do({
      op: 'respond',
      answers: [
        { name: svc.host, type: 'A', ttl: 0, data: `${base}.202` },
        { name: svc.host, type: 'A', ttl: 120, data: `${base}.203` },
      ],
    });
    await expectUp(`${base}.203`, 4001);
    // Goodbye: every record with TTL 0.
    await announcer.do({ op: 'respond', answers: serviceRecords({ ...svc, port: 4001, addresses: [`${base}.203`], ttl: 0 }) });
    for (const me of peers) await me.proc.waitFor((l) => l.event === 'down' && l.id === id, 5000, `${me.name}: mover down`);
    announcer.proc.child.kill('SIGTERM');
  });

  it('a host whose own address changes re-announces, and the others follow', { timeout: 60_000 }, async () => {
    const moving = peers[2];
    const others = peers.filter((p) => p !== moving);
    const original = moving.host.address;
    const moved = original.replace(/\.\d+$/, '.33');
    // Deleting an interface's primary address would also delete the secondary one we just added.
    const promote = await moving.host.run('sh', ['-c', 'echo 1 > /proc/sys/net/ipv4/conf/eth0/promote_secondaries']);
    assert.equal(promote.code, 0, promote.stderr);
    const readdress = async (add: string, del: string): Promise<void> => {
      for (const args of [
        ['addr', 'add', `${add}/24`, 'dev', 'eth0'],
        ['addr', 'del', `${del}/24`, 'dev', 'eth0'],
      ]) {
        const r = await moving.host.run('ip', args);
        assert.equal(r.code, 0, r.stderr);
      }
    };
    // Waiters are registered before the change, so no event can slip past them.
    const expectAt = (address: string): Promise<Line[]> =>
      Promise.all(
        others.map((me) =>
          me.proc.next(
            (l) => l.event === 'up' && l.peer.id === moving.id && l.peer.address === address,
            15_000,
            `${me.name} to see ${moving.name} at ${address}`,
          ),
        ),
      );
    const seenMoved = expectAt(moved);
    await readdress(moved, original);
    await seenMoved;
    const seenBack = expectAt(original);
    await readdress(original, moved);
    await seenBack;
  });

  it('a host that announces a new share port is followed', { timeout: 20_000 }, async () => {
    const moving = peers[1];
    const others = peers.filter((p) => p !== moving);
    const newPort = moving.port + 100;
    const seen = Promise.all(
      others.map((me) =>
        me.proc.next(
          (l) => l.event === 'up' && l.peer.id === moving.id && l.peer.port === newPort,
          10_000,
          `${me.name} to see ${moving.name} on port ${newPort}`,
        ),
      ),
    );
    moving.proc.send(`publish ${newPort}`);
    for (const line of await seen) assert.equal(line.peer.address, moving.host.address);
    moving.port = newPort;
  });

  it('a host that stops (SIGTERM) says goodbye: the others see it down within 2 s', { timeout: 20_000 }, async () => {
    const [leaving, ...staying] = peers;
    const sentAt = Date.now();
    leaving.proc.child.kill('SIGTERM');
    await Promise.all(staying.map((me) => me.proc.waitFor((l) => l.event === 'down' && l.id === leaving.id, 2000, `${me.name} to see ${leaving.name} leave`)));
    const elapsed = Date.now() - sentAt;
    assert.ok(elapsed < 2000, `down after ${elapsed} ms`);
    assert.equal(await leaving.proc.exited(5000), 0);
    assert.ok(leaving.proc.lines.some((l) => l.event === 'stopped'));
    for (const me of staying) {
      assert.ok(!(await askPeers(me)).some((p) => p.id === leaving.id));
      assert.ok((await askPeers(me)).some((p) => p.id === staying.find((s) => s !== me)!.id));
    }
  });

  it('hostile announcements are ignored or made harmless, and nothing crashes', { timeout: 60_000 }, async (t) => {
    const observers = peers.slice(1); // peer 1 left in the previous test
    const hostileHost = lan!.hosts[3];
    const announcer = new Announcer(hostileHost);
    await announcer.proc.waitFor((l) => l.event === 'ready', 10_000, 'announcer');
    const base = hostileHost.address.replace(/\.\d+$/, '');
    const ids = {
      badVersion: `${hex(4)}-bad-version`,
      oversize: `${hex(4)}-oversize-txt`,
      loopback: `${hex(4)}-loopback-addr`,
      foreign: `${hex(4)}-foreign-addr`,
      noAddress: `${hex(4)}-no-address`,
      portZero: `${hex(4)}-port-zero-x`,
      impostor: observers[0].id, // claims to be one of the observers
      weird: `${hex(4)}-weird-but-ok`,
    };
    const hostileName = `${lan!.name}hx.local`;

    // Through bonjour-service itself, with junk TXT records.
    const publish = (name: string, port: number, txt: Record<string, string>) =>
      announcer.do({ op: 'publish', service: { name, type: 'peernix', port, host: hostileName, txt } });
    await publish('junk-id', 4100, { v: '1', id: 'short', name: 'x' });
    await publish('junk-version', 4101, { v: '2', id: ids.badVersion });
    // A 300-byte TXT string: dns-packet writes its length byte modulo 256, so the packet is malformed.
    await publish('junk-oversize', 4102, { v: '1', id: ids.oversize, name: 'x'.repeat(300) });
    // Hand-made records.
    const valid = (id: string) => ['v=1', `id=${id}`, 'name=Hostile'];
    const send = (instance: string, port: number, txt: (string | { hex: string })[], addresses: string[]) =>
      announcer.do({ op: 'respond', answers: serviceRecords({ instance, host: `${instance}.local`, port, txt, addresses }) });
    await send('loopback', 4200, valid(ids.loopback), ['127.0.0.1']);
    await send('foreign', 4201, valid(ids.foreign), ['198.51.100.7']); // TEST-NET-2: not on this LAN
    await send('no-address', 4202, valid(ids.noAddress), []);
    await send('port-zero', 0, valid(ids.portZero), [`${base}.210`]);
    await send('impostor', 4203, valid(ids.impostor), [`${base}.211`]);
    const junkTxt = Array.from({ length: 200 }, () => ({ hex: hex(1 + Math.floor(Math.random() * 200)) }));
    await send('binary-junk', 4204, [...junkTxt, 'v=1'], [`${base}.212`]);
    await send('prototype', 4205, ['__proto__=x', 'constructor=y', 'v=1', 'id=\u0000\u0000'], [`${base}.213`]);
    const longTxt = ['v=1', `id=${'z'.repeat(64)}`, `name=${'n'.repeat(240)}`];
    await send(`${'very-long-label-'.repeat(3)}x`, 4206, longTxt, [`${base}.214`]);
    // Raw garbage on the mDNS port.
    for (let i = 0; i < 20; i++) await announcer.do({ op: 'bytes', hex: randomBytes(12 + i * 40).toString('hex') });
    // Last, a usable peer with a spoofing-prone name and a junk key: accepted, with the junk removed.
    const weirdTxt = ['v=1', `id=${ids.weird}`, 'name=\u0007Mallory\u202Egnp.exe', 'pk=not-a-key', 'os=../../etc'];
    await send('weird', 4207, weirdTxt, [`${base}.215`]);

    for (const me of observers) {
      const line = await me.proc.waitFor((l) => l.event === 'up' && l.peer.id === ids.weird, 10_000, `${me.name}: weird peer`);
      assert.deepEqual(line.peer, {
        key: 'weird._peernix._tcp.local',
        id: ids.weird,
        name: 'Mallorygnp.exe',
        address: `${base}.215`,
        port: 4207,
        url: `http://${base}.215:4207`,
        publicKey: null,
        platform: null,
      });
    }
    await sleep(1500); // anything the A-record queries for "no-address" might bring back
    const rejected = [ids.badVersion, ids.oversize, ids.loopback, ids.foreign, ids.noAddress, ids.portZero];
    for (const me of observers) {
      assert.ok(me.proc.alive(), `${me.name} died: ${me.proc.stderr}`);
      const ups = me.proc.lines.filter((l) => l.event === 'up').map((l) => l.peer as DiscoveredPeer);
      for (const id of rejected) assert.ok(!ups.some((p) => p.id === id), `${me.name} accepted ${id}`);
      assert.ok(!ups.some((p) => p.id === me.id), `${me.name} accepted an impostor of itself`);
      assert.ok(!ups.some((p) => p.address.startsWith('127.') || p.port === 0));
      const errors = me.proc.lines.filter((l) => l.event === 'error');
      assert.deepEqual(errors, []);
    }
    // A second service claiming a known id does not redirect the first: each is reported under its own
    // service name, and the registry decides between them by proof (registry-identity.test.ts).
    const claimants = (await askPeers(observers[1])).filter((p) => p.id === ids.impostor);
    assert.ok(
      claimants.some((p) => p.address === observers[0].host.address && p.port === observers[0].port),
      JSON.stringify(claimants),
    );

    // A flood of distinct, valid services from one host: it holds at most its quota (64 / 4) of the table.
    for (let batch = 0; batch < 10; batch++) {
      const answers = [];
      for (let i = 0; i < 10; i++) {
        const n = batch * 10 + i;
        const records = serviceRecords({
          instance: `flood-${n}`,
          host: `flood-${n}.local`,
          port: 5000 + n,
          txt: valid(`${hex(4)}-flood-${n}-xxxx`),
          addresses: [`${base}.${20 + n}`],
        });
        answers.push(...records);
      }
      await announcer.do({ op: 'respond', answers });
    }
    await sleep(1500);
    for (const me of observers) {
      assert.ok(me.proc.alive(), `${me.name} died: ${me.proc.stderr}`);
      const listed = await askPeers(me);
      const flood = listed.filter((p) => p.id.includes('-flood-'));
      t.diagnostic(`${me.name}: ${listed.length} services listed, ${flood.length} of them from the flood`);
      assert.ok(listed.length <= 64, `${me.name} holds ${listed.length} peers`);
      assert.ok(flood.length >= 1 && flood.length <= 16, `${me.name} holds ${flood.length} flood services`);
      assert.ok(
        listed.some((p) => p.id === observers.find((o) => o !== me)!.id),
        'a real peer was pushed out',
      );
    }
    announcer.proc.child.kill('SIGTERM');
  });
});
