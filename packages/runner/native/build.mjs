#!/usr/bin/env node
// Builds the runner's spawn helper (airlock-spawner.c) into dist/native/. Static with
// musl-gcc when available (no libc dependency at run time), else the system cc. When no
// compiler is present the runner falls back to spawning through setpriv/prlimit, so a
// failed build is reported but is not an error. Usage: node build.mjs [OUT]
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = resolve(fileURLToPath(import.meta.url), '..');
const src = join(here, 'airlock-spawner.c');
const out = resolve(process.argv[2] ?? join(here, '..', 'dist', 'native', 'airlock-spawner'));
const flags = ['-O2', '-Wall', '-Wextra', '-Werror', '-s'];

if (existsSync(out) && statSync(out).mtimeMs >= statSync(src).mtimeMs) process.exit(0);
mkdirSync(dirname(out), { recursive: true });
const tmp = `${out}.tmp-${process.pid}`;
const attempts = [
  ['musl-gcc', ['-static', ...flags]],
  ['cc', ['-static', ...flags]],
  ['cc', flags],
];
for (const [cc, f] of attempts) {
  const r = spawnSync(cc, [...f, '-o', tmp, src], { stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.status === 0) {
    renameSync(tmp, out);
    console.log(`[airlock setup] spawn helper built with ${cc} ${f.join(' ')}: ${out}`);
    process.exit(0);
  }
}
console.warn(
  '[airlock setup] could not compile the runner spawn helper (no C compiler?); the runner will spawn actions through setpriv/prlimit instead (slower). Install musl-tools or gcc to build it.',
);
