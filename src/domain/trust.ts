import path from 'node:path';
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
    let k: PublicKey;
    try {
      k = parsePublicKey(t);
    } catch {
      continue; // Nix ignores keys it can't parse too
    }
    // Nix keeps the first trusted key of each name and ignores the rest (every Go peernix host names
    // its key peernix-1): a signature by a later one is one Nix refuses, so it is not trusted here.
    if (!keys.some((x) => x.name === k.name)) keys.push(k);
  }
  return { requireSigs, keys };
}

/** Trusted keys Nix ignores because an earlier one has the same name, grouped by that name. */
export function shadowedKeys(keyTexts: string[]): { name: string; honoured: string; ignored: string[] }[] {
  const byName = new Map<string, string[]>();
  for (const t of keyTexts) {
    try {
      const k = parsePublicKey(t);
      const list = byName.get(k.name) ?? [];
      if (!list.includes(k.text)) list.push(k.text);
      byName.set(k.name, list);
    } catch {
      // not a key Nix would use
    }
  }
  return [...byName].filter(([, l]) => l.length > 1).map(([name, l]) => ({ name, honoured: l[0], ignored: l.slice(1) }));
}

export interface NixTrust {
  policy: TrustPolicy;
  /** Where the settings came from: the files read and NIX_CONFIG, or Nix's defaults. */
  source: string;
  /** The files to watch for a change: those read, and the top nix.conf even when absent. */
  files: string[];
  /** Trusted keys Nix ignores for an earlier one of the same name. */
  clashes: ReturnType<typeof shadowedKeys>;
}

/**
 * What the local nix-daemon will accept, from the system nix.conf (and its includes) and NIX_CONFIG,
 * read directly: no `nix` on PATH needed. Throws NixConfigError when it cannot be known.
 */
export function readNixTrust(env: NodeJS.ProcessEnv = process.env): NixTrust {
  const s = readNixTrustSettings(env);
  const source = s.sources.length > 0 ? s.sources.join(', ') : `Nix's defaults (no ${nixConfDir(env)}/nix.conf)`;
  const files = [path.join(nixConfDir(env), 'nix.conf'), ...s.sources.filter((f) => f !== 'NIX_CONFIG')];
  return { policy: policyFromKeys(s.trustedPublicKeys, s.requireSigs), source, files: [...new Set(files)], clashes: shadowedKeys(s.trustedPublicKeys) };
}
