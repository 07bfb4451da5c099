import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import type { ApiChange, Snapshot } from '../../src/api.ts';
import { launchChromium } from '../support/chromium.ts';
import { demoApi, demoEntries, demoEvents, demoPeers, demoStatus, DemoApi, serveDemoApi } from '../support/dashboard-demo.ts';
import { PROJECT_ROOT } from '../support/peernix-process.ts';

// The window's renderer on its own, in Debian's Chromium: over HTTP from the real control routes
// (as the dashboard) and from file:// with a preload-style window.peernix (as the Electron window),
// with made-up data behind a fake API — the one module under test is the renderer. Screenshots of
// the light, dark, empty, error and narrow states land in test-artifacts/ui-renderer/.

const ARTIFACTS = path.join(PROJECT_ROOT, 'test-artifacts', 'ui-renderer');

describe('the renderer in Chromium', { timeout: 120_000 }, () => {
  let browser: Browser;

  before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
  });

  async function open(api: DemoApi, opts: { scheme?: 'light' | 'dark'; width?: number } = {}) {
    const served = await serveDemoApi(api, 0);
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
    assert.ok((await page.getByTestId('peer-row').allTextContents()).some((t) => t.includes('<script>alert(1)</script>')), 'shown as text');
    assert.equal(await page.getByTestId('sharing-toggle').isChecked(), true);
    await page.getByTestId('entries-search').fill('glibc');
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="entry-row"]').length === 1, undefined, { timeout: 5000 });
    await page.getByTestId('entries-search').fill('');
    api.addEvent({ type: 'fallback', time: Date.now(), storePath: demoEntries[2].storePath, from: 'this machine', to: 'mac-mini.lan', reason: 'gc', outcome: 'served' });
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
      { name: 'empty-light', api: new DemoApi({ status: demoStatus({ peersUp: 0 }), peers: [], entries: [], events: [] }), scheme: 'light', expect: /no peers found yet/ },
      {
        name: 'error-dark',
        api: new DemoApi({ ...demoApi().snapshot(), status: demoStatus({ sharing: false, shareUrl: null, daemon: { ok: false, version: null, error: 'cannot connect to /nix/var/nix/daemon-socket/socket: ENOENT' } }) }),
        scheme: 'dark',
        expect: /Nix daemon unavailable/,
      },
      {
        name: 'share-error-light',
        api: new DemoApi({ ...demoApi().snapshot(), status: demoStatus({ sharing: false, shareUrl: null, shareError: 'could not start sharing: the share port is in use by another program' }) }),
        scheme: 'light',
        expect: /share port is in use/,
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

  it('from file:// with the preload bridge, as the Electron window loads it', async () => {
    const page = await browser.newPage({ viewport: { width: 1180, height: 780 } });
    const problems: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') problems.push(m.text());
    });
    page.on('pageerror', (e) => problems.push(e.message));
    await page.addInitScript((s: Snapshot) => {
      const listeners = new Set<(c: ApiChange) => void>();
      const w = window as unknown as { peernix: unknown; __sharing: boolean[] };
      w.__sharing = [];
      w.peernix = {
        snapshot: async () => s,
        onChange: (l: (c: ApiChange) => void) => (listeners.add(l), () => listeners.delete(l)),
        setSharing: async (on: boolean) => void w.__sharing.push(on),
        copyText: async () => {},
      };
    }, demoApi().snapshot());
    await page.goto(`file://${path.join(PROJECT_ROOT, 'dist', 'renderer', 'index.html')}`);
    await page.waitForFunction((n) => document.querySelectorAll('[data-testid="peer-row"]').length === n, demoPeers.length, { timeout: 5000 });
    assert.equal(await page.getByTestId('entry-row').count(), demoEntries.length);
    await page.getByTestId('sharing-toggle').click({ force: true });
    await page.waitForFunction(() => (window as unknown as { __sharing: boolean[] }).__sharing.length === 1, undefined, { timeout: 5000 });
    assert.deepEqual(await page.evaluate(() => (window as unknown as { __sharing: boolean[] }).__sharing), [false]);
    await shot(page, 'window-file-light');
    assert.deepEqual(problems, [], 'no console errors or CSP violations');
    await page.close();
  });
});
