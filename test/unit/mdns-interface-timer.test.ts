import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, it, mock } from 'node:test';
import { type MdnsSocket, takeOverInterfaceUpdates } from '../../src/peers/bonjour-internals.ts';
import { waitFor } from '../support/wait.ts';

// multicast-dns's own 5 s interface timer gives way to discovery's address check (#26 idle cost):
// the replaced `update` ends the interval it is called from and still joins; the join stays callable.

describe('multicast-dns interface updates', () => {
  it('the installed multicast-dns starts its timer as setInterval(that.update, …) once listening', () => {
    const require = createRequire(import.meta.url);
    const source = readFileSync(require.resolve('multicast-dns'), 'utf8');
    assert.match(source, /interval = setInterval\(that\.update, \d+\)/);
  });

  it('the interval calling update is cleared after its first call; the join runs each time it is asked', async (t) => {
    let joins = 0;
    const mdns = {
      update() {
        assert.equal(this, mdns, 'the join runs on the multicast-dns instance');
        joins++;
      },
    };
    const join = takeOverInterfaceUpdates(mdns as unknown as MdnsSocket);
    assert.ok(join);
    const cleared = mock.method(globalThis, 'clearInterval');
    t.after(() => cleared.mock.restore());
    // As multicast-dns does when its socket listens: once now, then on its timer.
    (mdns as { update: () => void }).update();
    const interval = setInterval((mdns as { update: () => void }).update, 5);
    t.after(() => clearInterval(interval));
    await waitFor('the timer to call update', async () => joins >= 2, 5000);
    assert.ok(
      cleared.mock.calls.some((c) => c.arguments[0] === interval),
      'the interval was cleared by the call it made',
    );
    assert.equal(joins, 2);
    join!();
    assert.equal(joins, 3);
  });

  it('without the private method: nothing taken over', () => {
    assert.equal(takeOverInterfaceUpdates({} as unknown as MdnsSocket), null);
  });
});
