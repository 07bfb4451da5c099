// Realisations of content-addressed derivations, in the JSON Nix serves at
// /realisations/<drv output id>.doi and its daemon answers QueryRealisation with (Nix 2.34):
//   {"dependentRealisations":{},"id":"sha256:<hex>!out","outPath":"<hash>-<name>","signatures":[…]}
// A realisation says "this derivation's output is that store path": whoever forges one can send a
// user's Nix to another path, so a peer's realisation counts only with a signature the local Nix
// trusts (domain/trust.ts), as a narinfo does. Signatures are over the fingerprint, the same JSON
// without "signatures", keys sorted, compact (what Nix's nlohmann::json dump() gives).
// Threat: the JSON comes from peers. It is bounded, every field is checked against the exact shape
// Nix writes, and nothing unknown is passed on.

import { parseBaseName } from './store-path.ts';
import { verifySignature, type PublicKey, type SecretKey } from './signing.ts';

/** "sha256:<64 hex>!<output name>" (Nix's DrvOutput; output names as Nix allows them). */
export const DRV_OUTPUT_ID = /^sha256:[0-9a-f]{64}![A-Za-z0-9+\-_?=][A-Za-z0-9+\-_?=.]{0,99}$/;
export const MAX_REALISATION_BYTES = 64 * 1024;
const MAX_SIGS = 32;
const MAX_DEPENDENTS = 256;
const SIG = /^[^\s:]{1,100}:[A-Za-z0-9+/]{86}==$/;

export interface Realisation {
  id: string;
  /** The output's store path basename ("<hash>-<name>"). */
  outPath: string;
  signatures: string[];
  /** Drv output id → store path basename (empty in what Nix 2.34 writes). */
  dependentRealisations: Record<string, string>;
}

export class RealisationError extends Error {}

export const isDrvOutputId = (s: string): boolean => s.length <= 200 && DRV_OUTPUT_ID.test(s);

/** Parses and checks one realisation; `expectedId` is the one asked for (a different id is an error). */
export function parseRealisation(text: string, expectedId: string): Realisation {
  if (text.length > MAX_REALISATION_BYTES) throw new RealisationError('realisation too large');
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new RealisationError('realisation is not JSON');
  }
  if (!isObject(v)) throw new RealisationError('realisation is not an object');
  const { id, outPath, signatures, dependentRealisations } = v;
  if (typeof id !== 'string' || id !== expectedId) throw new RealisationError(`realisation id ${JSON.stringify(id)} is not the one asked for`);
  if (typeof outPath !== 'string') throw new RealisationError('realisation has no outPath');
  try {
    parseBaseName(outPath);
  } catch (e) {
    throw new RealisationError(`realisation outPath: ${(e as Error).message}`);
  }
  const sigs = signatures ?? [];
  if (!Array.isArray(sigs) || sigs.length > MAX_SIGS || !sigs.every((s) => typeof s === 'string' && SIG.test(s)))
    throw new RealisationError('realisation signatures malformed');
  const deps = dependentRealisations ?? {};
  if (!isObject(deps)) throw new RealisationError('realisation dependentRealisations malformed');
  const entries = Object.entries(deps);
  if (entries.length > MAX_DEPENDENTS) throw new RealisationError('too many dependent realisations');
  for (const [k, p] of entries) {
    if (!isDrvOutputId(k) || typeof p !== 'string') throw new RealisationError('realisation dependentRealisations malformed');
    try {
      parseBaseName(p);
    } catch {
      throw new RealisationError('realisation dependentRealisations malformed');
    }
  }
  return { id, outPath, signatures: [...new Set(sigs as string[])], dependentRealisations: Object.fromEntries(entries) as Record<string, string> };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

// Every string in a checked realisation is plain ASCII with no character JSON escapes, so
// JSON.stringify writes it as nlohmann does; keys are written in sorted order, as nlohmann's
// std::map keeps them.
function sortedObject(o: Record<string, string>): string {
  return `{${Object.keys(o)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${JSON.stringify(o[k])}`)
    .join(',')}}`;
}

/** What a realisation's signatures sign. */
export function realisationFingerprint(r: Realisation): string {
  return `{"dependentRealisations":${sortedObject(r.dependentRealisations)},"id":${JSON.stringify(r.id)},"outPath":${JSON.stringify(r.outPath)}}`;
}

/** The .doi body, as Nix writes it. */
export function renderRealisation(r: Realisation): string {
  return `{"dependentRealisations":${sortedObject(r.dependentRealisations)},"id":${JSON.stringify(r.id)},"outPath":${JSON.stringify(r.outPath)},"signatures":[${r.signatures.map((s) => JSON.stringify(s)).join(',')}]}`;
}

/** The realisation with this key's signature added (once). */
export function signRealisation(r: Realisation, key: SecretKey): Realisation {
  const sig = key.sign(realisationFingerprint(r));
  return r.signatures.includes(sig) ? r : { ...r, signatures: [...r.signatures, sig] };
}

export function verifyRealisationSignature(r: Realisation, sig: string, keys: PublicKey[]): boolean {
  return verifySignature(realisationFingerprint(r), sig, keys);
}
