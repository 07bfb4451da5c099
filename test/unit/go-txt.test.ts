import { format } from 'node:util';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeGoTxt, decodeTxt, encodeTxt } from '../../src/wire/txt-record.ts';

// The record a Go peernix announces (zw3rk/peernix main.go, startMDNSServer): each entry its own
// TXT string, as hashicorp/mdns puts them on the wire.
const KEY = `peernix-1:${Buffer.alloc(32, 9).toString('base64')}`;
const goWire = (extra: string[] = []) =>
  ['version=2.0.0', 'platform=amd64-linux', 'features=compression,parallel,health,signing', `pubkey=${KEY}`, ...extra].map((s) => Buffer.from(s));

describe('TXT record of a Go peernix', { timeout: 10_000 }, () => {
  it('is recognised with its platform, features and claimed key', (t) => {
    const got = decodeGoTxt(goWire());
    t.diagnostic(format('decoded', JSON.stringify(got)));
    assert.deepEqual(got, { version: '2.0.0', platform: 'amd64-linux', features: ['compression', 'parallel', 'health', 'signing'], claimedKey: KEY });
    // Our own decoder refuses it (no v=1, no id): the two never mix.
    assert.equal(decodeTxt(goWire()), null);
  });

  it('accepts a record without signing (no pubkey) and drops malformed optional fields', () => {
    assert.deepEqual(decodeGoTxt(['version=2.0.0', 'platform=amd64-linux', 'features=compression,parallel,health']), {
      version: '2.0.0',
      platform: 'amd64-linux',
      features: ['compression', 'parallel', 'health'],
      claimedKey: null,
    });
    const odd = decodeGoTxt(['version=2.1', 'platform=has space', 'features=ok,Not OK,,x'.padEnd(200, ','), 'pubkey=peernix-1:short']);
    assert.deepEqual(odd, { version: '2.1', platform: null, features: ['ok', 'x'], claimedKey: null });
  });

  it('is not a Go record without version=2.x, or with our v/id keys', () => {
    for (const v of ['1.0.0', '3.0.0', '2', '2.0.0 ', '', 'two']) assert.equal(decodeGoTxt([`version=${v}`]), null, `version=${v}`);
    assert.equal(decodeGoTxt(['platform=amd64-linux']), null);
    assert.equal(decodeGoTxt([...goWire(), Buffer.from('v=1')]), null);
    assert.equal(
      decodeGoTxt(encodeTxt({ instanceId: 'a1b2c3d4-e5f6-4711-8899-aabbccddeeff', name: 'x', port: 1, publicKey: KEY, platform: 'linux', protocol: 1 })),
      null,
    );
  });

  it('survives hostile input without throwing', (t) => {
    const hostile: unknown[] = [
      null,
      undefined,
      42,
      {},
      [],
      [null, 5, {}],
      Buffer.alloc(300, 0x41),
      new Proxy(
        {},
        {
          ownKeys: () => {
            throw new Error('x');
          },
        },
      ),
      Array(10_000).fill('version=2.0.0'),
    ];
    let n = 0;
    for (const h of hostile) {
      assert.doesNotThrow(() => decodeGoTxt(h));
      n++;
    }
    assert.deepEqual(decodeGoTxt(Array(10_000).fill('version=2.0.0'))?.version, '2.0.0');
    t.diagnostic(`hostile inputs decoded without a throw: ${n}`);
  });
});
