// One settings schema for the tray app and the headless daemon, in one file: `settings.json`.
//
// People hand-edit this file, so reading it must never crash and never silently throw away what
// they wrote: every field is validated on its own (a bad field falls back to its default and is
// reported in `problems`), unknown keys are kept, and a file that isn't JSON at all is kept as
// `settings.json.corrupt-<time>` before defaults are written. The file is read and written through
// base/state-file.ts (not conf/electron-store, whose atomic write resolves symbolic links and so
// writes through one planted in the state directory): a link or another user's file is refused.
import fs from 'node:fs';
import { isLoopbackHost, parseHostPort } from '../base/listen-address.ts';
import { MAX_PEER_URL_LENGTH, peerUrlProblem } from '../wire/peer-url.ts';
import { parsePublicKey } from '../nix/signing.ts';
import path from 'node:path';
import { isNetworkId } from '../peers/network-id.ts';
import { MAX_TRUSTED_NETWORKS } from '../domain/network-trust.ts';
import { parseServer } from '../peers/dns-client.ts';
import { isDomainName } from '../peers/resolv-conf.ts';
import { MAX_TEAM_MEMBERS } from '../domain/team-roster.ts';
import type { NoticeState } from '../domain/notices.ts';
import { checkExcludePattern, DEFAULT_EXCLUDE, DEFAULT_PUBLIC_KEYS, MAX_EXCLUDE } from '../store/path-scope.ts';
import { keepCorruptFile, readStateFile, StateFileError, writeStateFile } from '../base/state-file.ts';

// ---- the one schema: each field's default, its JSON Schema (documentation) and its check -------

type FieldResult<T> = ({ ok: true; value: T } | { ok: false; why: string }) & { extra?: string[] };

interface Field<T> {
  default: T;
  /** JSON Schema of the field, as conf's and electron-store's `schema` option would take it. */
  schema: Record<string, unknown>;
  check(v: unknown): FieldResult<T>;
}

export const SETTINGS_FILE_NAME = 'settings.json';
export const MAX_PEERS = 256;

function booleanField(def: boolean, description: string): Field<boolean> {
  return {
    default: def,
    schema: { type: 'boolean', default: def, description },
    check: (v) => (typeof v === 'boolean' ? { ok: true, value: v } : { ok: false, why: `must be true or false (got ${describe(v)})` }),
  };
}

function portField(def: number, description: string): Field<number> {
  return {
    default: def,
    schema: { type: 'integer', minimum: 1, maximum: 65535, default: def, description },
    check: (v) =>
      Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 65535
        ? { ok: true, value: v as number }
        : { ok: false, why: `must be a port number 1–65535 (got ${describe(v)})` },
  };
}

const HOST_PORT_PATTERN = '^(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9.-]+):[0-9]{1,5}$';

function hostPortField(def: string, description: string, loopbackOnly: boolean): Field<string> {
  return {
    default: def,
    schema: { type: 'string', pattern: HOST_PORT_PATTERN, default: def, description },
    check(v) {
      if (typeof v !== 'string') return { ok: false, why: `must be a "HOST:PORT" string (got ${describe(v)})` };
      const hp = parseHostPort(v.trim());
      if (!hp) return { ok: false, why: `must look like HOST:PORT, e.g. ${def} (got ${describe(v)})` };
      if (loopbackOnly && !isLoopbackHost(hp.host)) {
        return {
          ok: false,
          why: `must be a loopback address (127.0.0.1, ::1 or localhost) because it serves your local Nix and the dashboard (got ${describe(v)})`,
        };
      }
      return { ok: true, value: v.trim() };
    },
  };
}

