// The app's settings: the same file format, validation and corruption handling as the daemon's
// (src/settings.ts), stored with electron-store in the app's state directory.
import ElectronStore from 'electron-store';
import { confOptions, openSettingsStore, type SettingsStore } from '../src/app/settings.ts';

export function openAppSettings(stateDir: string): SettingsStore {
  return openSettingsStore(stateDir, ({ cwd, configName }) => {
    const { configName: name, ...rest } = confOptions(cwd, configName);
    return new ElectronStore<Record<string, unknown>>({ ...rest, name });
  });
}
