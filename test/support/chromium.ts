import { chromium, type Browser, type BrowserContext } from 'playwright-core';

// Debian's Chromium, headless, with everything that would reach for the internet turned off (this
// machine has none, and Chromium would otherwise retry blocked connections in the background).

export const CHROMIUM = '/usr/bin/chromium';
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** A browser with a fresh temporary profile; `executablePath` may be a wrapper (e.g. one that enters a namespace). */
export function launchChromium(executablePath = CHROMIUM): Promise<Browser> {
  return chromium.launch({ executablePath, args: CHROMIUM_ARGS });
}

export function launchChromiumWithProfile(profileDir: string): Promise<BrowserContext> {
  return chromium.launchPersistentContext(profileDir, { executablePath: CHROMIUM, args: CHROMIUM_ARGS });
}
