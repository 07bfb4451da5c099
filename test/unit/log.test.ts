import { format } from 'node:util';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createLogger, LogRateLimiter, messageKind } from '../../src/base/log.ts';

describe('log rate limiting', () => {
  it('lets a few lines of one kind through per window, then one summary line', (t) => {
    let now = 0;
    const out: string[] = [];
    const lim = new LogRateLimiter((lvl, scope, msg) => out.push(`${lvl} [${scope}] ${msg}`), { perWindow: 3, windowMs: 60_000, now: () => now });
    for (let i = 0; i < 150; i++) lim.log('warn', 'share', `NAR 0123456789abcdfghijklmnpqrsvwxyz cut after ${i * 1000} bytes: boom`);
    lim.log('warn', 'share', 'something else');
    assert.equal(out.length, 4, out.join('\n'));
    now = 60_000;
    lim.log('warn', 'share', 'NAR 0123456789abcdfghijklmnpqrsvwxyz cut after 1 bytes: boom');
    t.diagnostic(format(out.join('\n')));
    assert.equal(out.length, 6);
    assert.match(out[4], /^warn \[share\] suppressed 147 more like this in 60 s; the last: NAR .* cut after 149000 bytes/);
    assert.match(out[5], /cut after 1 bytes/);
    lim.flush();
    assert.equal(out.length, 6, 'nothing suppressed in the new window: no summary');
  });

  it('the summary comes by itself when the messages stop', async () => {
    const out: string[] = [];
    const lim = new LogRateLimiter((_l, _s, msg) => out.push(msg), { perWindow: 1, windowMs: 50 });
    lim.log('error', 'x', 'peer 10.0.0.1 failed');
    lim.log('error', 'x', 'peer 10.0.0.2 failed');
    lim.log('error', 'x', 'peer 10.0.0.3 failed');
    // Evidence, not a stopwatch: the window's own timer writes the summary (the test's timeout bounds the wait).
    while (out.length < 2) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(out, ['peer 10.0.0.1 failed', 'suppressed 2 more like this in 0 s; the last: peer 10.0.0.3 failed']);
  });

  it('kinds blank out numbers and store hashes only; info and debug are never limited; children share the limit', (t) => {
    assert.equal(messageKind('NAR 0123456789abcdfghijklmnpqrsvwxyz cut after 77 bytes'), 'NAR <hash> cut after # bytes');
    assert.notEqual(messageKind('disk full'), messageKind('daemon gone'));
    const lines: string[] = [];
    const log = createLogger('debug', 'p', (l) => lines.push(l), { perWindow: 2, windowMs: 60_000 });
    const a = log.child('a');
    for (let i = 0; i < 10; i++) {
      log.debug(`request ${i}`);
      log.info(`info ${i}`);
      a.warn(`cut ${i}`);
    }
    const count = (lvl: string) => lines.filter((l) => l.split(' ')[1] === lvl).length;
    t.diagnostic(`debug ${count('debug')} info ${count('info')} warn ${count('warn')}`);
    assert.equal(count('debug'), 10);
    assert.equal(count('info'), 10);
    assert.equal(count('warn'), 2);
  });
});
