// .narinfo rendering and parsing. The parser sees narinfos from untrusted LAN peers, so it follows
// Nix 2.8's line grammar but refuses every input whose meaning Nix would get subtly wrong (a missing
// space after the colon, CRLF, lines without a key) instead of reproducing the quirk.

import { parseSha256 } from './hash.ts';
import { decodeNix32 } from './nix32.ts';
import { parseBaseName, parseStorePath } from './store-path.ts';

export interface NarInfo {
  storePath: string;
  url: string;
  compression: string;
  fileHash?: string;
  fileSize?: number;
  narHash: string; // 'sha256:<nix32>' as written
  narSize: number;
  references: string[]; // basenames
  deriver?: string; // basename
  sigs: string[];
  ca?: string;
}

export class NarInfoError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NarInfoError';
  }
}

export const DEFAULT_MAX_NARINFO_BYTES = 64 * 1024;

function checkValue(field: string, value: string): string {
  if (/[\n\r]/.test(value)) throw new NarInfoError(`narinfo: ${field} contains a line break`);
  return value;
}

export function renderNarInfo(info: NarInfo): string {
  let out = `StorePath: ${checkValue('StorePath', info.storePath)}\n`;
  out += `URL: ${checkValue('URL', info.url)}\n`;
  out += `Compression: ${checkValue('Compression', info.compression)}\n`;
  if (info.fileHash !== undefined) out += `FileHash: ${checkValue('FileHash', info.fileHash)}\n`;
  if (info.fileSize !== undefined) out += `FileSize: ${info.fileSize}\n`;
  out += `NarHash: ${checkValue('NarHash', info.narHash)}\n`;
  out += `NarSize: ${info.narSize}\n`;
  // Nix writes "References: " with a trailing space when empty; omitting the line is equivalent
  // and cannot turn into the "References:" trap if some layer strips trailing whitespace.
  if (info.references.length > 0) out += `References: ${checkValue('References', info.references.join(' '))}\n`;
  if (info.deriver !== undefined) out += `Deriver: ${checkValue('Deriver', info.deriver)}\n`;
  for (const sig of info.sigs) out += `Sig: ${checkValue('Sig', sig)}\n`;
  if (info.ca !== undefined) out += `CA: ${checkValue('CA', info.ca)}\n`;
  return out;
}

const SINGLE_VALUED = new Set(['StorePath', 'URL', 'Compression', 'FileHash', 'FileSize', 'NarHash', 'NarSize', 'References', 'Deriver', 'CA']);

const DECIMAL = /^(0|[1-9][0-9]{0,15})$/;
const SIG = /^[^\s:]+:[A-Za-z0-9+/]+={0,2}$/;

function parseSize(field: string, value: string): number {
  if (!DECIMAL.test(value)) throw new NarInfoError(`narinfo: ${field} is not a decimal number`);
  const n = Number(value);
  if (!Number.isSafeInteger(n)) throw new NarInfoError(`narinfo: ${field} is too large`);
  return n;
}

function checkBaseName(field: string, value: string): void {
  try {
    parseBaseName(value);
  } catch {
    throw new NarInfoError(`narinfo: ${field} has an invalid store path ${JSON.stringify(value.slice(0, 100))}`);
  }
}

function checkSha256(field: string, value: string): void {
  try {
    parseSha256(value);
  } catch {
    throw new NarInfoError(`narinfo: ${field} is not a valid sha256 hash`);
  }
}

const HASH_BYTES: Record<string, number> = { md5: 16, sha1: 20, sha256: 32, sha512: 64 };

// A content-address hash in any of the encodings Nix accepts for a known algorithm.
function isHashOf(algo: string, text: string): boolean {
  const size = HASH_BYTES[algo];
  if (size === undefined) return false;
  if (text.length === size * 2) return /^[0-9a-fA-F]+$/.test(text);
  if (text.length === Math.ceil((size * 8) / 5)) {
    try {
      decodeNix32(text, size);
      return true;
    } catch {
      return false;
    }
  }
  if (text.length === Math.ceil(size / 3) * 4 && /^[A-Za-z0-9+/]+={0,2}$/.test(text)) {
    return Buffer.from(text, 'base64').length === size;
  }
  return false;
}

// 'text:sha256:<h>' or 'fixed:[r:|git:]<algo>:<h>' (git: exists only in newer Nix).
function isContentAddress(value: string): boolean {
  let m = /^text:sha256:([^:]+)$/.exec(value);
  if (m) return isHashOf('sha256', m[1]);
  m = /^fixed:(?:r:|git:)?(md5|sha1|sha256|sha512):([^:]+)$/.exec(value);
  if (m) return isHashOf(m[1], m[2]);
  return false;
}

export function parseNarInfo(text: string, maxBytes: number = DEFAULT_MAX_NARINFO_BYTES): NarInfo {
  try {
    return parseStrict(text, maxBytes);
  } catch (err) {
    if (err instanceof NarInfoError) throw err;
    throw new NarInfoError(`narinfo: ${err instanceof Error ? err.message : String(err)}`);
  }
}

