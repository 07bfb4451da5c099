// The app's Peernix core: starts it (on Retry and on a second launch too), attaches to a Peernix of
// ours already running on this machine instead of failing on its busy port, takes over when that one
// stops, and stops it when the app quits. It says what the tray should show (failure, notice) and
// hands each API it comes to use (its own core's or the attached one's) to `onApi`.
import type { PeernixApi } from '../src/base/api.ts';
import { openServiceState, resolveStateDir, startService, type PeernixService, type ServiceState } from '../src/app/service.ts';
import type { Settings } from '../src/app/settings.ts';
import { connectRemoteApi, tokenMatches, type RemoteApi } from '../src/control/remote-api.ts';
import { readToken } from '../src/control/token.ts';
import type { Logger } from '../src/base/log.ts';
import { VERSION } from '../src/base/version.ts';
import { openAppSettings } from './settings-electron.ts';
import { explainStartError, type StartFailure } from './start-error.ts';

export interface CoreControllerDeps {
  log: () => Logger;
  rendererDir: string;
  /** A core (ours or an attached one) is now the API to show; null when the attached one went away. */
  onApi(api: PeernixApi | null): void;
  /** Something the tray shows (failure, notice) changed. */
  onChange(): void;
  /** A start failed: show why and offer Retry. */
  onFailure(f: StartFailure): void;
}

export class CoreController {
  state: ServiceState | null = null;
  api: PeernixApi | null = null;
  failure: StartFailure | null = null;
  /** One line the tray shows above its items (a settings problem, what we attached to, …). */
  notice: string | null = null;
  private service: PeernixService | null = null;
  private remote: RemoteApi | null = null;
  private starting: Promise<boolean> | null = null;
  private readonly deps: CoreControllerDeps;

  constructor(deps: CoreControllerDeps) {
    this.deps = deps;
  }

  private get log(): Logger {
    return this.deps.log();
  }

  /** Opens settings (and their problems) before the core starts, so they can be shown first. */
  openState(stateDir: string): void {
    this.state = openServiceState({ stateDir, openSettings: openAppSettings, log: this.log });
    if (this.state.settings.problems.length) this.notice = this.state.settings.problems[0];
  }

  /** Saves a setting; a file that can't be written is shown in the tray, never thrown. */
  saveSetting(patch: Partial<Settings>): void {
    try {
      this.state?.settings.set(patch);
    } catch (e) {
      this.notice = `Settings not saved: ${(e as Error).message}`;
      this.log.error(this.notice);
    }
  }

  /** Starts the core; on failure says why (onFailure) and leaves Retry. Resolves whether it runs. */
  start(): Promise<boolean> {
    if (this.api) return Promise.resolve(true);
    this.starting ??= (async () => {
      this.failure = null;
      this.deps.onChange();
      let service: PeernixService;
      try {
        this.state ??= openServiceState({ stateDir: resolveStateDir(), openSettings: openAppSettings, log: this.log });
        service = await startService({
          state: this.state,
          // PEERNIX_STORE: another nix-daemon than the system's (tests, unusual setups).
          core: { storeUri: process.env.PEERNIX_STORE || 'daemon' },
          rendererDir: this.deps.rendererDir,
          version: VERSION,
          log: this.log,
        });
      } catch (e) {
        const f = await explainStartError(e, this.state?.settings.path ?? null);
        if (await this.attach(f)) return true;
        this.failure = f;
        this.log.error(`could not start: ${f.message}`);
        this.deps.onChange();
        this.deps.onFailure(f);
        return false;
      } finally {
        this.starting = null;
      }
      this.service = service;
      this.use(service.api);
      return true;
    })();
    return this.starting;
  }

  private use(api: PeernixApi | null): void {
    this.api = api;
    this.deps.onApi(api);
  }

  /**
   * Our port is held by a Peernix on this machine. If its control token is ours (same user, same state
   * directory), become its tray and window; when it goes away, try to start our own core again.
   */
  private async attach(f: StartFailure): Promise<boolean> {
    if (!f.dashboardUrl || !this.state) return false;
    const base = new URL(f.dashboardUrl).origin;
    try {
      const token = await readToken(this.state.stateDir);
      if (!token || !(await tokenMatches(base, token))) {
        this.log.info(`the Peernix at ${base} is not ours to control (another user's or state directory's token)`);
        return false;
      }
      const r = await connectRemoteApi(base, token, this.log);
      this.remote = r;
      this.notice = `Showing the Peernix already running here (${base})`;
      this.log.info(`${this.notice}: becoming its tray and window`);
      r.onLost(() => {
        if (this.remote !== r) return;
        this.remote = null;
        this.notice = null;
        this.use(null);
        // It stopped: its port is probably free now, so run our own core, from the settings as it left them.
        this.state = null;
        setTimeout(() => void this.start(), 500).unref();
      });
      this.use(r);
      return true;
    } catch (e) {
      this.log.warn(`could not attach to the Peernix at ${base}: ${(e as Error).message}`);
      return false;
    }
  }

  /** Stops our core (running transfers get `graceMs`), or only detaches from the attached one. */
  async stop(graceMs: number): Promise<void> {
    // The other Peernix keeps running; only our connection to it ends.
    await this.remote?.stop();
    if (!this.service) return;
    this.log.info(`stopping; running transfers get up to ${graceMs / 1000} s to finish`);
    // A wedged stop must not keep the app from quitting.
    await Promise.race([this.service.stop({ graceMs }), new Promise((resolve) => setTimeout(resolve, graceMs + 5000).unref())]);
    this.log.info('stopped');
  }
}
