// A made-up Peernix for the window's UI: realistic peers (one with a hostile name), cache entries
// and events behind a fake PeernixApi, served by the real control routes and the built renderer.
// Used by the renderer's Chromium test and by `node scripts/dev-dashboard.ts` for UI work.
import http from 'node:http';
import path from 'node:path';
import type {
  NoticeId,
  ShareWhyView,
  TeamAction,
  TeamView,
  NetworkAction,
  NetworkStatusView,
  ApiChange,
  CacheEntryView,
  DoctorCheck,
  DoctorReport,
  LanTotalsView,
  PeerView,
  PeernixApi,
  PeernixEvent,
  Snapshot,
  StatusView,
  TransferView,
} from '../../src/base/api.ts';
import { explainPeer } from '../../src/domain/peer-history.ts';
import { fingerprintOf } from '../../src/domain/team.ts';
import { createControlRoutes } from '../../src/control/routes.ts';
import { nixConfLines } from '../../src/nix/nix-conf-lines.ts';
import { PROJECT_ROOT } from './peernix-process.ts';
import { statusFixture } from './snapshot-fixture.ts';

const NIX32 = '0123456789abcdfghijklmnpqrsvwxyz';
let seed = 7;
const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
const nix32 = (n: number) => Array.from({ length: n }, () => NIX32[Math.floor(rand() * 32)]).join('');

const now = Date.now();
const min = 60_000;

const PUBLIC_KEY = 'alice-laptop-1:Vq8o3nBbY1w5kX9dC6Qe7xw3m0Kq1aZf3sL2tT8pR4U=';
const SUBST = 'http://127.0.0.1:9998';

export function demoStatus(over: Partial<StatusView> = {}): StatusView {
  return statusFixture({
    instanceId: 'b6f1c2d9e0a34f58',
    substituterUrl: SUBST,
    publicKey: PUBLIC_KEY,
    nixConf: nixConfLines(SUBST, PUBLIC_KEY),
    mdns: true,
    peersUp: 2,
    shareAddresses: ['http://10.0.4.12:9999', 'http://[fd00:4::12]:9999'],
    startedAt: now - 3 * 60 * min,
    ...over,
  });
}

export const demoPeers: PeerView[] = [
  {
    id: '6a1f0e3c9b2d4e71',
    name: 'build-01',
    url: 'http://10.0.4.20:9999',
    address: '10.0.4.20',
    port: 9999,
    platform: 'linux-x64',
    publicKey: 'build-01-1:4lWw2d8m1xq0b9yT7cZr5eN3vK6pA2sJ8hF0gU1iO3Y=',
    verified: true,
    trusted: true,
    bad: null,
    summary: {
      state: 'ok',
      reason: null,
      bytes: 131_800,
      epoch: '5b1e0c2a9d3f4e71',
      generation: 412,
      paths: 98_204,
      admittedEstimate: 98_517,
      updatedAt: now - 3000,
    },
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
    verified: true,
    trusted: true,
    bad: null,
    summary: {
      state: 'unsupported',
      reason: 'the peer publishes no summary',
      bytes: 0,
      epoch: null,
      generation: null,
      paths: 0,
      admittedEstimate: 0,
      updatedAt: null,
    },
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
    verified: false,
    trusted: false,
    bad: null,
    summary: {
      state: 'stale',
      reason: 'no word from the peer for 35 s',
      bytes: 40_200,
      epoch: '77aa0c2a9d3f4e71',
      generation: 9,
      paths: 30_112,
      admittedEstimate: 30_090,
      updatedAt: now - 15 * min,
    },
    rttMs: null,
    state: 'gone',
    source: 'mdns',
    bytesFrom: 0,
    bytesTo: 48_000_000,
    lastSeen: now - 14 * min,
  },
];

