#!/usr/bin/env node
// Makes a fresh clone runnable: checks Node, installs npm dependencies when
// missing or stale, installs the Debian packages the tests need (as root),
// and builds what is stale. Uses only Node built-ins: it runs before
// anything is installed. Usage: node scripts/ensure.mjs [--system]
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(fileURLToPath(import.meta.url), '../..');
const lifecycle = process.env.npm_lifecycle_event ?? '';
const wantSystem = process.argv.includes('--system') || lifecycle === 'pretest';

function step(msg) {
  console.log(`\x1b[36m[airlock setup]\x1b[0m ${msg}`);
}
function fail(msg) {
  console.error(`\x1b[31m[airlock setup] ${msg}\x1b[0m`);
  process.exit(1);
}
function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: root, ...opts });
  if (r.error) fail(`could not run ${cmd}: ${r.error.message}`);
  return r.status ?? 1;
}

// 1. Node version.
const [maj, min] = process.versions.node.split('.').map(Number);
if (maj < 20 || (maj === 20 && min < 19)) fail(`Node ${process.versions.node} is too old: airlock needs Node >= 20.19`);

// 2. npm dependencies.
const marker = join(root, 'node_modules', '.package-lock.json');
const lock = join(root, 'package-lock.json');
const stale = !existsSync(marker) || (existsSync(lock) && statSync(lock).mtimeMs > statSync(marker).mtimeMs + 1000);
if (stale) {
  step('installing npm dependencies (npm install)…');
  if (run('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error']) !== 0) {
    fail('npm install failed; check your network access to the npm registry and the output above');
  }
}

// 3. Debian packages the tests use (only attempted as root; otherwise reported).
if (wantSystem) {
  const r = spawnSync(process.execPath, [join(root, 'scripts', 'system-deps.mjs')], { stdio: 'inherit', cwd: root });
  if (r.status !== 0) fail('system packages are missing (see above)');
}

// 4. Build (tsc -b is incremental: up-to-date projects are skipped).
step('building (tsc -b)…');
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
if (run(process.execPath, [tsc, '-b'], { stdio: 'inherit' }) !== 0) fail('build failed (TypeScript errors above)');
// packages/runner/native/build.mjs compiles the runner's spawn helper (C); without a compiler it
// warns and the runner spawns through setpriv/prlimit instead.
for (const extra of ['packages/web/build.mjs', 'packages/runner/native/build.mjs']) {
  if (existsSync(join(root, extra))) {
    if (run(process.execPath, [join(root, extra)]) !== 0) fail(`build step ${extra} failed`);
  }
}
step('ready');
