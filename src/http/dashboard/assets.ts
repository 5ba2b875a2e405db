import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export interface Asset {
  body: string;
  type: string;
  /** Content hash: the page links `?v=<hash>` so browsers may cache an asset for good. */
  hash: string;
}

/**
 * The dashboard's static files live in src/http/dashboard/static/ (plain HTML, CSS and one
 * hand-written JS file: no build step, no CDN). From src (tsx, tests) they sit beside this module;
 * from the compiled dist/http/dashboard/ they are found at the same path under src/, which ships in
 * the repository. They are read once, when the app is built.
 */
function staticDir(): string {
  const candidates = [
    new URL('./static/', import.meta.url),
    new URL('../../../src/http/dashboard/static/', import.meta.url),
  ];
  for (const url of candidates) {
    const dir = fileURLToPath(url);
    if (existsSync(`${dir}app.js`)) return dir;
  }
  throw new Error(
    `dashboard assets not found (looked in ${candidates.map((u) => fileURLToPath(u)).join(', ')})`,
  );
}

let cache: { html: string; js: Asset; css: Asset } | undefined;

export function loadAssets(): { html: string; js: Asset; css: Asset } {
  if (cache) return cache;
  const dir = staticDir();
  const load = (name: string, type: string): Asset => {
    const body = readFileSync(`${dir}${name}`, 'utf8');
    return { body, type, hash: createHash('sha256').update(body).digest('hex').slice(0, 16) };
  };
  const js = load('app.js', 'text/javascript; charset=utf-8');
  const css = load('app.css', 'text/css; charset=utf-8');
  const html = readFileSync(`${dir}index.html`, 'utf8')
    .replace('{{css}}', `/dashboard/app.css?v=${css.hash}`)
    .replace('{{js}}', `/dashboard/app.js?v=${js.hash}`);
  cache = { html, js, css };
  return cache;
}
