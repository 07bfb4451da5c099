// A private LAN for end-to-end tests: one bridge with no address and no uplink, and N network
// namespaces plugged into it. Multicast (mDNS) floods between the namespaces and never reaches the
// machine's real network, because nothing connects the bridge to it.
//
// Every name starts with "pnx" followed by the creating process's pid (base 36), so parallel runs
// cannot collide and leftovers of a crashed run can be recognised and removed.

import { execFile, spawn, spawnSync } from 'node:child_process';
import { it } from 'node:test';
import type { ChildProcess, SpawnOptions } from 'node:child_process';
import { existsSync, realpathSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

export const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

const PREFIX = 'pnx';
// pnx + pid (5 base-36 digits) + run tag (2) + role: b bridge, n<i> namespace, v<i> veth, t probe.
const NAME = /^pnx([0-9a-z]{5})([0-9a-z]{2})(b|t|n\d{1,2}|v\d{1,2})$/;
const MAX_HOSTS = 99;

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  input?: string;
  timeoutMs?: number; // default 30 s; the process is killed after it
}

export interface LanHost {
  ns: string;
  index: number; // 1-based
  address: string; // 10.x.y.<index>
  prefixLength: number; // 24
  /** eth0's IPv6 link-local address (DAD done): every LAN here is dual-stack, as real ones are. */
  linkLocal: string;
  exec(cmd: string, args: string[], opts?: SpawnOptions): ChildProcess;
  run(cmd: string, args: string[], opts?: RunOptions): Promise<RunResult>;
}

export interface Lan {
  name: string; // the bridge
  subnet: string; // "10.x.y.0/24"
  hosts: LanHost[];
  teardown(): Promise<void>;
}

// Processes run in namespaces must be Node 24 (type stripping); the machine's own node is older.
export function nodeBin(): string {
  if (process.versions.node.split('.')[0] === '24') return process.execPath;
  const bin = path.join(PROJECT_ROOT, 'node_modules', '.bin', 'node');
  if (!existsSync(bin)) throw new Error(`netns: ${bin} is missing; run npm install`);
  return realpathSync(bin);
}

function ipSync(args: string[]): { ok: boolean; out: string; err: string } {
  const r = spawnSync('ip', args, { encoding: 'utf8', timeout: 10_000 });
  return { ok: r.status === 0, out: r.stdout ?? '', err: r.error ? r.error.message : (r.stderr ?? '') };
}

async function ip(args: string[]): Promise<string> {
  try {
    const { stdout } = await execFileP('ip', args, { timeout: 15_000 });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`ip ${args.join(' ')}: ${(e.stderr || e.message).trim()}`);
  }
}

function tag(): string {
  const pid = process.pid.toString(36).padStart(5, '0').slice(-5);
  const run = Math.floor(Math.random() * 36 * 36)
    .toString(36)
    .padStart(2, '0');
  return `${PREFIX}${pid}${run}`;
}

/**
 * For a describe() whose hosts live in network namespaces: where they can't be made (not root, not
 * Linux) it adds one skipped test that says why and returns true — except in CI, where they must run.
 */
export function skippedWithoutNetns(): boolean {
  const netns = canUseNetns();
  if (netns.ok) return false;
  if (process.env.CI) throw new Error(`network namespaces are required in CI: ${netns.why}`);
  it(`needs root and network namespaces (${netns.why})`, { skip: netns.why }, () => {});
  return true;
}

export function canUseNetns(): { ok: boolean; why?: string } {
  if (process.platform !== 'linux') return { ok: false, why: 'network namespaces need Linux' };
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
    return { ok: false, why: 'network namespaces need root' };
  }
  const version = ipSync(['-V']);
  if (!version.ok) return { ok: false, why: `iproute2 "ip" is not usable: ${version.err.trim()}` };
  const probe = `${tag()}t`;
  const add = ipSync(['netns', 'add', probe]);
  if (!add.ok) return { ok: false, why: `cannot create a network namespace: ${add.err.trim()}` };
  const del = ipSync(['netns', 'del', probe]);
  if (!del.ok) return { ok: false, why: `cannot delete network namespace ${probe}: ${del.err.trim()}` };
  return { ok: true };
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function listNamespaces(): Promise<string[]> {
  const out = await ip(['netns', 'list']);
  return out
    .split('\n')
    .map((line) => line.trim().split(/\s+/)[0])
    .filter((name) => name);
}

