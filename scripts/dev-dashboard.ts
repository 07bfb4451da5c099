// Serves the dashboard (the real control routes and the built renderer) over a fake PeernixApi with
// realistic data, for working on the UI without Nix or peers:
//
//   node scripts/dev-dashboard.ts                 serve on http://127.0.0.1:9997/peernix/ until ^C
//   node scripts/dev-dashboard.ts --port 0        any free port
//   node scripts/dev-dashboard.ts --screenshots test-artifacts/dashboard
//                                                 drive Debian's Chromium through light, dark, empty and
//                                                 error states, check the basics, save PNGs, exit
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { ApiChange, CacheEntryView, PeerView, PeernixApi, PeernixEvent, Snapshot, StatusView } from '../src/api.ts';
import { createControlRoutes } from '../src/control/routes.ts';

const root = path.join(import.meta.dirname, '..');
const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '9997' },
    screenshots: { type: 'string' },
    'no-build': { type: 'boolean', default: false },
  },
});

// ---- fake data -----------------------------------------------------------------------------------

const NIX32 = '0123456789abcdfghijklmnpqrsvwxyz';
let seed = 7;
const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
const nix32 = (n: number) => Array.from({ length: n }, () => NIX32[Math.floor(rand() * 32)]).join('');

const now = Date.now();
const min = 60_000;

const PUBLIC_KEY = 'alice-laptop-1:Vq8o3nBbY1w5kX9dC6Qe7xw3m0Kq1aZf3sL2tT8pR4U=';
const SUBST = 'http://127.0.0.1:9998';

function status(over: Partial<StatusView> = {}): StatusView {
  return {
    version: '0.1.0',
    instanceId: 'b6f1c2d9e0a34f58',
    hostName: 'alice-laptop',
    sharing: true,
    shareUrl: 'http://0.0.0.0:9999',
    substituterUrl: SUBST,
    publicKey: PUBLIC_KEY,
    nixConf: `extra-substituters = ${SUBST}?priority=30\nextra-trusted-public-keys = ${PUBLIC_KEY}\n`,
    daemon: { ok: true, version: '2.8.0', error: null },
    mdns: true,
    peersUp: 2,
    startedAt: now - 3 * 60 * min,
    ...over,
  };
}

const peers: PeerView[] = [
  {
    id: '6a1f0e3c9b2d4e71',
    name: 'build-01',
    url: 'http://10.0.4.20:9999',
    address: '10.0.4.20',
    port: 9999,
    platform: 'linux-x64',
    publicKey: 'build-01-1:4lWw2d8m1xq0b9yT7cZr5eN3vK6pA2sJ8hF0gU1iO3Y=',
    trusted: true,
    rttMs: 0.8,
    state: 'up',
    source: 'mdns',
    bytesFrom: 2_845_000_000,
    bytesTo: 12_400_000,
    lastSeen: now - 4000,
  },
  {
    id: 'http://mac-mini.lan:9999',
    name: 'mac-mini.lan',
    url: 'http://mac-mini.lan:9999',
    address: '10.0.4.31',
    port: 9999,
    platform: 'darwin-arm64',
    publicKey: 'mac-mini-1:9gT2kL0pQ4wE6rY8uI1oP3aS5dF7gH9jK2lZ4xC6vB8=',
    trusted: true,
    rttMs: 3.4,
    state: 'up',
    source: 'static',
    bytesFrom: 310_000_000,
    bytesTo: 96_500_000,
    lastSeen: now - 9000,
  },
  {
    id: '0c7e5d2a8f1b3e96',
    name: 'bob-thinkpad <script>alert(1)</script>',
    url: 'http://10.0.4.57:9999',
    address: '10.0.4.57',
    port: 9999,
    platform: 'linux-x64',
    publicKey: 'bob-thinkpad-1:Zx3cV5bN7mA9sD1fG3hJ5kL7qW9eR1tY3uI5oP7aS9d=',
    trusted: false,
    rttMs: null,
    state: 'gone',
    source: 'mdns',
    bytesFrom: 0,
    bytesTo: 48_000_000,
    lastSeen: now - 14 * min,
  },
];

