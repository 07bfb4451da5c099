// A dev tool, not a test: serves the window's UI (the real control routes and the built renderer)
// over made-up data, for working on the renderer without Nix or peers. The same data is what
// test/ui/renderer.test.ts checks in Chromium.
//
//   node scripts/dev-dashboard.ts              serve on http://127.0.0.1:9997/peernix/ until ^C
//   node scripts/dev-dashboard.ts --port 0     any free port
//   node scripts/dev-dashboard.ts --no-build   skip `npm run build` first
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { demoApi, serveDemoApi } from '../test/support/dashboard-demo.ts';

const root = path.join(import.meta.dirname, '..');
const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '9997' },
    'no-build': { type: 'boolean', default: false },
  },
});

if (!values['no-build']) {
  const b = spawnSync(process.execPath, [path.join(root, 'scripts', 'build.ts')], { stdio: 'inherit' });
  if (b.status !== 0) process.exit(b.status ?? 1);
}

const api = demoApi();
const served = await serveDemoApi(api, Number(values.port));
console.log(`dashboard: ${served.url}`);
// Some life: a peer flaps and entries get hits now and then.
let n = 0;
setInterval(() => {
  n++;
  const peer = api.snap.peers[2];
  if (n % 3 === 0) {
    peer.state = peer.state === 'up' ? 'gone' : 'up';
    api.addEvent({ type: peer.state === 'up' ? 'peer-up' : 'peer-down', time: Date.now(), peerId: peer.id, peerName: peer.name });
    api.emit({ topic: 'peers' });
  } else {
    const e = api.snap.entries[n % api.snap.entries.length];
    e.hits++;
    e.updatedAt = Date.now();
    api.emit({ topic: 'entries' });
  }
}, 4000);
process.on('SIGINT', () => void served.close().then(() => process.exit(0)));
