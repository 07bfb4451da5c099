// The DNS-SD TXT record of `_peernix._tcp`, and its parser. Anyone on the LAN can answer an mDNS
// query, so decoding treats the record as hostile: it accepts Buffers or strings, bounds every size,
// drops malformed optional fields, and returns null (never throws) when the record cannot be used.
//
//   v=1                      protocol version; any other value → the whole record is ignored
//   id=<16–64 [A-Za-z0-9-]>  instance id, stable across restarts; the peer's identity
//   pk=<name>:<base64>       the peer's Nix binary-cache public key (32-byte Ed25519)
//   os=<platform>            e.g. "linux", "darwin" (display only)
//   name=<display name>      up to 63 UTF-8 bytes, control characters removed (display only)
//
// The port is not in the TXT record: the SRV record carries it.
//
// The original Go peernix (github zw3rk/peernix, main.go) announces the same service type with a
// record of its own, decoded by decodeGoTxt (facts from its startMDNSServer and getSupportedFeatures):
//   version=2.0.0                      always present; no `v`, no `id`
//   platform=<GOARCH>-<GOOS>           e.g. "amd64-linux"
//   features=compression,parallel,health[,signing]
//   pubkey=peernix-1:<base64>          only with signing on; every Go host names its key peernix-1
// Its instance name is always "peernix", so it identifies nothing: Go peers are told apart by address.

export const PROTOCOL_VERSION = 1;

/** What this host announces about itself; the TXT record carries all of it but the port. */
export interface Announcement {
  instanceId: string;
  name: string;
  port: number;
  publicKey: string;
  platform: string;
  protocol: number;
}

export interface TxtAnnouncement {
  protocol: number;
  instanceId: string;
  name: string | null;
  publicKey: string | null;
  platform: string | null;
}

// RFC 6763 §6: each string is at most 255 bytes; keys are printable ASCII without '=', and should
// be at most 9 characters. Our own record is a few hundred bytes, so the total bound is generous.
const MAX_STRING_BYTES = 255;
const MAX_ENTRIES = 64;
const MAX_TOTAL_BYTES = 4096;
const MAX_KEY_CHARS = 9;
export const MAX_NAME_BYTES = 63;

const INSTANCE_ID = /^[A-Za-z0-9-]{16,64}$/;
const KEY_NAME = /^[A-Za-z0-9._+-]{1,64}$/;
const BASE64_32 = /^[A-Za-z0-9+/]{43}=$/;
const PLATFORM = /^[A-Za-z0-9._-]{1,32}$/;
const TXT_KEY = /^[\x21-\x3c\x3e-\x7e]+$/;
// C0/C1 controls and the bidirectional overrides/isolates that can make a name display as another.
const UNSAFE_IN_NAME = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

const utf8 = new TextDecoder('utf-8', { fatal: true });

export function isInstanceId(value: unknown): value is string {
  return typeof value === 'string' && INSTANCE_ID.test(value);
}

export function isPublicKeyText(value: unknown): value is string {
  if (typeof value !== 'string' || value.length > 64 + 1 + 44) return false;
  const colon = value.indexOf(':');
  if (colon <= 0 || !KEY_NAME.test(value.slice(0, colon))) return false;
  const b64 = value.slice(colon + 1);
  if (!BASE64_32.test(b64)) return false;
  // Non-canonical trailing bits would give one key two spellings; Nix compares keys as text.
  return Buffer.from(b64, 'base64').toString('base64') === b64;
}

// Cuts at a code point boundary so the result is valid UTF-8 of at most `maxBytes` bytes.
function truncateUtf8(text: string, maxBytes: number): string {
  if (Buffer.byteLength(text) <= maxBytes) return text;
  let out = '';
  let bytes = 0;
  for (const ch of text) {
    const n = Buffer.byteLength(ch);
    if (bytes + n > maxBytes) break;
    out += ch;
    bytes += n;
  }
  return out;
}

export function cleanDisplayName(value: string): string | null {
  const cleaned = truncateUtf8(value.replace(UNSAFE_IN_NAME, '').trim(), MAX_NAME_BYTES).trim();
  return cleaned.length > 0 ? cleaned : null;
}

export function encodeTxt(a: Announcement): Record<string, string> {
  if (a.protocol !== PROTOCOL_VERSION) throw new RangeError(`TXT: unsupported protocol version ${a.protocol}`);
  if (!isInstanceId(a.instanceId)) throw new RangeError('TXT: instance id must be 16–64 of [A-Za-z0-9-]');
  const txt: Record<string, string> = { v: String(PROTOCOL_VERSION), id: a.instanceId };
  // Optional fields that would not survive our own decoder are left out rather than sent broken.
  if (isPublicKeyText(a.publicKey)) txt.pk = a.publicKey;
  if (typeof a.platform === 'string' && PLATFORM.test(a.platform)) txt.os = a.platform;
  const name = typeof a.name === 'string' ? cleanDisplayName(a.name) : null;
  if (name !== null) txt.name = name;
  return txt;
}