// RTT and throughput samples, every 10 s over five minutes; the gone peer stopped answering.
const wave = <T = number>(n: number, f: (i: number) => T): T[] => Array.from({ length: n }, (_, i) => f(i));
const HISTORY: PeerView['history'][] = [
  {
    intervalMs: 10_000,
    rttMs: wave(30, (i) => 0.6 + 0.3 * Math.abs(Math.sin(i / 3))),
    bytesPerSec: wave(30, (i) => (i > 18 && i < 26 ? 9e6 + 2e6 * Math.sin(i) : 0)),
  },
  {
    intervalMs: 10_000,
    rttMs: wave(30, (i) => 2.5 + (i % 7 === 0 ? 4 : 1) * Math.abs(Math.cos(i))),
    bytesPerSec: wave(30, (i) => (i > 5 && i < 12 ? 3e6 : 0)),
  },
  { intervalMs: 10_000, rttMs: wave<number | null>(30, (i) => (i < 12 ? 5 + Math.sin(i) : null)), bytesPerSec: wave(30, () => 0) },
];
const DOWN = [null, null, 'no answer to 3 health checks'];
demoPeers.forEach((p, i) => Object.assign(p, { history: HISTORY[i], why: explainPeer(p, DOWN[i]) }));

export function demoTransfers(at = now): TransferView[] {
  return [
    {
      id: 1,
      storePath: `/nix/store/${nix32(32)}-llvm-19.1.5-lib`,
      direction: 'in',
      peerName: 'build-01',
      bytes: 212_000_000,
      total: 498_000_000,
      wireBytes: 131_000_000,
      bytesPerSec: 38_400_000,
      startedAt: at - 6000,
      outcome: null,
    },
    {
      id: 2,
      storePath: demoEntries[1].storePath,
      direction: 'out',
      peerName: 'mac-mini.lan',
      bytes: 8_200_000,
      total: 29_600_000,
      bytesPerSec: 4_100_000,
      startedAt: at - 2000,
      outcome: null,
      scope: 'team',
    },
    {
      id: 3,
      storePath: demoEntries[0].storePath,
      direction: 'in',
      peerName: 'build-01',
      bytes: 226_000,
      total: 226_000,
      bytesPerSec: 0,
      startedAt: at - 3000,
      outcome: 'ok',
    },
  ];
}

export function demoLan(at = now): LanTotalsView {
  const last = Math.floor(at / min);
  return {
    today: { fetchedBytes: 3_720_000_000, fetchedPaths: 412, servedBytes: 640_000_000, servedPaths: 57, misses: 1893 },
    week: { fetchedBytes: 18_400_000_000, fetchedPaths: 2210, servedBytes: 5_100_000_000, servedPaths: 380, misses: 9120 },
    minutes: {
      start: (last - 59) * min,
      inBytes: wave(60, (i) => (i > 40 ? Math.round(2e8 * Math.abs(Math.sin(i / 2))) : i % 9 === 0 ? 3e7 : 0)),
      outBytes: wave(60, (i) => (i % 5 === 0 ? Math.round(5e7 * Math.abs(Math.cos(i))) : 0)),
    },
  };
}

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

