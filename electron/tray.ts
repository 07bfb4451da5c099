// Renders a TrayModel with Electron. On Linux the menu is only updated by calling setContextMenu
// again, which closes or flickers a menu the user has open, so it is re-set only when what it shows
// changed (events and health probes arrive every few seconds and mostly change nothing here).
import path from 'node:path';
import { Menu, Tray, nativeImage, type MenuItemConstructorOptions, type NativeImage } from 'electron';
import type { TrayAction, TrayIcon, TrayModel, TrayToggle } from './tray-model.ts';

export interface TrayHandlers {
  action(id: TrayAction): void;
  toggle(id: TrayToggle, checked: boolean): void;
}

export interface PeernixTray {
  update(model: TrayModel): void;
  /** The next update re-sets the menu even if the model is the same (after a click flipped a checkbox). */
  invalidate(): void;
  destroy(): void;
}

export function createTray(assetsDir: string, handlers: TrayHandlers, initial: TrayModel): PeernixTray {
  const images = new Map<TrayIcon, NativeImage>();
  const image = (icon: TrayIcon): NativeImage => {
    let img = images.get(icon);
    if (!img) {
      img = nativeImage.createFromPath(path.join(assetsDir, iconFile(icon)));
      if (process.platform === 'darwin') img.setTemplateImage(true);
      images.set(icon, img);
    }
    return img;
  };

  const tray = new Tray(image(initial.icon));
  let shownIcon = initial.icon;
  let shownTooltip: string | null = null;
  let shownItems: string | null = null;
  const render = (model: TrayModel) => {
    if (model.icon !== shownIcon) {
      tray.setImage(image(model.icon));
      shownIcon = model.icon;
    }
    if (model.tooltip !== shownTooltip) {
      tray.setToolTip(model.tooltip);
      shownTooltip = model.tooltip;
    }
    const items = JSON.stringify(model.items);
    if (items !== shownItems) {
      tray.setContextMenu(Menu.buildFromTemplate(model.items.map((item) => toTemplate(item, handlers))));
      shownItems = items;
    }
  };
  render(initial);

  return {
    update: render,
    invalidate: () => {
      shownItems = null;
    },
    destroy: () => tray.destroy(),
  };
}

/** macOS gets black template images the menu bar tints; Linux and Windows the colour ones. */
export function iconFile(icon: TrayIcon, platform: NodeJS.Platform = process.platform): string {
  if (platform === 'darwin') return icon === 'sharing' ? 'trayTemplate.png' : `tray-${icon}Template.png`;
  return `tray-${icon}.png`;
}

function toTemplate(item: TrayModel['items'][number], handlers: TrayHandlers): MenuItemConstructorOptions {
  switch (item.kind) {
    case 'separator':
      return { type: 'separator' };
    case 'status':
      return { label: item.label, enabled: false };
    case 'checkbox':
      return {
        type: 'checkbox',
        label: item.label,
        checked: item.checked,
        enabled: item.enabled,
        click: (menuItem) => handlers.toggle(item.id, menuItem.checked),
      };
    case 'action':
      return { label: item.label, enabled: item.enabled, click: () => handlers.action(item.id) };
  }
}
