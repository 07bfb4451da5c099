import { basename } from 'node:path';
import { formatSha256Nix32 } from '../nix/hash.ts';
import type { NarInfo } from '../nix/narinfo.ts';
import { signNarInfo, type SecretKey } from '../nix/signing.ts';
import { DaemonError, type PathInfo } from '../store/daemon-connection.ts';
import type { LocalNar, LocalStore } from '../store/local-store.ts';
import { BackendUnavailableError, type CacheBackend, type LocalSource, type NarBody } from './backend.ts';
import { narUrl } from './routes.ts';

// Serves this machine's store: narinfos carry every signature the store already has plus ours.

// Signing costs more than all the rest of a narinfo, and the same path info makes the same narinfo,
// so recent ones are kept whole, keyed by all that can change for a path: its NarHash and signatures.
const recent = new Map<string, NarInfo>();
const MAX_RECENT = 10_000;

export function narInfoFromPathInfo(info: PathInfo, key: SecretKey): NarInfo {
  const id = `${info.path}\0${info.narHash.toString('hex')}\0${info.sigs.join(' ')}\0${key.publicKey.text}`;
  let made = recent.get(id);
  if (!made) {
    made = buildNarInfo(info, key);
    if (recent.size >= MAX_RECENT) recent.delete(recent.keys().next().value!);
    recent.set(id, made);
  }
  return made;
}

function buildNarInfo(info: PathInfo, key: SecretKey): NarInfo {
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
  const own = signNarInfo(base, key);
  base.sigs = info.sigs.includes(own) ? [...info.sigs] : [...info.sigs, own];
  return base;
}

/** What the backend reads of the local store (LocalStore, or a stand-in in unit tests). */
export type StoreReader = Pick<LocalStore, 'pathInfoByHashPart' | 'openNar'> & Partial<Pick<LocalStore, 'pathInfoFromDb'>>;

export class LocalBackend implements CacheBackend, LocalSource {
  private readonly store: StoreReader;
  private readonly key: SecretKey;
  private readonly hashCheck: boolean;

  constructor(store: StoreReader, key: SecretKey, hashCheck = false) {
    this.store = store;
    this.key = key;
    this.hashCheck = hashCheck;
  }

  narInfo(hashPart: string): NarInfo | null | Promise<NarInfo | null> {
    const known = this.store.pathInfoFromDb?.(hashPart);
    if (known !== undefined) return known ? narInfoFromPathInfo(known, this.key) : null;
    return this.narInfoFromDaemon(hashPart);
  }

  private async narInfoFromDaemon(hashPart: string): Promise<NarInfo | null> {
    const info = await unavailableOnDaemonError(() => this.store.pathInfoByHashPart(hashPart));
    return info ? narInfoFromPathInfo(info, this.key) : null;
  }

  async nar(hashPart: string, narHash: Buffer): Promise<NarBody | null> {
    const body = await this.openLocal(hashPart, narHash);
    return typeof body === 'string' ? null : body;
  }

  async openLocal(hashPart: string, narHash: Buffer): Promise<NarBody | 'missing' | 'mismatch'> {
    const nar = await unavailableOnDaemonError(() => this.store.openNar(hashPart, narHash));
    return typeof nar === 'string' ? nar : localNarBody(nar, this.hashCheck);
  }
}

function localNarBody(nar: LocalNar, hashCheck: boolean): NarBody {
  return {
    narSize: nar.info.narSize,
    narHash: nar.info.narHash,
    storePath: nar.info.path,
    hashCheck,
    stream: () => nar.stream(),
    streamFrom: nar.streamFrom && ((start, end) => nar.streamFrom!(start, end)),
    release: (reason) => nar.release(reason === undefined || reason === 'done'),
  };
}

export async function unavailableOnDaemonError<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof DaemonError) throw new BackendUnavailableError(`nix-daemon: ${e.message}`);
    throw e;
  }
}