function parseStrict(text: string, maxBytes: number): NarInfo {
  if (typeof text !== 'string') throw new NarInfoError('narinfo: not a string');
  // UTF-16 length never exceeds the UTF-8 length, so the cheap check alone rejects huge input.
  if (text.length > maxBytes || Buffer.byteLength(text, 'utf8') > maxBytes) {
    throw new NarInfoError(`narinfo: larger than ${maxBytes} bytes`);
  }
  if (text.includes('\r')) throw new NarInfoError('narinfo: contains a carriage return (CRLF line endings?)');
  if (text.includes('\0')) throw new NarInfoError('narinfo: contains a NUL byte');
  if (text.length === 0) throw new NarInfoError('narinfo: empty');
  if (!text.endsWith('\n')) throw new NarInfoError('narinfo: last line does not end with a newline');

  let storePath: string | undefined;
  let url: string | undefined;
  let compression = '';
  let fileHash: string | undefined;
  let fileSize: number | undefined;
  let narHash: string | undefined;
  let narSize: number | undefined;
  let references: string[] | undefined;
  let deriver: string | undefined;
  const sigs: string[] = [];
  let ca: string | undefined;

  const seenKeys = new Set<string>();
  let pos = 0;
  while (pos < text.length) {
    const eol = text.indexOf('\n', pos);
    const colon = text.indexOf(':', pos);
    if (colon < 0 || colon > eol) throw new NarInfoError(`narinfo: line ${JSON.stringify(text.slice(pos, Math.min(eol, pos + 60)))} has no key`);
    // Nix takes the value from colon+2 whatever that character is; with "Key:\n" it would swallow
    // the next line, so demand the separator it assumes.
    if (text[colon + 1] !== ' ') throw new NarInfoError(`narinfo: no space after ':' in ${JSON.stringify(text.slice(pos, colon + 1).slice(0, 60))}`);
    const key = text.slice(pos, colon);
    const value = text.slice(colon + 2, eol);
    pos = eol + 1;
    // Nix lets a repeated field silently override the earlier one (and rejects only some
    // repeats); a hostile peer gains nothing from repeats, so none are accepted.
    if (SINGLE_VALUED.has(key)) {
      if (seenKeys.has(key)) throw new NarInfoError(`narinfo: more than one ${key} line`);
      seenKeys.add(key);
    }

    switch (key) {
      case 'StorePath':
        try {
          parseStorePath(value);
        } catch {
          throw new NarInfoError(`narinfo: invalid StorePath ${JSON.stringify(value.slice(0, 100))}`);
        }
        storePath = value;
        break;
      case 'URL':
        url = value;
        break;
      case 'Compression':
        compression = value;
        break;
      case 'FileHash':
        checkSha256('FileHash', value);
        fileHash = value;
        break;
      case 'FileSize':
        fileSize = parseSize('FileSize', value);
        break;
      case 'NarHash':
        checkSha256('NarHash', value);
        narHash = value;
        break;
      case 'NarSize':
        narSize = parseSize('NarSize', value);
        break;
      case 'References': {
        // Split like Nix's tokenizeString: runs of spaces separate, empty tokens vanish.
        const refs: string[] = [];
        const seen = new Set<string>();
        for (const r of value.split(' ')) {
          if (r === '') continue;
          checkBaseName('References', r);
          if (!seen.has(r)) {
            seen.add(r);
            refs.push(r);
          }
        }
        references = refs;
        break;
      }
      case 'Deriver':
        if (value === 'unknown-deriver') {
          deriver = undefined;
        } else {
          checkBaseName('Deriver', value);
          deriver = value;
        }
        break;
      case 'Sig':
        if (!SIG.test(value)) throw new NarInfoError('narinfo: malformed Sig');
        if (!sigs.includes(value)) sigs.push(value);
        break;
      case 'CA':
        // Nix treats an empty CA as absent.
        if (value === '') break;
        if (!isContentAddress(value)) throw new NarInfoError(`narinfo: invalid CA ${JSON.stringify(value.slice(0, 100))}`);
        ca = value;
        break;
      default:
        // Unknown keys (System, future fields) are ignored, as Nix does.
        break;
    }
  }

  if (storePath === undefined) throw new NarInfoError('narinfo: missing StorePath');
  if (url === undefined || url === '') throw new NarInfoError('narinfo: missing URL');
  if (narHash === undefined) throw new NarInfoError('narinfo: missing NarHash');
  if (narSize === undefined) throw new NarInfoError('narinfo: missing NarSize');
  if (narSize <= 0) throw new NarInfoError('narinfo: NarSize must be positive');

  const info: NarInfo = {
    storePath,
    url,
    compression: compression === '' ? 'bzip2' : compression,
    narHash,
    narSize,
    references: references ?? [],
    sigs,
  };
  if (fileHash !== undefined) info.fileHash = fileHash;
  if (fileSize !== undefined) info.fileSize = fileSize;
  if (deriver !== undefined) info.deriver = deriver;
  if (ca !== undefined) info.ca = ca;
  return info;
}
