#!/usr/bin/env node
// Builds a self-contained release tarball in dist-release/:
//
//   airlock-<version>-linux-<arch>-node<major>.tar.gz   the release (see below)
//   install.sh                                          the installer (also inside the tarball)
//   SHA256SUMS                                          sha256sum(1) format, for both
//
// The tarball holds the compiled packages (dist/ as the tests ran them, tests left out), the
// production node_modules copied from this tree (no network, no rebuild), packs/, guest/
// (agent and jail sources, image recipes), deploy/ (systemd units, config skeletons), docs/
// and install.sh. Not a single bundled file: better-sqlite3 is a native addon that cannot be
// bundled, and the runner, sandbox and web packages find packs/, guest/ and the dashboard
// relative to their own files, so the release keeps the repository layout. The native addon
// ties the tarball to this platform and Node major, which its name says.
//
// Usage: node scripts/release.mjs [--out DIR] [--skip-build]
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { arch } from 'node:os';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(fileURLToPath(import.meta.url), '../..');
const args = process.argv.slice(2);
const outDir = resolve(args.includes('--out') ? args[args.indexOf('--out') + 1] : join(root, 'dist-release'));
const skipBuild = args.includes('--skip-build');

function step(msg) {
  console.log(`[release] ${msg}`);
}
function fail(msg) {
  console.error(`[release] ${msg}`);
  process.exit(1);
}
function run(cmd, argv, opts = {}) {
  const r = spawnSync(cmd, argv, { cwd: root, encoding: 'utf8', ...opts });
  if (r.error) fail(`${cmd}: ${r.error.message}`);
  if (r.status !== 0) fail(`${cmd} ${argv.join(' ')} exited ${r.status}\n${r.stderr ?? ''}`);
  return r.stdout ?? '';
}

const rootPkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const version = rootPkg.version;
const packages = rootPkg.workspaces.map((w) => w.replace(/^packages\//, ''));

// 1. Every package carries the same version as the release, and AIRLOCK_VERSION agrees.
for (const p of packages) {
  const v = JSON.parse(readFileSync(join(root, 'packages', p, 'package.json'), 'utf8')).version;
  if (v !== version) fail(`packages/${p}/package.json has version ${v}, the release is ${version}`);
}

// 2. Build (incremental) unless told the tree is built.
if (!skipBuild) {
  step('building (scripts/ensure.mjs)…');
  run(process.execPath, [join(root, 'scripts', 'ensure.mjs')], { stdio: 'inherit' });
}
const cliVersion = run(process.execPath, [join(root, 'packages/cli/bin/airlock.js'), '--version']).trim();
if (cliVersion !== version) fail(`"airlock --version" prints ${cliVersion}, package.json says ${version}`);

// 3. Each package must be npm-packable, and the CLI's pack must hold its bin and entry.
step('checking that every package packs (npm pack --dry-run)…');
const packed = JSON.parse(run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts', '--workspaces']));
for (const p of packages) {
  const pkg = JSON.parse(readFileSync(join(root, 'packages', p, 'package.json'), 'utf8'));
  const info = packed.find((x) => x.name === pkg.name);
  if (info === undefined) fail(`${pkg.name}: npm pack did not pack it`);
  const files = new Set(info.files.map((f) => f.path));
  for (const bin of Object.values(pkg.bin ?? {})) {
    if (!files.has(bin.replace(/^\.\//, ''))) fail(`${pkg.name}: bin ${bin} is not in its npm pack`);
  }
  const main = (pkg.main ?? '').replace(/^\.\//, '');
  if (main !== '' && !files.has(main)) fail(`${pkg.name}: main ${main} is not in its npm pack`);
  if ([...files].some((f) => /\.test\.js$/.test(f))) fail(`${pkg.name}: its npm pack contains tests`);
}

// 4. Stage the release tree.
const nodeMajor = process.versions.node.split('.')[0];
const name = `airlock-${version}-linux-${arch()}-node${nodeMajor}`;
const stageRoot = join(outDir, '.stage');
const stage = join(stageRoot, `airlock-${version}`);
rmSync(stageRoot, { recursive: true, force: true });
mkdirSync(stage, { recursive: true });

/**
 * Files of a native addon that only its compilation needed: better-sqlite3 ships the SQLite
 * sources (deps/, src/) and node-gyp leaves object files; the addon itself is
 * build/Release/better_sqlite3.node.
 */
function nativeBuildLeftover(pkgRel, fileRel) {
  if (!pkgRel.endsWith(`node_modules${sep}better-sqlite3`)) return false;
  const parts = fileRel.split(sep);
  if (parts[0] === 'deps' || parts[0] === 'src') return true;
  if (parts[0] !== 'build' || parts.length === 1) return false;
  // Keep build/ and build/Release/ themselves and the addon in it; drop the rest of build/.
  if (parts.length === 2) return parts[1] !== 'Release';
  return !(parts.length === 3 && parts[1] === 'Release' && parts[2] === 'better_sqlite3.node');
}

/** Copy a tree, leaving out tests, test support and build caches. */
function copyTree(from, to) {
  cpSync(from, to, {
    recursive: true,
    verbatimSymlinks: true,
    filter: (src) => {
      const rel = relative(from, src);
      const b = basename(src);
      if (/\.test\.(js|d\.ts|js\.map|d\.ts\.map)$/.test(b) || b.endsWith('.tsbuildinfo')) return false;
      if (rel.split(sep).includes('node_modules')) return false;
      // Test support (testing/, e2e/, catalog-tests/, *test-support*) is not part of a product.
      if (['testing', 'e2e', 'catalog-tests'].includes(rel.split(sep)[0] ?? '')) return false;
      if (/test-support/.test(b)) return false;
      return true;
    },
  });
}

step('staging packages (dist, bin, package.json)…');
for (const p of packages) {
  const src = join(root, 'packages', p);
  const dst = join(stage, 'packages', p);
  mkdirSync(dst, { recursive: true });
  copyFileSync(join(src, 'package.json'), join(dst, 'package.json'));
  if (!existsSync(join(src, 'dist'))) fail(`packages/${p}/dist is missing: build first`);
  copyTree(join(src, 'dist'), join(dst, 'dist'));
  for (const extra of ['bin', 'native']) if (existsSync(join(src, extra))) copyTree(join(src, extra), join(dst, extra));
}

step('staging production dependencies (npm ls --omit=dev)…');
const deps = run('npm', ['ls', '--omit=dev', '--all', '--parseable'])
  .split('\n')
  .filter((l) => l.startsWith(join(root, 'node_modules') + sep));
let depCount = 0;
for (const dir of deps) {
  const rel = relative(root, dir);
  const dst = join(stage, rel);
  if (existsSync(dst)) continue;
  const st = statSync(dir);
  if (!st.isDirectory()) continue;
  // Workspace packages are links to packages/<name>: recreate them as relative links.
  const real = resolve(dir);
  const ws = packages.find((p) => rel === join('node_modules', '@airlock', p));
  if (ws !== undefined) {
    mkdirSync(dirname(dst), { recursive: true });
    symlinkSync(relative(dirname(dst), join(stage, 'packages', ws)), dst);
    continue;
  }
  cpSync(real, dst, {
    recursive: true,
    verbatimSymlinks: true,
    // Nested node_modules appear in the list on their own when they are production deps.
    filter: (src) =>
      !relative(real, src).split(sep).includes('node_modules') && !nativeBuildLeftover(rel, relative(real, src)),
  });
  depCount++;
}
step(`  ${depCount} packages`);

step('staging packs/, guest/, deploy/, docs/, install.sh…');
for (const d of ['packs', 'guest', 'deploy', 'docs']) copyTree(join(root, d), join(stage, d));
copyFileSync(join(root, 'scripts', 'install.sh'), join(stage, 'install.sh'));
chmodSync(join(stage, 'install.sh'), 0o755);
copyFileSync(join(root, 'README.md'), join(stage, 'README.md'));
writeFileSync(
  join(stage, 'package.json'),
  `${JSON.stringify(
    {
      name: 'airlock',
      version,
      private: true,
      type: 'module',
      description: rootPkg.description,
      license: rootPkg.license,
      engines: rootPkg.engines,
      bin: { airlock: 'packages/cli/bin/airlock.js' },
    },
    null,
    2,
  )}\n`,
);
writeFileSync(
  join(stage, 'RELEASE'),
  `airlock ${version}\nplatform linux-${arch()}\nnode ${process.versions.node} (modules ABI ${process.versions.modules}; needs Node ${nodeMajor}.x >= ${rootPkg.engines.node.replace('>=', '')})\n`,
);

// 5. Tar it reproducibly (sorted, numeric root owner, fixed mtime) and checksum.
const epoch = (() => {
  if (process.env.SOURCE_DATE_EPOCH) return process.env.SOURCE_DATE_EPOCH;
  const r = spawnSync('git', ['log', '-1', '--format=%ct'], { cwd: root, encoding: 'utf8' });
  return r.status === 0 && r.stdout.trim() !== '' ? r.stdout.trim() : String(Math.floor(Date.now() / 1000));
})();
const tarball = join(outDir, `${name}.tar.gz`);
step(`writing ${relative(root, tarball)}…`);
rmSync(tarball, { force: true });
run('tar', [
  '--sort=name',
  '--owner=0',
  '--group=0',
  '--numeric-owner',
  `--mtime=@${epoch}`,
  '-czf',
  tarball,
  '-C',
  stageRoot,
  `airlock-${version}`,
]);
rmSync(stageRoot, { recursive: true, force: true });
copyFileSync(join(root, 'scripts', 'install.sh'), join(outDir, 'install.sh'));
chmodSync(join(outDir, 'install.sh'), 0o755);

const sha = (f) => createHash('sha256').update(readFileSync(f)).digest('hex');
writeFileSync(
  join(outDir, 'SHA256SUMS'),
  [tarball, join(outDir, 'install.sh')].map((f) => `${sha(f)}  ${basename(f)}\n`).join(''),
);
const mib = (statSync(tarball).size / 2 ** 20).toFixed(1);
step(`done: ${relative(root, tarball)} (${mib} MiB), install.sh, SHA256SUMS`);
step(`install: cd ${relative(process.cwd(), outDir) || '.'} && sudo sh install.sh ${basename(tarball)}`);
