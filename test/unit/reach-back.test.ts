import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import type { Snapshot } from '../../src/base/api.ts';
import type { DoctorFacts } from '../../src/doctor/facts.ts';
import { peernixChecks } from '../../src/doctor/peernix-checks.ts';
import { createReachBackHandler, REACH_BACK_PATH } from '../../src/doctor/reach-back.ts';
import { shareRouteOnly } from '../support/share-route.ts';

// The connect-back route is LAN-facing: it connects only to the asker's own address and announced
// port, only for a known peer, once per address per period. Real HTTP on loopback.

async function server(handler: http.RequestListener): Promise<{ port: number; close(): Promise<void> }> {
  const s = http.createServer(handler);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return { port: (s.address() as AddressInfo).port, close: () => new Promise((r) => s.close(() => r())) };
}

async function get(port: number, path: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: res.status, body: await res.text() };
}

describe('reach-back route', () => {
  it('connects back only to a known asker, at its own address and port, once per period', async (t) => {
    const seen: string[] = [];
    const target = await server((req, res) => {
      seen.push(`${req.socket.remoteAddress} ${req.url}`);
      res.end('StoreDir: /nix/store\n');
    });
    let known = false;
    const route = shareRouteOnly(
      'reachBack',
      createReachBackHandler({ portOf: (addr) => (known && addr === '127.0.0.1' ? target.port : null), perAddressMs: 60_000 }),
    );
    const share = await server((req, res) => {
      if (!route(req, res)) res.writeHead(404).end();
    });
    try {
      const stranger = await get(share.port, REACH_BACK_PATH);
      known = true;
      const first = await get(share.port, REACH_BACK_PATH);
      const again = await get(share.port, REACH_BACK_PATH);
      const withQuery = await get(share.port, `${REACH_BACK_PATH}?host=10.0.0.9&port=22`);
      t.diagnostic(
        `unknown asker ${stranger.status}; known ${first.status} ${first.body}; again at once ${again.status}; with a target in the query ${withQuery.status}; connections made: ${JSON.stringify(seen)}`,
      );
      assert.equal(stranger.status, 403);
      assert.equal(first.status, 200);
      assert.equal(JSON.parse(first.body).reachable, true);
      assert.equal(again.status, 429);
      assert.equal(withQuery.status, 404, 'no target can be named: the route takes no parameters');
      assert.deepEqual(seen, ['127.0.0.1 /nix-cache-info']);
    } finally {
      await share.close();
      await target.close();
    }
  });

  it('says unreachable when nothing listens at the asker’s port', async (t) => {
    const closed = await server(() => {});
    const port = closed.port;
    await closed.close();
    const route = shareRouteOnly('reachBack', createReachBackHandler({ portOf: () => port }));
    const share = await server((req, res) => {
      if (!route(req, res)) res.writeHead(404).end();
    });
    try {
      const r = await get(share.port, REACH_BACK_PATH);
      assert.equal(r.status, 200);
      const body = JSON.parse(r.body) as { reachable: boolean; detail: string };
      t.diagnostic(`closed port: ${r.body}`);
      assert.equal(body.reachable, false);
      assert.match(body.detail, /ECONNREFUSED/);
    } finally {
      await share.close();
    }
  });
});

describe('doctor: share listener reachable from the LAN', () => {
  const facts = (reachBack: DoctorFacts['reachBack'], bytesTo = 0): DoctorFacts =>
    ({
      peernix: {
        snapshot: {
          status: { sharing: true, mdns: false, version: 't', hostName: 'h', substituterUrl: 'http://127.0.0.1:1' },
          peers: [{ name: 'p', state: 'up', bytesTo, verified: true, trusted: true }],
        } as unknown as Snapshot,
        error: null,
      },
      shareProbe: { port: 9999, listening: true, error: null },
      reachBack,
      system: { files: [] },
    }) as unknown as DoctorFacts;
  const lan = (f: DoctorFacts) => peernixChecks(f).find((c) => c.id === 'share.lan')!;

  it('fails when every peer that answered could not get through, and says how to open the port', () => {
    const c = lan(facts([{ peer: 'b', answer: { reachable: false, detail: 'no answer within 2000 ms' } }]));
    assert.equal(c.status, 'fail');
    assert.match(c.fix!, /TCP port 9999/);
  });
  it('is ok on a peer that connected back or fetched from us; unknown when nobody could say', () => {
    assert.equal(lan(facts([{ peer: 'b', answer: { reachable: true, detail: 'connected' } }])).status, 'ok');
    assert.equal(lan(facts([], 10)).status, 'ok');
    assert.equal(lan(facts([{ peer: 'b', answer: null }])).status, 'unknown');
  });
});
