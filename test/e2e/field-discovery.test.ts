// The field, for discovery: a LAN host flooding `_peernix._tcp` with 500 services and vanishing without
// goodbye, one squatting a departed peer's instance id and key, and one answering for a proven peer's
// host name with its own address. Real Peernix processes with real Nix daemons in network namespaces,
// real mDNS between them only.

import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import type { PeerView, Snapshot } from '../../src/base/api.ts';
import { nodeBin, PROJECT_ROOT, skippedWithoutNetns } from '../support/netns.ts';
import { addPath } from '../support/nix-host.ts';
import { createPnLan, hashPart, SUBST, waitFor, type PnHost, type PnLan } from '../support/peernix-lan.ts';

const FIXTURE = `${PROJECT_ROOT}/test/fixtures/hostile-announcer.ts`;
const FLOOD = 500;
const DISCOVERY_MS = 15_000; // how long discovering a peer may take on this LAN, flood or not

function rssMiB(pid: number): number {
  const kb = Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
  return Math.round((kb / 1024) * 10) / 10;
}

// A fixture process printing JSON lines; resolves once a line matches.
function hostile(h: PnHost, args: string[]): { child: ChildProcess; until(pred: (l: any) => boolean, ms: number, what: string): Promise<void> } {
  const child = h.lan.exec(nodeBin(), [FIXTURE, ...args], { cwd: PROJECT_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: any[] = [];
  let stderr = '';
  let buf = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    for (let i = buf.indexOf('\n'); i !== -1; i = buf.indexOf('\n')) {
      try {
        lines.push(JSON.parse(buf.slice(0, i)));
      } catch {
        // not ours
      }
      buf = buf.slice(i + 1);
    }
  });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-4000)));
  return {
    child,
    until: (pred, ms, what) => waitFor(`${what} (stderr: ${stderr})`, async () => lines.some(pred), ms).then(() => undefined),
  };
}

const fakes = (s: Snapshot) => s.peers.filter((p) => p.name.startsWith('fake '));
const brief = (p: PeerView) => `${p.name} ${p.url} ${p.state} verified=${p.verified} trusted=${p.trusted}`;

// Waits for a peer in the observer's view; on a timeout the error says what the observer showed.
async function waitPeer(pl: PnLan, h: PnHost, what: string, pred: (p: PeerView) => boolean, ms: number): Promise<PeerView> {
  let last: Snapshot | null = null;
  try {
    return await waitFor(
      what,
      async () => {
        last = await pl.status(h);
        return last.peers.find(pred) ?? null;
      },
      ms,
    );
  } catch (e) {
    const shown = last ? (last as Snapshot).peers.filter((p) => !p.name.startsWith('fake ')).map(brief) : [];
    const nFake = last ? fakes(last).length : 0;
    throw new Error(`${(e as Error).message}; the observer showed ${nFake} fake services and: ${shown.join('; ') || 'nothing else'}`);
  }
}

