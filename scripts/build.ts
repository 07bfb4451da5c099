// Builds what runs outside plain Node's type stripping:
//   renderer/main.ts   → dist/renderer/app.js (one IIFE for the browser; file:// in Electron and
//                        /peernix/assets/ on the dashboard both load it as a classic script)
//   renderer/index.html, styles.css, assets/favicon.png → dist/renderer/
//   electron/preload.ts → dist/electron/preload.cjs (one CommonJS file: sandboxed preloads can
//                        require nothing but 'electron')
//   src/cli/main.ts    → dist/cli/peernix.js (the CLI and daemon, ESM, npm packages external)
//   electron/main.ts   → dist/electron/main.js (ESM; npm packages stay external and load from
//                        node_modules, the core's .ts files are bundled in)
// Usage: node scripts/build.ts [--watch]
import fs from 'node:fs/promises';
import path from 'node:path';
import * as esbuild from 'esbuild';
import { PAGE_CONTENT_SECURITY_POLICY } from '../src/control/contract.ts';

const root = path.join(import.meta.dirname, '..');
const r = (...p: string[]) => path.join(root, ...p);
const watch = process.argv.includes('--watch');

const builds: esbuild.BuildOptions[] = [
  {
    entryPoints: [r('renderer/main.ts')],
    outfile: r('dist/renderer/app.js'),
    bundle: true,
    platform: 'browser',
    format: 'iife',
    target: ['chrome120'],
    sourcemap: false,
    legalComments: 'none',
  },
  {
    entryPoints: [r('electron/preload.ts')],
    outfile: r('dist/electron/preload.cjs'),
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: ['node20'],
    external: ['electron'],
  },
  {
    // The daemon as users run it: one file, so Node needn't strip types (and hold the stripper) at run time.
    // Split so that `status`/`sharing`'s HTTP client stays a separate chunk the daemon never loads.
    // The share listener's worker threads load their own entry, beside the chunk that starts them.
    entryPoints: { peernix: r('src/cli/main.ts'), 'share-worker': r('src/app/share-worker.ts') },
    outdir: r('dist/cli'),
    bundle: true,
    splitting: true,
    platform: 'node',
    format: 'esm',
    target: ['node22'],
    packages: 'external',
  },
  {
    entryPoints: { main: r('electron/main.ts'), 'share-worker': r('src/app/share-worker.ts') },
    outdir: r('dist/electron'),
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: ['node20'],
    packages: 'external',
    external: ['electron'],
  },
];

async function copyStatic(): Promise<void> {
  await fs.mkdir(r('dist/renderer'), { recursive: true });
  // The page's CSP is defined once, in the core; the build writes it into the page's <meta>.
  const page = await fs.readFile(r('renderer/index.html'), 'utf8');
  if (!page.includes('%PAGE_CSP%')) throw new Error('renderer/index.html lost its %PAGE_CSP% placeholder');
  await fs.writeFile(r('dist/renderer/index.html'), page.replace('%PAGE_CSP%', PAGE_CONTENT_SECURITY_POLICY));
  await fs.copyFile(r('renderer/styles.css'), r('dist/renderer/styles.css'));
  await fs.copyFile(r('assets/favicon.png'), r('dist/renderer/favicon.png'));
}

const started = Date.now();
await copyStatic();
if (watch) {
  for (const b of builds) {
    const ctx = await esbuild.context({ ...b, logLevel: 'info' });
    await ctx.watch();
  }
  // Static files are few and small: re-copy them on a timer instead of watching each one.
  setInterval(() => void copyStatic().catch((e: unknown) => console.error(e)), 1000);
  console.log('watching renderer/ and electron/ …');
} else {
  await Promise.all(builds.map((b) => esbuild.build({ ...b, logLevel: 'warning' })));
  console.log(`built dist/renderer and dist/electron in ${Date.now() - started} ms`);
}
