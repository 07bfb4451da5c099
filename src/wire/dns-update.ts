import type dnsPacket from 'dns-packet';
import { dnsName, dnsRecord } from './dns-codec.ts';

// A DNS UPDATE message (RFC 2136): the zone, no prerequisites, and the changes, each a record whose
// class says what it does (§2.5):
//   add           class IN,   the record with its TTL
//   delete RRset  class ANY,  TTL 0, no rdata (type ANY: every RRset of the name)
//   delete one    class NONE, TTL 0, the record's rdata
// dns-packet writes no class NONE, so each record is encoded by it and its class set here.

const OPCODE_UPDATE = 5;
const CLASS_IN = 1;
const CLASS_NONE = 254;
const CLASS_ANY = 255;
const TYPE_SOA = 6;
const TYPES = { A: 1, PTR: 12, TXT: 16, AAAA: 28, SRV: 33, ANY: 255 } as const;

export type UpdateRecord = { name: string; ttl: number } & (
  | { type: 'A' | 'AAAA' | 'PTR'; data: string }
  | { type: 'SRV'; data: { priority: number; weight: number; port: number; target: string } }
  | { type: 'TXT'; data: string[] }
);

export type Change =
  | { op: 'add'; record: UpdateRecord }
  | { op: 'delete-rrset'; name: string; type: keyof typeof TYPES }
  | { op: 'delete'; record: UpdateRecord };

function encodeChange(c: Change): Buffer {
  if (c.op === 'delete-rrset') {
    const name = dnsName.encode(c.name);
    const rest = Buffer.alloc(10);
    rest.writeUInt16BE(TYPES[c.type], 0);
    rest.writeUInt16BE(CLASS_ANY, 2);
    return Buffer.concat([name, rest]); // TTL 0, RDLENGTH 0
  }
  const rec = dnsRecord.encode({ ...c.record, class: 'IN', ttl: c.op === 'add' ? c.record.ttl : 0 } as unknown as dnsPacket.Answer);
  const nameLen = dnsName.encodingLength(c.record.name);
  rec.writeUInt16BE(c.op === 'add' ? CLASS_IN : CLASS_NONE, nameLen + 2);
  return rec;
}

/** The UPDATE message for `zone` (unsigned: tsig.ts signs it). */
export function encodeUpdate(id: number, zone: string, changes: Change[]): Buffer {
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id, 0);
  header.writeUInt16BE(OPCODE_UPDATE << 11, 2);
  header.writeUInt16BE(1, 4); // ZOCOUNT
  header.writeUInt16BE(0, 6); // PRCOUNT
  header.writeUInt16BE(changes.length, 8); // UPCOUNT
  header.writeUInt16BE(0, 10); // ADCOUNT
  const zoneQ = Buffer.alloc(4);
  zoneQ.writeUInt16BE(TYPE_SOA, 0);
  zoneQ.writeUInt16BE(CLASS_IN, 2);
  return Buffer.concat([header, dnsName.encode(zone), zoneQ, ...changes.map(encodeChange)]);
}
