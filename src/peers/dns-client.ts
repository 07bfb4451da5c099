import dgram from 'node:dgram';
import { randomInt } from 'node:crypto';
import net from 'node:net';
import dnsPacket from 'dns-packet';
import { dnsQuestion } from '../wire/dns-codec.ts';

// One DNS exchange with one server: UDP first, TCP when the answer comes back truncated (RFC 7766),
// each bounded in time, so a dead or slow server costs a background round its timeout and nothing else.
// Node's own resolver gives no TTLs for PTR/SRV/TXT and cannot send an UPDATE, hence this.
// Answers are hostile input: only the server's address and the query's id and question are accepted,
// and a message is at most 64 KiB (TCP's length prefix; UDP datagrams are no bigger).

export interface DnsServer {
  host: string;
  port: number;
}

export interface ExchangeOptions {
  timeoutMs?: number; // per attempt (default 1500)
  tries?: number; // UDP attempts before giving up (default 2)
  signal?: AbortSignal;
}

export class DnsTimeoutError extends Error {
  constructor(server: DnsServer, how: string) {
    super(`no answer from DNS server ${formatServer(server)} over ${how}`);
    this.name = 'DnsTimeoutError';
  }
}

export function formatServer(s: DnsServer): string {
  return net.isIPv6(s.host) ? `[${s.host}]:${s.port}` : `${s.host}:${s.port}`;
}

/** "10.0.0.53", "10.0.0.53:5353", "[fd00::53]:53" → server; null when it is none of those. */
export function parseServer(text: string): DnsServer | null {
  const t = text.trim();
  const v6 = /^\[([0-9A-Fa-f:.]+)\](?::(\d{1,5}))?$/.exec(t);
  const [host, port] = v6 ? [v6[1], v6[2]] : net.isIPv6(t) ? [t, undefined] : t.split(':').length <= 2 ? t.split(':') : [null, undefined];
  if (!host || net.isIP(host) === 0) return null;
  const p = port === undefined ? 53 : Number(port);
  return Number.isInteger(p) && p >= 1 && p <= 65535 ? { host, port: p } : null;
}

export function newQueryId(): number {
  return randomInt(0, 0x10000);
}

/** Sends `message` and returns the server's answer to it (same id), over TCP when UDP's was truncated. */
export async function exchange(server: DnsServer, message: Buffer, opts: ExchangeOptions = {}): Promise<Buffer> {
  const timeoutMs = opts.timeoutMs ?? 1500;
  const tries = Math.max(1, opts.tries ?? 2);
  const id = message.readUInt16BE(0);
  let answer: Buffer | null = null;
  for (let i = 0; i < tries && !answer; i++) answer = await udpOnce(server, message, id, timeoutMs, opts.signal);
  if (!answer) throw new DnsTimeoutError(server, 'UDP');
  if (isTruncated(answer)) return tcpOnce(server, message, id, timeoutMs * 2, opts.signal);
  return answer;
}

function isTruncated(answer: Buffer): boolean {
  return (answer.readUInt16BE(2) & 0x0200) !== 0;
}

function sameQuestion(answer: Buffer, message: Buffer): boolean {
  // Both carry the question right after the header; an UPDATE's zone section is in the same place.
  try {
    if (answer.readUInt16BE(4) === 0) return true; // some servers leave it out of an error answer
    dnsQuestion.decode(message, 12);
    const len = dnsQuestion.decode.bytes;
    const a = dnsQuestion.decode(answer, 12);
    const q = dnsQuestion.decode(message, 12);
    return len > 0 && a.name.toLowerCase() === q.name.toLowerCase() && a.type === q.type;
  } catch {
    return false;
  }
}

function udpOnce(server: DnsServer, message: Buffer, id: number, timeoutMs: number, signal?: AbortSignal): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket(net.isIPv6(server.host) ? 'udp6' : 'udp4');
    let done = false;
    const finish = (value: Buffer | null, err?: Error): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      socket.close();
      if (err) reject(err);
      else resolve(value);
    };
    const onAbort = (): void => finish(null, new Error('aborted'));
    const timer = setTimeout(() => finish(null), timeoutMs);
    signal?.addEventListener('abort', onAbort, { once: true });
    socket.on('error', (err) => finish(null, err));
    socket.on('message', (msg, rinfo) => {
      // A stranger's datagram or a late answer to an earlier try is not the answer.
      if (rinfo.address.replace(/^::ffff:/, '') !== server.host.replace(/^::ffff:/, '') || rinfo.port !== server.port) return;
      if (msg.length < 12 || msg.readUInt16BE(0) !== id || (msg.readUInt16BE(2) & 0x8000) === 0) return;
      if (!sameQuestion(msg, message)) return;
      finish(msg);
    });
    socket.send(message, server.port, server.host, (err) => {
      if (err) finish(null, err);
    });
  });
}

const MAX_TCP_MESSAGE = 65_535;

function tcpOnce(server: DnsServer, message: Buffer, id: number, timeoutMs: number, signal?: AbortSignal): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: server.host, port: server.port });
    let got = Buffer.alloc(0);
    let done = false;
    const finish = (value: Buffer | null, err?: Error): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      socket.destroy();
      if (value) resolve(value);
      else reject(err ?? new DnsTimeoutError(server, 'TCP'));
    };
    const onAbort = (): void => finish(null, new Error('aborted'));
    const timer = setTimeout(() => finish(null), timeoutMs);
    signal?.addEventListener('abort', onAbort, { once: true });
    socket.on('error', (err) => finish(null, err));
    socket.on('connect', () => {
      const len = Buffer.alloc(2);
      len.writeUInt16BE(message.length, 0);
      socket.write(Buffer.concat([len, message]));
    });
    socket.on('data', (chunk: Buffer) => {
      got = Buffer.concat([got, chunk]);
      if (got.length > 2 + MAX_TCP_MESSAGE) return finish(null, new Error('DNS answer over TCP is longer than its own length prefix allows'));
      if (got.length < 2) return;
      const len = got.readUInt16BE(0);
      if (got.length < 2 + len) return;
      const msg = got.subarray(2, 2 + len);
      if (msg.length < 12 || msg.readUInt16BE(0) !== id) return finish(null, new Error('DNS answer over TCP is for another query'));
      finish(Buffer.from(msg));
    });
    socket.on('end', () => finish(null, new Error(`DNS server ${formatServer(server)} closed the TCP connection before answering`)));
  });
}

export type QueryType = 'PTR' | 'SRV' | 'TXT' | 'A' | 'AAAA' | 'SOA';

/** A decoded answer; throws when it cannot be decoded (a malformed or malicious message). */
export function decodeAnswer(answer: Buffer): dnsPacket.Packet {
  return dnsPacket.decode(answer);
}

/** A recursive query for `name`/`type` (RD set: the server may be a resolver or the zone's own). */
export function encodeQuery(name: string, type: QueryType): Buffer {
  return dnsPacket.encode({ type: 'query', id: newQueryId(), flags: dnsPacket.RECURSION_DESIRED, questions: [{ type, name, class: 'IN' }] });
}

export async function query(server: DnsServer, name: string, type: QueryType, opts: ExchangeOptions = {}): Promise<dnsPacket.Packet> {
  return decodeAnswer(await exchange(server, encodeQuery(name, type), opts));
}
