// Every state file refuses what a less privileged user can plant in the state directory: a symbolic link
// to another file (never read into a log, never written through, never copied) or a file of their own.
// Real files, a real second user (useradd + chown), the real modules that own each file.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { openDaemonSettings } from '../../src/app/settings.ts';
import { createLogger } from '../../src/base/log.ts';
import { keepCorruptFile, readStateFile, StateFileError, writeStateFile } from '../../src/base/state-file.ts';
import { loadOrCreateToken, readToken, TOKEN_FILE_NAME } from '../../src/control/token.ts';
import { loadIdentity } from '../../src/domain/identity.ts';
import { LAN_TOTALS_FILE, LanTotals } from '../../src/domain/lan-totals.ts';
import { generateKeyPair } from '../../src/nix/signing.ts';
import { ensureUser, releaseUser, type OsUser } from '../support/os-user.ts';

const T = { timeout: 30_000 };
const dirs: string[] = [];
after(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});
function tmpDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'pn-state-files-'));
  dirs.push(d);
  return d;
}

/** A file outside the state directory that a planted link points at; its bytes must never move. */
const TARGET_TEXT = 'victim-line-1:do-not-print-me\nsecond line\n';
function plantLink(stateDir: string, name: string): { target: string; link: string } {
  const outside = tmpDir();
  const target = path.join(outside, 'victim');
  fs.writeFileSync(target, TARGET_TEXT, { mode: 0o644 });
  const link = path.join(stateDir, name);
  fs.symlinkSync(target, link);
  return { target, link };
}
function assertUntouched(target: string, link: string, stateDir: string): void {
  assert.equal(fs.readFileSync(target, 'utf8'), TARGET_TEXT, 'the link target is unchanged');
  assert.ok(fs.lstatSync(link).isSymbolicLink(), 'the link itself is left in place');
  for (const f of fs.readdirSync(stateDir)) {
    const p = path.join(stateDir, f);
    if (fs.lstatSync(p).isFile()) assert.ok(!fs.readFileSync(p, 'utf8').includes('do-not-print-me'), `${f} holds no copy of the target`);
  }
}
function capturingLog(): { log: ReturnType<typeof createLogger>; lines: string[] } {
  const lines: string[] = [];
  return { log: createLogger('debug', 'test', (l) => lines.push(l), null), lines };
}

describe('symbolic links in the state directory', () => {
  test('a linked settings.json is refused with a clear error: not read, not written through, not copied', T, () => {
    const dir = tmpDir();
    const { target, link } = plantLink(dir, 'settings.json');
    const store = openDaemonSettings(dir);
    assert.match(store.problems.join('\n'), /cannot read \S+settings\.json: it is a symbolic link/);
    assert.ok(!store.problems.join('\n').includes('do-not-print-me'));
    assert.throws(() => store.set({ sharing: false }), /cannot save/);
    assertUntouched(target, link, dir);
  });

  test('a link planted under settings.json while running: the next save fails and the target is untouched', T, () => {
    const dir = tmpDir();
    const store = openDaemonSettings(dir);
    fs.rmSync(path.join(dir, 'settings.json'));
    const { target, link } = plantLink(dir, 'settings.json');
    assert.throws(
      () => store.set({ sharing: false }),
      (e: Error) => e instanceof StateFileError && /symbolic link/.test(e.message) && !e.message.includes('do-not-print-me'),
    );
    assertUntouched(target, link, dir);
  });

  test('a linked lan-totals.json: counting goes on in memory, the target is never written, the log names no content', T, () => {
    const dir = tmpDir();
    const { target, link } = plantLink(dir, LAN_TOTALS_FILE);
    const { log, lines } = capturingLog();
    const totals = new LanTotals({ file: link, log, now: () => Date.UTC(2026, 11, 7) });
    totals.countMiss();
    totals.flush();
    assert.equal(totals.view().today.misses, 1);
    assert.match(lines.join('\n'), /lan-totals\.json is a symbolic link/);
    assert.ok(!lines.join('\n').includes('do-not-print-me'));
    assertUntouched(target, link, dir);
  });

  test('a linked secret-key is refused and its target never printed', T, () => {
    const dir = tmpDir();
    const { target, link } = plantLink(dir, 'secret-key');
    assert.throws(
      () => loadIdentity(dir),
      (e: Error) => /secret-key is a symbolic link/.test(e.message) && !e.message.includes('do-not-print-me'),
    );
    assertUntouched(target, link, dir);
  });

  test('a secret key that does not parse: the message carries no byte of it', T, () => {
    const dir = tmpDir();
    fs.writeFileSync(path.join(dir, 'secret-key'), 'do-not-print-me:AAAA', { mode: 0o600 });
    assert.throws(
      () => loadIdentity(dir),
      (e: Error) => /cannot use secret key file/.test(e.message) && !e.message.includes('do-not-print-me'),
    );
  });

  test('a linked instance-id is refused, never written through', T, () => {
    const dir = tmpDir();
    fs.writeFileSync(path.join(dir, 'secret-key'), generateKeyPair('h-1').secretKeyText, { mode: 0o600 });
    const { target, link } = plantLink(dir, 'instance-id');
    assert.throws(() => loadIdentity(dir), /instance-id is a symbolic link/);
    assertUntouched(target, link, dir);
  });

  test('a linked control token is refused by the reader and by start-up, and never replaced', T, async () => {
    const dir = tmpDir();
    const { target, link } = plantLink(dir, TOKEN_FILE_NAME);
    await assert.rejects(readToken(dir), /control-token is a symbolic link/);
    await assert.rejects(loadOrCreateToken(dir), /control-token is a symbolic link/);
    assertUntouched(target, link, dir);
  });

  test('a dangling link is refused too: a fresh token is not created through it', T, async () => {
    const dir = tmpDir();
    const nowhere = path.join(tmpDir(), 'would-be-created');
    fs.symlinkSync(nowhere, path.join(dir, TOKEN_FILE_NAME));
    await assert.rejects(loadOrCreateToken(dir), /symbolic link/);
    assert.ok(!fs.existsSync(nowhere));
  });
});

