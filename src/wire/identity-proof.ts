// Proof that a discovered peer holds the key its TXT record claims. Anyone on the LAN can announce any
// instance id and public key, so neither counts until the peer signs a fresh challenge with that key:
//
//   GET /peernix/identity?nonce=<22–128 base64url chars>
//   → 200 application/json {"v":1,"id":"<instance id>","publicKey":"name:base64","sig":"name:base64"}
//
// The signature covers a domain-separated message with the nonce, the instance id and the address and
// port the *answering socket* was reached on. That last part is what stops a relay: an impostor that
// forwards our challenge to the real peer gets a signature over the real peer's own address, which is
// not the one we asked.

import { randomBytes, verify as edVerify, createPublicKey } from 'node:crypto';
import { request, type Agent } from 'node:http';
import { request as httpsRequest } from 'node:https';
import net from 'node:net';
import type { SecretKey } from '../nix/signing.ts';
import { parsePublicKey } from '../nix/signing.ts';
import { isInstanceId } from './txt-record.ts';

export const IDENTITY_PATH = '/peernix/identity';
const DOMAIN = 'peernix-identity-v1';
const NONCE = /^[A-Za-z0-9_-]{22,128}$/;
const MAX_ANSWER_BYTES = 2048;

export interface IdentityClaim {
  instanceId: string;
  address: string; // the IP we connected to
  port: number;
  nonce: string;
}

export function isNonce(value: unknown): value is string {
  return typeof value === 'string' && NONCE.test(value);
}

export function newNonce(): string {
  return randomBytes(24).toString('base64url');
}

// IPv4-mapped IPv6 ("::ffff:10.0.0.1") is how a dual-stack socket reports an IPv4 peer: one spelling.
export function canonicalAddress(address: string): string {
  const a = address.toLowerCase();
  return a.startsWith('::ffff:') && net.isIPv4(a.slice(7)) ? a.slice(7) : a;
}

/** The exact bytes signed. Every field has a fixed charset without "\n", so the join is unambiguous. */
export function identityMessage(c: IdentityClaim): string {
  if (!isInstanceId(c.instanceId)) throw new RangeError('identity: bad instance id');
  if (!isNonce(c.nonce)) throw new RangeError('identity: bad nonce');
  if (net.isIP(canonicalAddress(c.address)) === 0) throw new RangeError('identity: bad address');
  if (!Number.isInteger(c.port) || c.port < 1 || c.port > 65535) throw new RangeError('identity: bad port');
  return `${DOMAIN}\n${c.instanceId}\n${canonicalAddress(c.address)}\n${c.port}\n${c.nonce}`;
}

export function signIdentity(key: SecretKey, c: IdentityClaim): string {
  return key.sign(identityMessage(c));
}

/** True only if `sig` is `publicKeyText`'s signature of the claim. Never throws. */
export function verifyIdentity(publicKeyText: string, c: IdentityClaim, sig: unknown): boolean {
  try {
    if (typeof sig !== 'string' || sig.length > 200) return false;
    const pk = parsePublicKey(publicKeyText);
    const colon = sig.indexOf(':');
    if (colon <= 0 || sig.slice(0, colon) !== pk.name) return false;
    const b64 = sig.slice(colon + 1);
    const bytes = Buffer.from(b64, 'base64');
    if (bytes.length !== 64 || bytes.toString('base64') !== b64) return false;
    const keyObject = createPublicKey({ format: 'jwk', key: { kty: 'OKP', crv: 'Ed25519', x: pk.key.toString('base64url') } });
    return edVerify(null, Buffer.from(identityMessage(c), 'utf8'), keyObject, bytes);
  } catch {
    return false;
  }
}

export type ProofResult = 'verified' | 'failed' | 'unsupported';

export interface ProveOptions {
  address: string;
  port: number;
  instanceId: string; // claimed in the TXT record
  publicKey: string | null; // claimed in the TXT record
  timeoutMs?: number;
  agent?: Agent;
  /**
   * The team channel to a peer claiming a team member's key (peers/team-agent.ts): the challenge goes
   * over TLS whose handshake must prove that very key, so not even the proof crosses the LAN in clear.
   */
  tlsAgent?: Agent;
}

/**
 * Challenges a peer. 'unsupported': it has no identity route (another implementation) or claims no
 * key, so it stays unverified without being an impostor; 'failed': it answered and could not prove.
 */
export async function proveIdentity(opts: ProveOptions): Promise<ProofResult> {
  if (!opts.publicKey) return 'unsupported';
  const nonce = newNonce();
  const host = net.isIPv6(opts.address) ? `[${opts.address}]` : opts.address;
  let status: number;
  let body: string;
  try {
    const scheme = opts.tlsAgent ? 'https' : 'http';
    ({ status, body } = await get(`${scheme}://${host}:${opts.port}${IDENTITY_PATH}?nonce=${nonce}`, opts.timeoutMs ?? 1500, opts.tlsAgent ?? opts.agent));
  } catch {
    return 'failed';
  }
  if (status === 404) return 'unsupported';
  if (status !== 200) return 'failed';
  let answer: unknown;
  try {
    answer = JSON.parse(body);
  } catch {
    return 'failed';
  }
  if (!answer || typeof answer !== 'object') return 'failed';
  const a = answer as Record<string, unknown>;
  if (a.v !== 1 || a.id !== opts.instanceId || a.publicKey !== opts.publicKey) return 'failed';
  const ok = verifyIdentity(opts.publicKey, { instanceId: opts.instanceId, address: opts.address, port: opts.port, nonce }, a.sig);
  return ok ? 'verified' : 'failed';
}

function get(url: string, timeoutMs: number, agent: Agent | undefined): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = (url.startsWith('https:') ? httpsRequest : request)(url, { agent, headers: { accept: 'application/json' } }, (res) => {
      const parts: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_ANSWER_BYTES) req.destroy(new Error('identity answer too large'));
        else parts.push(chunk);
      });
      res.on('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts).toString('utf8') });
      });
      res.on('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
    });
    const timer = setTimeout(() => req.destroy(new Error('identity check timed out')), timeoutMs);
    req.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    req.end();
  });
}
