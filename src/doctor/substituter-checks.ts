import type { DoctorCheck } from '../base/api.ts';
import type { DoctorFacts } from './facts.ts';

// Does this machine's Nix use Peernix: the substituter and the key, read as Nix reads its settings,
// and whether the nix-daemon honours them. On a multi-user install the daemon takes `substituters`
// from a client only when the user is in trusted-users or the URL is in its own substituters or
// trusted-substituters ("ignoring untrusted substituter"), and `trusted-public-keys` only from a
// trusted user ("restricted setting"); Nix 2.8's daemon.cc.

const DEFAULT_TRUSTED_USERS = ['root'];

/** The spellings of our URL Nix would treat as ours: the loopback names the listener answers to, with or without a final "/". */
export function urlForms(url: string): string[] {
  const u = new URL(url);
  const port = u.port ? `:${u.port}` : '';
  const hosts = ['127.0.0.1', 'localhost', '[::1]'];
  const forms = new Set([url.replace(/\/+$/, '')]);
  if (hosts.includes(u.hostname) || u.hostname === '::1') for (const h of hosts) forms.add(`${u.protocol}//${h}${port}`);
  return [...forms].flatMap((f) => [f, f + '/']);
}

export function isTrustedUser(f: DoctorFacts): { trusted: boolean; list: string[] } {
  const list = f.system.layer?.settings.get('trusted-users') ?? DEFAULT_TRUSTED_USERS;
  const trusted = list.some((e) => e === '*' || e === f.user.name || (e.startsWith('@') && f.user.groups.includes(e.slice(1))));
  return { trusted, list };
}

function systemConfFile(f: DoctorFacts): string {
  return f.system.files[0] ?? '/etc/nix/nix.conf';
}

function confLines(f: DoctorFacts): string {
  return `extra-substituters = ${f.substituterUrl}\n` + (f.publicKey ? `extra-trusted-public-keys = ${f.publicKey}\n` : '');
}

const RESTART = 'then restart the nix-daemon (`sudo systemctl restart nix-daemon`) so it reads them';

export function substituterChecks(f: DoctorFacts): DoctorCheck[] {
  const checks: DoctorCheck[] = [];
  const sysFile = systemConfFile(f);
  for (const [layer, what] of [
    [f.system, 'the system Nix configuration'],
    [f.userConf, 'your Nix configuration'],
  ] as const) {
    if (layer.error) {
      checks.push({
        id: 'nixconf.readable',
        group: 'nix-config',
        title: 'Nix configuration readable',
        status: 'unknown',
        detail: `Cannot read ${what}: ${layer.error}. Nix itself would refuse it the same way.`,
        fix: `Fix the line or permission named above (${layer.files.join(', ')}).`,
      });
    }
  }
  if (!f.system.layer) return checks;

  const forms = urlForms(f.substituterUrl);
  const has = (list: string[] | undefined) => list?.find((s) => forms.includes(s)) ?? null;
  const inSystem = has(f.system.layer.settings.get('substituters'));
  const inUser = has(f.userConf.layer?.settings.get('substituters'));
  const trustedSubs = f.system.layer.settings.get('trusted-substituters') ?? [];
  const { trusted: userTrusted, list: trustedUsers } = isTrustedUser(f);
  const daemonJudges = f.usesDaemon;

  if (inSystem) {
    checks.push({
      id: 'nixconf.substituter',
      group: 'nix-config',
      title: 'Nix uses Peernix as a substituter',
      status: 'ok',
      detail: `${inSystem} is in substituters (${f.system.layer.sources.join(', ') || 'system'}).`,
      fix: null,
    });
  } else if (inUser && (!daemonJudges || userTrusted || trustedSubs.includes(inUser) || trustedSubs.includes(inUser + '/'))) {
    const why = !daemonJudges
      ? 'Nix runs without the daemon here, so your settings apply'
      : userTrusted
        ? `you (${f.user.name}) are in trusted-users`
        : `${inUser} is in trusted-substituters`;
    checks.push({
      id: 'nixconf.substituter',
      group: 'nix-config',
      title: 'Nix uses Peernix as a substituter',
      status: 'ok',
      detail: `${inUser} is in your substituters (${f.userConf.layer!.sources.join(', ')}), and it is honoured: ${why}.`,
      fix: null,
    });
  } else if (inUser) {
    checks.push({
      id: 'nixconf.substituter',
      group: 'nix-config',
      title: 'Nix uses Peernix as a substituter',
      status: 'fail',
      detail:
        `${inUser} is in your substituters (${f.userConf.layer!.sources.join(', ')}), but the nix-daemon ignores it ("ignoring untrusted substituter"): ` +
        `you (${f.user.name}) are not in trusted-users (${trustedUsers.join(' ') || 'empty'}) and ${inUser} is not in trusted-substituters (${trustedSubs.join(' ') || 'empty'}).`,
      fix: `Add these lines to ${sysFile} (as root):\n${confLines(f)}${RESTART}. (Or add \`extra-trusted-substituters = ${inUser}\` there to let users opt in.)`,
    });
  } else {
    checks.push({
      id: 'nixconf.substituter',
      group: 'nix-config',
      title: 'Nix uses Peernix as a substituter',
      status: 'fail',
      detail: `${f.substituterUrl} is in no substituters setting Nix reads (${[...f.system.layer.sources, ...(f.userConf.layer?.sources ?? [])].join(', ') || `no ${sysFile}`}).`,
      fix: `Add these lines to ${sysFile} (as root):\n${confLines(f)}${RESTART}. \`peernix nix-conf\` prints them too.`,
    });
  }

  if (f.publicKey) {
    const sysKeys = f.system.layer.settings.get('trusted-public-keys') ?? [];
    const userKeys = f.userConf.layer?.settings.get('trusted-public-keys') ?? [];
    const keyHonoured = sysKeys.includes(f.publicKey) || (userKeys.includes(f.publicKey) && (!daemonJudges || userTrusted));
    if (keyHonoured) {
      checks.push({
        id: 'nixconf.key',
        group: 'nix-config',
        title: "Nix trusts this Peernix's key",
        status: 'ok',
        detail: `${f.publicKey} is in trusted-public-keys.`,
        fix: null,
      });
    } else {
      const ignored = userKeys.includes(f.publicKey);
      checks.push({
        id: 'nixconf.key',
        group: 'nix-config',
        title: "Nix trusts this Peernix's key",
        // Paths peers got from cache.nixos.org keep its signature and need no new key: a warning.
        status: 'warn',
        detail: ignored
          ? `${f.publicKey} is in your trusted-public-keys, but the nix-daemon ignores that setting from a user not in trusted-users (${trustedUsers.join(' ')}).`
          : `${f.publicKey} is not in trusted-public-keys. Paths signed only by this key (built here) are refused; paths keeping cache.nixos.org's signature are not affected.`,
        fix: `Add to ${sysFile} (as root):\nextra-trusted-public-keys = ${f.publicKey}\n${RESTART}.`,
      });
    }
  }
  return checks;
}