export const demoEntries: CacheEntryView[] = ENTRY_SPECS.map(([name, src, size, age, hits], i) => {
  const hashPart = nix32(32);
  const peer = src === 'local' ? null : demoPeers[src];
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

export type NewEvent = PeernixEvent extends infer E ? (E extends PeernixEvent ? Omit<E, 'id'> : never) : never;
let nextId = 1;
const ev = (e: NewEvent) => ({ ...e, id: nextId++ }) as PeernixEvent;
export const demoEvents: PeernixEvent[] = [
  ev({ type: 'sharing', time: now - 180 * min, enabled: true }),
  ev({ type: 'peer-up', time: now - 179 * min, peerId: demoPeers[0].id, peerName: demoPeers[0].name }),
  ev({ type: 'peer-up', time: now - 178 * min, peerId: demoPeers[1].id, peerName: demoPeers[1].name }),
  ev({ type: 'peer-up', time: now - 60 * min, peerId: demoPeers[2].id, peerName: demoPeers[2].name }),
  ev({
    type: 'fallback',
    time: now - 41 * min,
    storePath: demoEntries[5].storePath,
    from: 'bob-thinkpad <script>alert(1)</script>',
    to: 'build-01',
    reason: 'peer-gone',
    outcome: 'served',
  }),
  ev({ type: 'peer-down', time: now - 14 * min, peerId: demoPeers[2].id, peerName: demoPeers[2].name, reason: 'no answer to 3 health checks' }),
  ev({
    type: 'fallback',
    time: now - 9 * min,
    storePath: `/nix/store/${nix32(32)}-ripgrep-14.1.1`,
    from: 'none',
    to: null,
    reason: 'none',
    outcome: 'not-found',
  }),
  ev({
    type: 'transfer',
    time: now - 6 * min,
    storePath: demoEntries[4].storePath,
    direction: 'in',
    peerName: 'mac-mini.lan',
    bytes: 94_000_000,
    wireBytes: 31_500_000,
    outcome: 'resumed',
  }),
  ev({ type: 'fallback', time: now - 2 * min, storePath: demoEntries[0].storePath, from: 'this machine', to: 'build-01', reason: 'gc', outcome: 'served' }),
];

// ---- the fake API --------------------------------------------------------------------------------

export class DemoApi implements PeernixApi {
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
  /** Made-up checks, one of each status, as `peernix doctor` gives them. */
  async doctor(): Promise<DoctorReport> {
    const checks: DoctorCheck[] = [
      { id: 'nix-daemon.reachable', group: 'nix-daemon', title: 'nix-daemon', status: 'ok', detail: 'Nix 2.8.0, protocol 1.34', fix: null },
      {
        id: 'nix-config.substituter',
        group: 'nix-config',
        title: 'Substituter in nix.conf',
        status: 'fail',
        detail: 'http://127.0.0.1:9998 is not in substituters or extra-substituters',
        fix: 'add to /etc/nix/nix.conf:\nextra-substituters = http://127.0.0.1:9998',
      },
      {
        id: 'lan.reachable',
        group: 'lan',
        title: 'Share listener reachable from the LAN',
        status: 'unknown',
        detail: 'no peer has found this machine yet',
        fix: null,
      },
      { id: 'files.key', group: 'files', title: 'Signing key', status: 'warn', detail: 'readable by others (mode 644)', fix: 'chmod 600 secret-key' },
    ];
    return { at: now, checks, failed: checks.filter((c) => c.status === 'fail').length };
  }
  clearedBad: string[] = [];
  /** Clears a peer's bad mark in the made-up snapshot; false when it had none (or is unknown). */
  async clearPeerBad(id: string) {
    this.clearedBad.push(id);
    const peer = this.snap.peers.find((p) => p.id === id);
    if (!peer?.bad) return false;
    peer.bad = null;
    this.emit({ topic: 'peers' });
    return true;
  }
  networkCalls: NetworkAction[] = [];
  /** Trusts or dismisses in the made-up snapshot, as the core would (trusting shares at once). */
  async network(action: NetworkAction): Promise<NetworkStatusView> {
    this.networkCalls.push(action);
    const n = this.snap.status.network;
    if (!n) throw new Error('no network in this snapshot');
    if ('trust' in action && n.current) {
      n.trustedNetworks.push(n.current);
      this.snap.status = { ...this.snap.status, sharing: true, sharePaused: null, network: { ...n, trusted: true, ask: false } };
    } else if ('dismiss' in action) {
      this.snap.status.network = { ...n, ask: false };
    } else if ('forget' in action) {
      const trustedNetworks = n.trustedNetworks.filter((t) => t.id !== action.forget);
      const trusted = n.trustAll || trustedNetworks.some((t) => t.id === n.current?.id);
      this.snap.status = { ...this.snap.status, sharing: trusted, network: { ...n, trustedNetworks, trusted } };
    }
    this.emit({ topic: 'status' });
    return structuredClone(this.snap.status.network!);
  }
  teamCalls: TeamAction[] = [];
  /** Adds or removes in the made-up snapshot as the core's roster would: members, peers' marks, candidates. */
  async team(action: TeamAction): Promise<TeamView> {
    this.teamCalls.push(action);
    const st = this.snap.status;
    const team: TeamView = st.team ?? { members: [], max: 256, saved: true, candidates: [] };
    if ('add' in action) {
      const fingerprint = fingerprintOf(action.add);
      if (!fingerprint) throw new Error('not a public key: expected "name:base64"');
      if (team.members.some((m) => m.fingerprint === fingerprint)) throw new Error('already in the team');
      const peer = this.snap.peers.find((p) => p.publicKey === action.add);
      team.members.push({ name: action.add.slice(0, action.add.indexOf(':')), publicKey: action.add, fingerprint, peerName: peer?.name ?? null });
    } else {
      team.members = team.members.filter((m) => m.publicKey !== action.remove && m.name !== action.remove && m.fingerprint !== action.remove);
    }
    const keys = new Set(team.members.map((m) => m.publicKey));
    team.candidates = team.candidates.filter((c) => !keys.has(c.publicKey));
    for (const p of this.snap.peers) p.teamMember = p.publicKey !== null && keys.has(p.publicKey);
    this.snap.status = { ...st, team };
    this.addEvent({ type: 'team', time: Date.now(), change: 'add' in action ? 'added' : 'removed', name: 'demo', fingerprint: 'demo' });
    this.emit({ topic: 'status' });
    return structuredClone(team);
  }
  /** `share why` as a test sets it; by default the demo store holds nothing. */
  shareWhy: (pathOrHash: string) => Promise<ShareWhyView | null> = async () => null;
  noticesSeen: NoticeId[] = [];
  async noticeSeen(id: NoticeId) {
    this.noticesSeen.push(id);
    this.snap.status = { ...this.snap.status, notices: (this.snap.status.notices ?? []).filter((n) => n.id !== id) };
    this.emit({ topic: 'status' });
  }
  async setSharing(on: boolean) {
    this.sharingCalls.push(on);
    this.snap.status = { ...this.snap.status, sharing: on, shareUrl: on ? 'http://0.0.0.0:9999' : null };
    this.addEvent({ type: 'sharing', time: Date.now(), enabled: on });
    this.emit({ topic: 'status' });
  }
  async stop() {}
}

/** A team of one (mac-mini), with build-01 offered: its key is trusted by this machine's Nix. */
export function demoTeam(): TeamView {
  const [build, mac] = demoPeers;
  return {
    members: [{ name: 'mac-mini-1', publicKey: mac.publicKey!, fingerprint: fingerprintOf(mac.publicKey)!, peerName: mac.name }],
    max: 256,
    saved: true,
    candidates: [{ peerId: build.id, name: build.name, publicKey: build.publicKey!, fingerprint: fingerprintOf(build.publicKey)! }],
  };
}

export function demoApi(): DemoApi {
  const team = demoTeam();
  return new DemoApi({
    status: demoStatus({ team }),
    peers: structuredClone(demoPeers).map((p) => ({
      ...p,
      fingerprint: fingerprintOf(p.publicKey),
      teamMember: team.members.some((m) => m.publicKey === p.publicKey),
    })),
    entries: structuredClone(demoEntries),
    events: structuredClone(demoEvents),
    transfers: demoTransfers(),
    lan: demoLan(),
  });
}

// ---- serving -------------------------------------------------------------------------------------

export async function serveDemoApi(api: PeernixApi, port: number) {
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
    rendererDir: path.join(PROJECT_ROOT, 'dist', 'renderer'),
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
