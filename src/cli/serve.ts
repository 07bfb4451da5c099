import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createLogger, isLogLevel } from '../base/log.ts';
import { openServiceState, startService } from '../app/service.ts';
import { MAX_SHARE_THREADS } from '../app/settings.ts';
import { onShutdownSignals, SHUTDOWN_GRACE_MS } from '../base/shutdown-signals.ts';
import { VERSION } from '../base/version.ts';
import { parsePublicKey } from '../nix/signing.ts';

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
  --state-dir DIR           where the key, settings and state live (default $PEERNIX_STATE_DIR, else
                            $XDG_STATE_HOME/peernix)
  --peer URL                a static peer (any Nix binary cache serving uncompressed NARs); repeatable
  --team KEY                a team member's public key (name:base64): it and this machine talk
                            over TLS bound to their identity keys; repeatable
  --public-key KEY          a public cache's key (name:base64): what it signed is shared with
                            everyone; repeatable, replaces the publicKeys setting (default
                            cache.nixos.org-1). This machine's own key shares all it serves
  --no-mdns                 neither announce nor discover peers by mDNS
  --no-peer-compression     don't let Peernix peers compress the NARs they send here
  --mdns-interface IFACE    use only this interface (name or IPv4 address) for mDNS
  --no-go-peers             do not answer the UDP questions of Go peernix hosts (zw3rk/peernix)
  --go-udp-port PORT        UDP port for their questions while sharing (default 9999, their udp-port)
  --name NAME               the name peers see (default: this host's name)
  --no-share                start with sharing off (the loopback substituter still runs)
  --trust-all-networks      share on every network, not only trusted ones (a headless machine on a
                            network you control; setting trustAllNetworks)
  --nar-source filesystem|daemon
                            where local NAR bytes come from: our NAR writer reading the store's files
                            (default), or the daemon's NarFromPath; both under a GC temp root
  --verify-local-nars       SHA-256 local NARs while they stream too, not only before headers
                            (peers' NARs always are); costs about half the throughput
  --share-threads N|auto    worker threads serving the share port beside the main one (default 0;
                            auto: on Linux the cores beyond the second, up to 3; setting shareThreads)
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
      team: { type: 'string', multiple: true },
      'public-key': { type: 'string', multiple: true },
      'no-mdns': { type: 'boolean', default: false },
      'no-peer-compression': { type: 'boolean', default: false },
      'mdns-interface': { type: 'string' },
      'no-go-peers': { type: 'boolean', default: false },
      'go-udp-port': { type: 'string' },
      name: { type: 'string' },
      'no-share': { type: 'boolean', default: false },
      'trust-all-networks': { type: 'boolean', default: false },
      'nar-source': { type: 'string', default: 'filesystem' },
      'verify-local-nars': { type: 'boolean', default: false },
      'share-threads': { type: 'string' },
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
  const goUdpPort = values['go-udp-port'] === undefined ? undefined : Number(values['go-udp-port']);
  if (goUdpPort !== undefined && !(Number.isInteger(goUdpPort) && goUdpPort >= 1 && goUdpPort <= 65535))
    throw new Error('--go-udp-port must be a port number 1–65535');

  const threadsText = values['share-threads'];
  const shareThreads = threadsText === undefined || threadsText === 'auto' ? threadsText : Number(threadsText);
  if (typeof shareThreads === 'number' && !(Number.isInteger(shareThreads) && shareThreads >= 0 && shareThreads <= MAX_SHARE_THREADS))
    throw new Error(`--share-threads must be auto or a whole number 0–${MAX_SHARE_THREADS}`);
  for (const k of [...(values.team ?? []), ...(values['public-key'] ?? [])]) parsePublicKey(k); // a bad key stops here, with the parser's reason
  const state = openServiceState({ stateDir: values['state-dir'], log });
  const service = await startService({
    state,
    core: {
      storeUri: values.store,
      secretKeyFile: values['secret-key-file'],
      mdnsInterface: values['mdns-interface'],
      name: values.name,
      narSource,
      verifyLocalNars: values['verify-local-nars'],
    },
    overrides: {
      shareListen: values['share-listen'],
      listen: values.listen,
      sharing: values['no-share'] ? false : undefined,
      peers: values.peer,
      team: values.team,
      publicKeys: values['public-key'],
      mdns: values['no-mdns'] ? false : undefined,
      peerCompression: values['no-peer-compression'] ? false : undefined,
      goPeers: values['no-go-peers'] ? false : undefined,
      goUdpPort,
      trustAllNetworks: values['trust-all-networks'] ? true : undefined,
      shareThreads,
    },
    rendererDir: fileURLToPath(new URL('../../dist/renderer/', import.meta.url)),
    version: VERSION,
    log,
  });
  log.info(`dashboard on ${service.substituterUrl}/peernix/`);
  log.info(`peernix ${VERSION} ready; public key ${service.api.snapshot().status.publicKey}`);

  // First signal: stop accepting, let running transfers finish (bounded), exit 0. A second one from
  // outside cuts them and exits 1 at once, since what was running did not end cleanly.
  return new Promise<number>((resolve) => {
    const { removedForeign } = onShutdownSignals((sig, count) => {
      if (count > 1) {
        log.warn(`second ${sig}: cutting running transfers and exiting now`);
        process.exit(1);
      }
      log.info(`${sig}: stopping; running transfers get up to ${SHUTDOWN_GRACE_MS / 1000} s to finish (send it again to cut them)`);
      service.stop({ graceMs: SHUTDOWN_GRACE_MS }).then(
        () => {
          log.info('stopped');
          resolve(0);
        },
        (e: unknown) => {
          log.error(`stop failed: ${(e as Error).message}`);
          resolve(1);
        },
      );
    });
    if (log.debugEnabled) log.debug(`took over SIGTERM/SIGINT from ${removedForeign} listener(s) installed at import`);
  });
}
