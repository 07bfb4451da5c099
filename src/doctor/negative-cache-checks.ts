import path from 'node:path';
import type { DoctorCheck } from '../base/api.ts';
import { setting, type DoctorFacts } from './facts.ts';

// Nix remembers a narinfo miss for narinfo-cache-negative-ttl (default 3600 s) in its narinfo disk
// cache and does not ask that substituter again for the path meanwhile: a path a peer has now is not
// substituted if this machine's Nix asked Peernix for it before the peer had it.

export const DEFAULT_NEGATIVE_TTL = 3600;

export function negativeTtl(f: DoctorFacts): number {
  const v = setting(f, 'narinfo-cache-negative-ttl')?.[0];
  const n = v !== undefined ? Number(v) : NaN;
  return Number.isInteger(n) && n >= 0 ? n : DEFAULT_NEGATIVE_TTL;
}

export function negativeCacheChecks(f: DoctorFacts): DoctorCheck[] {
  const ttl = negativeTtl(f);
  const nowS = Math.floor(f.now / 1000);
  const checks: DoctorCheck[] = [];
  for (const c of f.negativeCaches) {
    const base = { id: `nix-cache.negative:${c.owner}:${path.basename(c.file)}`, group: 'nix-cache', title: `Nix's remembered misses (${c.owner})` } as const;
    if (c.state === 'unreadable') {
      checks.push({
        ...base,
        status: 'unknown',
        detail: `Cannot read ${c.file}: ${c.error}.`,
        fix: `Run \`sudo peernix doctor\` to see the nix-daemon's cache.`,
      });
      continue;
    }
    if (c.state === 'absent' || c.cacheId === null) {
      checks.push({ ...base, status: 'ok', detail: `${c.file}: Nix has not used ${f.substituterUrl} from here yet; no misses remembered.`, fix: null });
      continue;
    }
    // Nix's own rule (NarInfoDiskCache): a miss counts while its timestamp > now - ttl.
    const live = c.misses.filter((m) => m.timestamp > nowS - ttl);
    if (live.length === 0) {
      checks.push({ ...base, status: 'ok', detail: `${c.file}: no misses of ${c.url} within narinfo-cache-negative-ttl (${ttl} s).`, fix: null });
      continue;
    }
    const lastExpiry = Math.max(...live.map((m) => m.timestamp)) + ttl;
    const shown = live.slice(0, 5).map((m) => `${m.hashPart} (until ${new Date((m.timestamp + ttl) * 1000).toISOString()})`);
    checks.push({
      ...base,
      status: 'warn',
      detail:
        `${live.length} path(s) missed at ${c.url} within narinfo-cache-negative-ttl (${ttl} s), recorded in ${c.file}: Nix won't ask Peernix for them again ` +
        `until their entries expire (the last at ${new Date(lastExpiry * 1000).toISOString()}), even if a peer has them now. ${shown.join(', ')}${live.length > 5 ? ', …' : ''}.`,
      fix:
        `Ask again now with \`nix-store -r PATH --option narinfo-cache-negative-ttl 0\` (the daemon takes this option only from trusted-users), ` +
        `or forget these misses: \`sudo sqlite3 ${c.file} "DELETE FROM NARs WHERE cache = ${c.cacheId} AND present = 0"\`` +
        ` (or remove the whole file, a cache Nix rebuilds: \`sudo rm ${c.file}\`).`,
    });
  }
  return checks;
}