describe('discovery in the field: floods and squatters', { timeout: 600_000 }, () => {
  if (skippedWithoutNetns()) return;
  let pl: PnLan;
  let obs: PnHost;
  let genuine: PnHost;
  let later: PnHost;
  let evil: PnHost;
  let onlyOnGenuine: string;
  let alsoOnlyOnGenuine: string;
  let rssBefore = 0;
  const killed: ChildProcess[] = [];

  before(async () => {
    pl = await createPnLan('pn-field-disc', ['observer', 'genuine', 'later', 'hostile']);
    [obs, genuine, later, evil] = pl.hosts;
    onlyOnGenuine = await addPath(genuine.nix, 'only-on-genuine', { type: 'file', contents: 'served by the genuine peer only\n' });
    alsoOnlyOnGenuine = await addPath(genuine.nix, 'also-only-on-genuine', { type: 'file', contents: 'also served by the genuine peer only\n' });
    await pl.start(obs);
    await new Promise((r) => setTimeout(r, 2000));
    rssBefore = rssMiB(obs.pn!.proc.pid!);
  });

  after(async () => {
    for (const c of killed) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await pl?.teardown();
  });

  it('a genuine peer is discovered within the usual time while 500 fake services are announced, and after they vanish without goodbye', async (t) => {
    const flood = hostile(evil, ['flood', String(FLOOD), `${pl.lan.name}fl.local`, evil.lan.address, '7000']);
    killed.push(flood.child);
    await flood.until((l) => l.event === 'round' && l.n >= 2, 30_000, 'two flood rounds');
    const flooded = await waitFor(
      'the flood to reach the observer',
      async () => {
        const s = await pl.status(obs);
        return fakes(s).length >= 8 ? s : null;
      },
      20_000,
    );
    t.diagnostic(`observer while flooded: ${flooded.peers.length} peers listed, ${fakes(flooded).length} fake; RSS ${rssMiB(obs.pn!.proc.pid!)} MiB`);

    const t0 = Date.now();
    await pl.start(genuine);
    const seen = await waitPeer(
      pl,
      obs,
      'the genuine peer to be discovered during the flood',
      (x) => x.name === genuine.name && x.state === 'up' && x.verified,
      DISCOVERY_MS,
    );
    const during = await pl.status(obs);
    t.diagnostic(
      `genuine peer discovered and verified ${Date.now() - t0} ms after start, during the flood: ${brief(seen)}; fakes listed ${fakes(during).length}`,
    );
    assert.equal(seen.url, `http://${genuine.lan.address}:9999`);
    assert.equal(seen.trusted, true);
    assert.ok(fakes(during).length <= 16, `${fakes(during).length} fake services held`);
    assert.ok(!fakes(during).some((p) => p.verified || p.trusted), 'a fake service counts as verified');

    // The flood host vanishes: no goodbye (SIGKILL), its services just stop being announced.
    flood.child.kill('SIGKILL');
    const t1 = Date.now();
    await pl.start(later);
    const found = await waitPeer(
      pl,
      obs,
      'a peer appearing after the flood vanished',
      (x) => x.name === later.name && x.state === 'up' && x.verified,
      DISCOVERY_MS,
    );
    t.diagnostic(`later peer discovered ${Date.now() - t1} ms after start: ${brief(found)}`);

    // The dead services expire on their own (never re-announced, never answering).
    const gone = await waitFor(
      'the vanished services to expire',
      async () => {
        const s = await pl.status(obs);
        return fakes(s).length === 0 ? s : null;
      },
      200_000,
    );
    const expiredAfter = Date.now() - t1;
    const rssAfter = rssMiB(obs.pn!.proc.pid!);
    t.diagnostic(`vanished services expired ${expiredAfter} ms after the flood stopped; peers now: ${gone.peers.map(brief).join('; ')}`);
    t.diagnostic(`observer RSS: ${rssBefore} MiB before the flood, ${rssAfter} MiB after (${FLOOD} services announced every 2 s)`);
    assert.deepEqual(gone.peers.map((p) => p.name).sort(), [genuine.name, later.name]);
    assert.ok(rssAfter - rssBefore < 40, `RSS grew by ${Math.round(rssAfter - rssBefore)} MiB`);
  });

  it("an impostor announcing a departed peer's id and key is neither verified nor trusted; the real one wins when it returns", async (t) => {
    // Runs on its own too (--test-name-pattern impostor): then the genuine peer starts here.
    if (!genuine.pn) await pl.start(genuine);
    const id = readFileSync(`${genuine.stateDir}/instance-id`, 'utf8').trim();
    const genuineUrl = `http://${genuine.lan.address}:9999`;
    const impostorUrl = `http://${evil.lan.address}:7001`;
    await waitPeer(pl, obs, 'the genuine peer to be known', (x) => x.id === id && x.state === 'up', DISCOVERY_MS);
    // The genuine peer leaves with a goodbye, as a laptop shut down properly does.
    await genuine.pn!.stop('SIGTERM');
    await waitFor('the observer to drop the genuine peer', async () => !(await pl.status(obs)).peers.some((p) => p.id === id), DISCOVERY_MS);

    const impostor = hostile(evil, ['impostor', id, genuine.key.publicKey, genuine.name, `${pl.lan.name}im.local`, evil.lan.address, '7001']);
    killed.push(impostor.child);
    await impostor.until((l) => l.event === 'round' && l.n >= 1, 30_000, 'the impostor announcing');
    const squat = await waitFor(
      'the observer to see the impostor',
      async () => (await pl.status(obs)).peers.find((p) => p.url === impostorUrl) ?? null,
      DISCOVERY_MS,
    );
    await new Promise((r) => setTimeout(r, 4000)); // time for it to be challenged (and fail)
    const squatted = (await pl.status(obs)).peers.filter((p) => p.id === id || p.url === impostorUrl);
    t.diagnostic(`while the genuine peer is away: ${squatted.map(brief).join('; ') || 'the impostor is not listed'}`);
    assert.equal(squat.publicKey, genuine.key.publicKey, 'the impostor claims the genuine key');
    for (const p of squatted) {
      assert.equal(p.trusted, false, brief(p));
      assert.equal(p.verified, false, brief(p));
    }

    const t0 = Date.now();
    await pl.start(genuine);
    const back = await waitPeer(
      pl,
      obs,
      'the genuine peer to be used again',
      (x) => x.id === id && x.url === genuineUrl && x.state === 'up' && x.verified,
      DISCOVERY_MS,
    );
    t.diagnostic(`genuine peer back and verified ${Date.now() - t0} ms after its restart: ${brief(back)}`);
    assert.equal(back.trusted, true);

    // It is the one asked: a path only it has comes through the observer's substituter.
    const r = await pl.curl(obs, ['-o', '/dev/null', '-w', '%{http_code}', `${SUBST}/${hashPart(onlyOnGenuine)}.narinfo`]);
    assert.equal(r.stdout, '200', 'narinfo of a path only the genuine peer has');

    // The impostor keeps announcing: nothing flips back.
    await impostor.until((l) => l.event === 'round' && l.n >= 5, 30_000, 'more impostor rounds');
    const settled = await pl.status(obs);
    t.diagnostic(`after more impostor rounds: ${settled.peers.map(brief).join('; ')}`);
    const holder = settled.peers.find((p) => p.id === id);
    assert.equal(holder?.url, genuineUrl);
    assert.ok(!settled.peers.some((p) => p.url === impostorUrl && (p.verified || p.trusted)));
  });

  it("a host answering for a proven peer's host name with its own address does not take it over", async (t) => {
    // Runs on its own too (--test-name-pattern "host name"): then the genuine peer starts here.
    if (!genuine.pn) await pl.start(genuine);
    const id = readFileSync(`${genuine.stateDir}/instance-id`, 'utf8').trim();
    const genuineUrl = `http://${genuine.lan.address}:9999`;
    await waitPeer(pl, obs, 'the genuine peer to be proven', (x) => x.id === id && x.url === genuineUrl && x.state === 'up' && x.verified, DISCOVERY_MS);

    // Its A record gives the genuine peer's mDNS host name (peernix.ts: name + id prefix) the hostile
    // address; its HTTP server on the same port answers challenges with a key of its own.
    const hijack = hostile(evil, ['hijack', id, genuine.key.publicKey, `${genuine.name}-${id.slice(0, 6)}.local`, evil.lan.address, '9999']);
    killed.push(hijack.child);
    const views = new Map<string, number>(); // each distinct view of the id at the observer, and how often
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        const s = await pl.status(obs);
        const line =
          s.peers
            .filter((p) => p.id === id)
            .map(brief)
            .join('; ') || 'not listed';
        views.set(line, (views.get(line) ?? 0) + 1);
        await new Promise((r) => setTimeout(r, 250));
      }
    })();
    try {
      await hijack.until((l) => l.event === 'challenged' && String(l.from).endsWith(obs.lan.address), 30_000, 'the observer to challenge the hijacked address');
      await hijack.until((l) => l.event === 'round' && l.n >= 5, 30_000, 'five hijack rounds');
    } finally {
      watching = false;
      await watcher;
    }
    t.diagnostic(`while the host name was hijacked (${[...views.values()].reduce((a, b) => a + b, 0)} samples): ${JSON.stringify([...views])}`);
    const expected = `${genuine.name} ${genuineUrl} up verified=true trusted=true`;
    assert.deepEqual([...views.keys()], [expected], 'the observer kept the proven address, verified and trusted, throughout');

    // And it is the genuine peer that is asked.
    const r = await pl.curl(obs, ['-o', '/dev/null', '-w', '%{http_code}', `${SUBST}/${hashPart(alsoOnlyOnGenuine)}.narinfo`]);
    t.diagnostic(`narinfo of a path only the genuine peer has, while hijacked: HTTP ${r.stdout}`);
    assert.equal(r.stdout, '200');
    hijack.child.kill('SIGKILL');
  });
});
