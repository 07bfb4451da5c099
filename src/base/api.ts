// The one API surface of the core. The tray, the window (through preload + IPC), the CLI and the
// headless dashboard all drive exactly these types; nothing here may import Node or Electron so the
// renderer can import it too.

export type PeerState = 'up' | 'suspect' | 'gone';

export type PeerSummaryState = 'loading' | 'ok' | 'stale' | 'unsupported' | 'refused';

/** What this machine knows of a peer's store summary (which paths it may have). */
export interface PeerSummaryView {
  state: PeerSummaryState;
  reason: string | null; // why it is stale, unsupported or refused
  bytes: number; // size of the summary as last received whole
  epoch: string | null;
  generation: number | null;
  paths: number; // as the peer claims
  admittedEstimate: number; // as the filter's bits suggest
  updatedAt: number | null; // epoch ms of its last change
}

export interface PeerView {
  id: string; // instance id from the TXT record, or the URL for a static peer
  name: string;
  url: string; // the peer's share listener base URL
  address: string;
  port: number;
  platform: string | null;
  publicKey: string | null; // "name:base64" as announced
  verified: boolean; // proved it holds publicKey (signed a fresh challenge), or configured with --peer
  trusted: boolean; // verified, and this machine's Nix trusts publicKey
  rttMs: number | null;
  state: PeerState;
  source: 'mdns' | 'dnssd' | 'static'; // dnssd: found in a DNS-SD domain (across subnets)
  bytesFrom: number; // NAR bytes we fetched from this peer
  bytesTo: number; // NAR bytes this peer fetched from us
  lastSeen: number; // epoch ms
  /** Served bytes that failed verification: not used until `until` or until the user clears it. */
  bad: { since: number; until: number; reason: string } | null;
  /** The peer's store summary as followed here; null for a peer not followed (yet). */
  summary: PeerSummaryView | null;
  /** Recent RTT and throughput samples, oldest first (peer-history.ts); absent from older cores. */
  history?: PeerHistoryView;
  /** Why the peer is not up, or not trusted, in words; null when it is up and trusted. */
  why?: string | null;
  /** Its identity key's short fingerprint (team.ts), to compare by voice; null when it announced none. */
  fingerprint?: string | null;
  /** Its proven identity key is in this machine's team. */
  teamMember?: boolean;
}

export interface PeerHistoryView {
  intervalMs: number;
  rttMs: (number | null)[];
  /** NAR bytes per second both ways, averaged over each interval. */
  bytesPerSec: number[];
}

/** A NAR being fetched from a peer ('in') or served to one ('out'). */
export interface TransferView {
  id: number;
  storePath: string;
  direction: 'in' | 'out';
  peerName: string;
  /** NAR bytes so far, and of the whole transfer (its NarSize, or the requested range). */
  bytes: number;
  total: number;
  /** Bytes on the wire, when they differ from NAR bytes (compression between peers). */
  wireBytes?: number;
  bytesPerSec: number;
  startedAt: number;
  /** Set once it ended; the row stays a few seconds so the user sees how it ended. */
  outcome: 'ok' | 'failed' | 'resumed' | null;
  /** A served path's scope (who may have it), once known; absent for fetched paths and older cores. */
  scope?: 'public' | 'team' | 'never';
}

/** What the LAN did for this machine over one period. */
export interface LanTally {
  fetchedBytes: number; // NAR bytes fetched from peers instead of the upstream caches
  fetchedPaths: number;
  servedBytes: number; // NAR bytes peers fetched from this machine
  servedPaths: number;
  misses: number; // lookups answered "not on the LAN" at once (Nix moved on to its other caches)
}

export interface LanTotalsView {
  today: LanTally;
  week: LanTally; // since Monday 00:00, local time
  /** Bytes per minute over the last hour, oldest first; `start` is the first minute's epoch ms. */
  minutes: { start: number; inBytes: number[]; outBytes: number[] };
}

export interface CacheEntryView {
  hashPart: string;
  storePath: string;
  name: string; // the store path's name part
  source: 'local' | string; // 'local' or a peer id
  sourceName: string; // "this machine" or the peer's name
  narHash: string; // sha256:<nix32>
  narSize: number;
  createdAt: number;
  updatedAt: number;
  hits: number;
}

export type FallbackReason = 'gc' | 'peer-gone' | 'peer-failed' | 'mismatch' | 'none';

