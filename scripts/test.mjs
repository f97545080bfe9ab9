#!/usr/bin/env node
// Runs the compiled tests (`*.test.js` under each package's dist/) with Node's
// own test runner, in one invocation so the summary covers everything and the
// exit code is non-zero on any failure. Usage: node scripts/test.mjs [package…]
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startPgCluster } from './pg-cluster.mjs';

const root = resolve(fileURLToPath(import.meta.url), '../..');
const all = ['core', 'runner', 'server', 'mcp', 'web', 'sandbox', 'cli'];
const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const extra = process.argv.slice(2).filter((a) => a.startsWith('-'));
const packages = wanted.length > 0 ? wanted : all;
for (const p of packages) {
  if (!all.includes(p)) {
    console.error(`test: unknown package "${p}" (known: ${all.join(', ')})`);
    process.exit(2);
  }
}

function collect(dir, out) {
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir)) {
    const full = join(dir, name);
    if (statSync(full).isDirectory()) collect(full, out);
    else if (name.endsWith('.test.js')) out.push(full);
  }
  return out;
}

const files = packages.flatMap((p) => collect(join(root, 'packages', p, 'dist'), []).sort());
if (files.length === 0) {
  console.error(`test: no compiled tests found for ${packages.join(', ')}; run "npm run build" first`);
  process.exit(1);
}
console.log(`test: ${files.length} test files in ${packages.join(', ')}`);
// Database tests run against SQLite and a real PostgreSQL; one cluster serves the whole run.
const env = { ...process.env, AIRLOCK_REPO_ROOT: root };
let pg;
if (packages.some((p) => ['server', 'cli'].includes(p)) && env.AIRLOCK_TEST_PG_URL === undefined) {
  try {
    pg = await startPgCluster();
    env.AIRLOCK_TEST_PG_URL = pg.url;
    console.log(`test: PostgreSQL for tests at ${pg.url}`);
  } catch (e) {
    console.error(`test: cannot start PostgreSQL for the database tests: ${e.message}`);
    process.exit(1);
  }
}
const child = spawn(process.execPath, ['--test', '--test-reporter=spec', '--test-concurrency=2', ...extra, ...files], {
  stdio: 'inherit',
  cwd: root,
  env,
});
// An interrupted run still stops its PostgreSQL cluster and removes its folder.
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    child.kill(sig);
  });
}
const code = await new Promise((resolvePromise) => {
  child.on('exit', (c, sig) => resolvePromise(c ?? (sig ? 1 : 0)));
});
pg?.stop();
process.exit(code);
