// The text of a service definition for the headless daemon: a systemd unit (system or user) or a launchd
// plist (daemon or agent). Pure functions; `service-command.ts` decides where they go and activates them.
import path from 'node:path';

export type ServiceManager = 'systemd' | 'launchd';

export interface ServiceSpec {
  /** Absolute path of the Node binary: units run without the shell's PATH. */
  node: string;
  /** Absolute path of the CLI entry (dist/cli/peernix.js, or src/cli/main.ts in a checkout without a build). */
  entry: string;
  /** Passed on to `peernix serve`. */
  serveArgs: string[];
  /** A per-user unit/agent (the user's session) rather than a system one (boot). */
  user: boolean;
  /** System units only: run as this existing user instead of a dynamic (systemd) or root (launchd) one. */
  runAs?: string;
}

export const SYSTEMD_UNIT_NAME = 'peernix.service';
export const LAUNCHD_LABEL = 'org.peernix.daemon';
/** Where a system service keeps its key and settings; systemd's StateDirectory= makes the same one. */
export const SYSTEM_STATE_DIR = '/var/lib/peernix';

// NAR buffers of 256 KiB are freed back to the system only if malloc maps them on their own (as bin/peernix).
const MALLOC_ENV: [string, string] = ['MALLOC_MMAP_THRESHOLD_', '131072'];

function checkSpec(spec: ServiceSpec): void {
  for (const [what, p] of [
    ['Node binary', spec.node],
    ['CLI entry', spec.entry],
  ] as const) {
    if (!path.isAbsolute(p)) throw new Error(`the ${what} must be an absolute path, got "${p}"`);
  }
  for (const a of [spec.node, spec.entry, ...spec.serveArgs]) {
    // A newline would end the unit's line (or be silently folded in a plist): refuse rather than guess.
    if (/[\x00-\x1f\x7f]/.test(a)) throw new Error(`a control character in ${JSON.stringify(a)} cannot go into a service definition`);
  }
  if (spec.runAs !== undefined && !/^[a-z_][a-z0-9_.-]*\$?$/i.test(spec.runAs)) throw new Error(`"${spec.runAs}" is not a user name`);
}

/** One ExecStart word: systemd splits on whitespace, unquotes "…", and expands % specifiers and $VARS. */
export function systemdWord(arg: string): string {
  const escaped = arg.replaceAll('%', '%%').replaceAll('$', '$$$$');
  if (escaped !== '' && /^[A-Za-z0-9_@%+=:,./-]+$/.test(escaped)) return escaped;
  return `"${escaped.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`;
}

export function systemdUnit(spec: ServiceSpec): string {
  checkSpec(spec);
  const exec = [spec.node, spec.entry, 'serve', ...spec.serveArgs].map(systemdWord).join(' ');
  const service = [
    'Type=exec',
    `ExecStart=${exec}`,
    `Environment=${MALLOC_ENV[0]}=${MALLOC_ENV[1]}`,
    // %S is /var/lib for the system manager and ~/.local/state for a user's: the daemon's own default there.
    'Environment=PEERNIX_STATE_DIR=%S/peernix',
    'StateDirectory=peernix',
    'StateDirectoryMode=0700',
    'Restart=on-failure',
    'RestartSec=5s',
    // The first SIGTERM lets running transfers finish for up to 10 s.
    'TimeoutStopSec=20s',
    'NoNewPrivileges=yes',
    'LockPersonality=yes',
    'SystemCallArchitectures=native',
    // AF_UNIX: the nix-daemon's socket; AF_NETLINK: listing interfaces for mDNS.
    'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK',
  ];
  if (!spec.user) {
    // Sandboxing that needs the system manager (in a user manager it would need user namespaces).
    service.push(
      ...(spec.runAs ? [`User=${spec.runAs}`] : ['DynamicUser=yes']),
      'UMask=0077',
      'ProtectSystem=strict',
      'ProtectHome=read-only',
      'PrivateTmp=yes',
      'PrivateDevices=yes',
      'DevicePolicy=closed',
      'ProtectKernelTunables=yes',
      'ProtectKernelModules=yes',
      'ProtectKernelLogs=yes',
      'ProtectControlGroups=yes',
      'ProtectClock=yes',
      'ProtectHostname=yes',
      'ProtectProc=invisible',
      'SystemCallFilter=@system-service',
      'SystemCallFilter=~@privileged',
      // A call outside the filter fails (EPERM) rather than killing Node.
      'SystemCallErrorNumber=EPERM',
      'RestrictNamespaces=yes',
      'RestrictRealtime=yes',
      'RestrictSUIDSGID=yes',
      'CapabilityBoundingSet=',
      // V8 compiles to executable memory: MemoryDenyWriteExecute would stop Node.
    );
  }
  return [
    '[Unit]',
    'Description=Peernix: LAN peer-to-peer Nix binary cache',
    ...(spec.user ? [] : ['After=network-online.target nix-daemon.socket', 'Wants=network-online.target']),
    '',
    '[Service]',
    ...service,
    '',
    '[Install]',
    `WantedBy=${spec.user ? 'default.target' : 'multi-user.target'}`,
    '',
  ].join('\n');
}

