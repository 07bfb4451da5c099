import dnsPacket from 'dns-packet';

// dns-packet's per-part codecs (a name, a question, a record), which its published types leave out,
// typed here once. Each decoder throws on a malformed message and sets `.bytes` to what it consumed;
// names with compression pointers are followed only backwards, so a pointer loop cannot hang it.

interface Codec<T> {
  encode(value: T, buf?: Buffer, offset?: number): Buffer;
  decode(buf: Buffer, offset?: number): T;
  encodingLength(value: T): number;
  bytes?: number;
}

interface Parts {
  name: Codec<string> & { decode: { bytes: number } };
  question: Codec<dnsPacket.Question> & { decode: { bytes: number } };
  answer: Codec<dnsPacket.Answer> & { decode: { bytes: number }; encode: { bytes: number } };
}

const parts = dnsPacket as unknown as Parts;

export const dnsName = parts.name;
export const dnsQuestion = parts.question;
export const dnsRecord = parts.answer;

/** The response code in a message's header (0 NOERROR, 3 NXDOMAIN, 5 REFUSED, 9 NOTAUTH, …). */
export function rcodeOf(message: Buffer): number {
  return message[3] & 0x0f;
}

export const RCODES: Record<number, string> = {
  0: 'NOERROR',
  1: 'FORMERR',
  2: 'SERVFAIL',
  3: 'NXDOMAIN',
  4: 'NOTIMP',
  5: 'REFUSED',
  6: 'YXDOMAIN',
  7: 'YXRRSET',
  8: 'NXRRSET',
  9: 'NOTAUTH',
  10: 'NOTZONE',
};

export function rcodeName(rcode: number): string {
  return RCODES[rcode] ?? `rcode ${rcode}`;
}
