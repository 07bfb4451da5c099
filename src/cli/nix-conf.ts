import { parseArgs } from 'node:util';
import { loadIdentity } from '../domain/identity.ts';
import { parseListenAddress, formatHostPort } from '../base/listen-address.ts';
import { nixConfLines } from '../nix/nix-conf-lines.ts';
import { openDaemonSettings } from '../app/settings.ts';
import { defaultStateDir, ensureStateDir } from '../base/state-dir.ts';

export async function nixConf(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      listen: { type: 'string' },
      'secret-key-file': { type: 'string' },
      'state-dir': { type: 'string' },
    },
    strict: true,
  });
  const stateDir = ensureStateDir(values['state-dir'] ?? defaultStateDir());
  const identity = loadIdentity(stateDir, values['secret-key-file']);
  const addr = parseListenAddress(values.listen ?? openDaemonSettings(stateDir).get().listen);
  process.stdout.write(nixConfLines(`http://${formatHostPort(addr.host, addr.port)}`, identity.key.publicKey.text));
  return 0;
}
