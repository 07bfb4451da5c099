import type { DoctorCheck, DoctorReport } from '../base/api.ts';
import { daemonChecks } from './daemon-checks.ts';
import type { DoctorFacts } from './facts.ts';
import { fileChecks } from './file-checks.ts';
import { negativeCacheChecks } from './negative-cache-checks.ts';
import { peernixChecks } from './peernix-checks.ts';
import { substituterChecks } from './substituter-checks.ts';
import { keyNameChecks } from './key-name-checks.ts';

// "Why isn't Nix using Peernix?": every check, in the order a person would look.

export function diagnose(f: DoctorFacts): DoctorReport {
  const checks = [...daemonChecks(f), ...substituterChecks(f), ...keyNameChecks(f), ...peernixChecks(f), ...negativeCacheChecks(f), ...fileChecks(f)];
  return { at: f.now, checks, failed: checks.filter((c) => c.status === 'fail').length };
}

const MARK: Record<DoctorCheck['status'], string> = { ok: 'ok  ', warn: 'warn', fail: 'FAIL', unknown: '??  ' };

export function describeReport(r: DoctorReport): string {
  const out: string[] = [];
  for (const c of r.checks) {
    out.push(`[${MARK[c.status]}] ${c.title}: ${c.detail}`);
    if (c.fix && c.status !== 'ok') out.push(...c.fix.split('\n').map((l, i) => `       ${i === 0 ? 'fix: ' : '     '}${l}`));
  }
  out.push('', r.failed === 0 ? 'Nothing is wrong that can be seen from here.' : `${r.failed} problem(s) found.`);
  return out.join('\n') + '\n';
}
