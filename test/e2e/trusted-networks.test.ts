// Sharing only on trusted networks, for real: an owner namespace whose default route goes through
// one of two router namespaces (each its own MAC on the same subnet), a watcher namespace browsing
// mDNS, and the owner's `peernix serve` as a fresh install would run it (no --trust-all-networks).
// Moving the owner's default route to the other router must pause sharing within 5 s and withdraw
// its announcement (the watcher hears the goodbye); `peernix network trust` resumes it. Once as
// root, once as a non-root desktop user. Traffic stays on the private bridge.

import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import type { Snapshot } from '../../src/base/api.ts';
import { canUseNetns, createLan, nodeBin, PROJECT_ROOT, type Lan, type LanHost } from '../support/netns.ts';
import { cleanup, makeTempDir, nixEnv, startNixHost, type NixHost } from '../support/nix-host.ts';
import { MAIN, startPeernixProcess, type PeernixProcess } from '../support/peernix-process.ts';
import { asUser, ensureUser, releaseUser, type OsUser } from '../support/os-user.ts';
import { waitFor } from '../support/wait.ts';

const netns = canUseNetns();
const MDNS_PEER = path.join(PROJECT_ROOT, 'test', 'fixtures', 'mdns-peer.ts');

interface Heard {
  event: string;
  t: number;
  id?: string;
  peer?: { id: string; name: string };
}