describe('a state file owned by another user', () => {
  let user: OsUser;
  before(async () => {
    assert.equal(process.geteuid?.(), 0, 'this test needs root to chown a file to a second user');
    user = await ensureUser('pn-statefile');
  });
  after(async () => {
    await releaseUser(user);
  });

  const plantForeign = (dir: string, name: string, text: string) => {
    const file = path.join(dir, name);
    fs.writeFileSync(file, text, { mode: 0o644 });
    fs.chownSync(file, user.uid, user.gid);
    return file;
  };

  test('settings.json: its values are not trusted and it is not overwritten', T, () => {
    const dir = tmpDir();
    const text = JSON.stringify({ sharing: false, peers: ['http://10.9.9.9:9999'] });
    const file = plantForeign(dir, 'settings.json', text);
    const store = openDaemonSettings(dir);
    assert.match(store.problems.join('\n'), new RegExp(`cannot read \\S+settings\\.json: it is owned by uid ${user.uid}, not by this process's user`));
    assert.equal(store.get().sharing, true, 'the defaults, not the planted values');
    assert.deepEqual(store.get().peers, []);
    assert.throws(() => store.set({ mdns: false }));
    assert.equal(fs.readFileSync(file, 'utf8'), text);
  });

  test('control token: a token someone else wrote is not accepted', T, async () => {
    const dir = tmpDir();
    plantForeign(dir, TOKEN_FILE_NAME, 'ab'.repeat(32) + '\n');
    await assert.rejects(readToken(dir), /owned by uid/);
  });

  test('secret key: a key someone else wrote is not used to sign', T, () => {
    const dir = tmpDir();
    plantForeign(dir, 'secret-key', generateKeyPair('planted-1').secretKeyText);
    assert.throws(() => loadIdentity(dir), /secret-key is owned by uid/);
  });

  test('lan-totals.json: left alone', T, () => {
    const dir = tmpDir();
    const file = plantForeign(dir, LAN_TOTALS_FILE, '{"version":1,"days":{},"minutes":[]}');
    const { log, lines } = capturingLog();
    const totals = new LanTotals({ file, log, now: () => Date.UTC(2026, 11, 7) });
    totals.countMiss();
    totals.flush();
    assert.match(lines.join('\n'), /owned by uid/);
    assert.equal(fs.readFileSync(file, 'utf8'), '{"version":1,"days":{},"minutes":[]}');
    assert.equal(fs.statSync(file).uid, user.uid);
  });
});

describe('the one write and corrupt-file mechanism', () => {
  test('a corrupt file is kept under a new name each time, with its bytes, never over an earlier copy', T, () => {
    const dir = tmpDir();
    const file = path.join(dir, 'x.json');
    const now = Date.UTC(2026, 11, 7, 12);
    fs.writeFileSync(file, 'first', { mode: 0o600 });
    const a = keepCorruptFile(file, now);
    fs.writeFileSync(file, 'second', { mode: 0o600 });
    const b = keepCorruptFile(file, now);
    assert.ok(a && b && a !== b);
    assert.equal(fs.readFileSync(a, 'utf8'), 'first');
    assert.equal(fs.readFileSync(b, 'utf8'), 'second');
    assert.ok(!fs.existsSync(file));
    assert.equal(keepCorruptFile(file, now), null, 'nothing to keep');
  });

  test('a corrupt settings.json or lan-totals.json never reaches the log with its content', T, () => {
    const dir = tmpDir();
    fs.writeFileSync(path.join(dir, 'settings.json'), '{"sharing": do-not-print-me', { mode: 0o600 });
    fs.writeFileSync(path.join(dir, LAN_TOTALS_FILE), 'do-not-print-me', { mode: 0o600 });
    const store = openDaemonSettings(dir);
    assert.match(store.problems.join('\n'), /settings\.json is not valid JSON.*kept a copy/);
    assert.ok(!store.problems.join('\n').includes('do-not-print-me'));
    const { log, lines } = capturingLog();
    new LanTotals({ file: path.join(dir, LAN_TOTALS_FILE), log, now: () => Date.UTC(2026, 11, 7) });
    assert.match(lines.join('\n'), /unreadable \(not valid JSON\); kept as/);
    assert.ok(!lines.join('\n').includes('do-not-print-me'));
  });

  test('writeStateFile replaces the file whole, at the given mode, and refuses a link or a directory', T, () => {
    const dir = tmpDir();
    const file = path.join(dir, 'f');
    writeStateFile(file, 'one', 0o600);
    writeStateFile(file, 'two', 0o644);
    assert.equal(readStateFile(file), 'two');
    assert.equal(fs.statSync(file).mode & 0o777, 0o644);
    assert.deepEqual(fs.readdirSync(dir), ['f'], 'no temp file left behind');
    fs.mkdirSync(path.join(dir, 'd'));
    assert.throws(() => writeStateFile(path.join(dir, 'd'), 'x'), /not a regular file/);
    assert.throws(() => readStateFile(path.join(dir, 'd')), /not a regular file/);
    assert.equal(readStateFile(path.join(dir, 'missing')), null);
  });

  test('an oversized state file is refused before it is read whole', T, () => {
    const dir = tmpDir();
    const file = path.join(dir, 'big');
    fs.writeFileSync(file, 'x'.repeat(2000));
    assert.throws(() => readStateFile(file, { maxBytes: 1000 }), /larger than 1000 bytes/);
  });
});
