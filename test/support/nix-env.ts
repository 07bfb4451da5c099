// The environment every Nix process in the tests runs with: isolated from the machine's own Nix
// configuration, daemon and store.

/**
 * Settings every Nix process in the tests runs with. Spread into an environment with
 * nixEnv() rather than directly, because some inherited variables must be removed too.
 */
export const NIX_ENV: Readonly<Record<string, string>> = Object.freeze({
  NIX_CONFIG: [
    'experimental-features = nix-command',
    'sandbox = false',
    // No network in tests, and cache.nixos.org lookups would cost seconds of DNS retries.
    'substituters =',
    'fsync-metadata = false',
    'warn-dirty = false',
  ].join('\n'),
  NIX_PAGER: 'cat',
  PAGER: 'cat',
  TERM: 'dumb',
});

/** Variables that would redirect Nix to some other store or daemon; removed by nixEnv(). */
const NIX_ENV_UNSET = ['NIX_REMOTE', 'NIX_DAEMON_SOCKET_PATH', 'NIX_STORE_DIR', 'NIX_STATE_DIR', 'NIX_LOG_DIR', 'NIX_PATH', 'NIX_USER_CONF_FILES'];

/** process.env + NIX_ENV + extra, minus variables that would point Nix elsewhere. */
export function nixEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of NIX_ENV_UNSET) delete env[k];
  Object.assign(env, NIX_ENV);
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}