export type PeernixEvent =
  | {
      type: 'fallback';
      id: number;
      time: number;
      storePath: string;
      from: string; // source name the affinity cache pointed at ("this machine" or a peer name), or "none"
      to: string | null; // the source that served it, null when nothing could
      reason: FallbackReason;
      outcome: 'served' | 'not-found' | 'failed';
    }
  | { type: 'peer-up' | 'peer-down'; id: number; time: number; peerId: string; peerName: string; reason?: string }
  | {
      type: 'transfer';
      id: number;
      time: number;
      storePath: string;
      direction: 'in' | 'out';
      peerName: string;
      bytes: number; // NAR bytes
      /** Bytes that crossed the network for them (fewer when a Peernix peer compressed them). */
      wireBytes: number;
      outcome: 'ok' | 'failed' | 'resumed';
    }
  /** `reason`: sharing stopped for a reason other than the user's choice (an untrusted network). */
  | { type: 'sharing'; id: number; time: number; enabled: boolean; reason?: string }
  /**
   * The machine moved to another network (null: none recognised), or its trust changed. `note` says
   * what Peernix decided on its own (an upgrade trusting the network it started on).
   */
  | { type: 'network'; id: number; time: number; networkId: string | null; networkName: string | null; trusted: boolean; note?: string }
  /** The local nix-daemon went down, stalled (accepts, answers nothing: NARs wait, lookups don't) or answers again. */
  | { type: 'daemon'; id: number; time: number; state: 'ok' | 'stalled' | 'down'; detail: string | null }
  /** The team changed (`peernix team add|remove`, the window): who, by key name and fingerprint. */
  | { type: 'team'; id: number; time: number; change: 'added' | 'removed'; name: string; fingerprint: string }
  /** Something the user is told once (an upgrade that changed what is shared). */
  | { type: 'notice'; id: number; time: number; notice: NoticeId; text: string }
  | { type: 'error'; id: number; time: number; message: string };

/** A one-time notice: 'scopes' — an upgrade from before scopes: team paths now go to team members only. */
export type NoticeId = 'scopes';

export interface NoticeView {
  id: NoticeId;
  text: string;
}

/** A member of this machine's team: a Peernix whose identity key may fetch its team paths. */
export interface TeamMemberView {
  name: string; // the key's name part
  publicKey: string; // "name:base64"
  fingerprint: string;
  /** A proven peer seen now with this key, by name; null when none is. */
  peerName: string | null;
}

/** A proven peer this machine's Nix already trusts, not yet in the team (offered after an upgrade). */
export interface TeamCandidateView {
  peerId: string;
  name: string;
  publicKey: string;
  fingerprint: string;
}

export interface TeamView {
  members: TeamMemberView[];
  max: number;
  /** False while `--team` was given at start: changes then last only until the next start. */
  saved: boolean;
  candidates: TeamCandidateView[];
}

/** Add a member by its public key ("name:base64"), or remove one by key, key name or fingerprint. */
export type TeamAction = { add: string } | { remove: string };

/** Whether the local nix-daemon answers, and which Nix it is. */
export interface DaemonHealth {
  ok: boolean;
  version: string | null;
  error: string | null;
  /** It accepts connections but answers nothing in time (stopped, wedged): NARs wait, lookups don't. */
  stalled?: boolean;
}

/** The network this machine is on and whether it shares there (README, "Trusted networks"). */
export interface NetworkStatusView {
  /** null: on no network that can be recognised (offline, or a router whose MAC is not known yet). */
  current: { id: string; name: string } | null;
  /** Sharing is allowed here: the current network is trusted, or every network is. */
  trusted: boolean;
  trustAll: boolean;
  trustedNetworks: { id: string; name: string }[];
  /** Ask the user "Share on <current.name>?": it is not trusted, sharing is wanted, not yet answered. */
  ask: boolean;
}

export interface StatusView {
  version: string;
  instanceId: string;
  hostName: string;
  sharing: boolean;
  shareUrl: string | null; // null while sharing is off
  /** Why sharing is not as last asked (a busy port, a setting that could not be saved); null when all is well. */
  shareError: string | null;
  /** Why sharing is held off though the saved choice is on (an untrusted network); absent in older cores. */
  sharePaused?: string | null;
  network?: NetworkStatusView;
  /** The team (`peernix team list`); absent in older cores. */
  team?: TeamView;
  /** Notices the user has not yet acknowledged (shown in window, tray and status until then). */
  notices?: NoticeView[];
  substituterUrl: string;
  publicKey: string; // "name:base64"
  nixConf: string; // the lines a user adds to nix.conf
  daemon: DaemonHealth;
  /**
   * The local Nix's trust settings peers' answers are judged by. `error` says why they could not be
   * read (then the last ones read, or none, are in use); `source` where they came from.
   */
  trust?: {
    source: string | null;
    keys: number;
    requireSigs: boolean;
    error: string | null;
    /** Trusted keys sharing a name: Nix honours only the first (every Go peernix key is peernix-1). */
    clashes?: { name: string; honoured: string; ignored: string[] }[];
  };
  /** Where narinfo metadata comes from: the store database (fast) or the nix-daemon, and why. */
  metadata?: { source: 'database' | 'daemon'; why: string | null };
  mdns: boolean;
  /** When mDNS last brought back this host's own announcement (it works here); null: not yet. */
  mdnsSelfSeenAt?: number | null;
  /** DNS-SD over unicast DNS (peers across subnets); null or absent when not configured. */
  dnsSd?: DnsSdStatusView | null;
  /** Addresses a colleague can use for this machine's share listener (its LAN addresses); empty while not sharing. */
  shareAddresses?: string[];
  peersUp: number;
  startedAt: number;
  /**
   * Scoped sharing (README, "What is shared with whom"): paths judged since start by scope, and
   * requests answered as absent because the asker may not see the path, by the path's scope.
   */
  scopes?: ScopeCountsView;
}

