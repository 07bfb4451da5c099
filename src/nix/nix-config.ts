import fs from 'node:fs';
import path from 'node:path';

// The settings the local nix-daemon judges substitutes by (trusted-public-keys, require-sigs), read
// from the system configuration the way Nix 2.8 reads it, with no `nix` binary and no PATH: an app
// launched from a dock or at login has neither a shell's PATH nor its environment.
//
// What the daemon uses: `$NIX_CONF_DIR/nix.conf` (default /etc/nix/nix.conf) with its includes, then
// NIX_CONFIG when set. A user's own ~/.config/nix/nix.conf is left out on purpose: the daemon ignores
// a user's trust settings unless that user is trusted, so counting them could make us prefer an
// answer the daemon then refuses.
//
// The grammar, as checked against Nix 2.8: one setting per line, `name = value…` with whitespace-
// separated tokens (so `a=b` is an illegal line), `#` starts a comment anywhere, no line
// continuation; `include FILE` (relative to the including file; missing → error) and `!include
// FILE` (missing → ignored) are read in place; `extra-NAME` appends to a list setting; booleans are
// true/yes/1 or false/no/0. A missing top file means Nix's defaults.

export const DEFAULT_TRUSTED_PUBLIC_KEYS = ['cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY='];

export interface NixTrustSettings {
  requireSigs: boolean;
  trustedPublicKeys: string[];
  /** The files read, in order (the top file first), plus "NIX_CONFIG" when it contributed. */
  sources: string[];
}

export class NixConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NixConfigError';
  }
}

const MAX_INCLUDE_DEPTH = 16; // Nix itself recurses without limit; a cycle must not hang us
const MAX_FILE_BYTES = 1 << 20;

export function nixConfDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.NIX_CONF_DIR || '/etc/nix';
}

// trusted-public-keys had this older name, still accepted by 2.8.
const ALIASES: Record<string, string> = { 'binary-cache-public-keys': 'trusted-public-keys' };

// Like Nix's pathExists: only "no such file" means absent; a directory we may not search is an error.
function exists(file: string, from: string | null): boolean {
  try {
    fs.statSync(file);
    return true;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return false;
    throw new NixConfigError(`cannot read '${file}'${from ? ` (included from '${from}')` : ''}: ${code ?? (e as Error).message}`);
  }
}

function parseBool(name: string, value: string, where: string): boolean {
  if (value === 'true' || value === 'yes' || value === '1') return true;
  if (value === 'false' || value === 'no' || value === '0') return false;
  throw new NixConfigError(`Boolean setting '${name}' has invalid value '${value}' (in ${where})`);
}

class Reader {
  requireSigs = true;
  keys = [...DEFAULT_TRUSTED_PUBLIC_KEYS];
  readonly sources: string[] = [];
  /** Every setting as its tokens, `extra-NAME` appended to NAME (for `peernix doctor`). */
  readonly all = new Map<string, string[]>();

  readFile(file: string, depth: number, from: string | null): void {
    if (depth > MAX_INCLUDE_DEPTH) throw new NixConfigError(`includes nested deeper than ${MAX_INCLUDE_DEPTH} at '${file}' (a cycle?)`);
    let text: string;
    try {
      const st = fs.statSync(file);
      if (st.size > MAX_FILE_BYTES) throw new NixConfigError(`'${file}' is larger than ${MAX_FILE_BYTES} bytes`);
      text = fs.readFileSync(file, 'utf8');
    } catch (e) {
      if (e instanceof NixConfigError) throw e;
      const err = e as NodeJS.ErrnoException;
      // The daemon runs as root and reads what we may not: not knowing is an error, not a default.
      throw new NixConfigError(`cannot read '${file}'${from ? ` (included from '${from}')` : ''}: ${err.code ?? err.message}`);
    }
    this.sources.push(file);
    this.apply(text, file, depth);
  }

