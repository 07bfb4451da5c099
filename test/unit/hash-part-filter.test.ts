import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { HashPartFilter } from '../../src/store/hash-part-filter.ts';
import { encodeNix32 } from '../../src/nix/nix32.ts';

const hashPart = () => encodeNix32(randomBytes(20));

describe('HashPartFilter', () => {
  it('never forgets what was added, and rules out nearly everything else', () => {
    const f = new HashPartFilter();
    const added = Array.from({ length: 100_000 }, hashPart);
    for (const h of added) f.add(h);
    for (const h of added) assert.ok(f.mayContain(h));
    let maybes = 0;
    const others = 100_000;
    for (let i = 0; i < others; i++) if (f.mayContain(hashPart())) maybes++;
    assert.ok(maybes / others < 0.02, `${maybes} of ${others} unknown hash parts were "maybe"`);
  });

  it('an empty filter rules everything out; text that is not nix32 is always "maybe"', () => {
    const f = new HashPartFilter();
    assert.equal(f.mayContain(hashPart()), false);
    assert.equal(f.mayContain('eeeee' + '0'.repeat(27)), true);
    assert.equal(f.mayContain(''), true);
    f.add('not nix32 at all');
    assert.equal(f.mayContain('0'.repeat(32)), false);
  });
});
