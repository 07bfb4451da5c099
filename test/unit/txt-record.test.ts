import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import type { Announcement } from '../../src/wire/txt-record.ts';
import { decodeTxt, encodeTxt } from '../../src/wire/txt-record.ts';

const KEY = `cache.example.org-1:${Buffer.alloc(32, 7).toString('base64')}`;
const ID = 'a1b2c3d4-e5f6-4711-8899-aabbccddeeff';

const self: Announcement = {
  instanceId: ID,
  name: 'Alice’s laptop',
  port: 37515,
  publicKey: KEY,
  platform: 'linux',
  protocol: 1,
};

// bonjour-service hands over the TXT record as a list of "key=value" Buffers.
function wire(txt: Record<string, string>): Buffer[] {
  return Object.entries(txt).map(([k, v]) => Buffer.from(`${k}=${v}`));
}

const expected = { protocol: 1, instanceId: ID, name: 'Alice’s laptop', publicKey: KEY, platform: 'linux' };

describe('TXT record', { timeout: 10_000 }, () => {
  it('round-trips through the object form, the wire form and plain strings', () => {
    const txt = encodeTxt(self);
    assert.deepEqual(Object.keys(txt), ['v', 'id', 'pk', 'os', 'name']);
    assert.equal(txt.v, '1');
    assert.deepEqual(decodeTxt(txt), expected);
    assert.deepEqual(decodeTxt(wire(txt)), expected);
    assert.deepEqual(decodeTxt(wire(txt).map((b) => b.toString())), expected);
    for (const entry of wire(txt)) assert.ok(entry.length <= 255);
  });

  it('leaves out optional fields that would not survive decoding, and refuses a bad identity', () => {
    const txt = encodeTxt({ ...self, publicKey: 'nonsense', platform: 'has space', name: '\u0000\u0007' });
    assert.deepEqual(txt, { v: '1', id: ID });
    assert.deepEqual(decodeTxt(txt), { protocol: 1, instanceId: ID, name: null, publicKey: null, platform: null });
    assert.throws(() => encodeTxt({ ...self, instanceId: 'short' }), RangeError);
    assert.throws(() => encodeTxt({ ...self, instanceId: 'x'.repeat(65) }), RangeError);
    assert.throws(() => encodeTxt({ ...self, protocol: 2 }), RangeError);
  });

  it('truncates a long name to 63 bytes of valid UTF-8', () => {
    const txt = encodeTxt({ ...self, name: 'é'.repeat(100) });
    assert.equal(Buffer.byteLength(txt.name), 62);
    const got = decodeTxt({ ...txt, name: `${'€'.repeat(30)}` });
    assert.equal(got?.name, '€'.repeat(21));
  });

  it('returns null for an unknown, missing or malformed protocol version', () => {
    const txt = encodeTxt(self);
    for (const v of ['2', '0', '01', '1 ', '', 'one']) assert.equal(decodeTxt({ ...txt, v }), null, `v=${v}`);
    const { v: _v, ...noVersion } = txt;
    assert.equal(decodeTxt(noVersion), null);
    assert.equal(decodeTxt([...wire(txt).slice(1), Buffer.from('v=2')]), null);
  });

  it('returns null without a valid instance id', () => {
    for (const id of ['', 'short', 'x'.repeat(65), 'has space in it 12345', 'ünïcödé-ïd-1234567', 'a/b/c/d/e/f/g/h/i/j']) {
      assert.equal(decodeTxt({ v: '1', id }), null, `id=${id}`);
    }
    assert.equal(decodeTxt({ v: '1' }), null);
  });

  it('never throws on inputs of the wrong type', () => {
    const inputs: unknown[] = [
      undefined,
      null,
      0,
      42n,
      true,
      'v=1',
      Symbol('txt'),
      () => 'v=1',
      [],
      [null, undefined, 5, {}, [], Symbol('x')],
      { v: 1, id: 12345678901234567890 },
      { v: ['1'], id: [ID] },
      { v: { toString: () => '1' }, id: ID },
      new Map([['v', '1']]),
      new Date(),
      Buffer.from('v=1'),
      new Uint8Array([0x76, 0x3d, 0x31]),
    ];
    for (const input of inputs) assert.equal(decodeTxt(input), null);
  });

  it('treats keys case-insensitively, keeps the first of duplicates and ignores bad keys', () => {
    const got = decodeTxt(['V=1', `ID=${ID}`, 'id=another-valid-id-000000', 'name=first', 'name=second', 'na me=x', '=x', 'os']);
    assert.deepEqual(got, { protocol: 1, instanceId: ID, name: 'first', publicKey: null, platform: null });
    // Over-long keys are not ours (RFC 6763 suggests at most 9 characters) and are skipped.
    assert.equal(decodeTxt(['v=1', `identifier=${ID}`]), null);
  });

  it('drops malformed optional fields but keeps the peer', () => {
    const b64 = Buffer.alloc(32, 7).toString('base64');
    const badKeys = [
      'no-colon',
      `:${b64}`,
      `name with space:${b64}`,
      `k:${Buffer.alloc(31).toString('base64')}`,
      `k:${Buffer.alloc(33).toString('base64')}`,
      `k:${b64.slice(0, 42)}B=`, // non-canonical trailing bits
      `k:${b64}\n`,
      `${'k'.repeat(65)}:${b64}`,
    ];
    for (const pk of badKeys) {
      assert.equal(decodeTxt({ v: '1', id: ID, pk })?.publicKey, null, `pk=${JSON.stringify(pk)}`);
    }
    for (const os of ['', 'a b', 'x'.repeat(33), 'linux\u0000', '../etc']) {
      assert.equal(decodeTxt({ v: '1', id: ID, os })?.platform, null, `os=${os}`);
    }
  });

  it('cleans control and bidi-override characters out of names', () => {
    assert.equal(decodeTxt({ v: '1', id: ID, name: '\u0007evil\u202Efdp.exe\u0000 ' })?.name, 'evilfdp.exe');
    assert.equal(decodeTxt({ v: '1', id: ID, name: '\u0000\u0001\u0002' })?.name, null);
    assert.equal(decodeTxt({ v: '1', id: ID, name: '   ' })?.name, null);
  });

  it('ignores entries with invalid UTF-8 or over 255 bytes', () => {
    const entries = [
      Buffer.from('v=1'),
      Buffer.from(`id=${ID}`),
      Buffer.concat([Buffer.from('name='), Buffer.from([0xff, 0xfe, 0xc3])]),
      Buffer.from(`os=${'x'.repeat(300)}`),
    ];
    assert.deepEqual(decodeTxt(entries), { protocol: 1, instanceId: ID, name: null, publicKey: null, platform: null });
    assert.equal(decodeTxt({ v: '1', id: ID, name: 'n'.repeat(10_000_000) })?.name, null);
    assert.equal(decodeTxt([Buffer.from('v=1'), Buffer.from(`id=${ID}${'0'.repeat(300)}`)]), null);
  });

  it('bounds the work done on huge records', () => {
    const many = Array.from({ length: 200_000 }, (_, i) => Buffer.from(`k${i}=x`));
    // Beyond the entry limit: null, and the entries past it are never even read (counted, not timed).
    const record: unknown[] = [...many, Buffer.from('v=1'), Buffer.from(`id=${ID}`)];
    let readPastLimit = 0;
    for (let i = 1000; i < record.length; i++) {
      const entry = record[i];
      Object.defineProperty(record, i, {
        get: () => {
          readPastLimit++;
          return entry;
        },
      });
    }
    assert.equal(decodeTxt(record), null);
    assert.equal(readPastLimit, 0, 'entries past the limit read');
    assert.deepEqual(decodeTxt([Buffer.from('v=1'), Buffer.from(`id=${ID}`), ...many])?.instanceId, ID);
    const wide: Record<string, string> = { v: '1', id: ID };
    for (let i = 0; i < 50_000; i++) wide[`k${i}`] = 'x';
    assert.equal(decodeTxt(wide)?.instanceId, ID);
  });

  it('is not fooled by prototype keys, getters or proxies', () => {
    const proto = JSON.parse(`{"__proto__": {"v": "1", "id": "${ID}"}, "constructor": "x"}`);
    assert.equal(decodeTxt(proto), null);
    const inherited = Object.create({ v: '1', id: ID });
    assert.equal(decodeTxt(inherited), null);
    const getter = {
      v: '1',
      get id(): string {
        throw new Error('boom');
      },
    };
    assert.equal(decodeTxt(getter), null);
    const trap = new Proxy(
      {},
      {
        ownKeys() {
          throw new Error('boom');
        },
      },
    );
    assert.equal(decodeTxt(trap), null);
    const arrayTrap = new Proxy([Buffer.from('v=1')], {
      get(target, prop, receiver) {
        if (prop === 'length') throw new Error('boom');
        return Reflect.get(target, prop, receiver);
      },
    });
    assert.equal(decodeTxt(arrayTrap), null);
  });

  it('survives random bytes', () => {
    for (let i = 0; i < 2000; i++) {
      const entries = Array.from({ length: 1 + (i % 12) }, () => randomBytes(Math.floor(Math.random() * 300)));
      if (i % 3 === 0) entries.unshift(Buffer.from('v=1'), Buffer.from(`id=${ID}`));
      const got = decodeTxt(entries);
      if (got !== null) assert.equal(got.instanceId, ID);
    }
  });
});
