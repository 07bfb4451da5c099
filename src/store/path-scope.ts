import { formatSha256Nix32 } from '../nix/hash.ts';
import { parsePublicKey, verifyNarInfoSignature, type PublicKey } from '../nix/signing.ts';
import type { PathInfo } from './daemon-connection.ts';

// Who may see a store path of this machine (README, "What is shared with whom"):
//   public  its narinfo carries a valid signature by a key in `publicKeys` (cache.nixos.org by
//           default): anyone could fetch it from that cache anyway, so the whole LAN may have it.
//   team    everything else that is not `never`: built here, signed by us or a colleague, unsigned.
//           Only Peernix machines in the `team` setting get it, over the team channel.
//   never   the name matches an `exclude` pattern: served to nobody, in no summary, no UDP "yes".
// It fails closed: a path whose facts can't be read, whose signature can't be checked or whose
// narinfo is malformed is never public. Verdicts are cached (the narinfo hot path asks on every hit)
// by the facts they depend on, so a path that gains a signature is judged again.

export type PathScope = 'public' | 'team' | 'never';
export const PATH_SCOPES: readonly PathScope[] = ['public', 'team', 'never'];

/** The facts a verdict rests on: a store path's narinfo as it is signed (NarInfo, or the daemon's PathInfo). */
export interface ScopeFacts {
  storePath: string;
  /** "sha256:<nix32>" */
  narHash: string;
  narSize: number;
  /** Base names. */
  references: string[];
  sigs: readonly string[];
}

export interface ScopeVerdict {
  scope: PathScope;
  /** For `share why`: which key signed it, which pattern excluded it, or why neither. */
  why: string;
}

export interface ScopeCounts {
  /** Paths judged, by scope (each path once while its verdict is cached). */
  judged: Record<PathScope, number>;
  /** Requests answered as if the path were absent because the asker may not see it, by the path's scope. */
  refused: Record<PathScope, number>;
}

/** The real cache.nixos.org key: a fresh install shares the LAN what anyone could get from it. */
export const DEFAULT_PUBLIC_KEYS: readonly string[] = ['cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY='];

/**
 * Names that look like something that holds a secret, copied into the store by a flake, a
 * `builtins.path` or `nix-store --add` (store paths are world-readable, but needn't leave the machine).
 * Matched case-insensitively against the name after "<hash>-"; `*` is any run of characters, `?` one.
 * Each says why (README lists them); anything public that matches is simply not shared by this machine.
 */
export const DEFAULT_EXCLUDE: readonly string[] = [
  '*.env', // dotenv files: API keys and database passwords by convention
  '*.env.*', // .env.local, prod.env.production
  'secret*', // secrets.yaml, secret.json (not libsecret: the match is anchored)
  '*-secret*', // app-secrets, db-secret.txt
  '*_secret*', // client_secret.json (OAuth)
  '*.secret*', // my.secret, config.secrets
  '*.pem', // PEM private keys and bundles
  '*.key', // private keys (server.key, tls.key)
  '*.p12', // PKCS#12 key stores
  '*.pfx', // PKCS#12 key stores (Windows name)
  '*.jks', // Java key stores
  '*.keystore', // Android/Java key stores
  'id_rsa*', // SSH private keys by their default names
  'id_ecdsa*',
  'id_ed25519*',
  'id_dsa*',
  '*credentials*', // aws credentials, .git-credentials, credentials.json
  '*.netrc', // login tokens for hosts
  'netrc',
  '*.htpasswd', // password hashes
  '*.kdbx', // KeePass databases
  '*.tfstate', // Terraform state: holds every secret of the infrastructure it built
  '*.tfstate.*',
  '*kubeconfig*', // cluster credentials
];

export const MAX_EXCLUDE = 256;
const MAX_VERDICTS = 200_000;

/** Checks one exclude pattern; throws with the reason when it is not one. */
export function checkExcludePattern(p: unknown): string {
  if (typeof p !== 'string') throw new Error('not a string');
  const t = p.trim();
  if (t === '' || t.length > 200) throw new Error('must be 1–200 characters');
  if (t.includes('/')) throw new Error('matches a store path name, which has no "/"');
  return t;
}

function globToRegExp(patterns: readonly string[]): RegExp | null {
  if (patterns.length === 0) return null;
  const one = (p: string) =>
    p
      .split('')
      .map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[\\^$.|+()[\]{}]/g, '\\$&')))
      .join('');
  return new RegExp(`^(?:${patterns.map(one).join('|')})$`, 'is');
}

export interface PathScopesOptions {
  publicKeys: readonly string[];
  exclude: readonly string[];
}

export class PathScopes {
  private keys: PublicKey[] = [];
  private keyNames = new Set<string>();
  private excludePatterns: string[] = [];
  private excluded: RegExp | null = null;
  /** By the NarInfo object itself (backends hand out the same object for the same facts): the hot path. */
  private byObject = new WeakMap<object, ScopeVerdict>();
  /** By path and signatures, least recent first. */
  private byFacts = new Map<string, ScopeVerdict>();
  private readonly judged: Record<PathScope, number> = { public: 0, team: 0, never: 0 };
  private readonly refused: Record<PathScope, number> = { public: 0, team: 0, never: 0 };
  /** Told when the rules change (summaries are rebuilt). */
  onChange: (() => void) | null = null;

  constructor(opts: PathScopesOptions) {
    this.configure(opts);
  }

