// Renders a TrayModel with Electron. On Linux the menu is only updated by calling setContextMenu
// again, so every update rebuilds and re-sets the whole menu.
import path from 'node:path';
import { Menu, Tray, nativeImage, type MenuItemConstructorOptions, type NativeImage } from 'electron';
import type { TrayAction, TrayIcon, TrayModel, TrayToggle } from './tray-model.ts';

export interface TrayHandlers {
  action(id: TrayAction): void;
  toggle(id: TrayToggle, checked: boolean): void;
}

export interface PeernixTray {
  update(model: TrayModel): void;
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
  const render = (model: TrayModel) => {
    if (model.icon !== shownIcon) {
      tray.setImage(image(model.icon));
      shownIcon = model.icon;
    }
    tray.setToolTip(model.tooltip);
    tray.setContextMenu(Menu.buildFromTemplate(model.items.map((item) => toTemplate(item, handlers))));
  };
  render(initial);

  return {
    update: render,
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
