import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { AddressInfo } from 'node:net';
import { CONTROL_API } from '../../src/control/contract.ts';
import { snapshotFixture } from '../support/snapshot-fixture.ts';

// The CLI writes all of its output before it exits, however slowly the pipe it writes to is read.
// The control API it talks to is a stand-in here (the one module under test is the CLI's exit);
// a snapshot of ~190 KB is what a busy Peernix answered when `status --json | …` was cut at 64 KiB.

const events = Array.from({ length: 1500 }, (_, i) => ({ type: 'error' as const, id: i, time: 1_700_000_000_000 + i, message: `event ${i} `.padEnd(60, 'x') }));
const snap = snapshotFixture({}, { events });
const server = createServer((req, res) => {
  if (req.url !== CONTROL_API.snapshot) return void res.writeHead(404).end();
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(snap));
});
const stateDir = mkdtempSync(join(tmpdir(), 'peernix-cli-'));
after(() => {
  server.close();
  rmSync(stateDir, { recursive: true, force: true });
});

/**
 * The process has handed its output to write(2) (more than 48 KiB written can only be that) and its
 * event loop is back waiting for events (Linux /proc): a CLI that exits right after its write does
 * so in the same turn of its loop, before it waits for anything.
 */
function waitingAfterWrite(pid: number): boolean {
  try {
    const wrote = Number(/^wchar: (\d+)$/m.exec(readFileSync(`/proc/${pid}/io`, 'utf8'))?.[1] ?? 0);
    return wrote > 48 * 1024 && /epoll|ep_poll/.test(readFileSync(`/proc/${pid}/wchan`, 'utf8'));
  } catch {
    return false; // gone: its exit is seen
  }
}

describe('peernix status --json through a pipe', () => {
  it('writes every byte, even to a reader that starts late', async (t) => {
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const child = spawn('./bin/peernix', ['status', '--json', '--listen', `127.0.0.1:${port}`, '--state-dir', stateDir], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    // Not read until the CLI has had every chance to exit: it has exited, or it wrote its output
    // into the pipe (which fills at 64 KiB) and went back to waiting for events.
    child.stdout.pause();
    let gone = false;
    const exited = new Promise<number | null>((r) =>
      child.once('exit', (code) => {
        gone = true;
        r(code);
      }),
    );
    const closed = new Promise((r) => child.stdout.once('close', r));
    while (!gone && !waitingAfterWrite(child.pid!)) await new Promise((r) => setTimeout(r, 5));
    const out: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stdout.resume();
    const code = await exited;
    await closed;
    const want = JSON.stringify(snap, null, 2) + '\n';
    t.diagnostic(`${Buffer.concat(out).length} of ${Buffer.byteLength(want)} bytes, exit ${code}`);
    assert.equal(code, 0);
    assert.equal(Buffer.concat(out).toString('utf8'), want);
  });
});
