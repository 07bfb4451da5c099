// Entry point of the window. In Electron the preload has put a PeernixBridge on window.peernix;
// in a browser (the headless daemon's dashboard) we build one over HTTP.
import type { PeernixBridge } from '../src/base/api.ts';
import { startApp } from './app.ts';
import { createWebBridge } from './bridge-web.ts';
import { mountDoctor } from './doctor-view.ts';

declare global {
  interface Window {
    peernix?: PeernixBridge;
  }
}

function boot(): void {
  const bridge = window.peernix ?? createWebBridge();
  startApp(bridge);
  mountDoctor(bridge);
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', boot);
else boot();
