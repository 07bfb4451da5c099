// The team channel between real Peernix hosts in network namespaces: an owner, a team member and a
// stranger (a Peernix not in the team). The member's Nix substitutes a path from the owner through
// its own Peernix with signatures required, and a capture of the owner's link during that transfer
// holds no byte of the path's plaintext; the stranger fetching the same path (scopes are not in yet,
// so it still may) crosses in clear — which also shows the capture would have seen it.

import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { skippedWithoutNetns } from '../support/netns.ts';
import { addPath, nixEnv, run } from '../support/nix-host.ts';
import { createPnLan, SUBST, upPeers, waitFor, type PnHost, type PnLan } from '../support/peernix-lan.ts';

describe('team channel between Peernix hosts', { timeout: 600_000 }, () => {
  if (skippedWithoutNetns()) return;
  let pl: PnLan;
  let owner: PnHost;
  let member: PnHost;
  let stranger: PnHost;
  let teamPath: string;
  const marker = `peernix-team-marker-${randomBytes(8).toString('hex')}`;

  before(async () => {
    pl = await createPnLan('pn-team', ['owner', 'member', 'stranger']);
    [owner, member, stranger] = pl.hosts;
    // The marker among random bytes: no compression would hide it, and nothing else looks like it.
    const contents = `${marker}\n${randomBytes(48 * 1024).toString('base64')}\n${marker}\n`;
    teamPath = await addPath(owner.nix, 'team-secret', { type: 'file', contents });
    // Compression off on the askers: the plain transfer must carry the marker as it is.
    await pl.start(owner, ['--team', member.key.publicKey]);
    await pl.start(member, ['--team', owner.key.publicKey, '--no-peer-compression']);
    await pl.start(stranger, ['--no-peer-compression']);
    for (const h of [member, stranger]) await waitFor(`${h.name} to see the owner`, async () => upPeers(await pl.status(h)).includes('owner') || null, 20_000);
  });
  after(async () => {
    await pl?.teardown();
  });

  // Captures the owner's side of the LAN (its eth0, inside its namespace) while `work` runs.
  async function capture(work: () => Promise<void>): Promise<Buffer> {
    const file = `${pl.dir}/capture-${randomBytes(4).toString('hex')}.pcap`;
    const dump: ChildProcess = owner.lan.exec('tcpdump', ['-i', 'eth0', '--immediate-mode', '-U', '-s', '0', '-w', file, 'tcp port 9999']);
    let stderr = '';
    dump.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    await waitFor('tcpdump to listen', async () => stderr.includes('listening on') || null, 10_000);
    try {
      await work();
    } finally {
      // Packets already taken by the kernel's filter are written before tcpdump is told to stop.
      await new Promise((r) => setTimeout(r, 500));
      const exited = new Promise((r) => dump.once('exit', r));
      dump.kill('SIGINT');
      await exited;
    }
    const pcap = await readFile(file);
    // tcpdump's own count on exit, so a capture that saw nothing says so.
    assert.ok(pcap.length > 1024, `tcpdump captured nothing: ${stderr}`);
    return pcap;
  }

  async function substitute(h: PnHost): Promise<void> {
    const r = await h.lan.run(
      'nix',
      [
        'copy',
        '--from',
        SUBST,
        '--to',
        `${pl.dir}/client-${h.name}`,
        teamPath,
        '--option',
        'trusted-public-keys',
        owner.key.publicKey,
        '--option',
        'require-sigs',
        'true',
      ],
      { env: nixEnv({ XDG_CACHE_HOME: `${pl.dir}/xdg-${h.name}` }), timeoutMs: 120_000 },
    );
    assert.equal(r.code, 0, r.stderr);
    const got = await run('cat', [`${pl.dir}/client-${h.name}${teamPath}`], { check: true });
    assert.ok(got.stdout.startsWith(`${marker}\n`), 'the path arrived byte-exact');
  }

  it("the member's Nix substitutes the owner's path through its own Peernix, and the link never carries it in clear", async () => {
    const pcap = await capture(() => substitute(member));
    assert.ok(pcap.length > 48 * 1024, `the capture holds the transfer (${pcap.length} bytes)`);
    assert.ok(!pcap.includes(marker), 'no plaintext of the NAR crossed the LAN');
    assert.ok(!pcap.includes(`${teamPath.slice(11, 43)}`), 'not even the hash part asked for');
  });

  it('the stranger, outside the team, fetches the same path in plain: the capture sees the marker', async () => {
    const pcap = await capture(() => substitute(stranger));
    assert.ok(pcap.includes(marker), 'a plain transfer is visible to the capture');
  });
});
