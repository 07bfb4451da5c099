import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { openLogFile } from '../../src/base/log-file.ts';

test('the app log rotates and stays bounded: (keep + 1) files of at most maxBytes, newest lines kept', { timeout: 10_000 }, (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pn-logfile-'));
  try {
    const file = path.join(dir, 'logs', 'app.log');
    const log = openLogFile(file, { maxBytes: 10_000, keep: 2 });
    for (let i = 0; i < 2000; i++) log.write(`line ${i} ${'x'.repeat(40)}`);
    log.close();
    const files = fs.readdirSync(path.dirname(file)).sort();
    const sizes = files.map((f) => fs.statSync(path.join(dir, 'logs', f)).size);
    t.diagnostic(`files ${files.join(', ')}; sizes ${sizes.join(', ')}; wrote ${2000 * 49} bytes`);
    assert.deepEqual(files, ['app.log', 'app.log.1', 'app.log.2']);
    for (const s of sizes) assert.ok(s <= 10_000, `${s} bytes`);
    assert.match(fs.readFileSync(file, 'utf8'), /line 1999 x+\n$/);
    assert.equal((fs.statSync(file).mode & 0o777).toString(8), '600');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