  /** New rules: every verdict is judged again. Unparsable keys and patterns are left out (settings reported them). */
  configure(opts: PathScopesOptions): void {
    this.keys = [];
    for (const text of opts.publicKeys) {
      try {
        this.keys.push(parsePublicKey(text));
      } catch {
        // not a key: trusts nothing
      }
    }
    this.keyNames = new Set(this.keys.map((k) => k.name));
    this.excludePatterns = [];
    for (const p of opts.exclude) {
      try {
        this.excludePatterns.push(checkExcludePattern(p));
      } catch {
        // not a pattern: excludes nothing
      }
    }
    this.excluded = globToRegExp(this.excludePatterns);
    this.byObject = new WeakMap();
    this.byFacts.clear();
    this.judged.public = this.judged.team = this.judged.never = 0;
    this.onChange?.();
  }

  /** The scope of a path by its narinfo (cached). */
  scopeOf(facts: ScopeFacts): PathScope {
    return this.verdict(facts).scope;
  }

  /** The scope of a path the daemon or the store database described (cached like scopeOf). */
  scopeOfInfo(info: PathInfo): PathScope {
    return this.verdict(factsOfPathInfo(info)).scope;
  }

  /** Whether a store path's name alone puts it out of every scope (summaries judge the team one by name). */
  isExcluded(storePath: string): boolean {
    return this.excludedBy(storePath) !== null;
  }

  /** The verdict with its reason (`share why`). */
  why(facts: ScopeFacts): ScopeVerdict {
    return this.verdict(facts);
  }

  verdict(facts: ScopeFacts): ScopeVerdict {
    const cached = this.byObject.get(facts);
    if (cached) return cached;
    const id = `${facts.storePath}\0${facts.narHash}\0${facts.narSize}\0${facts.references.join(' ')}\0${facts.sigs.join(' ')}`;
    let v = this.byFacts.get(id);
    if (v) {
      this.byFacts.delete(id); // re-inserted: most recent last
    } else {
      v = this.judge(facts);
      this.judged[v.scope]++;
      if (this.byFacts.size >= MAX_VERDICTS) this.byFacts.delete(this.byFacts.keys().next().value!);
    }
    this.byFacts.set(id, v);
    this.byObject.set(facts, v);
    return v;
  }

  /** Counts a request answered as absent because of the path's scope (a number, never a log line). */
  countRefusal(scope: PathScope): void {
    this.refused[scope]++;
  }

  counts(): ScopeCounts {
    return { judged: { ...this.judged }, refused: { ...this.refused } };
  }

  get rules(): { publicKeys: string[]; exclude: string[] } {
    return { publicKeys: this.keys.map((k) => k.text), exclude: [...this.excludePatterns] };
  }

  private excludedBy(storePath: string): string | null {
    if (!this.excluded) return null;
    const base = storePath.slice(storePath.lastIndexOf('/') + 1);
    const name = base.slice(33);
    if (!this.excluded.test(name)) return null;
    return this.excludePatterns.find((p) => globToRegExp([p])!.test(name)) ?? '?';
  }

  private judge(facts: ScopeFacts): ScopeVerdict {
    const pattern = this.excludedBy(facts.storePath);
    if (pattern !== null) return { scope: 'never', why: `its name matches the exclude pattern "${pattern}"` };
    const named = facts.sigs.filter((s) => typeof s === 'string' && this.keyNames.has(s.slice(0, s.indexOf(':'))));
    for (const sig of named) {
      // verifyNarInfoSignature never throws: a malformed narinfo verifies nothing (fails closed).
      if (verifyNarInfoSignature(facts, sig, this.keys)) return { scope: 'public', why: `signed by ${sig.slice(0, sig.indexOf(':'))}, a public key` };
    }
    if (named.length > 0) return { scope: 'team', why: `a signature names a public key (${named[0].slice(0, named[0].indexOf(':'))}) but does not verify` };
    if (facts.sigs.length === 0) return { scope: 'team', why: 'unsigned' };
    return { scope: 'team', why: `signed only by keys not in publicKeys (${facts.sigs.map((s) => s.slice(0, s.indexOf(':'))).join(', ')})` };
  }
}

const factsOfInfo = new WeakMap<PathInfo, ScopeFacts>();

/** A PathInfo as the facts a signature covers (kept per object, so its verdict is found by identity). */
export function factsOfPathInfo(info: PathInfo): ScopeFacts {
  let facts = factsOfInfo.get(info);
  if (!facts) {
    facts = {
      storePath: info.path,
      narHash: formatSha256Nix32(info.narHash),
      narSize: info.narSize,
      references: info.references.map((r) => r.slice(r.lastIndexOf('/') + 1)),
      sigs: info.sigs,
    };
    factsOfInfo.set(info, facts);
  }
  return facts;
}

/**
 * `share why`: the verdict on a store path of this store, named by its full path, base name or hash
 * part, with who would get it; null when the store does not hold it.
 */
export async function whyStorePath(
  store: { pathInfoByHashPart(hashPart: string): Promise<PathInfo | null> },
  /** The verdict on a path as served (the composition root judges the narinfo with our signature). */
  verdictOf: (info: PathInfo) => ScopeVerdict,
  pathOrHash: string,
): Promise<(ScopeVerdict & { storePath: string; servedTo: string }) | null> {
  const base = pathOrHash.trim().replace(/^\/nix\/store\//, '');
  const hashPart = base.slice(0, 32);
  if (!/^[0123456789abcdfghijklmnpqrsvwxyz]{32}$/.test(hashPart)) throw new Error(`not a store path or hash part: ${pathOrHash.slice(0, 80)}`);
  const info = await store.pathInfoByHashPart(hashPart);
  if (!info) return null;
  const v = verdictOf(info);
  const servedTo = v.scope === 'public' ? 'everyone on a trusted network' : v.scope === 'team' ? 'team members only' : 'nobody';
  return { ...v, storePath: info.path, servedTo };
}