describe('trusted networks: sharing follows the network the owner is on', { timeout: 600_000 }, () => {
  let dir: string;
  let lan: Lan;
  let owner: LanHost, watcher: LanHost, routerA: LanHost, routerB: LanHost;
  let nix: NixHost;
  let user: OsUser;
  let listener: ChildProcess;
  const heard: Heard[] = [];
  let pn: PeernixProcess | null = null;
  const gw = (r: LanHost) => r.address.replace(/\.\d+$/, r === routerA ? '.254' : '.253');

  before(async () => {
    assert.ok(netns.ok, `needs root and network namespaces: ${netns.why}`);
    dir = await makeTempDir('pn-netrust');
    await fsp.chmod(dir, 0o755);
    user = await ensureUser('pnnetrust');
    lan = await createLan(4);
    [owner, watcher, routerA, routerB] = lan.hosts;
    // Two routers on the owner's subnet: different hardware, so different networks to Peernix.
    for (const r of [routerA, routerB]) assert.equal((await r.run('ip', ['addr', 'add', `${gw(r)}/24`, 'dev', 'eth0'])).code, 0);
    assert.equal((await owner.run('ip', ['route', 'add', 'default', 'via', gw(routerA)])).code, 0);
    nix = await startNixHost(`${dir}/nix`);
    listener = watcher.exec(nodeBin(), [MDNS_PEER, 'netrust-watcher-1', 'watcher', '9', `${lan.name}w`], { stdio: ['pipe', 'pipe', 'pipe'] });
    createInterface({ input: listener.stdout! }).on('line', (line) => {
      try {
        heard.push(JSON.parse(line) as Heard);
      } catch {
        // not one of its JSON lines
      }
    });
    await waitFor('the watcher to browse', async () => heard.some((h) => h.event === 'started'), 15_000);
  });

  after(async () => {
    await pn?.stop().catch(() => {});
    listener?.kill('SIGTERM');
    await nix?.stop().catch(() => {});
    await lan?.teardown().catch(() => {});
    if (dir) await cleanup(dir);
    await releaseUser(user);
  });

  const macOf = async (r: LanHost) => (await r.run('cat', ['/sys/class/net/eth0/address'])).stdout.trim();

  async function scenario(as: OsUser | null, stateDir: string, note: (line: string) => void) {
    await pn?.stop();
    pn = null;
    await fsp.mkdir(stateDir, { recursive: true });
    if (as) await fsp.chown(stateDir, as.uid, as.gid);
    const wrapUser = as ? asUser(as) : (cmd: string, args: string[]): [string, string[]] => [cmd, args];
    const inOwner = (cmd: string, args: string[]): [string, string[]] => {
      const [c, a] = wrapUser(cmd, args);
      return ['ip', ['netns', 'exec', owner.ns, c, ...a]];
    };
    const cli = async (args: string[]) => {
      const [c, a] = wrapUser(nodeBin(), [MAIN, ...args, '--listen', '127.0.0.1:9998', '--state-dir', stateDir]);
      const r = await owner.run(c, a, { timeoutMs: 40_000, env: { ...process.env, HOME: stateDir } });
      assert.equal(r.code, 0, `peernix ${args.join(' ')}: ${r.stderr}`);
      return r.stdout;
    };
    const status = async () => (JSON.parse(await cli(['status', '--json'])) as Snapshot).status;
    const served = async () =>
      (await watcher.run('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '5', `http://${owner.address}:9999/nix-cache-info`])).stdout ===
      '200';
    const announced = () => {
      // The owner's last word as the watcher heard it: up (announced) or down (goodbye).
      let id: string | null = null;
      let last: 'up' | 'down' | null = null;
      for (const h of heard) {
        if (h.event === 'up' && h.peer?.name === 'owner') [id, last] = [h.peer.id, 'up'];
        else if (h.event === 'down' && id !== null && h.id === id) last = 'down';
      }
      return last;
    };

    await owner.run('ip', ['route', 'replace', 'default', 'via', gw(routerA)]);
    pn = await startPeernixProcess(
      [
        '--store',
        nix.storeUri,
        '--share-listen',
        '0.0.0.0:9999',
        '--listen',
        '127.0.0.1:9998',
        '--state-dir',
        stateDir,
        '--name',
        'owner',
        '--log-level',
        'debug',
      ],
      {
        env: nixEnv({ HOME: stateDir, XDG_CACHE_HOME: `${stateDir}/xdg` }),
        wrap: inOwner,
        trustedNetworksOnly: true,
      },
    );

    // A fresh install on a network it has not been told about: fetches, but neither serves nor announces.
    const macA = await macOf(routerA);
    let st = await status();
    const netA = st.network!.current!;
    note(`${as ? `as ${as.name}` : 'as root'}: on ${netA.name} [${netA.id}]; sharing ${st.sharing}, paused: ${st.sharePaused}; ask ${st.network!.ask}`);
    assert.equal(netA.id, `gateway ${macA} ${lan.subnet}`);
    assert.equal(st.sharing, false);
    assert.match(st.sharePaused ?? '', /is not a trusted network/);
    assert.equal(st.network!.ask, true);
    assert.equal(await served(), false, 'nothing listens on the share port');
    assert.match(await cli(['sharing', 'on']), /sharing is on, but paused here: .* is not a trusted network \(`peernix network trust`/);
    assert.equal(await served(), false, 'asking to share does not override the network');

    // Trusted: shares and announces.
    assert.match(await cli(['network', 'trust']), /sharing here: allowed \(trusted\)/);
    await waitFor('the watcher to hear the owner announce', async () => announced() === 'up', 15_000);
    assert.equal(await served(), true);

    // Moved behind the other router: paused within 5 s, goodbye heard by the watcher.
    const heardBefore = heard.length;
    const moved = Date.now();
    assert.equal((await owner.run('ip', ['route', 'replace', 'default', 'via', gw(routerB)])).code, 0);
    await waitFor('the goodbye', async () => announced() === 'down', 10_000);
    const goodbye = heard.slice(heardBefore).find((h) => h.event === 'down');
    const goodbyeAfter = goodbye!.t - moved;
    // Until the kernel learns router B's MAC (a poll or two) the network is "none recognised": paused either way.
    const macB = await macOf(routerB);
    st = await waitFor(
      'router B recognised',
      async () => {
        const s = await status();
        return s.network?.current?.id === `gateway ${macB} ${lan.subnet}` && s;
      },
      10_000,
    );
    assert.equal(st.sharing, false);
    assert.equal(await served(), false);
    const events = (await cli(['status', '--json']).then((t) => JSON.parse(t) as Snapshot)).events;
    const pause = events.find((e) => e.type === 'sharing' && !e.enabled && e.time >= moved);
    assert.ok(
      pause?.type === 'sharing' && /not a trusted network|no recognised network/.test(pause.reason ?? ''),
      `a sharing event with the reason: ${JSON.stringify(events)}`,
    );
    const pausedAfter = pause.time - moved;
    note(`moved to router B: sharing paused after ${pausedAfter} ms (${pause.reason}), goodbye heard after ${goodbyeAfter} ms; now: ${st.sharePaused}`);
    assert.ok(pausedAfter < 5000, `paused after ${pausedAfter} ms`);
    assert.ok(goodbyeAfter < 5000, `goodbye after ${goodbyeAfter} ms`);
    assert.ok(
      events.some((e) => e.type === 'network' && e.networkId === st.network!.current!.id && !e.trusted),
      'a network event for the move',
    );
    const saved = JSON.parse(await fsp.readFile(`${stateDir}/settings.json`, 'utf8')) as { sharing: boolean; trustedNetworks: string[] };
    assert.equal(saved.sharing, true, 'the pause did not change the saved choice');
    assert.deepEqual(saved.trustedNetworks, [netA.id]);

    // Trusting this one too resumes sharing and the announcement.
    await cli(['network', 'trust', 'current']);
    await waitFor('the watcher to hear the owner again', async () => announced() === 'up', 15_000);
    assert.equal(await served(), true);
    const list = await cli(['network', 'list']);
    assert.match(list, new RegExp(`\\[gateway ${macA} `));
    assert.match(list, /trusted networks: \n/);
    await pn.stop();
    pn = null;
    await waitFor('the goodbye at stop', async () => announced() === 'down', 10_000);
  }

  it('as root', async (t) => {
    await scenario(null, `${dir}/state-root`, (line) => t.diagnostic(line));
  });

  it('as a non-root desktop user', async (t) => {
    await scenario(user, `${dir}/state-user`, (line) => t.diagnostic(line));
  });
});
