// The benchmarks' measuring helpers refuse to time an answer they did not ask for: a latency run
// expects one status for every response, and curl downloads fail on an error status.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { curlThroughput, fetchOk, latencyInTurns, sequentialLatency, UnexpectedStatus } from '../../bench/lib.ts';

describe('bench helpers check every status', () => {
  let base = '';
  const server = createServer((req, res) => {
    const status = Number(/\/(\d{3})/.exec(req.url ?? '')?.[1] ?? 200);
    const body = Buffer.alloc(status === 200 ? 4096 : 32, 'x');
    res.writeHead(status, { 'content-length': String(body.length) });
    res.end(body);
  });
  before(async () => {
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  after(() => server.close());

  test('latency runs time the expected status and fail on any other', async () => {
    assert.equal((await sequentialLatency([`${base}/200`, `${base}/200`], 200)).length, 2);
    assert.equal((await sequentialLatency([`${base}/404`], 404)).length, 1);
    await assert.rejects(
      sequentialLatency([`${base}/200`, `${base}/500`], 200),
      (e: unknown) => e instanceof UnexpectedStatus && /HTTP 500, expected 200/.test((e as Error).message),
    );
    await assert.rejects(latencyInTurns([[`${base}/404`], [`${base}/503`]], 404), UnexpectedStatus);
  });

  test('curl throughput counts 200s only', async () => {
    assert.ok((await curlThroughput(`${base}/200`, 2)) > 0);
    await assert.rejects(curlThroughput(`${base}/404`, 1), (e: unknown) => e instanceof UnexpectedStatus && /HTTP 404/.test((e as Error).message));
  });

  test('fetchOk passes a 200 and refuses the rest', async () => {
    assert.equal((await (await fetchOk(`${base}/200`)).text()).length, 4096);
    await assert.rejects(fetchOk(`${base}/502`), UnexpectedStatus);
  });
});
