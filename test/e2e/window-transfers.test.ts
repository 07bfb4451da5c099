import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from '../support/chromium.ts';
import { skippedWithoutNetns } from '../support/netns.ts';
import { addPath, nixEnv } from '../support/nix-host.ts';
import { PROJECT_ROOT } from '../support/peernix-process.ts';
import { createPnLan, SUBST, upPeers, waitFor, type PnHost, type PnLan } from '../support/peernix-lan.ts';

// The window shows the work: a real `nix-store -r` on A of a 64 MiB path only B holds, through a
// link shaped to 40 mbit so the transfer lasts seconds. Chromium, inside A's namespace, watches A's
// dashboard: the transfer's bar moves (two screenshots, bytes increasing, total = NarSize), then the
// LAN totals show exactly the NAR bytes fetched and one path; then the dark theme and the 420-px
// layout. The screenshots are the ones committed under docs/screenshots/.

const SHOTS = `${PROJECT_ROOT}docs/screenshots`;
const SIZE = 64 * 1024 * 1024;

describe('the window shows transfers in progress and what the LAN did', { timeout: 600_000 }, () => {
  if (skippedWithoutNetns()) return;
  let pl: PnLan;
  let A: PnHost;
  let B: PnHost;
  let browser: Browser;
  let page: Page;
  let blob: string;
  let narSize: number;
  let realise: Promise<{ code: number | null; stderr: string }> | null = null;
  const shot = (name: string, fullPage = false) => page.screenshot({ path: `${SHOTS}/${name}.png`, fullPage });
  const bytesShown = async () => {
    const el = page.locator('[data-testid="transfer-row"][data-direction="in"] [data-testid="transfer-bytes"]').first();
    return { bytes: Number(await el.getAttribute('data-bytes')), total: Number(await el.getAttribute('data-total')), text: await el.innerText() };
  };

  before(async () => {
    mkdirSync(SHOTS, { recursive: true });
    pl = await createPnLan('pn-window', ['laptop-a', 'buildbox-b']);
    [A, B] = pl.hosts;
    blob = await addPath(B.nix, 'big-dataset', { type: 'file', size: SIZE, seed: 'window-transfers' });
    narSize = (await B.nix.pathInfoJson([blob]))[0].narSize;
    await pl.start(A);
    await pl.start(B);
    await waitFor('A to see B', async () => upPeers(await pl.status(A)).includes('buildbox-b'), 30_000);

    const wrapper = `${pl.dir}/chromium-in-a`;
    writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${A.lan.ns} /usr/bin/chromium "$@"\n`);
    chmodSync(wrapper, 0o755);
    browser = await launchChromium(wrapper);
    page = await browser.newPage({ viewport: { width: 1280, height: 900 }, colorScheme: 'light' });
    await page.goto(`${SUBST}/peernix/`);
    await page.locator('[data-testid="peer-row"]', { hasText: 'buildbox-b' }).waitFor({ timeout: 20_000 });
  });

  after(async () => {
    await browser?.close();
    await B?.lan.run('tc', ['qdisc', 'del', 'dev', 'eth0', 'root']).catch(() => {});
    await realise?.catch(() => {});
    await pl?.teardown();
  });

  it('shows a large substitution from a peer while it transfers, its bar moving', async (t) => {
    const shaped = await B.lan.run('tc', ['qdisc', 'add', 'dev', 'eth0', 'root', 'tbf', 'rate', '40mbit', 'burst', '32kbit', 'latency', '400ms']);
    assert.equal(shaped.code, 0, shaped.stderr);
    const t0 = Date.now();
    realise = A.lan.run(
      'nix-store',
      ['--store', `${pl.dir}/client-a`, '-r', blob, '--option', 'substituters', SUBST, '--option', 'trusted-public-keys', B.key.publicKey],
      { env: nixEnv({ XDG_CACHE_HOME: `${pl.dir}/client-xdg` }), timeoutMs: 240_000 },
    );
    const row = page.locator('[data-testid="transfer-row"][data-direction="in"]', { hasText: 'big-dataset' });
    await row.waitFor({ timeout: 60_000 });
    // A first screenshot once some bytes have moved, a second once clearly more have.
    const first = await waitFor(
      'bytes to move',
      async () => {
        const s = await bytesShown();
        return s.bytes > 0 && s.bytes < s.total ? s : null;
      },
      30_000,
    );
    await shot('transfer-progress-1');
    const firstAfter = await bytesShown();
    const second = await waitFor(
      'more bytes to move',
      async () => {
        const s = await bytesShown();
        return s.bytes >= firstAfter.bytes + 4 * 1024 * 1024 && s.bytes < s.total ? s : null;
      },
      60_000,
    );
    await shot('transfer-progress-2');
    // The other side at the same moment: B is serving it, and says so.
    const serving = (await pl.status(B)).transfers?.find((x) => x.direction === 'out' && x.storePath === blob);
    t.diagnostic(`B meanwhile: ${JSON.stringify(serving)}`);
    assert.ok(serving && serving.bytes > 0 && serving.total === narSize && serving.peerName === 'laptop-a', 'B shows the NAR it serves to A in progress');
    const rate = await row.locator('[data-testid="transfer-rate"]').innerText();
    const peer = await row.innerText();
    t.diagnostic(
      `shown: "${first.text}" then "${second.text}" (${firstAfter.bytes} → ${second.bytes} of ${second.total} bytes), rate ${rate.trim()}, ${Date.now() - t0} ms after the start`,
    );
    assert.ok(second.bytes > firstAfter.bytes, 'bytes done increase between the two screenshots');
    assert.equal(first.total, narSize, 'the total shown is the NarSize');
    assert.equal(second.total, narSize);
    assert.match(peer, /from buildbox-b/);
    assert.match(rate, /\/s/);
    const bar = await row.locator('progress').evaluate((p: HTMLProgressElement) => ({ value: p.value, max: p.max }));
    assert.equal(bar.max, narSize, 'the bar is out of the NarSize');
    assert.ok(bar.value >= second.bytes, 'the bar moved with the bytes');

    const r = await realise;
    realise = null;
    assert.equal(r.code, 0, r.stderr);
    const took = Date.now() - t0;
    t.diagnostic(`nix-store -r of ${narSize} NAR bytes through 40 mbit took ${took} ms`);
    assert.ok(took > 3000, `the shaped transfer lasted seconds (${took} ms)`);
  });

  it('then shows what the LAN did: exactly the NAR bytes fetched, one path', async (t) => {
    const today = page.locator('[data-testid="lan-today"]');
    await waitFor('the totals to count the transfer', async () => Number(await today.getAttribute('data-fetched-paths')) === 1, 15_000);
    const shown = {
      bytes: Number(await today.getAttribute('data-fetched-bytes')),
      paths: Number(await today.getAttribute('data-fetched-paths')),
      week: Number(await page.locator('[data-testid="lan-week"]').getAttribute('data-fetched-bytes')),
      text: await today.innerText(),
    };
    // The finished row says so, then leaves.
    await page
      .locator('[data-testid="transfer-row"]', { hasText: 'big-dataset' })
      .filter({ hasText: 'done' })
      .waitFor({ timeout: 5000 })
      .catch(() => {});
    await shot('totals');
    const status = await pl.status(A);
    const cli = await pl.cli(A, ['status']);
    t.diagnostic(`page: ${JSON.stringify(shown)}; core: ${JSON.stringify(status.lan?.today)}; NarSize ${narSize}`);
    t.diagnostic(
      cli.stdout
        .split('\n')
        .filter((l) => /LAN today|this week/.test(l))
        .join('\n'),
    );
    assert.equal(shown.bytes, narSize, 'bytes fetched from peers today = the NAR transferred');
    assert.equal(shown.paths, 1);
    assert.equal(shown.week, narSize);
    assert.match(shown.text, /1 path/);
    assert.equal(status.lan?.today.fetchedBytes, narSize);
    const chartIn = status.lan!.minutes.inBytes.reduce((a, b) => a + b, 0);
    assert.equal(chartIn, narSize, 'the per-minute chart adds up to the same bytes');
    assert.match(cli.stdout, /LAN today: +fetched 67\.1 MB \(1 path\) from peers/);
    const served = (await pl.status(B)).lan!;
    t.diagnostic(`B: ${JSON.stringify(served.today)}`);
    assert.equal(served.today.servedBytes, narSize, 'B counted what it served');
    assert.equal(served.today.servedPaths, 1);
    assert.equal(
      served.minutes.outBytes.reduce((a, b) => a + b, 0),
      narSize,
      "B's chart adds up to it too",
    );
    const label = await page.locator('[data-testid="lan-chart"]').getAttribute('aria-label');
    assert.match(label ?? '', /fetched from peers/);
    await page.locator('[data-testid="transfer-row"]').first().waitFor({ state: 'detached', timeout: 15_000 });
  });

  it('the dark theme and the 420-px layout', async (t) => {
    await page.emulateMedia({ colorScheme: 'dark' });
    const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    assert.equal(bg, 'rgb(17, 19, 24)', 'dark background');
    await shot('dark');
    await page.setViewportSize({ width: 420, height: 900 });
    await page.emulateMedia({ colorScheme: 'light' });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    t.diagnostic(`at 420 px the page is ${overflow} px wider than the window`);
    assert.ok(overflow <= 0, `no sideways scrolling at 420 px (${overflow} px over)`);
    assert.ok(await page.locator('[data-testid="lan-today"]').isVisible());
    assert.ok(
      await page.locator('[data-testid="share-address"]', { hasText: `http://${A.lan.address}:9999` }).isVisible(),
      'the LAN address a colleague can use',
    );
    await shot('narrow', true);
  });

  it('the totals outlive a restart: kept in the state directory', async (t) => {
    await browser.close();
    const code = await A.pn!.stop();
    const stored = JSON.parse(readFileSync(`${A.stateDir}/lan-totals.json`, 'utf8')) as {
      days: Record<string, { fetchedBytes: number; fetchedPaths: number }>;
    };
    t.diagnostic(`A exited ${code}; lan-totals.json: ${JSON.stringify(stored.days)}`);
    assert.deepEqual(
      Object.values(stored.days).map((d) => [d.fetchedBytes, d.fetchedPaths]),
      [[narSize, 1]],
    );
    await pl.start(A);
    const again = await pl.status(A);
    assert.equal(again.lan?.today.fetchedBytes, narSize);
    assert.equal(again.lan?.today.fetchedPaths, 1);
    assert.equal(again.lan?.week.fetchedBytes, narSize);
  });
});
