import { parseArgs } from 'node:util';
import { baseUrlFromListen, fetchSnapshot } from '../control/client.ts';
import { describeReport, diagnose } from '../doctor/doctor.ts';
import { gatherFacts } from '../doctor/gather.ts';
import { resolveStateDir } from '../app/service.ts';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { DEFAULT_SETTINGS, openDaemonSettings, SETTINGS_FILE_NAME } from '../app/settings.ts';

// `peernix doctor [--json]`: why isn't Nix using Peernix? Exit status 1 when a check failed.

export const DOCTOR_HELP = `Usage: peernix doctor [--json] [--listen HOST:PORT] [--state-dir DIR] [--store URI] [--secret-key-file FILE]

Checks the nix-daemon, this machine's Nix settings (as the daemon honours them for you), the running
Peernix, its share listener, mDNS and peers, Nix's remembered misses and Peernix's own files; each
problem comes with its fix. Exits 1 when something is wrong.
`;

export async function doctor(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      json: { type: 'boolean', default: false },
      listen: { type: 'string' },
      'state-dir': { type: 'string' },
      store: { type: 'string', default: 'daemon' },
      'secret-key-file': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(DOCTOR_HELP);
    return 0;
  }
  const stateDir = resolveStateDir(values['state-dir']);
  // Looking must change nothing: no state directory is created for a Peernix that never ran.
  const settings = existsSync(path.join(stateDir, SETTINGS_FILE_NAME)) ? openDaemonSettings(stateDir).get() : DEFAULT_SETTINGS;
  const listen = values.listen ?? settings.listen;
  const facts = await gatherFacts({
    stateDir,
    storeUri: values.store,
    listen,
    shareListen: settings.shareListen,
    secretKeyFile: values['secret-key-file'],
    snapshot: () => fetchSnapshot(baseUrlFromListen(listen)),
  });
  const report = diagnose(facts);
  process.stdout.write(values.json ? JSON.stringify(report, null, 2) + '\n' : describeReport(report));
  return report.failed > 0 ? 1 : 0;
}
