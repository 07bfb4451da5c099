// `peernix service install|uninstall`: the headless daemon as a systemd or launchd service, for machines
// that don't configure it through NixOS, nix-darwin or home-manager modules.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { writeFileAtomic } from '../base/state-file.ts';
import { LAUNCHD_LABEL, launchdPlist, servicePath, systemdUnit, SYSTEMD_UNIT_NAME, type ServiceManager, type ServiceSpec } from './service-units.ts';

export const SERVICE_HELP = `Usage: peernix service install [options] [-- serve options]
       peernix service uninstall [options]

Installs the headless daemon (peernix serve) as a service started at boot (systemd unit in
/etc/systemd/system, launchd daemon in /Library/LaunchDaemons) or, with --user, at login (systemd
user unit in ~/.config/systemd/user, launchd agent in ~/Library/LaunchAgents), and enables and starts
it where systemd or launchd runs. Options after "--" are passed on to peernix serve.

Options:
  --user              a per-user service instead of a system one
  --print             print the unit or plist instead of installing it (also --dry-run)
  --run-as USER       system services only: run as this user (default: a dynamic systemd user; root
                      under launchd)
  --manager systemd|launchd
                      default: launchd on macOS, systemd elsewhere
  --root DIR          write under DIR instead of / and activate nothing (default $PEERNIX_SERVICE_ROOT)
  -h, --help          this text
`;

interface Options {
  action: 'install' | 'uninstall';
  manager: ServiceManager;
  user: boolean;
  print: boolean;
  root: string;
  runAs?: string;
  serveArgs: string[];
}

class UsageError extends Error {}