const peersField: Field<string[]> = {
  default: [],
  schema: {
    type: 'array',
    items: { type: 'string', pattern: '^[Hh][Tt][Tt][Pp][Ss]?://', maxLength: MAX_PEER_URL_LENGTH },
    maxItems: MAX_PEERS,
    default: [],
    description: 'Static peer URLs (http or https).',
  },
  check(v) {
    if (!Array.isArray(v)) return { ok: false, why: `must be a list of URLs (got ${describe(v)})` };
    const kept: string[] = [];
    const extra: string[] = [];
    for (const [i, item] of v.entries()) {
      const why = peerUrlProblem(item);
      if (why) {
        extra.push(`settings: peers[${i}] ${describe(item)} ${why}; ignoring it`);
      } else if (kept.length >= MAX_PEERS) {
        extra.push(`settings: more than ${MAX_PEERS} peers; ignoring peers[${i}] and the rest`);
        break;
      } else if (!kept.includes((item as string).trim())) {
        kept.push((item as string).trim());
      }
    }
    return { ok: true, value: kept, extra };
  },
};

// Ids as network-id.ts makes them ("gateway <mac> <subnet>", "subnet <subnet>"); kept as written.
const trustedNetworksField: Field<string[]> = {
  default: [],
  schema: {
    type: 'array',
    items: { type: 'string', minLength: 1, maxLength: 200 },
    maxItems: MAX_TRUSTED_NETWORKS,
    default: [],
    description: 'Networks this machine shares on (ids as `peernix network list` shows them).',
  },
  check(v) {
    if (!Array.isArray(v)) return { ok: false, why: `must be a list of network ids (got ${describe(v)})` };
    const kept: string[] = [];
    const extra: string[] = [];
    for (const [i, item] of v.entries()) {
      if (!isNetworkId(item)) extra.push(`settings: trustedNetworks[${i}] ${describe(item)} is not a network id; ignoring it`);
      else if (kept.length >= MAX_TRUSTED_NETWORKS) {
        extra.push(`settings: more than ${MAX_TRUSTED_NETWORKS} trusted networks; ignoring trustedNetworks[${i}] and the rest`);
        break;
      } else if (!kept.includes(item)) kept.push(item);
    }
    return { ok: true, value: kept, extra };
  },
};

export const MAX_TEAM = MAX_TEAM_MEMBERS;

/** A list of Nix public keys ("name:base64"), each kept once; bad ones are reported and left out. */
function publicKeyListField(setting: string, dflt: readonly string[], max: number, description: string): Field<string[]> {
  return {
    default: [...dflt],
    schema: {
      type: 'array',
      items: { type: 'string', pattern: '^[^:\\s]+:[A-Za-z0-9+/]{43}=$' },
      maxItems: max,
      default: [...dflt],
      description,
    },
    check(v) {
      if (!Array.isArray(v)) return { ok: false, why: `must be a list of public keys (got ${describe(v)})` };
      const kept: string[] = [];
      const extra: string[] = [];
      for (const [i, item] of v.entries()) {
        let text: string;
        try {
          text = parsePublicKey(typeof item === 'string' ? item.trim() : '').text;
        } catch (e) {
          extra.push(`settings: ${setting}[${i}] ${describe(item)}: ${(e as Error).message}; ignoring it`);
          continue;
        }
        if (kept.length >= max) {
          extra.push(`settings: more than ${max} ${setting} entries; ignoring ${setting}[${i}] and the rest`);
          break;
        }
        if (!kept.includes(text)) kept.push(text);
      }
      return { ok: true, value: kept, extra };
    },
  };
}

const teamField = publicKeyListField(
  'team',
  [],
  MAX_TEAM,
  'Public keys (name:base64, as `nix-store --generate-binary-cache-key` writes them) of the Peernix machines in your team: they talk to this one over TLS bound to their keys, and get the paths that are not public.',
);

const publicKeysField = publicKeyListField(
  'publicKeys',
  DEFAULT_PUBLIC_KEYS,
  MAX_TEAM,
  'Keys of public binary caches (name:base64): a path whose narinfo carries a valid signature by one of them is public, shared with everyone on a trusted network. Default: cache.nixos.org-1.',
);

