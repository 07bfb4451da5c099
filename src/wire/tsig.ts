import { createHmac, timingSafeEqual } from 'node:crypto';
import { dnsName, dnsQuestion, dnsRecord } from './dns-codec.ts';

// TSIG (RFC 8945): a shared-secret HMAC over a DNS message, what BIND and Knot ask of a dynamic update.
// dns-packet has no TSIG, so the record and the digest are made here, byte by byte as the RFC says:
//
//   MAC = HMAC(secret, [request MAC length + request MAC, for a response]
//                      + the message without its TSIG record (its own id, ARCOUNT not counting TSIG)
//                      + key name (wire form, lower case) + class ANY + TTL 0
//                      + algorithm name (wire form, lower case)
//                      + time signed (48 bits) + fudge + error + other length + other data)
//
//   TSIG RR: owner = key name, type 250, class ANY (255), TTL 0, rdata =
//            algorithm name, time signed (48), fudge (16), MAC size (16), MAC, original id (16),
//            error (16), other length (16), other data

export const TSIG_TYPE = 250;
const CLASS_ANY = 255;

export const TSIG_ALGORITHMS = { 'hmac-sha256': 'sha256', 'hmac-sha384': 'sha384', 'hmac-sha512': 'sha512' } as const;
export type TsigAlgorithm = keyof typeof TSIG_ALGORITHMS;

/** TSIG error codes a server may answer with (RFC 8945 §3; BADTRUNC from RFC 4635). */
export const TSIG_ERRORS: Record<number, string> = { 16: 'BADSIG', 17: 'BADKEY', 18: 'BADTIME', 22: 'BADTRUNC' };

export interface TsigKey {
  name: string; // lower case, no trailing dot
  algorithm: TsigAlgorithm;
  secret: Buffer;
}

const DEFAULT_FUDGE = 300;

function wireName(name: string): Buffer {
  return dnsName.encode(name.toLowerCase());
}

function variables(key: TsigKey, timeSigned: number, fudge: number, error: number, other: Buffer): Buffer {
  const name = wireName(key.name);
  const alg = wireName(key.algorithm);
  const fixed = Buffer.alloc(2 + 4);
  fixed.writeUInt16BE(CLASS_ANY, 0);
  fixed.writeUInt32BE(0, 2);
  const tail = Buffer.alloc(6 + 2 + 2 + 2);
  writeUint48(tail, timeSigned, 0);
  tail.writeUInt16BE(fudge, 6);
  tail.writeUInt16BE(error, 8);
  tail.writeUInt16BE(other.length, 10);
  return Buffer.concat([name, fixed, alg, tail, other]);
}

function writeUint48(buf: Buffer, value: number, offset: number): void {
  buf.writeUInt16BE(Math.floor(value / 2 ** 32) & 0xffff, offset);
  buf.writeUInt32BE(value >>> 0, offset + 2);
}

function readUint48(buf: Buffer, offset: number): number {
  return buf.readUInt16BE(offset) * 2 ** 32 + buf.readUInt32BE(offset + 2);
}

function hmac(key: TsigKey, parts: Buffer[]): Buffer {
  const h = createHmac(TSIG_ALGORITHMS[key.algorithm], key.secret);
  for (const p of parts) h.update(p);
  return h.digest();
}

function prefixed(mac: Buffer): Buffer {
  const len = Buffer.alloc(2);
  len.writeUInt16BE(mac.length, 0);
  return Buffer.concat([len, mac]);
}

/** The MAC of `message` (without its TSIG record); `requestMac` when it is a response to a signed request. */
export function tsigMac(
  message: Buffer,
  key: TsigKey,
  timeSigned: number,
  fudge = DEFAULT_FUDGE,
  requestMac?: Buffer,
  error = 0,
  other: Buffer = Buffer.alloc(0),
): Buffer {
  const parts = requestMac ? [prefixed(requestMac)] : [];
  return hmac(key, [...parts, message, variables(key, timeSigned, fudge, error, other)]);
}

/** `message` with a TSIG record appended and ARCOUNT raised; its MAC is what the response is signed over (`requestMac`: signing a response). */
export function signMessage(message: Buffer, key: TsigKey, timeSigned: number, fudge = DEFAULT_FUDGE, requestMac?: Buffer): { message: Buffer; mac: Buffer } {
  if (message.length < 12) throw new RangeError('TSIG: not a DNS message');
  const mac = tsigMac(message, key, timeSigned, fudge, requestMac);
  const alg = wireName(key.algorithm);
  const rdata = Buffer.concat([alg, Buffer.alloc(6 + 2 + 2), mac, Buffer.alloc(2 + 2 + 2)]);
  let o = alg.length;
  writeUint48(rdata, timeSigned, o);
  rdata.writeUInt16BE(fudge, o + 6);
  rdata.writeUInt16BE(mac.length, o + 8);
  o += 10 + mac.length;
  rdata.writeUInt16BE(message.readUInt16BE(0), o); // original id
  // error 0, other length 0
  const head = Buffer.alloc(10);
  head.writeUInt16BE(TSIG_TYPE, 0);
  head.writeUInt16BE(CLASS_ANY, 2);
  head.writeUInt32BE(0, 4);
  head.writeUInt16BE(rdata.length, 8);
  const signed = Buffer.concat([message, wireName(key.name), head, rdata]);
  signed.writeUInt16BE(message.readUInt16BE(10) + 1, 10);
  return { message: signed, mac };
}

