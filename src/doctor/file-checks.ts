import type { DoctorCheck } from '../base/api.ts';
import type { DoctorFacts } from './facts.ts';

// Peernix's own files: the signing key readable by its owner only, the state directory writable.

export function fileChecks(f: DoctorFacts): DoctorCheck[] {
  const k = f.keyFile;
  const checks: DoctorCheck[] = [];
  const keyBase = { id: 'files.key', group: 'files', title: 'Signing key readable only by its owner' } as const;
  if (k.error)
    checks.push({ ...keyBase, status: 'fail', detail: `Cannot inspect ${k.path}: ${k.error}.`, fix: `Check the file and its directory's permissions.` });
  else if (!k.exists)
    checks.push({
      ...keyBase,
      status: 'warn',
      detail: `${k.path} does not exist yet; Peernix creates it (mode 600) on first start.`,
      fix: 'Start Peernix once: `peernix serve`.',
    });
  else if ((k.mode! & 0o077) !== 0) {
    checks.push({
      ...keyBase,
      status: 'fail',
      detail: `${k.path} has mode ${(k.mode! & 0o777).toString(8).padStart(3, '0')}: other users can read the key that signs what this machine serves, and sign as it.`,
      fix: `chmod 600 ${k.path}` + (k.ownerUid !== null && k.ownerUid !== f.user.uid ? ` (it belongs to uid ${k.ownerUid}, not you)` : ''),
    });
  } else checks.push({ ...keyBase, status: 'ok', detail: `${k.path}: mode ${(k.mode! & 0o777).toString(8).padStart(3, '0')}.`, fix: null });

  const s = f.stateDir;
  if (!s.exists)
    checks.push({
      id: 'files.state-dir',
      group: 'files',
      title: 'State directory writable',
      status: 'warn',
      detail: `${s.path} does not exist yet; Peernix creates it on first start.`,
      fix: 'Start Peernix once: `peernix serve`.',
    });
  else if (s.writable)
    checks.push({ id: 'files.state-dir', group: 'files', title: 'State directory writable', status: 'ok', detail: `${s.path} is writable.`, fix: null });
  else {
    checks.push({
      id: 'files.state-dir',
      group: 'files',
      title: 'State directory writable',
      status: 'fail',
      detail: `${s.path} is not writable by ${f.user.name} (${s.error ?? 'refused'}). Settings (the sharing switch) and the control token can't be saved.`,
      fix: `sudo chown -R ${f.user.name} ${s.path} && chmod 700 ${s.path}`,
    });
  }
  return checks;
}
