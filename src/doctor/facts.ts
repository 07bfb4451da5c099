import type { Snapshot } from '../base/api.ts';
import type { NixConfLayer } from '../nix/nix-config.ts';

// What the doctor's checks judge: gathered once (gather.ts), then read by pure functions, so every
// check can be tried against a machine state that is right and against ones that are wrong.

export interface Layer {
  /** null when it could not be read (then `error` says why). */
  layer: NixConfLayer | null;
  error: string | null;
  /** The files it is read from, in the order Nix reads them. */
  files: string[];
}

export interface NegativeCacheFile {
  file: string;
  /** Whose narinfo cache this is (the nix-daemon's, as root, or this user's). */
  owner: string;
  state: 'read' | 'absent' | 'unreadable';
  error: string | null;
  /** The id Nix gave our substituter URL in it, or null if Nix never used it from there. */
  cacheId: number | null;
  url: string | null;
  /** Misses remembered for our substituter, newest first: hash part and when (epoch seconds). */
  misses: { hashPart: string; timestamp: number }[];
}

export interface DoctorFacts {
  now: number; // epoch ms
  user: { name: string; uid: number; groups: string[] };
  /** Nix commands of this user go through the nix-daemon (multi-user install) rather than the store directly. */
  usesDaemon: boolean;
  /** `stalled`: it accepts connections but answers nothing in time (a stopped or wedged process). */
  daemon: {
    socketPath: string;
    ok: boolean;
    version: string | null;
    protocol: string | null;
    error: string | null;
    startedAt: number | null;
    stalled?: boolean;
  };
  /** When the system configuration files were last changed (epoch ms; null when none was read). */
  systemConfChangedAt: number | null;
  /** The system configuration the nix-daemon reads ($NIX_CONF_DIR/nix.conf). */
  system: Layer;
  /** This user's configuration (user files and NIX_CONFIG), which the daemon judges by who the user is. */
  userConf: Layer;
  /** The URL Nix must use for this machine's Peernix, and its public key (null when unknown). */
  substituterUrl: string;
  publicKey: string | null;
  /** The running Peernix as its control API shows it, or why it could not be asked. */
  peernix: { snapshot: Snapshot | null; error: string | null };
  /** A TCP connect to the share listener's port over loopback; null when there is nothing to try. */
  shareProbe: { port: number; listening: boolean; error: string | null } | null;
  /** Peers asked to connect back to our share listener, and what they said (null: they could not say). */
  reachBack: { peer: string; answer: { reachable: boolean; detail: string } | null }[];
  negativeCaches: NegativeCacheFile[];
  keyFile: { path: string; exists: boolean; mode: number | null; ownerUid: number | null; error: string | null };
  stateDir: { path: string; exists: boolean; writable: boolean; error: string | null };
}

/** Nix's settings after the system layer and (for settings the daemon lets this user set) the user's. */
export function setting(f: DoctorFacts, name: string): string[] | undefined {
  return f.userConf.layer?.settings.get(name) ?? f.system.layer?.settings.get(name);
}
