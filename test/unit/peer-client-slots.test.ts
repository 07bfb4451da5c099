import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { describe, it } from 'node:test';
import { PeerClient, PeerError } from '../../src/peers/peer-client.ts';

// A NAR waiting for one of a peer's slots waits in order, however long; but when the client closes
// (Peernix stops), every wait ends at once instead of holding the stop for up to the slot timeout.

describe('peer client NAR slots', () => {
  it('close() ends the waits for a slot at once', async () => {
    const server = createServer((_req, res) => {
      res.writeHead(200, { 'content-length': '1000' });
      res.write(Buffer.alloc(10)); // and never the rest: the slot stays taken
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/nar/x.nar`;
    const client = new PeerClient({}, 'test', { narSlots: 1 });
    try {
      const first = await client.openNar(url, { offset: 0, expectedSize: 1000 });
      first.on('error', () => {});
      const waiting = client.openNar(url, { offset: 0, expectedSize: 1000 });
      // Evidence that it waits for the slot (not a guess that 50 ms got it there).
      while (client.narsWaiting === 0) await new Promise((r) => setTimeout(r, 5));
      // Ended by close() while the first NAR still holds the only slot (and would for good).
      client.close();
      await assert.rejects(waiting, (e: unknown) => e instanceof PeerError && /client closed/.test(e.message));
      assert.equal(first.destroyed, false, 'the slot is still held');
      first.destroy();
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});
