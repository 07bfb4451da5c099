import { readFile } from 'node:fs/promises';
import { endianness } from 'node:os';

// How many bytes each TCP connection of this process's network namespace still holds in the kernel
// unacknowledged by its peer (Linux: the tx_queue column of /proc/net/tcp and tcp6). Bytes the kernel
// took from us are not bytes the client took: with a tiny receive window they sit there for good.
// The files are the kernel's own; each line is still parsed defensively (a line that does not parse
// is skipped). Elsewhere (macOS, Windows) there is no such table: null.

/** `${localPort} ${remoteAddress} ${remotePort}` → bytes not yet acknowledged. */
export type SendQueues = Map<string, number>;

export function sendQueueKey(localPort: number, remoteAddress: string, remotePort: number): string {
  return `${localPort} ${canonicalAddress(remoteAddress)} ${remotePort}`;
}

export async function readSendQueues(files = ['/proc/net/tcp', '/proc/net/tcp6']): Promise<SendQueues | null> {
  const out: SendQueues = new Map();
  let any = false;
  for (const f of files) {
    let text: string;
    try {
      text = await readFile(f, 'latin1');
    } catch {
      continue;
    }
    any = true;
    parseSendQueues(text, out);
  }
  return any ? out : null;
}

const LINE =
  /^\s*\d+:\s+([0-9A-Fa-f]{8}|[0-9A-Fa-f]{32}):([0-9A-Fa-f]{4})\s+([0-9A-Fa-f]{8}|[0-9A-Fa-f]{32}):([0-9A-Fa-f]{4})\s+[0-9A-Fa-f]{2}\s+([0-9A-Fa-f]{8}):/;

export function parseSendQueues(text: string, into: SendQueues = new Map()): SendQueues {
  for (const line of text.split('\n')) {
    const m = LINE.exec(line);
    if (!m) continue;
    const key = `${parseInt(m[2], 16)} ${canonicalAddress(decodeProcAddress(m[3]))} ${parseInt(m[4], 16)}`;
    into.set(key, parseInt(m[5], 16));
  }
  return into;
}

/** The kernel prints each 32-bit word of an address in host byte order. */
function decodeProcAddress(hex: string): string {
  const bytes: number[] = [];
  for (let w = 0; w < hex.length; w += 8) {
    const word = [0, 2, 4, 6].map((i) => parseInt(hex.slice(w + i, w + i + 2), 16));
    bytes.push(...(endianness() === 'LE' ? word.reverse() : word));
  }
  if (bytes.length === 4) return bytes.join('.');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] << 8) | bytes[i + 1]).toString(16));
  return groups.join(':');
}

/** One spelling per address: IPv4-mapped IPv6 as IPv4, IPv6 fully expanded without zone or leading zeros. */
export function canonicalAddress(address: string): string {
  let a = address.toLowerCase();
  const zone = a.indexOf('%');
  if (zone >= 0) a = a.slice(0, zone);
  const mapped = /^(?:0{1,4}:){5}ffff:(\d+\.\d+\.\d+\.\d+)$|^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (mapped) return mapped[1] ?? mapped[2];
  if (/^0:0:0:0:0:ffff:[0-9a-f]{1,4}:[0-9a-f]{1,4}$/.test(a)) {
    const [hi, lo] = a
      .split(':')
      .slice(6)
      .map((g) => parseInt(g, 16));
    return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  }
  if (!a.includes(':')) return a;
  const [head, tail] = a.includes('::') ? a.split('::') : [a, null];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const fill = tail === null ? [] : Array(8 - h.length - t.length).fill('0');
  return [...h, ...fill, ...t].map((g) => parseInt(g || '0', 16).toString(16)).join(':');
}
