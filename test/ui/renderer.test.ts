import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import type { ApiChange, DoctorReport, Snapshot } from '../../src/base/api.ts';
import { launchChromium } from '../support/chromium.ts';
import { demoApi, demoEntries, demoEvents, demoLan, demoPeers, demoStatus, demoTransfers, DemoApi, serveDemoApi } from '../support/dashboard-demo.ts';
import { PROJECT_ROOT } from '../support/peernix-process.ts';
import { fingerprintOf } from '../../src/domain/team.ts';
import { generateKeyPair } from '../../src/nix/signing.ts';

// The window's renderer on its own, in Debian's Chromium: over HTTP from the real control routes
// (as the dashboard) and from file:// with a preload-style window.peernix (as the Electron window),
// with made-up data behind a fake API — the one module under test is the renderer. Screenshots of
// the light, dark, empty, error and narrow states land in test-artifacts/ui-renderer/.

const ARTIFACTS = path.join(PROJECT_ROOT, 'test-artifacts', 'ui-renderer');

describe('the renderer in Chromium', { timeout: 120_000 }, () => {
  let browser: Browser;
  // Demo servers still open when a test fails before closing its own: their change streams would
  // keep this process (and the whole run) from ever exiting.
  const servers = new Set<{ close: () => Promise<unknown> }>();

  before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    for (const s of servers) await s.close();
  });

  async function open(api: DemoApi, opts: { scheme?: 'light' | 'dark'; width?: number } = {}) {
    const opened = await serveDemoApi(api, 0);
    const served = { url: opened.url, close: async () => (servers.delete(served), await opened.close()) };
    servers.add(served);
    const page = await browser.newPage({ viewport: { width: opts.width ?? 1360, height: 900 }, colorScheme: opts.scheme ?? 'light' });
    const problems: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') problems.push(m.text());
    });
    page.on('pageerror', (e) => problems.push(e.message));
    await page.goto(served.url);
    await page.waitForFunction(() => document.querySelector('#host-name')?.textContent !== '…');
    return { page, problems, close: async () => (await page.close(), await served.close()) };
  }
  const shot = (page: Page, name: string) => page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });

  it('shows peers, entries and events, keeps a hostile peer name as text, filters, and takes live events', async () => {
    const api = demoApi();
    const { page, problems, close } = await open(api);
    assert.equal(await page.getByTestId('peer-row').count(), demoPeers.length);
    assert.equal(await page.getByTestId('entry-row').count(), demoEntries.length);
    assert.equal(await page.getByTestId('event-row').count(), demoEvents.length);
    assert.equal(await page.locator('script').count(), 1, 'the hostile peer name injected no script element');
    assert.ok(
      (await page.getByTestId('peer-row').allTextContents()).some((t) => t.includes('<script>alert(1)</script>')),
      'shown as text',
    );
    assert.equal(await page.getByTestId('sharing-toggle').isChecked(), true);
    await page.getByTestId('entries-search').fill('glibc');
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="entry-row"]').length === 1, undefined, { timeout: 5000 });
    await page.getByTestId('entries-search').fill('');
    api.addEvent({
      type: 'fallback',
      time: Date.now(),
      storePath: demoEntries[2].storePath,
      from: 'this machine',
      to: 'mac-mini.lan',
      reason: 'gc',
      outcome: 'served',
    });
    await page.waitForFunction((n) => document.querySelectorAll('[data-testid="event-row"]').length === n, demoEvents.length + 1, { timeout: 5000 });
    await shot(page, 'light');
    await page.getByTestId('sharing-toggle').click({ force: true });
    await page.waitForFunction(() => document.querySelector('[data-testid="status-line"]')?.textContent?.includes('Not sharing'), undefined, { timeout: 5000 });
    assert.deepEqual(api.sharingCalls, [false], 'the toggle went through the control API with the token');
    await shot(page, 'light-not-sharing');
    assert.deepEqual(problems, [], 'no console errors or CSP violations');
    await close();
  });

  it('dark, empty, error and narrow states render without errors', async () => {
    const cases: { name: string; api: DemoApi; scheme: 'light' | 'dark'; width?: number; expect: RegExp }[] = [
      { name: 'dark', api: demoApi(), scheme: 'dark', expect: /Sharing/ },
      {
        name: 'empty-light',
        api: new DemoApi({ status: demoStatus({ peersUp: 0 }), peers: [], entries: [], events: [] }),
        scheme: 'light',
        expect: /no peers found yet/,
      },
      {
        name: 'error-dark',
        api: new DemoApi({
          ...demoApi().snapshot(),
          status: demoStatus({
            sharing: false,
            shareUrl: null,
            daemon: { ok: false, version: null, error: 'cannot connect to /nix/var/nix/daemon-socket/socket: ENOENT' },
          }),
        }),
        scheme: 'dark',
        expect: /Nix daemon unavailable/,
      },
      {
        name: 'share-error-light',
        api: new DemoApi({
          ...demoApi().snapshot(),
          status: demoStatus({ sharing: false, shareUrl: null, shareError: 'could not start sharing: the share port is in use by another program' }),
        }),
        scheme: 'light',
        expect: /share port is in use/,
      },
      {
        // Two Go peernix hosts trusted under the one name peernix-1: Nix honours only the first (#21).
        name: 'key-clash-light',
        api: new DemoApi({
          ...demoApi().snapshot(),
          status: demoStatus({
            trust: {
              source: '/etc/nix/nix.conf',
              keys: 2,
              requireSigs: true,
              error: null,
              clashes: [{ name: 'peernix-1', honoured: 'peernix-1:AAAA', ignored: ['peernix-1:BBBB'] }],
            },
          }),
        }),
        scheme: 'light',
        expect: /2 trusted keys are named peernix-1: Nix honours only the first.*own key-name/,
      },
      { name: 'narrow-light', api: demoApi(), scheme: 'light', width: 760, expect: /Sharing/ },
    ];
    for (const c of cases) {
      const { page, problems, close } = await open(c.api, { scheme: c.scheme, width: c.width });
      assert.match((await page.getByTestId('status-line').textContent()) ?? '', c.expect, c.name);
      await shot(page, c.name);
      assert.deepEqual(problems, [], `${c.name}: no console errors or CSP violations`);
      await close();
    }
  });

  it('transfers in progress move with live changes; totals, sparklines, reasons and addresses show; 420 px fits', async (t) => {
    const api = demoApi();
    const { page, problems, close } = await open(api);
    try {
      assert.equal(await page.getByTestId('transfer-row').count(), 3);
      const wire = await page.getByTestId('transfer-wire').allTextContents();
      assert.deepEqual(wire, [' · 131 MB on the wire'], 'wire bytes shown only where they differ from NAR bytes');
      const rows = demoTransfers();
      for (const bytes of [300_000_000, 420_000_000]) {
        api.emit({ topic: 'transfers', transfers: [{ ...rows[0], bytes }, rows[1]], lan: demoLan() });
        await page.waitForFunction(
          (b) =>
            document.querySelector('[data-transfer-id="1"] progress')?.getAttribute('value') === String(b) ||
            (document.querySelector('[data-transfer-id="1"] progress') as HTMLProgressElement | null)?.value === b,
          bytes,
          { timeout: 5000 },
        );
      }
      const shown = await page.locator('[data-transfer-id="1"] [data-testid="transfer-bytes"]').innerText();
      t.diagnostic(`after two live changes: "${shown}"; rows ${await page.getByTestId('transfer-row').count()}`);
      assert.equal(shown, '420 MB of 498 MB');
      assert.equal(await page.getByTestId('transfer-row').count(), 2, 'the finished row left with the change that dropped it');
      assert.equal(await page.getByTestId('lan-today').getAttribute('data-fetched-paths'), '412');
      assert.match(
        (await page.getByTestId('lan-chart').getAttribute('aria-label')) ?? '',
        /^Last hour, per minute: 2\.6 GB fetched from peers, 376 MB served to them$/,
      );
      assert.equal(await page.locator('[data-testid="lan-chart"] title').count(), 1, 'the chart has a text alternative');
      assert.equal(await page.getByTestId('peer-rtt-spark').count(), 3);
      assert.match((await page.getByTestId('peer-why').allTextContents()).join('\n'), /Unreachable: no answer to 3 health checks/);
      assert.deepEqual(await page.getByTestId('share-address').allTextContents(), ['http://10.0.4.12:9999', 'http://[fd00:4::12]:9999']);
      assert.equal(await page.getByTestId('share-url').innerText(), 'http://10.0.4.12:9999');
      await shot(page, 'transfers-light');
      await page.emulateMedia({ colorScheme: 'dark' });
      await shot(page, 'transfers-dark');
      await page.setViewportSize({ width: 420, height: 900 });
      const over = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
      const tableOver = await page.evaluate(() => Array.from(document.querySelectorAll('.table-wrap')).map((w) => w.scrollWidth - w.clientWidth));
      t.diagnostic(`420 px: page ${over} px over, tables ${tableOver.join(', ')} px over`);
      await shot(page, 'transfers-narrow-dark');
      assert.ok(over <= 0, 'no sideways scrolling of the page');
      assert.ok(
        tableOver.every((o) => o <= 0),
        'no table needs sideways scrolling at 420 px',
      );
      assert.deepEqual(problems, [], 'no console errors or CSP violations');
    } finally {
      await close();
    }
  });

  it('on an untrusted network the window asks once, "Share on <network>?", and "Share here" trusts that network', async () => {
    const api = demoApi();
    const net = { id: 'gateway 52:54:00:12:34:56 192.168.1.0/24', name: '192.168.1.0/24 (router 52:54:00:12:34:56)' };
    api.snap.status = {
      ...api.snap.status,
      sharing: false,
      shareUrl: null,
      sharePaused: `${net.name} is not a trusted network`,
      network: { current: net, trusted: false, trustAll: false, trustedNetworks: [], ask: true },
    };
    const { page, problems, close } = await open(api);
    const question = page.getByTestId('network-question');
    await question.waitFor({ timeout: 5000 });
    assert.equal(await question.textContent(), `Share on ${net.name}?`);
    await shot(page, 'network-question');
    await page.getByTestId('network-trust').click();
    await page.getByTestId('network-line').waitFor({ timeout: 5000 });
    assert.deepEqual(api.networkCalls, [{ trust: net.id }], 'trusts the network it asked about, by id');
    assert.match((await page.getByTestId('network-line').textContent()) ?? '', /192\.168\.1\.0\/24 .* trusted/);
    assert.equal(await question.count(), 0);
    await page.waitForFunction(() => (document.querySelector('[data-testid="sharing-toggle"]') as HTMLInputElement).checked, undefined, { timeout: 5000 });

    // "Not here" on the next network: no trust, and the question goes away.
    const other = { id: 'subnet 10.0.0.0/24', name: '10.0.0.0/24 (no router)' };
    api.snap.status = { ...api.snap.status, sharing: false, network: { current: other, trusted: false, trustAll: false, trustedNetworks: [net], ask: true } };
    api.emit({ topic: 'status' });
    await page.getByTestId('network-dismiss').click();
    await page.getByTestId('network-line').waitFor({ timeout: 5000 });
    assert.deepEqual(api.networkCalls, [{ trust: net.id }, { dismiss: other.id }]);
    assert.match((await page.getByTestId('network-line').textContent()) ?? '', /not trusted, not sharing here/);
    assert.deepEqual(problems, [], 'no console errors or CSP violations');
    await close();
  });

  it('team: the upgrade notice offers a trusted peer, a peer is added from the peers list in one click, a pasted key is added, a member removed', async () => {
    const api = demoApi();
    const [build, mac, bob] = demoPeers;
    api.snap.status = {
      ...api.snap.status,
      notices: [{ id: 'scopes', text: 'Peernix now shares by scope: team paths go only to your team.' }],
      scopes: {
        judged: { public: 120, team: 31, never: 2 },
        refused: { public: 0, team: 5, never: 2 },
        publicKeys: ['cache.nixos.org-1:x'],
        exclude: ['*.env'],
      },
    };
    const { page, problems, close } = await open(api);
    const teamKeys = () => page.getByTestId('team-member').evaluateAll((els) => els.map((e) => e.getAttribute('data-key')));
    const buildFp = fingerprintOf(build.publicKey)!;

    // The notice, with build-01 (its key trusted by this machine's Nix) offered by name and fingerprint.
    await page.getByTestId('notice-text').waitFor({ timeout: 5000 });
    assert.match((await page.getByTestId('notice-offer').textContent()) ?? '', new RegExp(`build-01.*${buildFp}`));
    assert.deepEqual(await teamKeys(), [mac.publicKey]);
    assert.equal(await page.getByTestId('team-scopes').textContent(), 'Paths judged: 120 public · 31 team · 2 never. Requests refused by scope: 7.');
    await shot(page, 'team-notice');

    // One click in the peers list adds build-01; its row shows the fingerprint beside the button.
    const buildRow = page.locator('[data-testid="peer-row"]', { hasText: 'build-01' });
    assert.equal(await buildRow.getByTestId('peer-fingerprint').textContent(), buildFp);
    await buildRow.getByTestId('peer-add-team').click();
    await page.waitForFunction((n) => document.querySelectorAll('[data-testid="team-member"]').length === n, 2, { timeout: 5000 });
    assert.deepEqual(api.teamCalls, [{ add: build.publicKey }]);
    await buildRow.getByTestId('peer-team-member').waitFor({ timeout: 5000 });
    assert.equal(await page.getByTestId('notice-offer').count(), 0, 'no longer offered once in the team');
    assert.ok((await page.getByTestId('team-fingerprint').allTextContents()).includes(buildFp));
    assert.equal(
      await page.locator('[data-testid="peer-row"]', { hasText: 'bob-thinkpad' }).getByTestId('peer-add-team').count(),
      0,
      'a peer that has not proven its key is not offered',
    );

    // A served transfer says whom its path is for.
    assert.equal(await page.locator('[data-testid="transfer-row"][data-direction="out"]').getByTestId('transfer-scope').textContent(), 'team');
    assert.equal(await page.locator('[data-testid="transfer-row"][data-direction="in"]').getByTestId('transfer-scope').count(), 0);

    // A key pasted in the team card; a bad one is refused with the reason in the status line.
    const carol = generateKeyPair('carol-1').publicKeyText;
    await page.getByTestId('team-key').fill(carol);
    await page.getByTestId('team-add').click();
    await page.waitForFunction((n) => document.querySelectorAll('[data-testid="team-member"]').length === n, 3, { timeout: 5000 });
    await page.getByTestId('team-key').fill('carol-1:AAAA');
    await page.getByTestId('team-key').press('Enter');
    await page.waitForFunction(
      () => document.querySelector('[data-testid="status-line"]')?.textContent?.includes('could not change the team: not a public key'),
      undefined,
      {
        timeout: 5000,
      },
    );

    // Remove mac-mini: gone from the card and its peer row loses the mark.
    await page.locator('[data-testid="team-member"]', { hasText: 'mac-mini-1' }).getByTestId('team-remove').click();
    await page.waitForFunction((n) => document.querySelectorAll('[data-testid="team-member"]').length === n, 2, { timeout: 5000 });
    assert.deepEqual(await teamKeys(), [build.publicKey, carol]);
    await page.locator('[data-testid="peer-row"]', { hasText: 'mac-mini' }).getByTestId('peer-add-team').waitFor({ timeout: 5000 });
    assert.deepEqual(api.teamCalls.at(-1), { remove: mac.publicKey });

    // "Got it" puts the notice away, through the API (remembered there).
    await page.getByTestId('notice-seen').click();
    await page.getByTestId('notice-bar').waitFor({ state: 'hidden', timeout: 5000 });
    assert.deepEqual(api.noticesSeen, ['scopes']);
    assert.ok(bob.publicKey);
    await shot(page, 'team-after');
    // Chromium logs the refused key's 409 itself; nothing else went wrong.
    assert.deepEqual(problems, ['Failed to load resource: the server responded with a status of 409 (Conflict)']);
    await close();
  });

  it('networks: the trusted list with Forget, and "Share on this network" for the current one; the first question explains scopes', async () => {
    const api = demoApi();
    const home = { id: 'gateway 52:54:00:12:34:56 192.168.1.0/24', name: '192.168.1.0/24 (router 52:54:00:12:34:56)' };
    const office = { id: 'gateway 52:54:00:aa:bb:cc 10.1.0.0/16', name: '10.1.0.0/16 (router 52:54:00:aa:bb:cc)' };
    api.snap.status = { ...api.snap.status, network: { current: home, trusted: true, trustAll: false, trustedNetworks: [home, office], ask: false } };
    const { page, problems, close } = await open(api);
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="network-trusted"]').length === 2, undefined, { timeout: 5000 });
    await page.locator('[data-testid="network-trusted"]', { hasText: '192.168.1.0/24' }).getByTestId('network-forget').click();
    await page.getByTestId('networks-trust').waitFor({ timeout: 5000 });
    assert.deepEqual(api.networkCalls, [{ forget: home.id }]);
    assert.equal(await page.getByTestId('network-trusted').count(), 1);
    await page.getByTestId('networks-trust').click();
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="network-trusted"]').length === 2, undefined, { timeout: 5000 });
    assert.deepEqual(api.networkCalls, [{ forget: home.id }, { trust: home.id }]);
    await shot(page, 'networks');
    // The first start's question says what a yes shares with whom.
    api.snap.status = { ...api.snap.status, sharing: false, network: { current: office, trusted: false, trustAll: false, trustedNetworks: [], ask: true } };
    api.emit({ topic: 'status' });
    await page.getByTestId('network-question').waitFor({ timeout: 5000 });
    assert.match((await page.getByTestId('network-scopes').textContent()) ?? '', /public paths.*only to your team/);
    assert.deepEqual(problems, [], 'no console errors or CSP violations');
    await close();
  });

  it('from file:// with the preload bridge, as the Electron window loads it', async () => {
    const page = await browser.newPage({ viewport: { width: 1180, height: 780 } });
    const problems: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') problems.push(m.text());
    });
    page.on('pageerror', (e) => problems.push(e.message));
    const demo = demoApi();
    await page.addInitScript(
      ({ s, report }: { s: Snapshot; report: DoctorReport }) => {
        const listeners = new Set<(c: ApiChange) => void>();
        const w = window as unknown as { peernix: unknown; __sharing: boolean[] };
        w.__sharing = [];
        w.peernix = {
          snapshot: async () => s,
          onChange: (l: (c: ApiChange) => void) => (listeners.add(l), () => listeners.delete(l)),
          setSharing: async (on: boolean) => void w.__sharing.push(on),
          copyText: async () => {},
          doctor: async () => report,
        };
      },
      { s: demo.snapshot(), report: await demo.doctor() },
    );
    await page.goto(`file://${path.join(PROJECT_ROOT, 'dist', 'renderer', 'index.html')}`);
    await page.waitForFunction((n) => document.querySelectorAll('[data-testid="peer-row"]').length === n, demoPeers.length, { timeout: 5000 });
    assert.equal(await page.getByTestId('entry-row').count(), demoEntries.length);
    await page.getByTestId('sharing-toggle').click({ force: true });
    await page.waitForFunction(() => (window as unknown as { __sharing: boolean[] }).__sharing.length === 1, undefined, { timeout: 5000 });
    assert.deepEqual(await page.evaluate(() => (window as unknown as { __sharing: boolean[] }).__sharing), [false]);
    // The doctor's checks come over the bridge, as in the app: one row each, fixes shown for problems.
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="doctor-check"]').length === 4, undefined, { timeout: 5000 });
    assert.equal(await page.getByTestId('doctor-fix').count(), 2);
    await shot(page, 'window-file-light');
    assert.deepEqual(problems, [], 'no console errors or CSP violations');
    await page.close();
  });
});
