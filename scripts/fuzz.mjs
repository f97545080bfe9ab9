#!/usr/bin/env node
// The long fuzzing run (`npm run fuzz`). `npm test` runs the same fuzzers briefly with a fixed
// seed; this runs them longer:
//   - the property-based fuzzers (fast-check): every compiled `*.fuzz.test.js` (pack YAML,
//     argument validation + argv templating, wire frames, HTTP bodies at every route) and the
//     OAuth parameter fuzzers in packages/server/dist/security/oauth.test.js, with
//     AIRLOCK_FUZZ_SCALE times the runs (SQLite and a throwaway PostgreSQL);
//   - the libFuzzer target for the guest protocol (guest/agent/fuzz_proto.c, ASan + UBSan) for
//     AIRLOCK_FUZZ_SECONDS, through the sandbox package's test that builds and runs it.
// Usage: node scripts/fuzz.mjs [--scale N] [--seed N|random] [--seconds S] [--only ts|c]
// A failing property prints its seed and counterexample; re-run with that --seed to replay.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startPgCluster } from './pg-cluster.mjs';

const root = resolve(fileURLToPath(import.meta.url), '../..');
const HELP = `usage: node scripts/fuzz.mjs [--scale N] [--seed N|random] [--seconds S] [--only ts|c]
  --scale N      property runs = N × the CI count (default 50)
  --seed N       fast-check seed (default: the fixed CI seed); "random" picks one and prints it
  --seconds S    libFuzzer time for the guest protocol (default 300)
  --only ts|c    only the TypeScript property fuzzers, or only the C fuzzer`;

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = process.argv[i + 1];
  if (v === undefined || v.startsWith('--')) {
    console.error(`fuzz: --${name} needs a value\n${HELP}`);
    process.exit(2);
  }
  return v;
}
if (process.argv.includes('--help') || process.argv.includes('-h')) {
  console.log(HELP);
  process.exit(0);
}
const scale = Number(option('scale', '50'));
const seconds = Number(option('seconds', '300'));
const seedOpt = option('seed', undefined);
const only = option('only', undefined);
if (!(scale > 0) || !(seconds > 0) || (only !== undefined && !['ts', 'c'].includes(only))) {
  console.error(`fuzz: bad option\n${HELP}`);
  process.exit(2);
}
const seed = seedOpt === 'random' ? Math.floor(Math.random() * 2 ** 31) : seedOpt;
if (seed !== undefined && !Number.isInteger(Number(seed))) {
  console.error('fuzz: --seed must be an integer or "random"');
  process.exit(2);
}

function collect(dir, test, out = []) {
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir)) {
    const full = join(dir, name);
    if (statSync(full).isDirectory()) collect(full, test, out);
    else if (test(full)) out.push(full);
  }
  return out;
}

function run(files, env, label) {
  console.log(`fuzz: ${label}: ${files.length} files`);
  const child = spawn(process.execPath, ['--test', '--test-reporter=spec', '--test-concurrency=1', ...files], {
    stdio: 'inherit',
    cwd: root,
    env,
  });
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => child.kill(sig));
  return new Promise((res) => child.on('exit', (code, sig) => res(code ?? (sig ? 1 : 0))));
}

const pkgs = join(root, 'packages');
let failed = false;
if (only !== 'c') {
  const files = collect(
    pkgs,
    (f) => f.includes('/dist/') && (f.endsWith('.fuzz.test.js') || f.endsWith('/dist/security/oauth.test.js')),
  ).sort();
  if (files.length === 0) {
    console.error('fuzz: no compiled fuzz tests found; run "npm run build" first');
    process.exit(1);
  }
  const env = { ...process.env, AIRLOCK_REPO_ROOT: root, AIRLOCK_FUZZ_SCALE: String(scale) };
  if (seed !== undefined) env.AIRLOCK_FUZZ_SEED = String(seed);
  console.log(`fuzz: scale ${scale}, seed ${seed ?? '(fixed CI seed)'}`);
  let pg;
  if (files.some((f) => f.includes('/server/')) && env.AIRLOCK_TEST_PG_URL === undefined) {
    pg = await startPgCluster();
    env.AIRLOCK_TEST_PG_URL = pg.url;
  }
  try {
    if ((await run(files, env, 'property fuzzers')) !== 0) failed = true;
  } finally {
    pg?.stop();
  }
}
if (only !== 'ts') {
  const agent = join(pkgs, 'sandbox', 'dist', 'guest', 'agent.test.js');
  if (!existsSync(agent)) {
    console.error('fuzz: packages/sandbox is not built; skipping the guest protocol fuzzer');
    failed = true;
  } else {
    const env = { ...process.env, AIRLOCK_REPO_ROOT: root, AIRLOCK_FUZZ_SECONDS: String(seconds) };
    console.log(
      `fuzz: guest protocol libFuzzer for ${seconds} s (skipped by the test when clang/libFuzzer is missing)`,
    );
    const code = await run(
      [`--test-name-pattern=libFuzzer`, `--test-timeout=${(seconds + 300) * 1000}`, agent],
      env,
      'C fuzzer',
    );
    if (code !== 0) failed = true;
  }
}
process.exit(failed ? 1 : 0);
