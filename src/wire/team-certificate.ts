// The team channel's certificates: each Peernix presents a self-signed X.509 certificate whose
// subject public key is its Ed25519 identity key (the Nix signing key peers already know it by), so
// a TLS handshake proves both ends hold the keys the team list names. Nothing in the certificate
// but the key is trusted: name, dates and issuer are whatever the other side chose.
// Threat: a peer's certificate is hostile input; it is parsed by Node's own X509Certificate and
// only an Ed25519 key of exactly 32 bytes is taken from it.

import { X509Certificate as NodeX509, createPublicKey, webcrypto } from 'node:crypto';
// @peculiar/x509's dependency injection needs the Reflect metadata polyfill loaded first.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import type { SecretKey } from '../nix/signing.ts';

export interface TeamCertificate {
  /** PEM, for tls `cert`. */
  cert: string;
  /** The identity key in PEM (PKCS#8), for tls `key`: held in memory only, like the key file's text. */
  key: string;
}

const VALID_DAYS = 3650;

/** A self-signed certificate for `secret`, made at start; the key, not the certificate, is what lasts. */
export async function makeTeamCertificate(secret: SecretKey, now = new Date()): Promise<TeamCertificate> {
  const pkcs8 = secret.privateKey.export({ format: 'der', type: 'pkcs8' });
  const spki = createPublicKey(secret.privateKey).export({ format: 'der', type: 'spki' });
  const alg = { name: 'Ed25519' };
  const privateKey = await webcrypto.subtle.importKey('pkcs8', pkcs8, alg, false, ['sign']);
  const publicKey = await webcrypto.subtle.importKey('spki', spki, alg, true, ['verify']);
  // A common name the key's owner chose, only for a human reading a capture; never checked.
  const cn = secret.name.replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 60) || 'peernix';
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: Buffer.from(webcrypto.getRandomValues(new Uint8Array(8)))
        .toString('hex')
        .replace(/^[89a-f]/, '1'),
      name: `CN=${cn}`,
      notBefore: new Date(now.getTime() - 24 * 3600_000),
      notAfter: new Date(now.getTime() + VALID_DAYS * 24 * 3600_000),
      // Node's CryptoKey and the DOM typings' are the same thing under two declarations.
      keys: { privateKey, publicKey } as unknown as x509.X509CertificateCreateSelfSignedParams['keys'],
      signingAlgorithm: alg,
    },
    // Node's own WebCrypto, which has Ed25519.
    webcrypto as unknown as Parameters<typeof x509.X509CertificateGenerator.createSelfSigned>[1],
  );
  return { cert: cert.toString('pem'), key: secret.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString() };
}

/** The 32-byte Ed25519 key a DER certificate carries, or null for anything else. Never throws. */
export function ed25519KeyOfCertificate(der: Buffer | undefined): Buffer | null {
  if (!der || der.length === 0 || der.length > 16 * 1024) return null;
  try {
    const key = new NodeX509(der).publicKey;
    if (key.asymmetricKeyType !== 'ed25519') return null;
    const x = Buffer.from(key.export({ format: 'jwk' }).x ?? '', 'base64url');
    return x.length === 32 ? x : null;
  } catch {
    return null;
  }
}
