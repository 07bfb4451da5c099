import { after } from 'node:test';
import { startCpuHogs } from './cpu-hogs.ts';

// PEERNIX_E2E_HOGS=N runs an end-to-end file beside N CPU busy-loops for its whole duration (a laptop
// compiling on every core while Nix substitutes): imported by the e2e support every such file uses,
// so any of them can be run under load without a change. The hogs are bounded (timeout(1), an hour)
// and killed by their own process groups when the file's tests are done, or when its process exits.

const count = Number(process.env.PEERNIX_E2E_HOGS ?? 0);
if (Number.isInteger(count) && count > 0) {
  const hogs = startCpuHogs(count, 3600);
  process.once('exit', () => hogs.killNow());
  after(() => hogs.stop());
}
