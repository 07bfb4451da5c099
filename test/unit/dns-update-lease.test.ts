// The update-lease option (RFC 9664) as the RFC lays it out, inside the OPT record (RFC 6891), placed
// before the TSIG record and covered by its MAC; and what a hostile answer's OPT can do to the reader.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodeUpdate } from '../../src/wire/dns-update.ts';
import { encodeLeaseOpt, findUpdateLease, withOpt } from '../../src/wire/dns-update-lease.ts';
import { findTsig, signMessage, type TsigKey, verifyMessage } from '../../src/wire/tsig.ts';

const key: TsigKey = { name: 'office-key', algorithm: 'hmac-sha256', secret: Buffer.alloc(32, 7) };
const NOW = 1_800_000_000;

describe('update lease (RFC 9664)', () => {
  it('writes the 4-byte form: root owner, type OPT, payload size, TTL 0, option 2 with LEASE', () => {
    assert.deepEqual(
      encodeLeaseOpt({ lease: 7200, keyLease: null }).toString('hex'),
      [
        '00', // owner: the root
        '0029', // type 41, OPT
        '04d0', // class: UDP payload size 1232
        '00000000', // extended RCODE 0, version 0, DO 0, Z 0
        '0008', // RDLENGTH
        '0002', // OPTION-CODE 2, UPDATE-LEASE
        '0004', // OPTION-LENGTH 4
        '00001c20', // LEASE 7200 s
      ].join(''),
    );
  });

  it('writes the 8-byte form with KEY-LEASE, and refuses what 32 bits cannot hold', () => {
    assert.equal(encodeLeaseOpt({ lease: 3600, keyLease: 604800 }).subarray(9).toString('hex'), '000c' + '0002' + '0008' + '00000e10' + '00093a80');
    assert.throws(() => encodeLeaseOpt({ lease: 2 ** 32, keyLease: null }), /32-bit/);
    assert.throws(() => encodeLeaseOpt({ lease: -1, keyLease: null }), /32-bit/);
    assert.throws(() => encodeLeaseOpt({ lease: 1.5, keyLease: null }), /32-bit/);
  });

  it('sits before the TSIG record, which stays last, and the MAC covers it', () => {
    const update = encodeUpdate(0x1234, 'office.test', [{ op: 'delete-rrset', name: 'a.office.test', type: 'ANY' }]);
    const opt = encodeLeaseOpt({ lease: 7200, keyLease: null });
    const { message } = signMessage(withOpt(update, opt), key, NOW);
    assert.equal(message.readUInt16BE(10), 2, 'ARCOUNT: OPT and TSIG');
    assert.deepEqual(message.subarray(update.length, update.length + opt.length), opt, 'OPT right after the update section');
    const t = findTsig(message);
    assert.equal(t?.offset, update.length + opt.length, 'TSIG after it, last');
    assert.deepEqual(findUpdateLease(message), { lease: 7200, keyLease: null });
    assert.deepEqual(verifyMessage(message, key, NOW), { ok: true });
    // A lease changed on the way breaks the signature.
    const tampered = Buffer.from(message);
    tampered[update.length + opt.length - 1] ^= 1;
    assert.deepEqual(findUpdateLease(tampered), { lease: 7201, keyLease: null });
    assert.deepEqual(verifyMessage(tampered, key, NOW), { ok: false, why: 'bad signature' });
  });

  it('reads the granted lease among other options, and nothing from a malformed or absent one', () => {
    const update = encodeUpdate(1, 'office.test', []);
    const optWith = (rdata: Buffer) => {
      const head = Buffer.from('0000290' + '4d000000000', 'hex');
      const len = Buffer.alloc(2);
      len.writeUInt16BE(rdata.length, 0);
      return withOpt(update, Buffer.concat([head, len, rdata]));
    };
    // A cookie (10) first, then the lease in the 8-byte form.
    assert.deepEqual(findUpdateLease(optWith(Buffer.from('000a0008' + '0102030405060708' + '00020008' + '0000012c' + '00000258', 'hex'))), {
      lease: 300,
      keyLease: 600,
    });
    assert.equal(findUpdateLease(update), null, 'no OPT');
    assert.equal(findUpdateLease(optWith(Buffer.alloc(0))), null, 'an OPT with no options');
    assert.equal(findUpdateLease(optWith(Buffer.from('00020006000000010002', 'hex'))), null, 'wrong option length');
    assert.equal(findUpdateLease(optWith(Buffer.from('00020008000000', 'hex'))), null, 'option longer than the rdata');
    assert.equal(findUpdateLease(optWith(Buffer.from('0002', 'hex'))), null, 'cut header');
    const cut = optWith(Buffer.from('000200040000012c', 'hex'));
    assert.throws(() => findUpdateLease(cut.subarray(0, cut.length - 3)), RangeError, 'a record cut short cannot be walked');
    assert.throws(() => findUpdateLease(Buffer.alloc(5)), RangeError);
  });
});
