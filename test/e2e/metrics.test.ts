import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import type { DoctorReport } from '../../src/base/api.ts';
import { encodeNix32 } from '../../src/nix/nix32.ts';
import { parseSecretKey } from '../../src/nix/signing.ts';
import { makeTeamCertificate } from '../../src/wire/team-certificate.ts';
import { skippedWithoutNetns } from '../support/netns.ts';
import { addPath, nixEnv, run } from '../support/nix-host.ts';
import { createPnLan, hashPart as H, SUBST, upPeers, waitFor, type PnHost, type PnLan } from '../support/peernix-lan.ts';
import { promtoolCheck, sample } from '../support/promtool.ts';

// /metrics on two real Peernix hosts that find each other by mDNS: A's Nix substitutes a path B has,
// and both hosts' counters say so (A: answers from a peer, bytes fetched from B, a miss; B: NAR bytes
// served from its store, to A). promtool accepts both. /metrics is on B's share listener only because
// B's settings ask for it; A's share listener has none.

describe('metrics between two hosts', { timeout: 300_000 }, () => {
  if (skippedWithoutNetns()) return;
  let pl: PnLan;
  let A: PnHost;
  let B: PnHost;
  let path: string;
  const scrape = async (h: PnHost, url = `${SUBST}/metrics`) => {
    const r = await pl.curl(h, ['-w', '\n%{http_code}', url]);
    const i = r.stdout.lastIndexOf('\n');
    return { code: Number(r.stdout.slice(i + 1)), text: r.stdout.slice(0, i) };
  };

  before(async () => {
    pl = await createPnLan('pn-metrics', ['host-a', 'host-b']);
    [A, B] = pl.hosts;
    // B lets the fleet's Prometheus read its figures on the share listener; A keeps the default.
    await mkdir(B.stateDir, { recursive: true });
    writeFileSync(`${B.stateDir}/settings.json`, JSON.stringify({ metricsOnShare: true }));
    path = await addPath(B.nix, 'metrics-payload', { type: 'file', contents: randomBytes(300_000).toString('hex') });
    await pl.start(A);
    await pl.start(B);
    await waitFor(
      'A and B to see each other, proven',
      async () => {
        const [a, b] = [await pl.status(A), await pl.status(B)];
        return upPeers(a).includes('host-b') && upPeers(b).includes('host-a') && a.peers.every((p) => p.verified) && b.peers.every((p) => p.verified);
      },
      30_000,
    );
  });

  after(async () => {
    await pl?.teardown();
  });

  it('a substitution through a peer moves both hosts’ counters, and promtool passes', async (t) => {
    const beforeA = (await scrape(A)).text;
    const beforeB = (await scrape(B)).text;
    const miss = await pl.curl(A, ['-o', '/dev/null', '-w', '%{http_code}', `${SUBST}/${encodeNix32(randomBytes(20))}.narinfo`]);
    assert.equal(miss.stdout, '404');
    const r = await A.lan.run('nix', ['copy', '--from', SUBST, '--to', `${pl.dir}/client-a`, path, '--option', 'trusted-public-keys', B.key.publicKey], {
      env: nixEnv({ XDG_CACHE_HOME: `${pl.dir}/client-a-xdg` }),
      timeoutMs: 60_000,
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await run('nix-store', ['--store', `${pl.dir}/client-a`, '--check-validity', path])).code, 0);
    const narSize = (await pl.status(A)).entries.find((e) => e.hashPart === H(path))!.narSize;

    const a = await scrape(A);
    const b = await scrape(B);
    assert.equal(a.code, 200);
    const moved = (text: string, was: string, name: string, labels: Record<string, string>) => sample(text, name, labels) - sample(was, name, labels);
    const fig = {
      aNarinfoFromPeer: moved(a.text, beforeA, 'peernix_answers_total', { listener: 'substituter', route: 'narinfo', source: 'peer' }),
      aNarFromPeer: moved(a.text, beforeA, 'peernix_answers_total', { listener: 'substituter', route: 'nar', source: 'peer' }),
      aMisses: moved(a.text, beforeA, 'peernix_answers_total', { listener: 'substituter', route: 'narinfo', source: 'miss' }),
      aFetchedFromB: moved(a.text, beforeA, 'peernix_peer_fetched_bytes_total', { peer: 'host-b' }),
      aSentToNix: moved(a.text, beforeA, 'peernix_nar_sent_bytes_total', { listener: 'substituter' }),
      aTransfersIn: moved(a.text, beforeA, 'peernix_transfers_total', { direction: 'in', outcome: 'ok' }),
      aLookups: moved(a.text, beforeA, 'peernix_lookup_duration_seconds_count', { listener: 'substituter' }),
      aPeersUpVerified: sample(a.text, 'peernix_peers', { state: 'up', verified: 'true' }),
      bNarFromStore: moved(b.text, beforeB, 'peernix_answers_total', { listener: 'share', route: 'nar', source: 'local' }),
      bNarRequests: moved(b.text, beforeB, 'peernix_requests_total', { listener: 'share', route: 'nar' }),
      bSentOnShare: moved(b.text, beforeB, 'peernix_nar_sent_bytes_total', { listener: 'share' }),
      bServedToA: moved(b.text, beforeB, 'peernix_peer_served_bytes_total', { peer: 'host-a' }),
      narSize,
    };
    t.diagnostic(`counters moved by one substitution through B (NAR ${narSize} bytes): ${JSON.stringify(fig)}`);
    assert.ok(fig.aNarinfoFromPeer >= 1 && fig.aNarFromPeer === 1 && fig.aMisses >= 1);
    assert.equal(fig.aFetchedFromB, narSize);
    assert.equal(fig.aSentToNix, narSize);
    assert.equal(fig.aTransfersIn, 1);
    assert.ok(fig.aLookups >= 2);
    assert.equal(fig.aPeersUpVerified, 1);
    assert.equal(fig.bNarFromStore, 1);
    assert.equal(fig.bNarRequests, 1, 'each request on the share listener is counted once');
    assert.equal(fig.bSentOnShare, narSize);
    assert.equal(fig.bServedToA, narSize);
    for (const [who, text] of [
      ['A', a.text],
      ['B', b.text],
    ]) {
      const check = await promtoolCheck(text);
      t.diagnostic(`promtool check metrics on ${who}: exit ${check.code} ${check.output || '(no complaints)'}`);
      assert.equal(check.code, 0, check.output);
    }
  });

  it('doctor on B sees the LAN: mDNS brought its own announcement back, and A fetched from its share listener', async (t) => {
    const r = await pl.cli(B, ['doctor', '--json', '--store', B.nix.storeUri]);
    const report = JSON.parse(r.stdout) as DoctorReport;
    const byId = (id: string) => report.checks.find((c) => c.id === id)!;
    t.diagnostic(
      `doctor on B (exit ${r.code}): lan.mdns ${byId('lan.mdns').status} (${byId('lan.mdns').detail}); share.lan ${byId('share.lan').status} (${byId('share.lan').detail}); lan.peers ${byId('lan.peers').status}`,
    );
    assert.equal(byId('lan.mdns').status, 'ok');
    assert.equal(byId('share.lan').status, 'ok');
    assert.match(byId('share.lan').detail, /host-a/);
    assert.equal(byId('lan.peers').status, 'ok');
    assert.equal(byId('daemon.reachable').status, 'ok');
  });

  it('/metrics is on the share listener only where the setting asks for it, and only to team members', async (t) => {
    // A Prometheus holding A's identity key (a team member of B) scrapes over the team channel.
    const cert = await makeTeamCertificate(parseSecretKey(readFileSync(A.key.secretKeyFile, 'utf8')));
    writeFileSync(`${pl.dir}/a-cert.pem`, cert.cert);
    writeFileSync(`${pl.dir}/a-key.pem`, cert.key, { mode: 0o600 });
    const onB = await scrape(A, `http://${B.lan.address}:9999/metrics`);
    const onBTeam = await pl.curl(A, [
      '-k',
      '--cert',
      `${pl.dir}/a-cert.pem`,
      '--key',
      `${pl.dir}/a-key.pem`,
      '-w',
      '\n%{http_code}',
      `https://${B.lan.address}:9999/metrics`,
    ]);
    const onA = await scrape(B, `http://${A.lan.address}:9999/metrics`);
    t.diagnostic(
      `from the LAN: B's share listener /metrics → ${onB.code} in plain, ${onBTeam.stdout.slice(-3)} to a team member (metricsOnShare on); A's → ${onA.code} (default off)`,
    );
    assert.equal(onB.code, 404, 'figures move with team transfers: not for anonymous askers');
    assert.ok(!onB.text.includes('peernix_'));
    assert.ok(onBTeam.stdout.endsWith('\n200'), onBTeam.stderr);
    assert.ok(sample(onBTeam.stdout.slice(0, onBTeam.stdout.lastIndexOf('\n')), 'peernix_sharing') === 1);
    assert.equal(onA.code, 404);
    assert.ok(!onA.text.includes('peernix_'));
  });
});
