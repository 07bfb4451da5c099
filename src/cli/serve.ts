import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createControlRoutes, type ControlHandler } from '../control/routes.ts';
import { loadOrCreateToken } from '../control/token.ts';
import { createLogger, isLogLevel } from '../log.ts';
import { startPeernix } from '../peernix.ts';
import { openDaemonSettings } from '../settings.ts';
import { defaultStateDir, ensureStateDir } from '../state-dir.ts';
import { VERSION } from '../version.ts';

export const SERVE_HELP = `Usage: peernix serve [options]

Serves this machine's Nix store to the LAN as a binary cache, finds peers by mDNS, and is this
machine's own substituter: a path missing here is fetched from a peer that has it.
Options override the settings file (<state-dir>/settings.json) for this run.

Options:
  --share-listen HOST:PORT  LAN-facing cache listener (default 0.0.0.0:9999)
  --listen HOST:PORT        loopback substituter + dashboard listener for this machine's Nix
                            (default 127.0.0.1:9998; must be a loopback address)
  --store URI               the nix-daemon to serve from: "daemon" (default; honours NIX_DAEMON_SOCKET_PATH)
                            or unix:///path/to/socket[?root=/dir] when the store's files live under /dir
  --secret-key-file FILE    signing key from nix-store --generate-binary-cache-key
                            (default: a key generated once in the state directory)
  --state-dir DIR           where the key, settings and state live (default $XDG_STATE_HOME/peernix)
  --peer URL                a static peer (any Nix binary cache serving uncompressed NARs); repeatable
  --no-mdns                 neither announce nor discover peers by mDNS
  --mdns-interface IFACE    use only this interface (name or IPv4 address) for mDNS
  --name NAME               the name peers see (default: this host's name)
  --no-share                start with sharing off (the loopback substituter still runs)
  --nar-source filesystem|daemon
                            where local NAR bytes come from: our NAR writer reading the store's files
                            (default), or the daemon's NarFromPath; both under a GC temp root
  --verify-local-nars       SHA-256 local NARs while they stream too, not only before headers
                            (peers' NARs always are); costs about half the throughput
  --log-level LEVEL         debug | info | warn | error (default info; debug logs every request)
  -h, --help                this text
`;

export async function serve(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      'share-listen': { type: 'string' },
      listen: { type: 'string' },
      store: { type: 'string', default: 'daemon' },
      'secret-key-file': { type: 'string' },
      'state-dir': { type: 'string' },
      peer: { type: 'string', multiple: true },
      'no-mdns': { type: 'boolean', default: false },
      'mdns-interface': { type: 'string' },
      name: { type: 'string' },
      'no-share': { type: 'boolean', default: false },
      'nar-source': { type: 'string', default: 'filesystem' },
      'verify-local-nars': { type: 'boolean', default: false },
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

  const stateDir = ensureStateDir(values['state-dir'] ?? defaultStateDir());
  const settings = openDaemonSettings(stateDir);
  for (const p of settings.problems) log.warn(p);
  const s = settings.get();
  const token = await loadOrCreateToken(stateDir);
  const rendererDir = fileURLToPath(new URL('../../dist/renderer/', import.meta.url));
  let control: ControlHandler | null = null;

  const peernix = await startPeernix({
    stateDir,
    storeUri: values.store,
    shareListen: values['share-listen'] ?? s.shareListen,
    listen: values.listen ?? s.listen,
    secretKeyFile: values['secret-key-file'],
    sharing: values['no-share'] ? false : s.sharing,
    peers: values.peer ?? s.peers,
    mdns: values['no-mdns'] ? false : s.mdns,
    mdnsInterface: values['mdns-interface'],
    name: values.name,
    narSource,
    verifyLocalNars: values['verify-local-nars'],
    version: VERSION,
    log,
    persistSharing: (on) => settings.set({ sharing: on }),
    loopbackRoutes: (api, url) => {
      const port = new URL(url).port;
      control = createControlRoutes({ api, token, rendererDir, allowedHosts: [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`] });
      return control;
    },
  });
  log.info(`dashboard on ${peernix.substituterUrl}/peernix/`);
  log.info(`peernix ${VERSION} ready; public key ${peernix.api.snapshot().status.publicKey}`);

  return new Promise<number>((resolve) => {
    let signals = 0;
    const onSignal = (sig: NodeJS.Signals) => {
      if (++signals > 1) {
        log.warn(`second ${sig}: exiting now`);
        process.exit(1);
      }
      log.info(`${sig}: stopping`);
      (control as ControlHandler | null)?.close();
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