const excludeField: Field<string[]> = {
  default: [...DEFAULT_EXCLUDE],
  schema: {
    type: 'array',
    items: { type: 'string', minLength: 1, maxLength: 200 },
    maxItems: MAX_EXCLUDE,
    default: [...DEFAULT_EXCLUDE],
    description:
      'Store path names (after "<hash>-") never shared with anyone, team included: case-insensitive patterns, `*` any run of characters, `?` one. The defaults catch names that look like secrets (README, "What is shared with whom").',
  },
  check(v) {
    if (!Array.isArray(v)) return { ok: false, why: `must be a list of name patterns (got ${describe(v)})` };
    const kept: string[] = [];
    const extra: string[] = [];
    for (const [i, item] of v.entries()) {
      let p: string;
      try {
        p = checkExcludePattern(item);
      } catch (e) {
        extra.push(`settings: exclude[${i}] ${describe(item)}: ${(e as Error).message}; ignoring it`);
        continue;
      }
      if (kept.length >= MAX_EXCLUDE) {
        extra.push(`settings: more than ${MAX_EXCLUDE} exclude patterns; ignoring exclude[${i}] and the rest`);
        break;
      }
      if (!kept.includes(p)) kept.push(p);
    }
    return { ok: true, value: kept, extra };
  },
};

export const MAX_DNSSD_DOMAINS = 16;

const dnsSdDomainsField: Field<string[]> = {
  default: [],
  schema: {
    type: 'array',
    items: { type: 'string', maxLength: 253 },
    maxItems: MAX_DNSSD_DOMAINS,
    default: [],
    description: 'DNS-SD domains to find peers in across subnets (e.g. "office.example.com"); the network’s advertised ones are browsed too.',
  },
  check(v) {
    if (!Array.isArray(v)) return { ok: false, why: `must be a list of domain names (got ${describe(v)})` };
    const kept: string[] = [];
    const extra: string[] = [];
    for (const [i, item] of v.entries()) {
      const d = typeof item === 'string' ? item.trim().toLowerCase().replace(/\.$/, '') : item;
      if (!isDomainName(d)) extra.push(`settings: dnsSdDomains[${i}] ${describe(item)} is not a domain name; ignoring it`);
      else if (kept.length >= MAX_DNSSD_DOMAINS) {
        extra.push(`settings: more than ${MAX_DNSSD_DOMAINS} DNS-SD domains; ignoring dnsSdDomains[${i}] and the rest`);
        break;
      } else if (!kept.includes(d)) kept.push(d);
    }
    return { ok: true, value: kept, extra };
  },
};

const dnsServerField: Field<string> = {
  default: '',
  schema: {
    type: 'string',
    maxLength: 64,
    default: '',
    description: 'DNS server for DNS-SD, "address" or "address:port"; empty: the system’s (/etc/resolv.conf).',
  },
  check: (v) =>
    v === '' || (typeof v === 'string' && parseServer(v) !== null)
      ? { ok: true, value: (v as string).trim() }
      : { ok: false, why: `must be an IP address, optionally with :port (got ${describe(v)})` },
};

export interface DnsSdRegisterSetting {
  domain: string;
  server: string;
  keyFile: string;
  ttl: number;
}

