// The tray and what it alone decides: start at login (the OS is the truth for it: the user may change
// it in system settings) and what each click does. Everything else comes from the core controller.
import { app, clipboard } from 'electron';
import type { Logger } from '../src/base/log.ts';
import type { CoreController } from './core-controller.ts';
import { getStartAtLogin, setStartAtLogin } from './login-item.ts';
import { createTray, type PeernixTray } from './tray.ts';
import { trayModel } from './tray-model.ts';

export interface TrayControllerDeps {
  core: CoreController;
  log: () => Logger;
  assetsDir: string;
  mainScript: string;
  openWindow(): void;
  openLog(): void;
  /** Start the core (Retry), then show the window if it runs. */
  retry(): void;
}

export class TrayController {
  private tray: PeernixTray | null = null;
  private startAtLogin = false;
  /** The network the tray's "Share on …?" item names, so a click trusts that one and no other. */
  private askedNetworkId: string | null = null;
  private readonly deps: TrayControllerDeps;

  constructor(deps: TrayControllerDeps) {
    this.deps = deps;
  }

  private get log(): Logger {
    return this.deps.log();
  }

  /** Reads start at login from the OS and saves it to the settings if they differ. */
  readStartAtLogin(): void {
    const { core, mainScript } = this.deps;
    try {
      this.startAtLogin = getStartAtLogin(app, mainScript);
    } catch (e) {
      this.log.warn(`cannot read start at login: ${(e as Error).message}`);
    }
    if (core.state && core.state.settings.get().startAtLogin !== this.startAtLogin) core.saveSetting({ startAtLogin: this.startAtLogin });
  }

  show(): void {
    const { core } = this.deps;
    this.tray = createTray(
      this.deps.assetsDir,
      {
        action: (id) => {
          if (id === 'open') this.deps.openWindow();
          else if (id === 'copyNixConf') {
            const text = core.api?.snapshot().status.nixConf;
            if (text) clipboard.writeText(text.endsWith('\n') ? text : text + '\n');
          } else if (id === 'retry') this.deps.retry();
          else if (id === 'openLog') this.deps.openLog();
          else if (id === 'quit') app.quit();
          else if (id === 'trustNetwork') {
            // The network the menu asked about: if the machine moved since, the new one is not trusted by this click.
            const asked = this.askedNetworkId;
            if (core.api?.network && asked) {
              core.api
                .network({ trust: asked })
                .catch((e: unknown) => this.log.error(`could not trust the network: ${(e as Error).message}`))
                .finally(() => this.refresh());
            }
          }
        },
        toggle: (id, checked) => {
          // Electron has already flipped the checkbox; whatever happens, show the truth again.
          this.tray?.invalidate();
          if (id === 'sharing') {
            if (!core.api) return this.refresh();
            core.api
              .setSharing(checked)
              .catch((e: unknown) => this.log.error(`could not turn sharing ${checked ? 'on' : 'off'}: ${(e as Error).message}`))
              .finally(() => this.refresh());
          } else {
            this.toggleStartAtLogin(checked);
            this.refresh();
          }
        },
      },
      trayModel(null, { startAtLogin: this.startAtLogin, notice: core.notice }),
    );
  }

  refresh(): void {
    const { core } = this.deps;
    const model = trayModel(core.api?.snapshot() ?? null, { startAtLogin: this.startAtLogin, startError: core.failure?.message ?? null, notice: core.notice });
    this.askedNetworkId = model.askedNetworkId ?? null;
    this.tray?.update(model);
  }

  private toggleStartAtLogin(on: boolean): void {
    const { core, mainScript } = this.deps;
    try {
      const refused = setStartAtLogin(app, mainScript, on);
      this.startAtLogin = getStartAtLogin(app, mainScript);
      core.notice = refused;
      if (refused) this.log.warn(refused);
    } catch (e) {
      core.notice = `Could not change start at login: ${(e as Error).message}`;
      this.log.error(core.notice);
    }
    core.saveSetting({ startAtLogin: this.startAtLogin });
  }

  destroy(): void {
    this.tray?.destroy();
    this.tray = null;
  }
}
