// Entry point of the window. In Electron the preload has put a PeernixBridge on window.peernix;
// in a browser (the headless daemon's dashboard) we build one over HTTP.
import type { PeernixBridge } from '../src/api.ts';
import { startApp } from './app.ts';
import { createWebBridge } from './bridge-web.ts';

declare global {
  interface Window {
    peernix?: PeernixBridge;
  }
}

function boot(): void {
  startApp(window.peernix ?? createWebBridge());
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', boot);
else boot();