export type PathScopeName = 'public' | 'team' | 'never';

export interface ScopeCountsView {
  judged: Record<PathScopeName, number>;
  refused: Record<PathScopeName, number>;
  /** The rules: public caches' keys and the exclude patterns in force. */
  publicKeys: string[];
  exclude: string[];
}

/** `share why`: a path of this store, its scope, why, and who would get it. */
export interface ShareWhyView {
  storePath: string;
  scope: PathScopeName;
  why: string;
  servedTo: string;
}

export interface DnsSdStatusView {
  /** The DNS server asked, "host:port"; null when there is none to ask. */
  server: string | null;
  /** Domains browsed in the last round: the configured ones, then those the network advertises. */
  domains: string[];
  /** Why the last browse could not read everything; null when it could. */
  lastError: string | null;
  found: number;
  registration: {
    domain: string;
    server: string;
    instance: string;
    state: 'off' | 'registering' | 'registered' | 'refused' | 'unreachable' | 'removed';
    /** The server's refusal (rcode, TSIG error) or why it was not reached; null when all is well. */
    detail: string | null;
    addresses: string[];
    /** The update lease (RFC 9664) asked for with each registration, seconds. */
    leaseRequested: number;
    /**
     * The lease the server granted by echoing the option, seconds; null when it did not: then the
     * records stay until this machine's next start replaces them, and peers' health judges it meanwhile.
     */
    leaseGranted: number | null;
  } | null;
}

export interface Snapshot {
  status: StatusView;
  peers: PeerView[];
  entries: CacheEntryView[];
  events: PeernixEvent[];
  /** Transfers in progress (and those just ended). Optional: older cores have none. */
  transfers?: TransferView[];
  lan?: LanTotalsView;
}

export type ApiChange =
  | { topic: 'status' }
  /** Live progress: sent at most every ~250 ms while anything moves, never kept in the event history. */
  | { topic: 'transfers'; transfers: TransferView[]; lan: LanTotalsView }
  | { topic: 'peers' }
  | { topic: 'entries' }
  | { topic: 'event'; event: PeernixEvent };

/** One `peernix doctor` finding: what was checked, what is wrong, and the exact fix. */
export interface DoctorCheck {
  id: string;
  group: 'nix-daemon' | 'nix-config' | 'peernix' | 'lan' | 'nix-cache' | 'files';
  title: string;
  /** unknown: it could not be told from here (said why in `detail`). */
  status: 'ok' | 'warn' | 'fail' | 'unknown';
  detail: string;
  fix: string | null;
}

export interface DoctorReport {
  at: number;
  checks: DoctorCheck[];
  /** Checks that failed: the command exits non-zero when any did. */
  failed: number;
}

/** The in-process API object returned by the composition root. */
export interface PeernixApi {
  snapshot(): Snapshot;
  subscribe(listener: (change: ApiChange) => void): () => void;
  setSharing(on: boolean): Promise<void>;
  /** Forgets that a peer served wrong bytes; resolves false when it was not marked (or unknown). */
  clearPeerBad(id: string): Promise<boolean>;
  /** Runs `peernix doctor`'s checks as this process sees the machine. */
  doctor?(): Promise<DoctorReport>;
  /**
   * Trusts a network (`'current'`: the one this machine is on) or forgets one, or answers the
   * question "Share on <network>?" with "not here" (`'dismiss'`, until the next start). Resolves to
   * the network status after the change; rejects with a sentence when there is nothing to trust.
   */
  network?(action: NetworkAction): Promise<NetworkStatusView>;
  /** Adds or removes a team member; resolves to the team after the change, rejects with a sentence. */
  team?(action: TeamAction): Promise<TeamView>;
  /** The user saw a notice: it is not shown again (remembered in settings). */
  noticeSeen?(id: NoticeId): Promise<void>;
  /** A path of this store by full path, base name or hash part: its scope; null when the store lacks it. */
  shareWhy?(pathOrHash: string): Promise<ShareWhyView | null>;
  /** Stops accepting, lets running transfers finish for up to `graceMs` (default 3 s), then cuts them. */
  stop(opts?: StopOptions): Promise<void>;
}

export type NetworkAction = { trust: string | 'current' } | { forget: string | 'current' } | { dismiss: string };

export interface StopOptions {
  graceMs?: number;
}

/** The same API as seen from the window: everything is asynchronous across IPC or HTTP. */
export interface PeernixBridge {
  snapshot(): Promise<Snapshot>;
  onChange(listener: (change: ApiChange) => void): () => void;
  setSharing(on: boolean): Promise<void>;
  copyText(text: string): Promise<void>;
  /** `peernix doctor`'s checks; absent where the window can't ask for them. */
  doctor?(): Promise<DoctorReport>;
  /** Trust, forget or dismiss a network; absent where the window can't. */
  network?(action: NetworkAction): Promise<NetworkStatusView>;
  /** Add or remove a team member; absent where the window can't. */
  team?(action: TeamAction): Promise<TeamView>;
  noticeSeen?(id: NoticeId): Promise<void>;
}
