// The app's settings: the same file, format, validation and corruption handling as the daemon's
// (src/app/settings.ts), in the app's state directory.
import { openSettingsStore, type SettingsStore } from '../src/app/settings.ts';

export function openAppSettings(stateDir: string): SettingsStore {
  return openSettingsStore(stateDir);
}
