import { parseArgs } from 'node:util';
import { createLogger, isLogLevel } from '../log.ts';
import { startPeernix } from '../peernix.ts';
import { defaultStateDir } from '../state-dir.ts';
import { VERSION } from '../version.ts';

export const SERVE_HELP = `Usage: peernix serve [options]

Serves this machine's Nix store to the LAN as a binary cache, and is this machine's own substituter.

Options:
  --share-listen HOST:PORT  LAN-facing cache listener (default 0.0.0.0:9999)
  --listen HOST:PORT        loopback substituter listener for this machine's Nix (default 127.0.0.1:9998)
  --store URI               the nix-daemon to serve from: "daemon" (default; honours NIX_DAEMON_SOCKET_PATH)
                            or unix:///path/to/socket[?root=/dir] when the store's files live under /dir
  --secret-key-file FILE    signing key from nix-store --generate-binary-cache-key
                            (default: a key generated once in the state directory)
  --state-dir DIR           where the key and state live (default $XDG_STATE_HOME/peernix)
  --no-share                start with sharing off (only the loopback substituter runs)
  --nar-source daemon|filesystem
                            where NAR bytes come from (default daemon: NarFromPath under a temp root)
  --log-level LEVEL         debug | info | warn | error (default info; debug logs every request)
  -h, --help                this text
`;

export async function serve(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      'share-listen': { type: 'string', default: '0.0.0.0:9999' },
      listen: { type: 'string', default: '127.0.0.1:9998' },
      store: { type: 'string', default: 'daemon' },
      'secret-key-file': { type: 'string' },
      'state-dir': { type: 'string' },
      'no-share': { type: 'boolean', default: false },
      'nar-source': { type: 'string', default: 'daemon' },
      'log-level': { type: 'string', default: process.env.PEERNIX_LOG_LEVEL ?? 'info' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(SERVE_HELP);
    return 0;
  }
  const level = values['log-level'];
  if (!isLogLevel(level)) throw new Error(`unknown log level "${level}"`);
  const narSource = values['nar-source'];
  if (narSource !== 'daemon' && narSource !== 'filesystem') throw new Error(`--nar-source must be daemon or filesystem`);
  const log = createLogger(level);

  const peernix = await startPeernix({
    stateDir: values['state-dir'] ?? defaultStateDir(),
    storeUri: values.store,
    shareListen: values['share-listen'],
    listen: values.listen,
    secretKeyFile: values['secret-key-file'],
    sharing: !values['no-share'],
    narSource,
    version: VERSION,
    log,
  });
  log.info(`peernix ${VERSION} ready; public key ${peernix.api.snapshot().status.publicKey}`);

  return new Promise<number>((resolve) => {
    let signals = 0;
    const onSignal = (sig: NodeJS.Signals) => {
      if (++signals > 1) {
        log.warn(`second ${sig}: exiting now`);
        process.exit(1);
      }
      log.info(`${sig}: stopping`);
      peernix.api.stop().then(
        () => resolve(0),
        (e) => {
          log.error(`stop failed: ${(e as Error).message}`);
          resolve(1);
        },
      );
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
}
