import type { Logger } from '../base/log.ts';
import { parseRealisation, renderRealisation, signRealisation, type Realisation } from '../nix/realisation.ts';
import type { SecretKey } from '../nix/signing.ts';
import { STORE_DIR } from '../nix/store-path.ts';
import type { Peer } from '../peers/registry.ts';
import { judgeRealisation, type TrustPolicy } from './trust.ts';

// Where a realisation (a content-addressed derivation's output, nix/realisation.ts) is answered
// from: this store, through its daemon, signed with this machine's key as its narinfos are, and
// only while the output path itself is here; else, for this machine's own Nix only, the peers,
// asked in parallel, each answer checked and judged by the local Nix's trust as a narinfo is, and
// passed on with the signatures it came with (never re-signed). Misses are cheap: the first
// acceptable answer wins, a trusted one over one that is only acceptable.

export interface LocalRealisations {
  realisation(id: string): Promise<string[] | null>;
  isValidPath(path: string): Promise<boolean>;
}

export interface RealisationPeers {
  live(): Peer[];
  fetch(peer: Peer, id: string, signal: AbortSignal): Promise<string | null>;
}

export interface RealisationSourceOptions {
  local: LocalRealisations;
  key: SecretKey;
  log: Logger;
  /** Absent on the share listener: it answers from this store alone and never asks peers. */
  peers?: RealisationPeers;
  trust?: () => TrustPolicy;
  /** How long peers may take, all together (default 1500 ms, a narinfo's budget). */
  peerMs?: number;
}

export type RealisationSource = (id: string) => Promise<string | null>;

export function createRealisationSource(o: RealisationSourceOptions): RealisationSource {
  const fromLocal = async (id: string): Promise<Realisation | null> => {
    const texts = await o.local.realisation(id);
    for (const text of texts ?? []) {
      let r: Realisation;
      try {
        r = parseRealisation(text, id);
      } catch (e) {
        o.log.warn(`the nix-daemon's realisation of ${id} is unreadable: ${(e as Error).message}`);
        continue;
      }
      if (await o.local.isValidPath(`${STORE_DIR}/${r.outPath}`)) return signRealisation(r, o.key);
    }
    return null;
  };

  const fromPeers = async (id: string): Promise<Realisation | null> => {
    const peers = o.peers?.live() ?? [];
    if (peers.length === 0 || !o.trust) return null;
    const policy = o.trust();
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), o.peerMs ?? 1500);
    let fallback: Realisation | null = null;
    try {
      return await new Promise<Realisation | null>((resolve) => {
        let pending = peers.length;
        const done = () => {
          if (--pending === 0) resolve(fallback);
        };
        for (const p of peers) {
          o.peers!.fetch(p, id, ac.signal).then(
            (text) => {
              if (text !== null) {
                try {
                  const r = parseRealisation(text, id);
                  const verdict = judgeRealisation(r, policy);
                  if (verdict === 'trusted') return resolve(r);
                  if (verdict === 'acceptable') fallback ??= r;
                  else o.log.debug(`${p.name}'s realisation of ${id} carries no signature this machine's Nix trusts`);
                } catch (e) {
                  o.log.debug(`${p.name}'s realisation of ${id} is malformed: ${(e as Error).message}`);
                }
              }
              done();
            },
            () => done(),
          );
        }
        ac.signal.addEventListener('abort', () => resolve(fallback), { once: true });
      });
    } finally {
      clearTimeout(timer);
      ac.abort();
    }
  };

  return async (id) => {
    const r = (await fromLocal(id)) ?? (await fromPeers(id));
    return r ? renderRealisation(r) : null;
  };
}