const ENTRY_SPECS: [string, 'local' | number, number, number, number][] = [
  // name, source (local or peer index), size, age (min), hits
  ['hello-2.12.1', 0, 226_000, 2, 3],
  ['glibc-2.40-66', 'local', 29_600_000, 171, 41],
  ['openssl-3.3.2', 'local', 6_900_000, 160, 18],
  ['python3-3.12.8', 0, 108_000_000, 95, 7],
  ['nodejs-22.12.0', 1, 187_000_000, 64, 2],
  ['rustc-1.83.0', 0, 612_000_000, 41, 1],
  ['gcc-14.2.1.20250322', 'local', 252_000_000, 150, 12],
  ['curl-8.11.1-bin', 1, 1_200_000, 12, 5],
  ['git-2.47.1', 'local', 59_000_000, 30, 9],
  ['zlib-1.3.1', 'local', 410_000, 172, 63],
];

const entries: CacheEntryView[] = ENTRY_SPECS.map(([name, src, size, age, hits], i) => {
  const hashPart = nix32(32);
  const peer = src === 'local' ? null : peers[src];
  return {
    hashPart,
    storePath: `/nix/store/${hashPart}-${name}`,
    name,
    source: peer ? peer.id : 'local',
    sourceName: peer ? peer.name : 'this machine',
    narHash: `sha256:${nix32(52)}`,
    narSize: size,
    createdAt: now - age * min,
    updatedAt: now - Math.max(0, age - 1 - i) * min,
    hits,
  };
});

type NewEvent = PeernixEvent extends infer E ? (E extends PeernixEvent ? Omit<E, 'id'> : never) : never;
let nextId = 1;
const ev = (e: NewEvent) => ({ ...e, id: nextId++ }) as PeernixEvent;
const events: PeernixEvent[] = [
  ev({ type: 'sharing', time: now - 180 * min, enabled: true }),
  ev({ type: 'peer-up', time: now - 179 * min, peerId: peers[0].id, peerName: peers[0].name }),
  ev({ type: 'peer-up', time: now - 178 * min, peerId: peers[1].id, peerName: peers[1].name }),
  ev({ type: 'peer-up', time: now - 60 * min, peerId: peers[2].id, peerName: peers[2].name }),
  ev({ type: 'fallback', time: now - 41 * min, storePath: entries[5].storePath, from: 'bob-thinkpad <script>alert(1)</script>', to: 'build-01', reason: 'peer-gone', outcome: 'served' }),
  ev({ type: 'peer-down', time: now - 14 * min, peerId: peers[2].id, peerName: peers[2].name, reason: 'no answer to 3 health checks' }),
  ev({ type: 'fallback', time: now - 9 * min, storePath: `/nix/store/${nix32(32)}-ripgrep-14.1.1`, from: 'none', to: null, reason: 'none', outcome: 'not-found' }),
  ev({ type: 'transfer', time: now - 6 * min, storePath: entries[4].storePath, direction: 'in', peerName: 'mac-mini.lan', bytes: 94_000_000, outcome: 'resumed' }),
  ev({ type: 'fallback', time: now - 2 * min, storePath: entries[0].storePath, from: 'this machine', to: 'build-01', reason: 'gc', outcome: 'served' }),
];

// ---- the fake API --------------------------------------------------------------------------------

class FakeApi implements PeernixApi {
  snap: Snapshot;
  listeners = new Set<(c: ApiChange) => void>();
  sharingCalls: boolean[] = [];
  constructor(snap: Snapshot) {
    this.snap = snap;
  }
  snapshot(): Snapshot {
    return structuredClone(this.snap);
  }
  subscribe(l: (c: ApiChange) => void) {
    this.listeners.add(l);
    return () => void this.listeners.delete(l);
  }
  emit(c: ApiChange) {
    for (const l of this.listeners) l(c);
  }
  addEvent(e: NewEvent) {
    const full = { ...e, id: nextId++ } as PeernixEvent;
    this.snap.events.push(full);
    this.emit({ topic: 'event', event: full });
  }
  async setSharing(on: boolean) {
    this.sharingCalls.push(on);
    this.snap.status = { ...this.snap.status, sharing: on, shareUrl: on ? 'http://0.0.0.0:9999' : null };
    this.addEvent({ type: 'sharing', time: Date.now(), enabled: on });
    this.emit({ topic: 'status' });
  }
  async stop() {}
}

