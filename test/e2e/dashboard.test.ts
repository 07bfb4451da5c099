import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from '../support/chromium.ts';
import { skippedWithoutNetns } from '../support/netns.ts';
import { addPath, addTestClosure, nixEnv } from '../support/nix-host.ts';
import { PROJECT_ROOT } from '../support/peernix-process.ts';
import { createPnLan, hashPart as H, SUBST, upPeers, waitFor, type PnHost, type PnLan } from '../support/peernix-lan.ts';

// The window, as the headless dashboard, in a real Chromium against two real Peernix hosts that
// find each other by mDNS. The browser runs inside host A's network namespace, so it reaches A's
// loopback-only listener exactly as a local user's browser would.

const ARTIFACTS = `${PROJECT_ROOT}test-artifacts/e2e-dashboard`;

describe('the dashboard in Chromium against two real hosts', { timeout: 600_000 }, () => {
  if (skippedWithoutNetns()) return;
  let pl: PnLan;
  let A: PnHost;
  let B: PnHost;
  let browser: Browser;
  let page: Page;
  let closure: { top: string; paths: string[] };
  let seed: string;
  const shot = (name: string) => page.screenshot({ path: `${ARTIFACTS}/${name}.png`, fullPage: true });

  before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    pl = await createPnLan('pn-dash', ['laptop-a', 'buildbox-b']);
    [A, B] = pl.hosts;
    closure = await addTestClosure(B.nix, { largeSize: 2 * 1024 * 1024, smallFiles: 20 });
    const tree = { type: 'file' as const, size: 1024 * 1024, seed: 'dash-seed' };
    seed = await addPath(A.nix, 'gc-me', tree);
    await addPath(B.nix, 'gc-me', tree);
    await pl.start(A);
    await pl.start(B);

    const wrapper = `${pl.dir}/chromium-in-a`;
    writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${A.lan.ns} /usr/bin/chromium "$@"\n`);
    chmodSync(wrapper, 0o755);
    // A fresh profile: launch() gives the browser a new temporary user-data-dir each time.
    browser = await launchChromium(wrapper);
    page = await browser.newPage({ viewport: { width: 1360, height: 900 } });
    await page.goto(`${SUBST}/peernix/`);
  });

  after(async () => {
    await browser?.close();
    await pl?.teardown();
  });

  it('lists the other peer, found by mDNS', async () => {
    await page.locator('[data-testid="peer-row"]', { hasText: 'buildbox-b' }).waitFor({ timeout: 20_000 });
    const row = page.locator('[data-testid="peer-row"]', { hasText: 'buildbox-b' });
    assert.match(await row.innerText(), /up/);
    assert.match(await row.innerText(), new RegExp(B.lan.address.replace(/\./g, '\\.')));
    assert.equal(await page.locator('[data-testid="host-name"]').innerText(), 'laptop-a');
    assert.match(await page.locator('[data-testid="nixconf"]').innerText(), /extra-trusted-public-keys = laptop-a-1:/);
    await shot('1-peer-listed');
  });

  it('shows no DNS-SD card on a host that neither browses a DNS-SD domain nor registers (mDNS only)', async () => {
    // DNS-SD's own window checks (registered, refused with BIND's reason, the lease) are in dnssd.test.ts,
    // where a real BIND runs.
    const card = page.locator('[data-testid="dnssd-card"]');
    assert.equal(await card.count(), 1, 'the page has the card');
    assert.equal(await card.isHidden(), true);
  });

  it('shows the cache entry after a real Nix substitution through this host', async () => {
    const r = await A.lan.run('nix', ['copy', '--from', SUBST, '--to', `${pl.dir}/client`, closure.top, '--option', 'trusted-public-keys', B.key.publicKey], {
      env: nixEnv({ XDG_CACHE_HOME: `${pl.dir}/client-xdg` }),
      timeoutMs: 120_000,
    });
    assert.equal(r.code, 0, r.stderr);
    const name = closure.top.slice(44);
    const row = page.locator('[data-testid="entry-row"]', { hasText: name });
    await row.waitFor({ timeout: 10_000 });
    assert.match(await row.innerText(), /buildbox-b/);
    await page.locator('[data-testid="entries-search"]').fill('peernix-test-top');
    assert.equal(await page.locator('[data-testid="entry-row"]:visible').count(), 1);
    await shot('2-entries-after-substitution');
    await page.locator('[data-testid="entries-search"]').fill('');
  });

  it('shows the fallback event after the seed’s GC scenario', async () => {
    const info = await pl.curl(A, [`${SUBST}/${H(seed)}.narinfo`]);
    const url = /^URL: (.*)$/m.exec(info.stdout)![1];
    assert.equal((await A.nix.nixStore(['--delete', seed])).code, 0);
    const nar = await pl.curl(A, ['-o', '/dev/null', '-w', '%{http_code}', `${SUBST}/${url}`]);
    assert.equal(nar.stdout, '200');
    const ev = page.locator('[data-testid="event-row"]', { hasText: 'gc-me' });
    await ev.waitFor({ timeout: 10_000 });
    const text = await ev.innerText();
    assert.match(text, /this machine/);
    assert.match(text, /buildbox-b/);
    assert.match(text, /gc/);
    assert.match(text, /served/);
    const entry = page.locator('[data-testid="entry-row"]', { hasText: 'gc-me' });
    await entry.filter({ hasText: 'buildbox-b' }).waitFor({ timeout: 10_000 });
    await shot('3-gc-fallback-event');
  });

  it('"Add to team" on the other peer’s row puts its proven key in the team, shown with its fingerprint; Remove takes it out', async () => {
    const row = page.locator('[data-testid="peer-row"]', { hasText: 'buildbox-b' });
    await row.getByTestId('peer-fingerprint').waitFor({ timeout: 10_000 });
    const fp = (await row.getByTestId('peer-fingerprint').innerText()).trim();
    const bKey = (await pl.status(B)).status.publicKey;
    const before = (await pl.status(A)).status.team!;
    assert.equal(fp, (await pl.status(A)).peers.find((p) => p.name === 'buildbox-b')?.fingerprint, 'the fingerprint shown is the one A computed');
    // Test hosts may start with the other in their team (--team): take it out in the window first.
    const saved = () => JSON.parse(readFileSync(`${A.stateDir}/settings.json`, 'utf8')).team;
    const savedAtStart = saved();
    if (before.members.some((m) => m.publicKey === bKey)) {
      await page.locator('[data-testid="team-member"]', { hasText: fp }).getByTestId('team-remove').click();
      await row.getByTestId('peer-add-team').waitFor({ timeout: 10_000 });
      assert.ok(!(await pl.status(A)).status.team!.members.some((m) => m.publicKey === bKey));
    }
    await row.getByTestId('peer-add-team').click();
    await row.getByTestId('peer-team-member').waitFor({ timeout: 10_000 });
    await page.locator('[data-testid="team-member"]', { hasText: fp }).waitFor({ timeout: 10_000 });
    const status = await pl.status(A);
    assert.ok(status.status.team!.members.some((m) => m.publicKey === bKey && m.fingerprint === fp && m.peerName === 'buildbox-b'));
    assert.ok(status.events.some((e) => e.type === 'team' && e.change === 'added' && e.fingerprint === fp));
    // Saved for the next start, unless this run's team came from --team (then the file is left as it was).
    assert.deepEqual(saved(), status.status.team!.saved ? [bKey] : savedAtStart);
    await shot('4-team-added');
  });

  it('toggling sharing off in the page stops the other host from seeing this one', async (t) => {
    assert.ok(upPeers(await pl.status(B)).includes('laptop-a'));
    const clicked = Date.now();
    await page.locator('label.switch').click();
    await waitFor('A to report sharing off', async () => (await pl.status(A)).status.sharing === false, 10_000);
    // Timed by B's own event clock (the same machine's), not by how fast the CLI polls under load.
    const down = await waitFor(
      'B to drop A',
      async () => {
        const s = await pl.status(B);
        return !upPeers(s).includes('laptop-a') && s.events.find((e) => e.type === 'peer-down' && e.peerName === 'laptop-a' && e.time >= clicked);
      },
      10_000,
    );
    t.diagnostic(`B dropped A ${down.time - clicked} ms after the click`);
    assert.ok(down.time - clicked <= 2000, `${down.time - clicked} ms`);
    assert.equal(await page.locator('[data-testid="sharing-toggle"]').isChecked(), false);
    await shot('5-sharing-off');
  });
});