function xml(s: string): string {
  return s.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('"', '&quot;');
}

/** `logDir`: where stdout/stderr go (/var/log for a daemon, ~/Library/Logs for an agent). */
export function launchdPlist(spec: ServiceSpec, logDir: string): string {
  checkSpec(spec);
  const env: [string, string][] = [MALLOC_ENV];
  if (!spec.user) env.push(['PEERNIX_STATE_DIR', SYSTEM_STATE_DIR]);
  const log = path.join(logDir, 'peernix.log');
  const lines = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">',
    '<plist version="1.0">',
    '<dict>',
    `  <key>Label</key><string>${LAUNCHD_LABEL}</string>`,
    '  <key>ProgramArguments</key>',
    '  <array>',
    ...[spec.node, spec.entry, 'serve', ...spec.serveArgs].map((a) => `    <string>${xml(a)}</string>`),
    '  </array>',
    '  <key>EnvironmentVariables</key>',
    '  <dict>',
    ...env.map(([k, v]) => `    <key>${k}</key><string>${xml(v)}</string>`),
    '  </dict>',
    ...(spec.runAs ? [`  <key>UserName</key><string>${xml(spec.runAs)}</string>`] : []),
    '  <key>RunAtLoad</key><true/>',
    // Restarted when it fails, not after a clean stop.
    '  <key>KeepAlive</key><dict><key>SuccessfulExit</key><false/></dict>',
    '  <key>ThrottleInterval</key><integer>5</integer>',
    '  <key>ExitTimeOut</key><integer>20</integer>',
    `  <key>StandardOutPath</key><string>${xml(log)}</string>`,
    `  <key>StandardErrorPath</key><string>${xml(log)}</string>`,
    '</dict>',
    '</plist>',
    '',
  ];
  return lines.join('\n');
}

/** Where the definition lives, relative to `/` (the caller prefixes its --root). */
export function servicePath(manager: ServiceManager, user: boolean, env: { home: string; xdgConfigHome?: string }): string {
  if (manager === 'launchd') {
    return user ? path.join(env.home, 'Library/LaunchAgents', `${LAUNCHD_LABEL}.plist`) : `/Library/LaunchDaemons/${LAUNCHD_LABEL}.plist`;
  }
  if (!user) return `/etc/systemd/system/${SYSTEMD_UNIT_NAME}`;
  const config = env.xdgConfigHome && path.isAbsolute(env.xdgConfigHome) ? env.xdgConfigHome : path.join(env.home, '.config');
  return path.join(config, 'systemd/user', SYSTEMD_UNIT_NAME);
}