async function listLinks(): Promise<string[]> {
  const out = await ip(['-o', 'link', 'show']);
  return out
    .split('\n')
    .map((line) => /^\d+:\s+([^:@\s]+)/.exec(line)?.[1])
    .filter((name): name is string => !!name);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// Processes still inside a namespace we created (daemons a tracked shell spawned, say).
async function killNamespacePids(ns: string): Promise<void> {
  let pids: number[] = [];
  try {
    pids = (await ip(['netns', 'pids', ns])).split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return;
  }
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  if (pids.length > 0) await sleep(100);
}

// Removes namespaces, veths and bridges this helper made for a process that no longer exists.
export async function removeStaleLans(): Promise<string[]> {
  const removed: string[] = [];
  const stale = (name: string): boolean => {
    const m = NAME.exec(name);
    return !!m && !pidAlive(parseInt(m[1], 36));
  };
  try {
    for (const ns of (await listNamespaces()).filter(stale)) {
      await killNamespacePids(ns);
      await ip(['netns', 'del', ns]).catch(() => {});
      removed.push(ns);
    }
    for (const link of (await listLinks()).filter(stale)) {
      await ip(['link', 'del', link]).catch(() => {});
      removed.push(link);
    }
  } catch {
    // Best effort: a failure here must not stop a test run from making its own LAN.
  }
  return removed;
}

async function subnetsInUse(): Promise<Set<string>> {
  const used = new Set<string>();
  const collect = (text: string): void => {
    for (const m of text.matchAll(/\binet (10\.\d+\.\d+)\.\d+\//g)) used.add(m[1]);
  };
  collect(await ip(['-4', '-o', 'addr', 'show']).catch(() => ''));
  for (const ns of await listNamespaces().catch(() => [])) {
    if (ns.startsWith(PREFIX)) collect(await ip(['-n', ns, '-4', '-o', 'addr', 'show']).catch(() => ''));
  }
  return used;
}

async function pickSubnet(): Promise<string> {
  const used = await subnetsInUse();
  for (let attempt = 0; attempt < 200; attempt++) {
    const candidate = `10.${77 + Math.floor(Math.random() * 23)}.${Math.floor(Math.random() * 256)}`;
    if (!used.has(candidate)) return candidate;
  }
  throw new Error('netns: no free /24 in 10.77–10.99');
}

function setSysctl(file: string, value: string): void {
  // IPv6 may be disabled entirely, in which case the file is absent and there is nothing to do.
  if (existsSync(file)) writeFileSync(file, value);
}

/** eth0's link-local address once DAD has passed; throws when IPv6 is not on after 10 s. */
async function linkLocalReady(ns: string): Promise<string> {
  const deadline = Date.now() + 10_000;
  let last = '';
  while (Date.now() < deadline) {
    last = await ip(['-n', ns, '-6', '-o', 'addr', 'show', 'dev', 'eth0', 'scope', 'link']).catch((e: Error) => e.message);
    const m = /inet6 (fe80:[0-9a-f:]+)\/64 /.exec(last);
    if (m && !/tentative|dadfailed/.test(last)) return m[1];
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`netns ${ns}: no usable IPv6 link-local address on eth0 after 10 s (${last.trim() || 'none'})`);
}

function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

export async function createLan(n: number): Promise<Lan> {
  if (!Number.isInteger(n) || n < 1 || n > MAX_HOSTS) throw new RangeError(`netns: 1–${MAX_HOSTS} hosts`);
  await removeStaleLans();

  const base = tag();
  const bridge = `${base}b`;
  const subnet = await pickSubnet();
  const children = new Set<ChildProcess>();
  const namespaces: string[] = [];
  const veths: string[] = [];
  let bridgeMade = false;
  let tornDown: Promise<void> | null = null;

  const teardown = (): Promise<void> => {
    tornDown ??= (async () => {
      const errors: string[] = [];
      const running = [...children];
      for (const child of running) child.kill('SIGTERM');
      const exited = await Promise.all(running.map((c) => waitExit(c, 3000)));
      running.forEach((child, i) => {
        if (!exited[i]) child.kill('SIGKILL');
      });
      await Promise.all(running.map((c, i) => (exited[i] ? true : waitExit(c, 2000))));
      for (const ns of namespaces) await killNamespacePids(ns);
      for (const veth of veths) await ip(['link', 'del', veth]).catch(() => {}); // also removes eth0 inside
      for (const ns of namespaces) await ip(['netns', 'del', ns]).catch((e: Error) => errors.push(e.message));
      if (bridgeMade) await ip(['link', 'del', bridge]).catch((e: Error) => errors.push(e.message));
      if (errors.length > 0) throw new Error(`netns teardown: ${errors.join('; ')}`);
    })();
    return tornDown;
  };

  const makeHost = (index: number, ns: string): LanHost => {
    const exec = (cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess => {
      const child = spawn('ip', ['netns', 'exec', ns, cmd, ...args], opts);
      // `ip netns exec` execs the command in place, so this pid is the command's own.
      children.add(child);
      child.once('exit', () => children.delete(child));
      child.on('error', () => children.delete(child));
      return child;
    };
    const run = (cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> =>
      new Promise((resolve) => {
        const child = exec(cmd, args, { env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
        child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
        const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
        child.on('error', (err) => {
          clearTimeout(timer);
          resolve({ code: null, signal: null, stdout, stderr: stderr + err.message });
        });
        child.on('close', (code, signal) => {
          clearTimeout(timer);
          resolve({ code, signal, stdout, stderr });
        });
        // A command that exits without reading its input (tc, ip) makes the write fail with EPIPE: not its failure.
        child.stdin?.on('error', () => {});
        child.stdin?.end(opts.input ?? '');
      });
    return { ns, index, address: `${subnet}.${index}`, prefixLength: 24, linkLocal: '', exec, run };
  };

  try {
    await ip(['link', 'add', bridge, 'type', 'bridge']);
    bridgeMade = true;
    // The bridge only joins namespaces: no addresses on it, so the host itself is not on this LAN.
    setSysctl(`/proc/sys/net/ipv6/conf/${bridge}/disable_ipv6`, '1');
    // Without IGMP queriers, snooping would stop multicast between the namespaces.
    writeFileSync(`/sys/class/net/${bridge}/bridge/multicast_snooping`, '0');
    await ip(['link', 'set', bridge, 'up']);

    const hosts: LanHost[] = [];
    for (let i = 1; i <= n; i++) {
      const ns = `${base}n${i}`;
      const veth = `${base}v${i}`;
      await ip(['netns', 'add', ns]);
      namespaces.push(ns);
      await ip(['link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
      veths.push(veth);
      setSysctl(`/proc/sys/net/ipv6/conf/${veth}/disable_ipv6`, '1');
      await ip(['link', 'set', veth, 'master', bridge]);
      await ip(['link', 'set', veth, 'up']);
      await ip(['-n', ns, 'addr', 'add', `${subnet}.${i}/24`, 'dev', 'eth0']);
      await ip(['-n', ns, 'link', 'set', 'eth0', 'up']);
      await ip(['-n', ns, 'link', 'set', 'lo', 'up']);
      // Without a route for multicast, sends to 224.0.0.251 fail with ENETUNREACH.
      await ip(['-n', ns, 'route', 'add', '224.0.0.0/4', 'dev', 'eth0']);
      // Real LANs carry IPv6 link-local addresses, and some clients pick those (docs testing.md): on in
      // every namespace, whatever the machine's defaults say.
      await ip(['netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=0', 'net.ipv6.conf.eth0.disable_ipv6=0']);
      hosts.push(makeHost(i, ns));
    }
    // Duplicate address detection holds a new address "tentative" (unusable) for about a second.
    for (const h of hosts) h.linkLocal = await linkLocalReady(h.ns);
    return { name: bridge, subnet: `${subnet}.0/24`, hosts, teardown };
  } catch (err) {
    await teardown().catch(() => {});
    throw err;
  }
}
