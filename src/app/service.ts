// One Peernix service for both front ends (`peernix serve` and the tray app): where its state lives,
// its settings and their problems, the control token, the core's options and the control routes on
// the loopback listener. The front ends differ only in how they open settings (conf or
// electron-store), which flags override them, and what they show.
import { defaultShareThreads } from './share-loops.ts';
import type { PeernixApi, StopOptions } from '../base/api.ts';
import { createControlHandlers, type ControlHandlers } from '../control/routes.ts';
import { loadOrCreateToken } from '../control/token.ts';
import type { Logger } from '../base/log.ts';
import { startPeernix, type PeernixOptions } from './peernix.ts';
import { openDaemonSettings, type Settings, type SettingsStore } from './settings.ts';
import { defaultStateDir, ensureStateDir } from '../base/state-dir.ts';
import { loopbackHostNames } from '../cache/http-listener.ts';

/** PEERNIX_STATE_DIR overrides the XDG default (tests, several instances, a system service). */
export function resolveStateDir(explicit?: string, env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env.PEERNIX_STATE_DIR;
  return explicit ?? (fromEnv && fromEnv.startsWith('/') ? fromEnv : defaultStateDir(env));
}

export interface ServiceState {
  stateDir: string;
  settings: SettingsStore;
}

/** Creates the state directory and opens the settings; never throws for a bad settings file. */
export function openServiceState(opts: { stateDir?: string; openSettings?: (stateDir: string) => SettingsStore; log: Logger }): ServiceState {
  const stateDir = ensureStateDir(resolveStateDir(opts.stateDir));
  const settings = (opts.openSettings ?? openDaemonSettings)(stateDir);
  for (const p of settings.problems) opts.log.warn(p);
  return { stateDir, settings };
}

/** The core's options that are not settings: the store, the key, names and NAR handling. */
export type CoreOptions = Pick<PeernixOptions, 'storeUri' | 'secretKeyFile' | 'mdnsInterface' | 'name' | 'narSource' | 'verifyLocalNars'>;

export interface ServiceOptions {
  state: ServiceState;
  core: CoreOptions;
  /** Settings overridden for this run only (command-line flags); never written back. */
  overrides?: Partial<
    Pick<
      Settings,
      | 'shareListen'
      | 'listen'
      | 'sharing'
      | 'peers'
      | 'mdns'
      | 'peerCompression'
      | 'goPeers'
      | 'goUdpPort'
      | 'trustAllNetworks'
      | 'team'
      | 'publicKeys'
      | 'shareThreads'
    >
  >;
  /** The built renderer (dist/renderer) the dashboard serves. */
  rendererDir: string;
  version: string;
  log: Logger;
}

export interface PeernixService {
  api: PeernixApi;
  substituterUrl: string;
  stateDir: string;
  settings: SettingsStore;
  /** Ends the dashboard's change streams, then stops the core (running transfers get `graceMs`). */
  stop(opts?: StopOptions): Promise<void>;
}

export async function startService(opts: ServiceOptions): Promise<PeernixService> {
  const { stateDir, settings } = opts.state;
  const s = { ...settings.get(), ...definedOnly(opts.overrides ?? {}) };
  const token = await loadOrCreateToken(stateDir);
  let control: ControlHandlers | null = null;

  const peernix = await startPeernix({
    ...opts.core,
    stateDir,
    shareListen: s.shareListen,
    listen: s.listen,
    sharing: s.sharing,
    peers: s.peers,
    mdns: s.mdns,
    peerCompression: s.peerCompression,
    metricsOnShare: s.metricsOnShare,
    shareThreads: s.shareThreads === 'auto' ? defaultShareThreads() : s.shareThreads,
    team: s.team,
    dnsSdDomains: s.dnsSdDomains,
    dnsSdServer: s.dnsSdServer,
    dnsSdRegister: s.dnsSdRegister,
    publicKeys: s.publicKeys,
    exclude: s.exclude,
    goUdp: s.goPeers ? { port: s.goUdpPort } : null,
    version: opts.version,
    log: opts.log,
    persistSharing: (on) => settings.set({ sharing: on }),
    trustedNetworks: s.trustedNetworks,
    trustAllNetworks: s.trustAllNetworks,
    trustFirstNetwork: settings.predatesNetworkTrust ?? false,
    persistTrustedNetworks: (ids) => settings.set({ trustedNetworks: ids }),
    // `--team` is for this run only: then the team's changes are not written over the saved list.
    persistTeam: opts.overrides?.team === undefined ? (keys) => settings.set({ team: keys }) : undefined,
    scopesNotice: s.scopesNotice,
    upgradedFromBeforeScopes: settings.predatesScopes ?? false,
    persistScopesNotice: (state) => settings.set({ scopesNotice: state }),
    // The core calls back with its API and loopback URL once that listener is bound (port 0 is known
    // only then); the routes answer only to that exact host:port.
    control: (api, url) => {
      const port = new URL(url).port;
      control = createControlHandlers({
        api,
        token,
        rendererDir: opts.rendererDir,
        allowedHosts: loopbackHostNames(Number(port)),
      });
      return control;
    },
  });

  let stopping: Promise<void> | null = null;
  return {
    api: peernix.api,
    substituterUrl: peernix.substituterUrl,
    stateDir,
    settings,
    stop(stopOpts) {
      stopping ??= (async () => {
        (control as ControlHandlers | null)?.close();
        await peernix.api.stop(stopOpts);
      })();
      return stopping;
    },
  };
}

function definedOnly<T extends object>(values: T): Partial<T> {
  return Object.fromEntries(Object.entries(values).filter(([, v]) => v !== undefined)) as Partial<T>;
}
