import { createHash } from 'node:crypto';
import { request } from 'node:http';
import { connect } from 'node:net';

// Small HTTP helpers for tests: whole responses, hashed bodies, and raw sockets for hostile input.

export interface Fetched {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  /** false when the connection was cut before the body was complete */
  complete: boolean;
}

export function get(url: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Fetched> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers, agent: false }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(parts), complete: res.complete }));
      res.on('error', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(parts), complete: false }));
      res.on('aborted', () => {});
    });
    req.on('error', reject);
    req.setTimeout(60_000, () => req.destroy(new Error(`timeout: ${url}`)));
    req.end();
  });
}

export async function sha256Of(
  url: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; sha256: string; size: number; complete: boolean }> {
  const r = await get(url, headers);
  return { status: r.status, sha256: createHash('sha256').update(r.body).digest('hex'), size: r.body.length, complete: r.complete };
}

/** Sends raw bytes and returns whatever comes back until the peer closes (or timeout). */
export function rawExchange(host: string, port: number, data: string | Buffer, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(port, host);
    const parts: Buffer[] = [];
    const done = () => resolve(Buffer.concat(parts).toString('latin1'));
    s.on('data', (c) => parts.push(c));
    s.on('close', done);
    s.on('error', () => {});
    s.setTimeout(timeoutMs, () => s.destroy());
    s.write(data);
  });
}

export function narinfoField(text: string, key: string): string | undefined {
  return text
    .split('\n')
    .find((l) => l.startsWith(`${key}: `))
    ?.slice(key.length + 2);
}
