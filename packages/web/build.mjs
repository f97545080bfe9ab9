#!/usr/bin/env node
// Builds the dashboard bundle (packages/web/dist/app) with Vite when any source is newer
// than the last build, after a type check of the app. Run by scripts/ensure.mjs after
// `tsc -b`; `--force` rebuilds regardless. Prints what it does.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
const out = join(here, 'dist', 'app', 'index.html');
const inputs = [join(here, 'app'), join(here, 'vite.config.mjs'), join(here, 'build.mjs'), join(here, 'package.json')];
const force = process.argv.includes('--force');
const say = (msg) => console.log(`\x1b[36m[airlock setup]\x1b[0m ${msg}`);

function newest(p) {
  if (!existsSync(p)) return 0;
  const s = statSync(p);
  if (!s.isDirectory()) return s.mtimeMs;
  let m = s.mtimeMs;
  for (const n of readdirSync(p)) m = Math.max(m, newest(join(p, n)));
  return m;
}

const built = existsSync(out) ? statSync(out).mtimeMs : 0;
const src = Math.max(...inputs.map(newest));
if (!force && built > src) {
  say('dashboard is up to date (packages/web/dist/app)');
  process.exit(0);
}
const bin = (pkg, rel) => {
  for (const base of [join(here, 'node_modules'), join(here, '..', '..', 'node_modules')]) {
    const f = join(base, pkg, rel);
    if (existsSync(f)) return f;
  }
  console.error(`[airlock setup] ${pkg} is not installed; run npm install`);
  process.exit(1);
};
say('type-checking the dashboard (tsc -p packages/web/app)…');
let r = spawnSync(process.execPath, [bin('typescript', 'bin/tsc'), '-p', join(here, 'app', 'tsconfig.json')], {
  stdio: 'inherit',
});
if (r.status !== 0) process.exit(r.status ?? 1);
say('building the dashboard (vite build → packages/web/dist/app)…');
const t0 = Date.now();
r = spawnSync(process.execPath, [bin('vite', 'bin/vite.js'), 'build', '--config', join(here, 'vite.config.mjs')], {
  stdio: 'inherit',
  cwd: here,
});
if (r.status !== 0) process.exit(r.status ?? 1);
say(`dashboard built in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
