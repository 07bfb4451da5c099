// `node --import ./register.ts dist/electron/main.js`: resolves the specifier `electron` to the
// stand-in in this folder, for the app and for its dependencies (electron-store).
import { registerHooks } from 'node:module';

const stub = new URL('./electron.ts', import.meta.url).href;

registerHooks({
  resolve(specifier, context, nextResolve) {
    if (specifier === 'electron') return { url: stub, format: 'module-typescript', shortCircuit: true };
    return nextResolve(specifier, context);
  },
});
