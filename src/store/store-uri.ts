// Which nix-daemon to talk to, and where its store's files live when that isn't "/".
// Accepted: "daemon" (NIX_DAEMON_SOCKET_PATH or the default socket) and "unix:///path/to/socket[?root=/dir]".

export const DEFAULT_DAEMON_SOCKET = '/nix/var/nix/daemon-socket/socket';

export interface StoreLocation {
  socketPath: string;
  root: string; // prefix of the store's files on this filesystem; '' for the real /nix/store
}

export function parseStoreUri(uri: string, env: NodeJS.ProcessEnv = process.env): StoreLocation {
  if (uri === 'daemon' || uri === 'auto') {
    return { socketPath: env.NIX_DAEMON_SOCKET_PATH || DEFAULT_DAEMON_SOCKET, root: '' };
  }
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    throw new Error(`unsupported store URI "${uri}" (use "daemon" or "unix:///path/to/socket[?root=/dir]")`);
  }
  if (url.protocol !== 'unix:' || url.host !== '' || !url.pathname.startsWith('/')) {
    throw new Error(`unsupported store URI "${uri}" (use "daemon" or "unix:///path/to/socket[?root=/dir]")`);
  }
  const root = url.searchParams.get('root') ?? '';
  if (root !== '' && !root.startsWith('/')) throw new Error(`store root must be an absolute path: "${root}"`);
  return { socketPath: decodeURIComponent(url.pathname), root: root.replace(/\/+$/, '') };
}
