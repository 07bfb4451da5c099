// The dashboard page and its built files. Only a fixed list of names is ever served, so nothing in a
// URL becomes a path. The page is the same index.html the Electron window loads from disk; for the
// browser we add the control token (a <meta>, since the CSP forbids inline script) and a <base> so
// its relative asset names resolve under /peernix/assets/.
import fs from 'node:fs/promises';
import path from 'node:path';
import { TOKEN_META_NAME } from './contract.ts';

export const ASSET_PREFIX = '/peernix/assets/';

export const ASSETS: Readonly<Record<string, string>> = Object.freeze({
  'app.js': 'text/javascript; charset=utf-8',
  'styles.css': 'text/css; charset=utf-8',
  'favicon.png': 'image/png',
});

export async function readAsset(rendererDir: string, name: string): Promise<{ body: Buffer; type: string } | null> {
  if (!Object.hasOwn(ASSETS, name)) return null;
  try {
    return { body: await fs.readFile(path.join(rendererDir, name)), type: ASSETS[name] };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

export async function renderDashboardHtml(rendererDir: string, token: string): Promise<string | null> {
  let html: string;
  try {
    html = await fs.readFile(path.join(rendererDir, 'index.html'), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  const inject = `\n    <meta name="${TOKEN_META_NAME}" content="${escapeAttr(token)}">` + `\n    <base href="${ASSET_PREFIX}">`;
  const head = /<head(\s[^>]*)?>/i.exec(html);
  if (!head) throw new Error('renderer index.html has no <head>');
  const at = head.index + head[0].length;
  return html.slice(0, at) + inject + html.slice(at);
}

function escapeAttr(s: string): string {
  return s.replace(/[&"<>]/g, (c) => `&#${c.charCodeAt(0)};`);
}
