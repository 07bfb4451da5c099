// TSIG against BIND's own signatures: the two messages below were signed by BIND 9.18's `dig -y` and
// `nsupdate -k` (Debian bookworm) with the key below, made by `tsig-keygen -a hmac-sha256 vector-key`,
// and captured off a loopback socket. Our MAC over their unsigned part must be BIND's byte for byte.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { findTsig, signMessage, verifyMessage, type TsigKey } from '../../src/wire/tsig.ts';
import { parseTsigKey, readTsigKeyFile } from '../../src/wire/tsig-key-file.ts';
import { encodeUpdate } from '../../src/wire/dns-update.ts';

const KEY_FILE = `key "vector-key" {
\talgorithm hmac-sha256;
\tsecret "Oyd1RXHw4gsVCwL6cnkGKALMGigfFLMPtKRkFR/ff6Q=";
};
`;
// dig -y hmac-sha256:vector-key:… peernix.test SOA (with an EDNS OPT record before the TSIG)
const DIG =
  'e20d0120000100000000000207706565726e69780474657374000006000100002904d000000000000c000a0008ddefd03c2578b4660a766563746f722d6b65790000fa00ff00000000003d0b686d61632d7368613235360000006b170b3c012c00200154d53774fe609e47d1d998ccc98e822cd47fd4074465168e1364707c5fda1fe20d00000000';
// nsupdate: zone peernix.test, update add a.peernix.test 30 A 10.1.2.3
const NSUPDATE =
  'c60d2800000100000001000107706565726e6978047465737400000600010161c00c000100010000001e00040a0102030a766563746f722d6b65790000fa00ff00000000003d0b686d61632d7368613235360000006b170b3e012c0020fdf72a9ef66551b6956dff09c50b8ba2767326056c666b6c3975e22ffccdd0f8c60d00000000';

const key: TsigKey = parseTsigKey(KEY_FILE);

function unsignedPart(hex: string): { unsigned: Buffer; time: number; mac: Buffer; signed: Buffer } {
  const signed = Buffer.from(hex, 'hex');
  const t = findTsig(signed);
  assert.ok(t);
  const unsigned = Buffer.from(signed.subarray(0, t.offset));
  unsigned.writeUInt16BE(unsigned.readUInt16BE(10) - 1, 10);
  return { unsigned, time: t.timeSigned, mac: Buffer.from(t.mac), signed };
}

describe('TSIG (RFC 8945) against BIND', () => {
  it('reads the key file tsig-keygen writes', () => {
    assert.equal(key.name, 'vector-key');
    assert.equal(key.algorithm, 'hmac-sha256');
    assert.equal(key.secret.length, 32);
  });

  for (const [what, hex] of [
    ['dig -y query', DIG],
    ['nsupdate -k update', NSUPDATE],
  ] as const) {
    it(`verifies the ${what} BIND signed, and signs it to the same bytes`, () => {
      const { unsigned, time, mac, signed } = unsignedPart(hex);
      assert.deepEqual(verifyMessage(signed, key, time + 10), { ok: true });
      const ours = signMessage(unsigned, key, time);
      assert.equal(ours.mac.toString('hex'), mac.toString('hex'));
      assert.equal(ours.message.toString('hex'), hex);
    });
  }

  it('our encoder writes the same UPDATE as nsupdate (before the signature)', () => {
    const { unsigned } = unsignedPart(NSUPDATE);
    const ours = encodeUpdate(unsigned.readUInt16BE(0), 'peernix.test', [
      { op: 'add', record: { name: 'a.peernix.test', type: 'A', ttl: 30, data: '10.1.2.3' } },
    ]);
    // nsupdate compresses the owner name against the zone; the records otherwise match.
    assert.equal(ours.subarray(0, 30).toString('hex'), unsigned.subarray(0, 30).toString('hex'));
    assert.equal(ours.subarray(-14).toString('hex'), unsigned.subarray(-14).toString('hex'));
  });

  it('refuses a wrong key, a changed byte, a stale time and another key name', () => {
    const { signed, time } = unsignedPart(NSUPDATE);
    const wrong: TsigKey = { ...key, secret: Buffer.alloc(32, 1) };
    assert.deepEqual(verifyMessage(signed, wrong, time), { ok: false, why: 'bad signature' });
    const flipped = Buffer.from(signed);
    flipped[40] ^= 1;
    assert.equal(verifyMessage(flipped, key, time).ok, false);
    const stale = verifyMessage(signed, key, time + 301);
    assert.equal(stale.ok, false);
    assert.match((stale as { why: string }).why, /outside 300 s/);
    assert.match((verifyMessage(signed, { ...key, name: 'other' }, time) as { why: string }).why, /another key/);
  });

  it('verifies a response over the request MAC, as RFC 8945 §5.3 has the server sign it', () => {
    const request = signMessage(encodeUpdate(7, 'peernix.test', []), key, 1_800_000_000);
    const response = Buffer.from(encodeUpdate(7, 'peernix.test', []));
    response[2] |= 0x80;
    const signedResponse = signMessage(response, key, 1_800_000_001, undefined, request.mac);
    assert.deepEqual(verifyMessage(signedResponse.message, key, 1_800_000_001, request.mac), { ok: true });
    // The same response signed as a request (no request MAC), or over another request, does not pass.
    assert.equal(verifyMessage(signMessage(response, key, 1_800_000_001).message, key, 1_800_000_001, request.mac).ok, false);
    assert.equal(verifyMessage(signedResponse.message, key, 1_800_000_001, Buffer.alloc(32)).ok, false);
  });

  it('never throws on garbage, cut or hostile messages', () => {
    const { signed, time } = unsignedPart(NSUPDATE);
    for (let cut = 0; cut < signed.length; cut += 7) assert.equal(verifyMessage(signed.subarray(0, cut), key, time).ok, false);
    const bogusCount = Buffer.from(signed);
    bogusCount.writeUInt16BE(0xffff, 6);
    assert.equal(verifyMessage(bogusCount, key, time).ok, false);
  });
});

describe('TSIG key file', () => {
  it('says what is wrong without quoting the secret', () => {
    for (const [text, why] of [
      ['', /not a key file/],
      ['key "k" { algorithm hmac-md5; secret "Oyd1RXHw4gsVCwL6cnkGKALMGigfFLMPtKRkFR/ff6Q="; };', /hmac-md5/],
      ['key "k" { algorithm hmac-sha256; };', /no secret/],
      ['key "k" { algorithm hmac-sha256; secret "c2hvcnQ="; };', /at least 16 bytes/],
    ] as const) {
      assert.throws(
        () => parseTsigKey(text),
        (e: Error) => why.test(e.message) && !e.message.includes('Oyd1'),
      );
    }
  });

  it('takes only an owner-only regular file', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'pn-tsig-'));
    try {
      const file = path.join(dir, 'k.conf');
      writeFileSync(file, KEY_FILE, { mode: 0o600 });
      assert.equal(readTsigKeyFile(file).name, 'vector-key');
      writeFileSync(path.join(dir, 'open.conf'), KEY_FILE, { mode: 0o644 });
      assert.throws(() => readTsigKeyFile(path.join(dir, 'open.conf')), /readable by others.*chmod 600/);
      symlinkSync(file, path.join(dir, 'link.conf'));
      assert.throws(() => readTsigKeyFile(path.join(dir, 'link.conf')), /symbolic link/);
      assert.throws(() => readTsigKeyFile(path.join(dir, 'none.conf')), /does not exist/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
