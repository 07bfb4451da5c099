import path from 'node:path';
import { nixConfDir, readNixConfLayer } from './nix-config.ts';

// Whether this machine's Nix configuration (nix.conf as the daemon reads it, and NIX_CONFIG) turns on
// the ca-derivations experimental feature: older nix-daemons may be asked for realisations only then.
// A configuration that can't be read counts as "off", the safe answer.

export function nixEnablesCaDerivations(env: NodeJS.ProcessEnv = process.env): boolean {
  try {
    const layer = readNixConfLayer([path.join(nixConfDir(env), 'nix.conf')], env.NIX_CONFIG);
    return (layer.settings.get('experimental-features') ?? []).includes('ca-derivations');
  } catch {
    return false;
  }
}
