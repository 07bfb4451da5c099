import { isContentAddressedPath, narHashFitsContentAddress } from '../nix/content-address.ts';
import { parseSha256 } from '../nix/hash.ts';
import { STORE_DIR } from '../nix/store-path.ts';
import type { NarInfo } from '../nix/narinfo.ts';
import { nixConfDir, readNixTrustSettings } from '../nix/nix-config.ts';
import { parsePublicKey, verifyNarInfoSignature, type PublicKey } from '../nix/signing.ts';
import { verifyRealisationSignature, type Realisation } from '../nix/realisation.ts';

// What this machine's Nix will accept from a substituter: a narinfo signed by one of its
// trusted-public-keys, or a content-addressed one (its CA, name and references determine its
// store path, as Nix checks), or anything when require-sigs is off.
// Peers' answers are judged by the same rule so Nix never gets one it would reject.

export interface TrustPolicy {
  requireSigs: boolean;
  keys: PublicKey[];
}

export type Verdict = 'trusted' | 'acceptable' | 'rejected';

export function judgeNarInfo(info: NarInfo, policy: TrustPolicy): Verdict {
  for (const sig of info.sigs) if (verifyNarInfoSignature(info, sig, policy.keys)) return 'trusted';
  // A CA line alone proves nothing: anyone can write one. Only a CA that yields this very store path
  // does, since finding content for a given path would need a SHA-256 preimage.
  if (info.ca && isContentAddressedPath(info.storePath, info.ca, info.references) && narHashFits(info)) return 'trusted';
  return policy.requireSigs ? 'rejected' : 'acceptable';
}

/** A realisation is judged as a narinfo is, but nothing else proves one: only a trusted signature. */
export function judgeRealisation(r: Realisation, policy: TrustPolicy): Verdict {
  for (const sig of r.signatures) if (verifyRealisationSignature(r, sig, policy.keys)) return 'trusted';
  return policy.requireSigs ? 'rejected' : 'acceptable';
}

function narHashFits(info: NarInfo): boolean {
  try {
    const self = info.storePath.slice(STORE_DIR.length + 1);
    return narHashFitsContentAddress(info.ca!, parseSha256(info.narHash), info.references.includes(self));
  } catch {
    return false;
  }
}

export function isKeyTrusted(publicKeyText: string | null, policy: TrustPolicy): boolean {
  if (!publicKeyText) return false;
  return policy.keys.some((k) => k.text === publicKeyText);
}

export function policyFromKeys(keyTexts: string[], requireSigs = true): TrustPolicy {
  const keys: PublicKey[] = [];
  for (const t of keyTexts) {
    try {
      keys.push(parsePublicKey(t));
    } catch {
      // Nix ignores keys it can't parse too
    }
  }
  return { requireSigs, keys };
}

export interface NixTrust {
  policy: TrustPolicy;
  /** Where the settings came from: the files read and NIX_CONFIG, or Nix's defaults. */
  source: string;
}

/**
 * What the local nix-daemon will accept, from the system nix.conf (and its includes) and NIX_CONFIG,
 * read directly: no `nix` on PATH needed. Throws NixConfigError when it cannot be known.
 */
export function readNixTrust(env: NodeJS.ProcessEnv = process.env): NixTrust {
  const s = readNixTrustSettings(env);
  const source = s.sources.length > 0 ? s.sources.join(', ') : `Nix's defaults (no ${nixConfDir(env)}/nix.conf)`;
  return { policy: policyFromKeys(s.trustedPublicKeys, s.requireSigs), source };
}