const dnsSdRegisterField: Field<DnsSdRegisterSetting | null> = {
  default: null,
  schema: {
    type: ['object', 'null'],
    properties: {
      domain: { type: 'string', description: 'The zone to register in.' },
      server: { type: 'string', description: 'Its primary server, "address" or "address:port", which accepts TSIG-signed updates.' },
      keyFile: { type: 'string', description: 'A TSIG key file as `tsig-keygen` writes it, owner-only (chmod 600).' },
      ttl: { type: 'integer', minimum: 5, maximum: 3600, default: 30 },
    },
    required: ['domain', 'server', 'keyFile'],
    default: null,
    description: 'Register this machine in a DNS-SD domain by DNS UPDATE signed with TSIG, so peers on other subnets find it.',
  },
  check(v) {
    if (v === null) return { ok: true, value: null };
    if (!isPlainObject(v)) return { ok: false, why: `must be null or { domain, server, keyFile } (got ${describe(v)})` };
    const domain = typeof v.domain === 'string' ? v.domain.trim().toLowerCase().replace(/\.$/, '') : v.domain;
    if (!isDomainName(domain)) return { ok: false, why: `needs "domain", a domain name (got ${describe(v.domain)})` };
    if (typeof v.server !== 'string' || !parseServer(v.server))
      return { ok: false, why: `needs "server", an IP address with an optional :port (got ${describe(v.server)})` };
    if (typeof v.keyFile !== 'string' || !path.isAbsolute(v.keyFile))
      return { ok: false, why: `needs "keyFile", an absolute path (got ${describe(v.keyFile)})` };
    const ttl = v.ttl === undefined ? 30 : v.ttl;
    if (!Number.isInteger(ttl) || (ttl as number) < 5 || (ttl as number) > 3600)
      return { ok: false, why: `"ttl" must be 5–3600 seconds (got ${describe(v.ttl)})` };
    return { ok: true, value: { domain, server: v.server.trim(), keyFile: v.keyFile, ttl: ttl as number } };
  },
};

/** Where the one-time notice of an upgrade to scoped sharing stands: 'pending' until the user saw it. */
const scopesNoticeField: Field<NoticeState> = {
  default: 'none',
  schema: {
    type: 'string',
    enum: ['none', 'pending', 'seen'],
    default: 'none',
    description: 'Set by Peernix: whether you were told, after an upgrade, that team paths now go to team members only.',
  },
  check: (v) =>
    v === 'none' || v === 'pending' || v === 'seen' ? { ok: true, value: v } : { ok: false, why: `must be "none", "pending" or "seen" (got ${describe(v)})` },
};

/** Worker threads beside the main thread for the share listener; 'auto' picks by platform and cores. */
export const MAX_SHARE_THREADS = 15;
const shareThreadsField: Field<'auto' | number> = {
  // Off by default: on 2 cores no gain was measured, and each thread costs ~30 MB of RSS (the 200 MB
  // bound for 100 downloads no longer holds with 2), see app/share-loops.ts.
  default: 0,
  schema: {
    oneOf: [{ const: 'auto' }, { type: 'integer', minimum: 0, maximum: MAX_SHARE_THREADS }],
    default: 0,
    description:
      'Worker threads serving the share port beside the main one, so NAR streams use more cores (each costs about 30 MB of memory): 0 (default), 1–15, or "auto" (on Linux the cores beyond the second, up to 3; none elsewhere).',
  },
  check: (v) =>
    v === 'auto' || (Number.isInteger(v) && (v as number) >= 0 && (v as number) <= MAX_SHARE_THREADS)
      ? { ok: true, value: v as 'auto' | number }
      : { ok: false, why: `must be "auto" or a whole number 0–${MAX_SHARE_THREADS} (got ${describe(v)})` },
};