  apply(text: string, where: string, depth: number): void {
    // Nix collects a file's lines (with its includes' lines in place), then sets experimental
    // features first and everything else in order; neither setting here depends on features.
    for (const rawLine of text.split('\n')) {
      const hash = rawLine.indexOf('#');
      const line = hash >= 0 ? rawLine.slice(0, hash) : rawLine;
      const tokens = line.split(/[ \t\r]+/).filter(Boolean);
      if (tokens.length === 0) continue;
      if (tokens.length < 2) throw new NixConfigError(`illegal configuration line '${line}' in '${where}'`);
      if (tokens[0] === 'include' || tokens[0] === '!include') {
        if (tokens.length !== 2) throw new NixConfigError(`illegal configuration line '${line}' in '${where}'`);
        // An include inside NIX_CONFIG is relative to the working directory, as in Nix (dirOf("NIX_CONFIG") is ".").
        const file = path.resolve(where === 'NIX_CONFIG' ? '.' : path.dirname(where), tokens[1]);
        if (exists(file, where)) this.readFile(file, depth + 1, where);
        else if (tokens[0] === 'include') throw new NixConfigError(`file '${file}' included from '${where}' not found`);
        continue;
      }
      if (tokens[1] !== '=') throw new NixConfigError(`illegal configuration line '${line}' in '${where}'`);
      this.set(tokens[0], tokens.slice(2), where);
    }
  }

  private set(rawName: string, values: string[], where: string): void {
    const plain = rawName.startsWith('extra-') && rawName !== 'extra-' ? rawName.slice(6) : null;
    const key = ALIASES[plain ?? rawName] ?? plain ?? rawName;
    this.all.set(key, plain ? [...(this.all.get(key) ?? []), ...values] : [...values]);
    let name = ALIASES[rawName] ?? rawName;
    let append = false;
    if (name.startsWith('extra-') && name !== 'extra-') {
      const base = ALIASES[name.slice(6)] ?? name.slice(6);
      if (base === 'trusted-public-keys') {
        name = base;
        append = true;
      }
    }
    if (name === 'trusted-public-keys') {
      this.keys = append ? [...this.keys, ...values] : [...values];
    } else if (name === 'require-sigs') {
      this.requireSigs = parseBool(name, values.join(' '), where);
    }
  }
}

/**
 * The daemon's trust settings from `nixConfDir(env)/nix.conf` and NIX_CONFIG. Throws
 * NixConfigError when they cannot be known (unreadable file, a line Nix would refuse).
 */
export function readNixTrustSettings(env: NodeJS.ProcessEnv = process.env): NixTrustSettings {
  const r = new Reader();
  const top = path.join(nixConfDir(env), 'nix.conf');
  if (exists(top, null)) r.readFile(top, 0, null);
  if (env.NIX_CONFIG) {
    r.apply(env.NIX_CONFIG, 'NIX_CONFIG', 0);
    r.sources.push('NIX_CONFIG');
  }
  return { requireSigs: r.requireSigs, trustedPublicKeys: r.keys, sources: r.sources };
}

/** Settings as one Nix configuration layer states them: name → tokens, and the files that were read. */
export interface NixConfLayer {
  settings: Map<string, string[]>;
  sources: string[];
}

/**
 * Reads configuration files (each with its includes; missing ones skipped) and then `nixConfig` (a
 * NIX_CONFIG value), in order, as one layer. Throws NixConfigError like readNixTrustSettings.
 */
export function readNixConfLayer(files: string[], nixConfig?: string): NixConfLayer {
  const r = new Reader();
  for (const file of files) if (exists(file, null)) r.readFile(file, 0, null);
  if (nixConfig) {
    r.apply(nixConfig, 'NIX_CONFIG', 0);
    r.sources.push('NIX_CONFIG');
  }
  return { settings: r.all, sources: r.sources };
}

/** The user configuration files Nix 2.8 reads after the system one (NIX_USER_CONF_FILES, else the XDG ones). */
export function userNixConfFiles(env: NodeJS.ProcessEnv, home: string): string[] {
  const configHome = env.XDG_CONFIG_HOME || path.join(home, '.config');
  const dirs = [configHome, ...(env.XDG_CONFIG_DIRS || '/etc/xdg').split(':').filter(Boolean)];
  const files = env.NIX_USER_CONF_FILES ? env.NIX_USER_CONF_FILES.split(':').filter(Boolean) : dirs.map((d) => path.join(d, 'nix', 'nix.conf'));
  // Nix applies the list from its end: the first file (the user's own) has the last word.
  return files.reverse();
}
