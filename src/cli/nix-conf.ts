import { parseArgs } from 'node:util';
import { loadIdentity } from '../identity.ts';
import { parseListenAddress, formatHostPort } from '../listen-address.ts';
import { nixConfLines } from '../nix-conf.ts';
import { openDaemonSettings } from '../settings.ts';
import { defaultStateDir, ensureStateDir } from '../state-dir.ts';

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