const FIELDS = {
  /** Whether the share listener (LAN) is up. */
  sharing: booleanField(true, 'Share this machine’s Nix store with LAN peers.'),
  /** HOST:PORT the share listener binds to. */
  shareListen: hostPortField('0.0.0.0:9999', 'HOST:PORT the LAN share listener binds to.', false),
  /** HOST:PORT of the loopback substituter + dashboard listener; must be a loopback host. */
  listen: hostPortField('127.0.0.1:9998', 'Loopback HOST:PORT for the local substituter and the dashboard.', true),
  /** Static peer base URLs (http or https). */
  peers: peersField,
  /** Discover and announce peers with mDNS. */
  mdns: booleanField(true, 'Find peers on the LAN with mDNS.'),
  /** Offer Peernix peers to send NARs compressed (they do only when it gets them here sooner). */
  peerCompression: booleanField(true, 'Let Peernix peers compress NARs they send here when that makes them arrive sooner.'),
  /** Answer the UDP questions of Go peernix hosts (zw3rk/peernix) while sharing. */
  goPeers: booleanField(true, 'While sharing, answer the UDP questions of machines running the original Go peernix, so they fetch from this one.'),
  /** The UDP port Go peernix hosts ask on: their own udp-port setting, 9999 unless changed on every host. */
  goUdpPort: portField(9999, 'UDP port for Go peernix questions (the udp-port of the Go hosts on this LAN; default 9999).'),
  startAtLogin: booleanField(false, 'Start Peernix when you log in.'),
  /** GET /metrics on the share listener as well as on loopback, for a fleet's Prometheus. */
  metricsOnShare: booleanField(false, 'Also serve Prometheus metrics (/metrics) on the LAN share listener.'),
  /** Threads for the share listener (app/share-loops.ts). */
  shareThreads: shareThreadsField,
  /** Networks sharing runs on (README, "Trusted networks"). */
  trustedNetworks: trustedNetworksField,
  /** Share on every network (headless installs, build boxes). */
  trustAllNetworks: booleanField(false, 'Share on every network, not only trusted ones (for headless machines on a network you control).'),
  /** The team: Peernix machines (by identity key) that talk to this one over the team channel (TLS). */
  team: teamField,
  /** DNS-SD domains browsed for peers across subnets (README, "Across subnets"). */
  dnsSdDomains: dnsSdDomainsField,
  /** The DNS server DNS-SD asks; '' for the system's. */
  dnsSdServer: dnsServerField,
  /** Registration of this machine by signed DNS UPDATE; null: none. */
  dnsSdRegister: dnsSdRegisterField,
  /** The upgrade notice of scoped sharing (README, "Team and scopes"). */
  scopesNotice: scopesNoticeField,
  /** Public caches' keys: what they signed is shared with everyone (README, "What is shared with whom"). */
  publicKeys: publicKeysField,
  /** Names never shared, team included. */
  exclude: excludeField,
};

type FieldValue<F> = F extends Field<infer T> ? T : never;
export type Settings = { [K in keyof typeof FIELDS]: FieldValue<(typeof FIELDS)[K]> };

export const SETTING_KEYS = Object.keys(FIELDS) as (keyof Settings)[];

export const DEFAULT_SETTINGS: Readonly<Settings> = Object.freeze(
  Object.fromEntries(
    SETTING_KEYS.map((k) => [k, Array.isArray(FIELDS[k].default) ? Object.freeze([...FIELDS[k].default]) : FIELDS[k].default]),
  ) as unknown as Settings,
);

/**
 * JSON Schema (the `properties` object conf and electron-store take), for documentation and tools.
 * Deliberately not passed to conf or electron-store (see the header comment); loopback-ness of
 * `listen` is checked only in code.
 */
export const SETTINGS_SCHEMA = Object.fromEntries(SETTING_KEYS.map((k) => [k, FIELDS[k].schema])) as Record<
  keyof Settings,
  Record<string, unknown> & { default: unknown }
>;

function check<K extends keyof Settings>(key: K, v: unknown): FieldResult<Settings[K]> {
  return (FIELDS[key] as unknown as Field<Settings[K]>).check(v);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'string') return JSON.stringify(v.length > 80 ? v.slice(0, 80) + '…' : v);
  if (typeof v === 'object') return 'an object';
  return String(v);
}