export interface TsigRecord {
  /** Where the TSIG record starts: the message the MAC covers ends here. */
  offset: number;
  keyName: string;
  algorithm: string;
  timeSigned: number;
  fudge: number;
  mac: Buffer;
  originalId: number;
  error: number;
  other: Buffer;
}

/** The TSIG record ending `message`, or null when its last record is not one. Throws on a malformed message. */
export function findTsig(message: Buffer): TsigRecord | null {
  if (message.length < 12) throw new RangeError('not a DNS message');
  const qd = message.readUInt16BE(4);
  const rr = message.readUInt16BE(6) + message.readUInt16BE(8) + message.readUInt16BE(10);
  if (message.readUInt16BE(10) === 0) return null;
  let o = 12;
  for (let i = 0; i < qd; i++) {
    dnsQuestion.decode(message, o);
    o += dnsQuestion.decode.bytes;
  }
  for (let i = 0; i < rr - 1; i++) {
    dnsRecord.decode(message, o);
    o += dnsRecord.decode.bytes;
  }
  const start = o;
  const keyName = dnsName.decode(message, o);
  o += dnsName.decode.bytes;
  if (o + 10 > message.length || message.readUInt16BE(o) !== TSIG_TYPE) return null;
  const rdlength = message.readUInt16BE(o + 8);
  o += 10;
  const end = o + rdlength;
  if (end !== message.length) throw new RangeError('TSIG record is not the last thing in the message');
  const algorithm = dnsName.decode(message, o);
  o += dnsName.decode.bytes;
  if (o + 10 > end) throw new RangeError('TSIG record cut short');
  const timeSigned = readUint48(message, o);
  const fudge = message.readUInt16BE(o + 6);
  const macSize = message.readUInt16BE(o + 8);
  o += 10;
  if (o + macSize + 6 > end) throw new RangeError('TSIG record cut short');
  const mac = message.subarray(o, o + macSize);
  o += macSize;
  const originalId = message.readUInt16BE(o);
  const error = message.readUInt16BE(o + 2);
  const otherLen = message.readUInt16BE(o + 4);
  o += 6;
  if (o + otherLen !== end) throw new RangeError('TSIG record length does not add up');
  return {
    offset: start,
    keyName: keyName.toLowerCase(),
    algorithm: algorithm.toLowerCase(),
    timeSigned,
    fudge,
    mac,
    originalId,
    error,
    other: message.subarray(o, end),
  };
}

export type TsigCheck = { ok: true } | { ok: false; why: string };

/**
 * Checks a signed message: a response to a request whose MAC was `requestMac`, or a request when it is
 * absent. `nowSeconds` is wall-clock time, which TSIG's time window is defined by.
 */
export function verifyMessage(message: Buffer, key: TsigKey, nowSeconds: number, requestMac?: Buffer): TsigCheck {
  let t: TsigRecord | null;
  try {
    t = findTsig(message);
  } catch (e) {
    return { ok: false, why: `malformed: ${(e as Error).message}` };
  }
  if (!t) return { ok: false, why: 'not signed' };
  if (t.keyName !== key.name.toLowerCase()) return { ok: false, why: `signed with another key (${t.keyName.slice(0, 80)})` };
  if (t.algorithm !== key.algorithm) return { ok: false, why: `signed with another algorithm (${t.algorithm.slice(0, 40)})` };
  if (t.error !== 0) return { ok: false, why: `the server reports ${TSIG_ERRORS[t.error] ?? `TSIG error ${t.error}`}` };
  const unsigned = Buffer.from(message.subarray(0, t.offset));
  unsigned.writeUInt16BE(t.originalId, 0);
  unsigned.writeUInt16BE(unsigned.readUInt16BE(10) - 1, 10);
  const expected = tsigMac(unsigned, key, t.timeSigned, t.fudge, requestMac, t.error, t.other);
  if (t.mac.length !== expected.length || !timingSafeEqual(t.mac, expected)) return { ok: false, why: 'bad signature' };
  if (Math.abs(nowSeconds - t.timeSigned) > t.fudge)
    return { ok: false, why: `signed at ${t.timeSigned}, outside ${t.fudge} s of now (${Math.floor(nowSeconds)})` };
  return { ok: true };
}