function parse(argv: string[]): Options | 'help' {
  const dashes = argv.indexOf('--');
  const own = dashes < 0 ? argv : argv.slice(0, dashes);
  const serveArgs = dashes < 0 ? [] : argv.slice(dashes + 1);
  let parsed;
  try {
    parsed = parseArgs({
      args: own,
      allowPositionals: true,
      strict: true,
      options: {
        user: { type: 'boolean', default: false },
        print: { type: 'boolean', default: false },
        'dry-run': { type: 'boolean', default: false },
        'run-as': { type: 'string' },
        manager: { type: 'string' },
        root: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help) return 'help';
  const [action, ...extra] = positionals;
  if (action !== 'install' && action !== 'uninstall') {
    throw new UsageError(action === undefined ? 'say install or uninstall' : `unknown service action "${action}" (install or uninstall)`);
  }
  if (extra.length) throw new UsageError(`unexpected argument "${extra[0]}" (serve options go after "--")`);
  if (action === 'uninstall' && serveArgs.length) throw new UsageError('uninstall takes no serve options');
  const manager = values.manager ?? (process.platform === 'darwin' ? 'launchd' : 'systemd');
  if (manager !== 'systemd' && manager !== 'launchd') throw new UsageError(`--manager must be systemd or launchd, got "${manager}"`);
  if (values['run-as'] !== undefined && values.user) throw new UsageError('--run-as is for system services; a --user service runs as you');
  const root = values.root ?? (process.env.PEERNIX_SERVICE_ROOT || '/');
  if (!path.isAbsolute(root)) throw new UsageError(`--root must be an absolute path, got "${root}"`);
  return {
    action,
    manager,
    user: values.user,
    print: values.print || values['dry-run'],
    root,
    runAs: values['run-as'],
    serveArgs,
  };
}

/** The Node running us and the CLI entry it was started with: what the service must run too. */
function currentCommand(): { node: string; entry: string } {
  const entry = process.argv[1];
  if (!entry) throw new Error('cannot tell which file the CLI was started from');
  return { node: fs.realpathSync(process.execPath), entry: fs.realpathSync(entry) };
}

/** Serve options are checked now, by the serve command's own parser, rather than by a failing service. */
function checkServeArgs(node: string, entry: string, serveArgs: string[]): void {
  const r = spawnSync(node, [entry, 'serve', ...serveArgs, '--help'], { encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) {
    const why = (r.stderr || r.error?.message || `exit ${r.status}`).trim().replace(/^peernix: /, '');
    throw new UsageError(`the serve options after "--" are not valid: ${why}`);
  }
}

/**
 * A system service under systemd runs as its own unprivileged user, which must be able to read the Node
 * binary and the CLI (e.g. not from a checkout in /root). Returns the first path it can't reach.
 */
export function unreadableByOthers(file: string): string | undefined {
  const real = fs.realpathSync(file);
  if ((fs.statSync(real).mode & 0o004) === 0) return real;
  for (let dir = path.dirname(real); ; dir = path.dirname(dir)) {
    if ((fs.statSync(dir).mode & 0o001) === 0) return dir;
    if (dir === path.dirname(dir)) return undefined;
  }
}

function render(o: Options, spec: ServiceSpec, home: string): string {
  if (o.manager === 'systemd') return systemdUnit(spec);
  return launchdPlist(spec, o.user ? path.join(home, 'Library/Logs') : '/var/log');
}

function run(cmd: string, args: string[]): { ok: boolean; output: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 60_000 });
  return { ok: r.status === 0, output: (r.stderr || r.stdout || r.error?.message || '').trim() };
}

/** Why nothing is activated here, or undefined when the manager runs and we may drive it. */
function notActivating(o: Options): string | undefined {
  if (o.root !== '/') return `written under --root ${o.root}, so nothing was enabled or started`;
  if (o.manager === 'systemd' && !fs.existsSync('/run/systemd/system')) {
    return 'systemd is not running as init here (no /run/systemd/system), so nothing was enabled or started';
  }
  if (o.manager === 'launchd' && process.platform !== 'darwin') return 'launchd runs only on macOS, so nothing was loaded';
  return undefined;
}

function launchdDomain(user: boolean): string {
  return user ? `gui/${process.getuid?.() ?? 0}` : 'system';
}

function writeAtomically(file: string, text: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  writeFileAtomic(file, text, 0o644);
}

function describeFsError(e: unknown, file: string, o: Options): Error {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'EACCES' || code === 'EPERM') {
    return new Error(`cannot write ${file}: permission denied (a system service needs root${o.user ? '' : '; or use --user'})`);
  }
  return e as Error;
}

function install(o: Options, out: NodeJS.WritableStream): number {
  const home = os.homedir();
  const { node, entry } = currentCommand();
  checkServeArgs(node, entry, o.serveArgs);
  const spec: ServiceSpec = { node, entry, serveArgs: o.serveArgs, user: o.user, runAs: o.runAs };
  let text: string;
  try {
    text = render(o, spec, home);
  } catch (e) {
    // What the renderer refuses (a user name, a control character) came from the command line.
    throw new UsageError((e as Error).message);
  }
  if (o.print) {
    out.write(text);
    return 0;
  }
  if (o.manager === 'systemd' && !o.user && o.runAs === undefined) {
    for (const f of [node, entry]) {
      const blocked = unreadableByOthers(f);
      if (blocked) {
        throw new UsageError(
          `the service's own unprivileged user could not read ${blocked} (needed for ${f}); ` +
            'install Peernix where other users can read it, or pass --run-as USER with a user who can',
        );
      }
    }
  }
  const file = path.join(o.root, servicePath(o.manager, o.user, { home, xdgConfigHome: process.env.XDG_CONFIG_HOME }));
  try {
    writeAtomically(file, text);
  } catch (e) {
    throw describeFsError(e, file, o);
  }
  out.write(`wrote ${file}\n`);
  const skip = notActivating(o);
  if (skip) {
    out.write(`${skip}.\n`);
    return 0;
  }
  if (o.manager === 'systemd') {
    const scope = o.user ? ['--user'] : [];
    for (const args of [
      [...scope, 'daemon-reload'],
      [...scope, 'enable', '--now', SYSTEMD_UNIT_NAME],
    ]) {
      const r = run('systemctl', args);
      if (!r.ok) throw new Error(`systemctl ${args.join(' ')} failed: ${r.output}`);
      out.write(`ran systemctl ${args.join(' ')}\n`);
    }
    out.write(`peernix is enabled and started; see systemctl ${o.user ? '--user ' : ''}status ${SYSTEMD_UNIT_NAME}\n`);
  } else {
    const domain = launchdDomain(o.user);
    // A previous version may be loaded: bootstrap refuses a label that is already there.
    run('launchctl', ['bootout', `${domain}/${LAUNCHD_LABEL}`]);
    const r = run('launchctl', ['bootstrap', domain, file]);
    if (!r.ok) throw new Error(`launchctl bootstrap ${domain} ${file} failed: ${r.output}`);
    out.write(`loaded ${LAUNCHD_LABEL} into launchd (${domain}); it starts now and at ${o.user ? 'login' : 'boot'}\n`);
  }
  return 0;
}

function uninstall(o: Options, out: NodeJS.WritableStream): number {
  const file = path.join(o.root, servicePath(o.manager, o.user, { home: os.homedir(), xdgConfigHome: process.env.XDG_CONFIG_HOME }));
  const skip = notActivating(o);
  if (!skip) {
    if (o.manager === 'systemd') {
      const scope = o.user ? ['--user'] : [];
      const r = run('systemctl', [...scope, 'disable', '--now', SYSTEMD_UNIT_NAME]);
      out.write(r.ok ? `ran systemctl ${scope.join(' ')}${scope.length ? ' ' : ''}disable --now ${SYSTEMD_UNIT_NAME}\n` : `systemctl disable: ${r.output}\n`);
    } else {
      const r = run('launchctl', ['bootout', `${launchdDomain(o.user)}/${LAUNCHD_LABEL}`]);
      out.write(r.ok ? `unloaded ${LAUNCHD_LABEL}\n` : `launchctl bootout: ${r.output}\n`);
    }
  }
  if (!fs.existsSync(file)) {
    out.write(`${file} does not exist; nothing to remove\n`);
    return 0;
  }
  try {
    fs.rmSync(file);
  } catch (e) {
    throw describeFsError(e, file, o);
  }
  out.write(`removed ${file}\n`);
  if (skip) out.write(`${skip}.\n`);
  else if (o.manager === 'systemd') {
    const r = run('systemctl', [...(o.user ? ['--user'] : []), 'daemon-reload']);
    if (!r.ok) out.write(`systemctl daemon-reload: ${r.output}\n`);
  }
  return 0;
}

export async function service(argv: string[]): Promise<number> {
  let o: Options | 'help';
  try {
    o = parse(argv);
    if (o === 'help') {
      process.stdout.write(SERVICE_HELP);
      return 0;
    }
    return o.action === 'install' ? install(o, process.stdout) : uninstall(o, process.stdout);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`peernix service: ${e.message}\n(see peernix service --help)\n`);
    return 2;
  }
}