function fullApi() {
  return new FakeApi({ status: status(), peers: structuredClone(peers), entries: structuredClone(entries), events: structuredClone(events) });
}

// ---- serving -------------------------------------------------------------------------------------

async function serveApi(api: PeernixApi, port: number) {
  let handler: ReturnType<typeof createControlRoutes> | null = null;
  const server = http.createServer((req, res) => {
    if (handler?.(req, res)) return;
    res.writeHead(302, { Location: '/peernix/' }).end();
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const actual = (server.address() as { port: number }).port;
  handler = createControlRoutes({
    api,
    token: 'a'.repeat(64),
    rendererDir: path.join(root, 'dist', 'renderer'),
    allowedHosts: [`127.0.0.1:${actual}`, `localhost:${actual}`],
    heartbeatMs: 5000,
  });
  return {
    url: `http://127.0.0.1:${actual}/peernix/`,
    close: async () => {
      handler?.close();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

if (!values['no-build']) {
  const b = spawnSync(process.execPath, [path.join(root, 'scripts', 'build.ts')], { stdio: 'inherit' });
  if (b.status !== 0) process.exit(b.status ?? 1);
}

if (values.screenshots) {
  await screenshots(path.resolve(values.screenshots));
} else {
  const api = fullApi();
  const s = await serveApi(api, Number(values.port));
  console.log(`dashboard: ${s.url}`);
  // Some life: a peer flaps and a fallback happens now and then.
  let n = 0;
  setInterval(() => {
    n++;
    const peer = api.snap.peers[2];
    if (n % 3 === 0) {
      peer.state = peer.state === 'up' ? 'gone' : 'up';
      api.addEvent({ type: peer.state === 'up' ? 'peer-up' : 'peer-down', time: Date.now(), peerId: peer.id, peerName: peer.name });
      api.emit({ topic: 'peers' });
    } else {
      const e = api.snap.entries[n % api.snap.entries.length];
      e.hits++;
      e.updatedAt = Date.now();
      api.emit({ topic: 'entries' });
    }
  }, 4000);
  process.on('SIGINT', () => void s.close().then(() => process.exit(0)));
}

// ---- screenshots ---------------------------------------------------------------------------------

async function screenshots(outDir: string): Promise<void> {
  const { chromium } = await import('playwright-core');
  fs.mkdirSync(outDir, { recursive: true });
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'peernix-chromium-'));
  // A fresh profile each run; Playwright takes it as the persistent context's user-data-dir.
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  const check = (ok: boolean, what: string) => {
    console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
    if (!ok) process.exitCode = 1;
  };
  const shots: string[] = [];
  try {
    const cases: { name: string; api: FakeApi; scheme: 'light' | 'dark'; width?: number }[] = [
      { name: 'light', api: fullApi(), scheme: 'light' },
      { name: 'dark', api: fullApi(), scheme: 'dark' },
      { name: 'empty-light', api: new FakeApi({ status: status({ peersUp: 0 }), peers: [], entries: [], events: [] }), scheme: 'light' },
      {
        name: 'error-dark',
        api: new FakeApi({
          status: status({ sharing: false, shareUrl: null, daemon: { ok: false, version: null, error: 'cannot connect to /nix/var/nix/daemon-socket/socket: ENOENT' } }),
          peers: structuredClone(peers),
          entries: structuredClone(entries),
          events: structuredClone(events),
        }),
        scheme: 'dark',
      },
      { name: 'narrow-light', api: fullApi(), scheme: 'light', width: 760 },
    ];
    for (const c of cases) {
      const s = await serveApi(c.api, 0);
      const page = await browser.newPage();
      await page.emulateMedia({ colorScheme: c.scheme });
      await page.setViewportSize({ width: c.width ?? 1360, height: 900 });
      const problems: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error' || m.type() === 'warning') problems.push(m.text());
      });
      page.on('pageerror', (e) => problems.push(e.message));
      await page.goto(s.url);
      await page.waitForFunction(() => document.querySelector('#host-name')?.textContent !== '…');
      await page.waitForTimeout(300);

      if (c.name === 'light') {
        check((await page.getByTestId('peer-row').count()) === 3, 'three peer rows');
        check((await page.getByTestId('entry-row').count()) === 10, 'ten entry rows');
        check((await page.getByTestId('event-row').count()) === events.length, 'all events in the timeline');
        check((await page.locator('script').count()) === 1, 'no injected script elements (hostile peer name stayed text)');
        check(await page.getByTestId('sharing-toggle').isChecked(), 'sharing toggle reflects sharing on');
        await page.getByTestId('entries-search').fill('glibc');
        check((await page.getByTestId('entry-row').count()) === 1, 'search filters entries live');
        await page.getByTestId('entries-search').fill('');
        // A live event arrives over SSE.
        c.api.addEvent({ type: 'fallback', time: Date.now(), storePath: entries[2].storePath, from: 'this machine', to: 'mac-mini.lan', reason: 'gc', outcome: 'served' });
        await page.waitForFunction((n) => document.querySelectorAll('[data-testid="event-row"]').length === n, events.length + 1, { timeout: 5000 });
        check(true, 'live event delivered over SSE');
      }
      shots.push(path.join(outDir, `dashboard-${c.name}.png`));
      await page.screenshot({ path: shots.at(-1), fullPage: true });

      if (c.name === 'light') {
        await page.getByTestId('sharing-toggle').click({ force: true });
        await page.waitForFunction(() => !(document.querySelector('[data-testid="sharing-toggle"]') as HTMLInputElement).checked);
        await page.waitForFunction(() => document.querySelector('[data-testid="status-line"]')?.textContent?.includes('Not sharing'));
        check(c.api.sharingCalls.join() === 'false', 'toggle POSTs setSharing(false) with the token');
        shots.push(path.join(outDir, 'dashboard-light-not-sharing.png'));
        await page.screenshot({ path: shots.at(-1) });
      }
      check(problems.length === 0, `${c.name}: no console errors or CSP violations${problems.length ? ': ' + problems.join(' | ') : ''}`);
      await page.close();
      await s.close();
    }

    // The Electron path: the same page from file:// with a preload-style window.peernix (no HTTP).
    {
      const page = await browser.newPage();
      await page.emulateMedia({ colorScheme: 'light' });
      await page.setViewportSize({ width: 1180, height: 780 });
      const problems: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error' || m.type() === 'warning') problems.push(m.text());
      });
      page.on('pageerror', (e) => problems.push(e.message));
      const snap = fullApi().snapshot();
      await page.addInitScript((s: Snapshot) => {
        const listeners = new Set<(c: ApiChange) => void>();
        const w = window as unknown as { peernix: unknown; __emit: (c: ApiChange) => void; __sharing: boolean[] };
        w.__sharing = [];
        w.__emit = (c) => listeners.forEach((l) => l(c));
        w.peernix = {
          snapshot: async () => s,
          onChange: (l: (c: ApiChange) => void) => (listeners.add(l), () => listeners.delete(l)),
          setSharing: async (on: boolean) => void w.__sharing.push(on),
          copyText: async () => {},
        };
      }, snap);
      await page.goto(`file://${path.join(root, 'dist', 'renderer', 'index.html')}`);
      await page.waitForFunction(() => document.querySelectorAll('[data-testid="peer-row"]').length === 3);
      check((await page.getByTestId('entry-row').count()) === 10, 'file:// + preload bridge renders entries');
      await page.getByTestId('sharing-toggle').click({ force: true });
      await page.waitForFunction(() => (window as unknown as { __sharing: boolean[] }).__sharing.length === 1);
      check(true, 'file:// toggle goes through window.peernix.setSharing');
      shots.push(path.join(outDir, 'window-file-light.png'));
      await page.screenshot({ path: shots.at(-1) });
      check(problems.length === 0, `file://: no console errors or CSP violations${problems.length ? ': ' + problems.join(' | ') : ''}`);
      await page.close();
    }
  } finally {
    await browser.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
  for (const s of shots) console.log(`screenshot: ${path.relative(process.cwd(), s)}`);
}
