import { basename } from 'node:path';
import { formatSha256Nix32 } from '../nix/hash.ts';
import type { NarInfo } from '../nix/narinfo.ts';
import { signNarInfo, type SecretKey } from '../nix/signing.ts';
import { DaemonError, type PathInfo } from '../store/daemon-connection.ts';
import type { LocalNar, LocalStore } from '../store/local-store.ts';
import { BackendUnavailableError, type CacheBackend, type NarBody } from './backend.ts';
import { narUrl } from './routes.ts';

// Serves this machine's store: narinfos carry every signature the store already has plus ours.

// Signing costs more than the rest of a narinfo; a path's fingerprint never changes, so each is
// signed once.
const signatures = new Map<string, string>();
const MAX_SIGNATURES = 50_000;

function ownSignature(info: NarInfo, key: SecretKey): string {
  const id = `${key.publicKey.text}\0${info.storePath}\0${info.narHash}`;
  let sig = signatures.get(id);
  if (sig === undefined) {
    sig = signNarInfo(info, key);
    if (signatures.size >= MAX_SIGNATURES) signatures.delete(signatures.keys().next().value!);
    signatures.set(id, sig);
  }
  return sig;
}

export function narInfoFromPathInfo(info: PathInfo, key: SecretKey): NarInfo {
  const narHash = formatSha256Nix32(info.narHash);
  const hashPart = basename(info.path).slice(0, 32);
  const base: NarInfo = {
    storePath: info.path,
    url: narUrl(hashPart, narHash.slice('sha256:'.length)),
    compression: 'none',
    fileHash: narHash,
    fileSize: info.narSize,
    narHash,
    narSize: info.narSize,
    references: info.references.map((r) => basename(r)),
    deriver: info.deriver ? basename(info.deriver) : undefined,
    sigs: [],
    ca: info.ca ?? undefined,
  };
  const own = ownSignature(base, key);
  base.sigs = info.sigs.includes(own) ? [...info.sigs] : [...info.sigs, own];
  return base;
}

export class LocalBackend implements CacheBackend {
  private readonly store: LocalStore;
  private readonly key: SecretKey;
  private readonly hashCheck: boolean;

  constructor(store: LocalStore, key: SecretKey, hashCheck = false) {
    this.store = store;
    this.key = key;
    this.hashCheck = hashCheck;
  }

  async narInfo(hashPart: string): Promise<NarInfo | null> {
    const info = await unavailableOnDaemonError(() => this.store.pathInfoByHashPart(hashPart));
    return info ? narInfoFromPathInfo(info, this.key) : null;
  }

  async nar(hashPart: string, narHash: Buffer): Promise<NarBody | null> {
    const nar = await unavailableOnDaemonError(() => this.store.openNar(hashPart, narHash));
    return typeof nar === 'string' ? null : localNarBody(nar, this.hashCheck);
  }
}

export function localNarBody(nar: LocalNar, hashCheck: boolean): NarBody {
  return { narSize: nar.info.narSize, narHash: nar.info.narHash, hashCheck, stream: () => nar.stream(), release: () => nar.release() };
}

export async function unavailableOnDaemonError<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof DaemonError) throw new BackendUnavailableError(`nix-daemon: ${e.message}`);
    throw e;
  }
}
