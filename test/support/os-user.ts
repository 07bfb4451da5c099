import { run } from './nix-host.ts';

// A real non-root account for tests and benchmarks that run Peernix the way a desktop user does.
// Created only when missing, and removed afterwards only by whoever created it.

export interface OsUser {
  name: string;
  uid: number;
  gid: number;
  created: boolean;
}

export async function ensureUser(name: string): Promise<OsUser> {
  let created = false;
  if ((await run('id', ['-u', name])).code !== 0) {
    await run('useradd', ['-m', '-s', '/bin/sh', name], { check: true });
    created = true;
  }
  const uid = Number((await run('id', ['-u', name], { check: true })).stdout.trim());
  const gid = Number((await run('id', ['-g', name], { check: true })).stdout.trim());
  return { name, uid, gid, created };
}

/** Removes the user (and its home) if ensureUser created it. */
export async function releaseUser(u: OsUser | undefined): Promise<void> {
  if (u?.created) await run('userdel', ['-r', u.name]);
}

/**
 * A `wrap` for startPeernixProcess / run: the command as the user. setpriv execs, so the pid is
 * Node's own and signals reach it. Absolute path: the user's PATH may be anything.
 */
export const asUser =
  (u: OsUser) =>
  (cmd: string, args: string[]): [string, string[]] => ['/usr/bin/setpriv', [`--reuid=${u.uid}`, `--regid=${u.gid}`, '--clear-groups', '--', cmd, ...args]];