function toBytes(value: unknown): Buffer | null {
  if (typeof value === 'string') return Buffer.byteLength(value) <= MAX_STRING_BYTES ? Buffer.from(value) : null;
  if (value instanceof Uint8Array) {
    return value.byteLength <= MAX_STRING_BYTES ? Buffer.from(value.buffer, value.byteOffset, value.byteLength) : null;
  }
  return null;
}

// The first occurrence of a key wins (RFC 6763 §6.4); keys compare case-insensitively.
function collect(raw: unknown): Map<string, Buffer> | null {
  const fields = new Map<string, Buffer>();
  let total = 0;
  const add = (key: string, value: Buffer): void => {
    total += key.length + 1 + value.length;
    if (total > MAX_TOTAL_BYTES) return;
    if (key.length === 0 || key.length > MAX_KEY_CHARS || !TXT_KEY.test(key)) return;
    const lower = key.toLowerCase();
    if (!fields.has(lower)) fields.set(lower, value);
  };

  if (Array.isArray(raw) || raw instanceof Uint8Array || typeof raw === 'string') {
    // The wire form: a list of "key=value" strings.
    const entries: unknown[] = Array.isArray(raw) ? raw : [raw];
    const n = Math.min(entries.length, MAX_ENTRIES);
    for (let i = 0; i < n; i++) {
      const bytes = toBytes(entries[i]);
      if (!bytes) continue;
      const eq = bytes.indexOf(0x3d);
      if (eq <= 0) continue; // a boolean attribute or an empty key: nothing we use
      add(bytes.subarray(0, eq).toString('latin1'), bytes.subarray(eq + 1));
    }
    return fields;
  }

  if (raw !== null && typeof raw === 'object') {
    // An already-split object such as bonjour-service's `service.txt`. Only own enumerable
    // string keys count, so prototype tricks and getters on the prototype are never reached.
    const keys = Object.keys(raw);
    const n = Math.min(keys.length, MAX_ENTRIES);
    for (let i = 0; i < n; i++) {
      const key = keys[i];
      const bytes = toBytes((raw as Record<string, unknown>)[key]);
      if (bytes) add(key, bytes);
    }
    return fields;
  }
  return null;
}

function text(fields: Map<string, Buffer>, key: string): string | null {
  const bytes = fields.get(key);
  if (!bytes) return null;
  try {
    return utf8.decode(bytes);
  } catch {
    return null;
  }
}

export function decodeTxt(raw: unknown): TxtAnnouncement | null {
  try {
    const fields = collect(raw);
    if (!fields) return null;
    if (text(fields, 'v') !== String(PROTOCOL_VERSION)) return null;
    const instanceId = text(fields, 'id');
    if (!isInstanceId(instanceId)) return null;

    const pk = text(fields, 'pk');
    const os = text(fields, 'os');
    const name = text(fields, 'name');
    return {
      protocol: PROTOCOL_VERSION,
      instanceId,
      name: name === null ? null : cleanDisplayName(name),
      publicKey: isPublicKeyText(pk) ? pk : null,
      platform: os !== null && PLATFORM.test(os) ? os : null,
    };
  } catch {
    // Proxies and throwing getters are the only way to get here; the record is simply unusable.
    return null;
  }
}

/** What a Go peernix's TXT record says. Nothing in it is proof of anything; it is shown, never trusted. */
export interface GoTxtAnnouncement {
  version: string;
  platform: string | null;
  features: string[];
  /** The key it claims (`peernix-1:…` on every Go host): display only, it can prove nothing. */
  claimedKey: string | null;
}

const GO_VERSION = /^2\.[0-9]{1,4}(?:\.[0-9]{1,4}){0,2}$/;
const GO_FEATURE = /^[a-z0-9-]{1,32}$/;
const MAX_GO_FEATURES = 16;

/** A Go peernix's record (`version=2.x`, no `v=`), or null when the record is not one. Never throws. */
export function decodeGoTxt(raw: unknown): GoTxtAnnouncement | null {
  try {
    const fields = collect(raw);
    if (!fields || fields.has('v') || fields.has('id')) return null;
    const version = text(fields, 'version');
    if (version === null || !GO_VERSION.test(version)) return null;
    const platform = text(fields, 'platform');
    const features = (text(fields, 'features') ?? '')
      .split(',')
      .filter((f) => GO_FEATURE.test(f))
      .slice(0, MAX_GO_FEATURES);
    const pubkey = text(fields, 'pubkey');
    return {
      version,
      platform: platform !== null && PLATFORM.test(platform) ? platform : null,
      features,
      claimedKey: isPublicKeyText(pubkey) ? pubkey : null,
    };
  } catch {
    return null;
  }
}
