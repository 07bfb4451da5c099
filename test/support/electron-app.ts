// Test support: the built tray app's main process (dist/electron/main.js) under plain Node, with
// `electron` resolved to the stand-in in ./electron-stub. Drives it over the child's IPC channel.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { PROJECT_ROOT } from './peernix-process.ts';
import type { StubCommand, StubMessage, StubState } from './electron-stub/protocol.ts';

export const APP_MAIN = path.join(PROJECT_ROOT, 'dist/electron/main.js');
const REGISTER = path.join(PROJECT_ROOT, 'test/support/electron-stub/register.ts');

export interface AppProcess {
  proc: ChildProcess;
  logs(): string;
  events: { what: string; detail?: unknown }[];
  send(c: StubCommand): Promise<unknown>;
  state(): Promise<StubState>;
  /** Polls the state until `pick` returns something truthy. */
  waitFor<T>(what: string, pick: (s: StubState) => T | null | undefined | false, ms?: number): Promise<T>;
  click(label: string): Promise<{ checked: boolean }>;
  invoke(channel: string, senderUrl: string, ...args: unknown[]): Promise<unknown>;
  /** Resolves with the exit code (or the signal) once the process is gone. */
  exited: Promise<number | string | null>;
  kill(): void;
}

export function startApp(env: NodeJS.ProcessEnv, args: string[] = [], main = APP_MAIN): AppProcess {
  const proc = spawn(process.execPath, ['--import', REGISTER, main, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  let log = '';
  proc.stdout!.on('data', (d) => (log += d));
  proc.stderr!.on('data', (d) => (log += d));
  const events: AppProcess['events'] = [];
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  let nextId = 1;
  proc.on('message', (m: StubMessage) => {
    if (m.type === 'event') events.push({ what: m.what, detail: m.detail });
    else {
      const p = pending.get(m.id);
      pending.delete(m.id);
      if (m.ok) p?.resolve(m.value);
      else p?.reject(new Error(m.error));
    }
  });
  const exited = once(proc, 'exit').then(([code, signal]) => {
    for (const p of pending.values()) p.reject(new Error(`app exited (${code ?? signal})\n${log}`));
    pending.clear();
    return (code as number | null) ?? (signal as string | null);
  });
  const send = (c: StubCommand) =>
    new Promise<unknown>((resolve, reject) => {
      if (!proc.connected) return reject(new Error(`app is not running\n${log}`));
      const id = nextId++;
      pending.set(id, { resolve, reject });
      proc.send({ id, ...c });
    });
  const state = () => send({ cmd: 'state' }) as Promise<StubState>;
  return {
    proc,
    logs: () => log,
    events,
    send,
    state,
    async waitFor(what, pick, ms = 30_000) {
      const deadline = Date.now() + ms;
      let last: StubState | null = null;
      while (Date.now() < deadline) {
        last = await state();
        const v = pick(last);
        if (v) return v;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`timed out waiting for ${what}; tray: ${JSON.stringify(last?.tray)}\n${log}`);
    },
    click: (label) => send({ cmd: 'click', label }) as Promise<{ checked: boolean }>,
    invoke: (channel, senderUrl, ...args) => send({ cmd: 'invoke', channel, senderUrl, args }),
    exited,
    kill() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    },
  };
}

/** The status line: the first (disabled) item of the tray menu. */
export function statusLine(s: StubState): string {
  return s.tray?.menu[0]?.label ?? '';
}

export function menuItem(s: StubState, label: string) {
  return s.tray?.menu.find((i) => i.label === label) ?? null;
}

/** Pids of processes whose parent is `pid` (from /proc), to check that an app left nothing behind. */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(d));
    } catch {}
  }
  return out;
}
