import type { DoctorCheck } from '../base/api.ts';
import { shadowedKeys } from '../domain/trust.ts';
import type { DoctorFacts } from './facts.ts';

// Two trusted keys with one name: Nix keeps the first and ignores the rest, so paths signed by the
// others are refused ("lacks a valid signature"). Every Go peernix host signs with a key named
// peernix-1 unless told otherwise, so trusting two of them hits this; the fix is a name per host.

export function keyNameChecks(f: DoctorFacts): DoctorCheck[] {
  const keys = f.system.layer?.settings.get('trusted-public-keys');
  if (!keys) return [];
  const sysFile = f.system.files[0] ?? '/etc/nix/nix.conf';
  return shadowedKeys(keys).map((c) => ({
    id: `nixconf.key-name:${c.name}`,
    group: 'nix-config' as const,
    title: `Trusted keys have distinct names (${c.name})`,
    status: 'fail' as const,
    detail:
      `${c.ignored.length + 1} keys in trusted-public-keys are named ${c.name}. Nix honours only the first (${c.honoured}) and refuses ` +
      `paths signed only by ${c.ignored.join(', ')}.${c.name === 'peernix-1' ? ' Every Go peernix host names its key peernix-1 unless configured.' : ''}`,
    fix:
      `On each Go peernix host but one, set a name of its own in its peernix.conf (e.g. \`key-name = <host>-peernix-1\`) and restart it; ` +
      `then in ${sysFile} replace that host's key with the same base64 under the new name (\`<host>-peernix-1:<base64>\`) and restart the nix-daemon.`,
  }));
}
