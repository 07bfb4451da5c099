import { dnsName, dnsQuestion, dnsRecord } from './dns-codec.ts';

// The update lease (RFC 9664): an EDNS(0) option in the OPT record of a DNS UPDATE asking the server to
// remove what the update added unless it is refreshed within LEASE seconds; a server that honours it
// echoes the option in its answer with the lease it grants. OPT pseudo-record (RFC 6891 §6.1.2):
//
//   owner  root (one zero byte)
//   type   41 (OPT)
//   class  the requester's UDP payload size
//   TTL    extended RCODE (8) | version (8) = 0 | DO + Z flags (16) = 0
//   rdata  option code 2 (UPDATE-LEASE), option length 4 or 8,
//          LEASE (32, seconds), [KEY-LEASE (32, seconds): absent means the same as LEASE]
//
// The OPT goes in the additional section before the TSIG record, which must be last (RFC 8945 §5.1),
// so the signature covers the lease asked for.

export const OPT_TYPE = 41;
export const UPDATE_LEASE_OPTION = 2;
export const UDP_PAYLOAD_SIZE = 1232;

export interface UpdateLease {
  /** Seconds. */
  lease: number;
  /** Seconds, for KEY records; null: the 4-byte form (the same as lease). */
  keyLease: number | null;
}

function u32(n: number, what: string): number {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new RangeError(`${what} ${n} is not a 32-bit number of seconds`);
  return n;
}

/** The OPT record carrying the update-lease option. */
export function encodeLeaseOpt(l: UpdateLease): Buffer {
  const len = l.keyLease === null ? 4 : 8;
  const rr = Buffer.alloc(1 + 10 + 4 + len);
  // rr[0] = 0: the root name
  rr.writeUInt16BE(OPT_TYPE, 1);
  rr.writeUInt16BE(UDP_PAYLOAD_SIZE, 3);
  rr.writeUInt32BE(0, 5);
  rr.writeUInt16BE(4 + len, 9);
  rr.writeUInt16BE(UPDATE_LEASE_OPTION, 11);
  rr.writeUInt16BE(len, 13);
  rr.writeUInt32BE(u32(l.lease, 'lease'), 15);
  if (l.keyLease !== null) rr.writeUInt32BE(u32(l.keyLease, 'key lease'), 19);
  return rr;
}

/** `message` with `opt` appended to its additional section (before any signing). */
export function withOpt(message: Buffer, opt: Buffer): Buffer {
  const out = Buffer.concat([message, opt]);
  out.writeUInt16BE(message.readUInt16BE(10) + 1, 10);
  return out;
}

/**
 * The update lease an answer carries, null when it has none (the server ignored the option) or the
 * option is malformed. Throws only on a message that cannot be walked, as the other decoders do.
 */
export function findUpdateLease(message: Buffer): UpdateLease | null {
  if (message.length < 12) throw new RangeError('not a DNS message');
  let o = 12;
  for (let i = 0; i < message.readUInt16BE(4); i++) {
    dnsQuestion.decode(message, o);
    o += dnsQuestion.decode.bytes;
  }
  const before = message.readUInt16BE(6) + message.readUInt16BE(8);
  for (let i = 0; i < before; i++) {
    dnsRecord.decode(message, o);
    o += dnsRecord.decode.bytes;
  }
  for (let i = 0; i < message.readUInt16BE(10); i++) {
    dnsName.decode(message, o);
    const at = o + dnsName.decode.bytes;
    if (at + 10 > message.length) throw new RangeError('record cut short');
    const rdlength = message.readUInt16BE(at + 8);
    const end = at + 10 + rdlength;
    if (end > message.length) throw new RangeError('record cut short');
    if (message.readUInt16BE(at) === OPT_TYPE) return leaseIn(message.subarray(at + 10, end));
    o = end;
  }
  return null;
}

// The options of one OPT rdata: code, length, value, repeated; the first UPDATE-LEASE counts.
function leaseIn(rdata: Buffer): UpdateLease | null {
  for (let o = 0; o + 4 <= rdata.length; ) {
    const code = rdata.readUInt16BE(o);
    const len = rdata.readUInt16BE(o + 2);
    if (o + 4 + len > rdata.length) return null;
    if (code === UPDATE_LEASE_OPTION) {
      if (len === 4) return { lease: rdata.readUInt32BE(o + 4), keyLease: null };
      if (len === 8) return { lease: rdata.readUInt32BE(o + 4), keyLease: rdata.readUInt32BE(o + 8) };
      return null;
    }
    o += 4 + len;
  }
  return null;
}
