import { VERSION } from '../base/version.ts';
import { exitAfterOutput } from './exit-after-output.ts';
import { nixConf } from './nix-conf.ts';
import { serve, SERVE_HELP } from './serve.ts';

const HELP = `Usage: peernix <command> [options]

Peernix: a LAN peer-to-peer Nix binary cache.

Commands:
  serve        run the cache (headless daemon); see peernix serve --help
  nix-conf     print the nix.conf lines that make this machine's Nix use Peernix
  status       show the running Peernix: sharing, peers, cache entries, events  [--json]
  sharing on|off
               turn sharing this store with the LAN on or off (remembered across restarts)
  peer clear ID|NAME
               use a peer again that was caught serving wrong bytes
  network trust [current|ID] | forget [current|ID] | list
               share on this network (or stop); Peernix shares only on networks you trust
  team add KEY | remove KEY|NAME|FINGERPRINT | list
               the colleagues' machines (by public key) that get your team paths  [--json]
  share why PATH|HASH
               a store path's scope (public, team, never), why, and who gets it  [--json]
  service install|uninstall [--user]
               run the daemon as a systemd or launchd service; see peernix service --help
  doctor       why isn't Nix using Peernix? each problem with its fix  [--json]
  --version    print the version
  --help       this text
`;

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'serve':
      return serve(rest);
    case 'nix-conf':
      return nixConf(rest);
    // Loaded only when used: the control client's HTTP library has no place in the daemon's memory.
    case 'status':
      return (await import('./control.ts')).status(rest);
    case 'sharing':
      return (await import('./control.ts')).sharing(rest);
    case 'peer':
      return (await import('./control.ts')).peer(rest);
    case 'network':
      return (await import('./control.ts')).network(rest);
    case 'team':
      return (await import('./control.ts')).team(rest);
    case 'share':
      return (await import('./control.ts')).share(rest);
    case 'service':
      return (await import('./service-command.ts')).service(rest);
    case 'doctor':
      return (await import('./doctor.ts')).doctor(rest);
    case '--version':
    case '-V':
    case 'version':
      process.stdout.write(`peernix ${VERSION}\n`);
      return 0;
    case undefined:
    case '--help':
    case '-h':
    case 'help':
      process.stdout.write(HELP + '\n' + SERVE_HELP);
      return 0;
    default:
      process.stderr.write(`peernix: unknown command "${cmd}"\n\n${HELP}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => exitAfterOutput(code),
  (e: unknown) => {
    process.stderr.write(`peernix: ${e instanceof Error ? e.message : String(e)}\n`);
    return exitAfterOutput(1);
  },
);