function defaultsCopy(): Settings {
  return {
    ...DEFAULT_SETTINGS,
    peers: [...DEFAULT_SETTINGS.peers],
    trustedNetworks: [...DEFAULT_SETTINGS.trustedNetworks],
    team: [...DEFAULT_SETTINGS.team],
    dnsSdDomains: [...DEFAULT_SETTINGS.dnsSdDomains],
    publicKeys: [...DEFAULT_SETTINGS.publicKeys],
    exclude: [...DEFAULT_SETTINGS.exclude],
  };
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Validates settings field by field. A missing field takes its default quietly; a bad field takes
 * its default and adds a problem; unknown keys are reported (conf's own `__internal__` is not).
 */
export function validateSettings(raw: unknown): { settings: Settings; problems: string[] } {
  const settings = defaultsCopy();
  const problems: string[] = [];
  if (raw === undefined) return { settings, problems };
  if (!isPlainObject(raw)) {
    problems.push(`settings: expected a JSON object, got ${describe(raw)}; using the defaults`);
    return { settings, problems };
  }
  for (const key of SETTING_KEYS) {
    if (!Object.hasOwn(raw, key)) continue;
    const r = check(key, raw[key]);
    if (r.ok) {
      (settings as Record<string, unknown>)[key] = r.value;
      if (r.extra) problems.push(...r.extra);
    } else {
      problems.push(`settings: "${key}" ${r.why}; using the default ${JSON.stringify(DEFAULT_SETTINGS[key])}`);
    }
  }
  for (const key of Object.keys(raw)) {
    if (key === '__internal__' || (SETTING_KEYS as string[]).includes(key)) continue;
    problems.push(`settings: unknown setting "${key.slice(0, 80)}" is ignored (left in the file)`);
  }
  return { settings, problems };
}

/** Checks a patch strictly: any bad value throws, since the caller (UI, CLI) can correct it. */
export function validatePatch(patch: unknown): Partial<Settings> {
  if (!isPlainObject(patch)) throw new TypeError('settings patch must be an object');
  const out: Partial<Settings> = {};
  const errors: string[] = [];
  for (const [key, value] of Object.entries(patch)) {
    if (value === undefined) continue;
    if (!(SETTING_KEYS as string[]).includes(key)) {
      errors.push(`unknown setting "${key.slice(0, 80)}"`);
      continue;
    }
    const k = key as keyof Settings;
    const r = check(k, value);
    if (!r.ok) errors.push(`"${k}" ${r.why}`);
    else if (r.extra?.length) errors.push(...r.extra.map((e) => e.replace(/^settings: /, '').replace(/; ignoring.*$/, '')));
    else (out as Record<string, unknown>)[k] = r.value;
  }
  if (errors.length) throw new TypeError(`invalid settings: ${errors.join('; ')}`);
  return out;
}

// ---- the store --------------------------------------------------------------------------------

export interface SettingsStore {
  get(): Settings;
  set(patch: Partial<Settings>): void;
  readonly problems: string[];
  readonly path: string;
  /**
   * The file was there from before networks were trusted (it names neither `trustedNetworks` nor
   * `trustAllNetworks`): an upgrade, which trusts the network it starts on once.
   */
  readonly predatesNetworkTrust?: boolean;
  /**
   * The file was there from before paths had scopes (it names neither `publicKeys` nor `exclude`, and
   * Peernix has not told the user yet): an upgrade, whose user is told once what changed.
   */
  readonly predatesScopes?: boolean;
}

/** The daemon's and the app's settings: `<stateDir>/settings.json`. */
export function openDaemonSettings(stateDir: string): SettingsStore {
  return openSettingsStore(stateDir);
}

/** JSON.parse's own message quotes the text it choked on; only the position may reach a log. */
function jsonProblem(e: unknown): string {
  const at = /position (\d+)/.exec((e as Error).message);
  return at ? `not valid JSON (at byte ${at[1]})` : 'not valid JSON';
}

const serialize = (value: unknown) => JSON.stringify(value, null, '\t');

export function openSettingsStore(stateDir: string): SettingsStore {
  fs.mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const file = path.join(stateDir, SETTINGS_FILE_NAME);
  const notes: string[] = [];

  let raw: unknown;
  let fileState: 'missing' | 'ok' | 'corrupt' | 'unreadable' = 'missing';
  try {
    const text = readStateFile(file);
    if (text !== null) {
      try {
        raw = JSON.parse(text);
        fileState = isPlainObject(raw) ? 'ok' : 'corrupt';
        if (fileState === 'corrupt') notes.push(`settings: ${file} holds ${describe(raw)}, not an object`);
      } catch (e) {
        fileState = 'corrupt';
        notes.push(text.trim() === '' ? `settings: ${file} was empty` : `settings: ${file} is ${jsonProblem(e)}`);
      }
    }
  } catch (e) {
    fileState = 'unreadable';
    const why = e instanceof StateFileError ? `: it ${e.detail}` : ` (${(e as Error).message})`;
    notes.push(`settings: cannot read ${file}${why}; using the defaults and leaving the file alone`);
  }

  if (fileState === 'corrupt') {
    raw = undefined;
    try {
      const kept = keepCorruptFile(file);
      writeStateFile(file, serialize(defaultsCopy()));
      notes[notes.length - 1] += kept ? `; kept a copy at ${kept} and started from the defaults` : '; started from the defaults';
    } catch (e) {
      // Without a copy we must not overwrite it: run on defaults and leave the file as it is.
      fileState = 'unreadable';
      notes[notes.length - 1] += `; could not keep a copy (${(e as Error).message}), so the file is left alone and the defaults are used`;
    }
  }

  const writable = fileState !== 'unreadable';
  // A first run writes the defaults so there is a file to look at and edit.
  if (fileState === 'missing') writeStateFile(file, serialize(defaultsCopy()));

  /** What is on disk now, as an object; a file that went bad while we ran is kept aside first. */
  function readOnDisk(): Record<string, unknown> {
    const text = readStateFile(file); // a link or a foreign file planted meanwhile throws: nothing is written
    if (text === null) return {};
    let why = 'not an object';
    try {
      const parsed: unknown = JSON.parse(text);
      if (isPlainObject(parsed)) return parsed;
    } catch (e) {
      why = jsonProblem(e);
    }
    // Corrupted while we ran: keep it, then carry on from what we last knew.
    const kept = keepCorruptFile(file);
    notes.push(`settings: ${file} became unreadable (${why})` + (kept ? `; kept a copy at ${kept}` : '') + ' and rewrote it from the current settings');
    return { ...current.settings };
  }

  let current = validateSettings(raw);
  const predatesNetworkTrust = fileState === 'ok' && isPlainObject(raw) && !Object.hasOwn(raw, 'trustedNetworks') && !Object.hasOwn(raw, 'trustAllNetworks');

  const predatesScopes =
    fileState === 'ok' && isPlainObject(raw) && !Object.hasOwn(raw, 'publicKeys') && !Object.hasOwn(raw, 'exclude') && !Object.hasOwn(raw, 'scopesNotice');

  return {
    predatesScopes,
    get path() {
      return file;
    },
    get problems() {
      return [...notes, ...current.problems];
    },
    predatesNetworkTrust,
    get() {
      return {
        ...current.settings,
        peers: [...current.settings.peers],
        trustedNetworks: [...current.settings.trustedNetworks],
        team: [...current.settings.team],
        dnsSdDomains: [...current.settings.dnsSdDomains],
        dnsSdRegister: current.settings.dnsSdRegister ? { ...current.settings.dnsSdRegister } : null,
        publicKeys: [...current.settings.publicKeys],
        exclude: [...current.settings.exclude],
      };
    },
    set(patch) {
      const clean = validatePatch(patch);
      if (!writable) throw new Error(`settings: cannot save, ${file} could not be read at start-up`);
      // Only the patched keys change: unknown keys and even bad hand-edited values stay as written.
      const next = { ...readOnDisk(), ...clean };
      writeStateFile(file, serialize(next));
      current = validateSettings(next);
    },
  };
}
