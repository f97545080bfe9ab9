// The release and the installer, end to end: `scripts/release.mjs` builds a tarball,
// `install.sh --root DIR` installs it into a temporary root, the units are checked with
// `systemd-analyze verify` (and their exposure with `systemd-analyze security --offline`),
// the installed release runs a server that `airlock doctor` checks, an upgrade keeps config
// and data, and `--uninstall` / `--purge` remove what they should.
//
// The units are verified as files, not started: this container's PID 1 is not systemd, so
// `systemctl start` cannot run here. `systemd-analyze verify` loads each unit with systemd's
// own parser (unknown or malformed directives, missing executables and bad system-call
// groups are reported), which is the strongest check that works without a running systemd.
import assert from 'node:assert/strict';
import { type SpawnSyncReturns, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  appendFileSync,
  existsSync,
  lstatSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { AIRLOCK_VERSION } from '@airlock/core';
import { repoRoot } from './testing/processes.js';

const UNITS = ['airlock-server', 'airlock-runner', 'airlock-sandbox'] as const;
/** Pinned upper bounds of `systemd-analyze security` exposure (0 best, 10 worst): a unit change that loosens hardening fails here. */
const MAX_EXPOSURE: Record<(typeof UNITS)[number], number> = {
  'airlock-server': 1.5,
  'airlock-runner': 2.0,
  'airlock-sandbox': 4.7,
};
const isRoot = process.getuid?.() === 0;

function sh(
  cmd: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { encoding: 'utf8', cwd: opts.cwd ?? repoRoot, env: opts.env ?? process.env });
}

function sha256(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

function mode(path: string): string {
  return (statSync(path).mode & 0o7777).toString(8).padStart(4, '0');
}

/** uid or gid of a name in the target root's passwd/group file. */
function idIn(root: string, file: 'passwd' | 'group', name: string): number {
  const line = readFileSync(join(root, 'etc', file), 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${name}:`));
  assert.ok(line, `${name} missing from ${file}`);
  return Number(line.split(':')[2]);
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

describe('release tarball and install.sh', () => {
  const work = mkdtempSync(join(tmpdir(), 'airlock-install-'));
  const out = join(work, 'release');
  const root = join(work, 'root');
  let tarball = '';
  const install = (...args: string[]) => sh('sh', [join(out, 'install.sh'), ...args]);

  before(() => {
    const r = sh(process.execPath, [join(repoRoot, 'scripts', 'release.mjs'), '--skip-build', '--out', out]);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    const tars = readdirSync(out).filter((f) => f.endsWith('.tar.gz'));
    assert.equal(tars.length, 1);
    tarball = join(out, tars[0]!);
    sh('mkdir', ['-p', root]);
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  test('the release: named for its platform, checksummed, holding what an install needs', () => {
    assert.match(basename(tarball), new RegExp(`^airlock-${AIRLOCK_VERSION}-linux-[a-z0-9]+-node\\d+\\.tar\\.gz$`));
    const sums = readFileSync(join(out, 'SHA256SUMS'), 'utf8');
    assert.ok(sums.includes(`${sha256(tarball)}  ${basename(tarball)}\n`));
    assert.ok(sums.includes(`${sha256(join(out, 'install.sh'))}  install.sh\n`));
    const list = sh('tar', ['-tzf', tarball]).stdout.split('\n');
    const top = `airlock-${AIRLOCK_VERSION}/`;
    for (const f of [
      'RELEASE',
      'install.sh',
      'packages/cli/bin/airlock.js',
      'packages/cli/dist/main.js',
      'packages/server/dist/index.js',
      'packages/web/dist/app/index.html',
      'node_modules/better-sqlite3/build/Release/better_sqlite3.node',
      'node_modules/@airlock/server',
      'packs/linux-core/pack.yaml',
      'guest/kernel.json',
      'guest/agent/',
      'deploy/systemd/airlock-server.service',
      'deploy/config/server.env',
      'docs/operations.md',
    ]) {
      assert.ok(list.includes(top + f), `${f} missing from the release`);
    }
    assert.deepEqual(
      list.filter((f) => f.startsWith(`${top}packages/`) && /\.test\.js$|\/dist\/testing\//.test(f)),
      [],
      'no airlock tests in the release',
    );
    assert.equal(list.filter((f) => f.includes('better-sqlite3/deps/')).length, 0, 'no SQLite sources');
    assert.equal(
      list.filter((f) => /node_modules\/(typescript|@biomejs|fast-check)\//.test(f)).length,
      0,
      'no dev deps',
    );
  });

  test('shellcheck finds nothing in install.sh', () => {
    const r = sh('shellcheck', [join(repoRoot, 'scripts', 'install.sh')]);
    assert.ok(r.error === undefined, 'shellcheck is installed by scripts/system-deps.mjs');
    assert.equal(r.status, 0, r.stdout);
  });

  test('a tarball whose checksum does not match is refused and nothing is installed', () => {
    const bad = join(work, 'tampered', basename(tarball));
    sh('mkdir', ['-p', join(work, 'tampered')]);
    writeFileSync(bad, readFileSync(tarball));
    appendFileSync(bad, 'x');
    writeFileSync(join(work, 'tampered', 'SHA256SUMS'), readFileSync(join(out, 'SHA256SUMS')));
    const r = install('--root', root, bad);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /SHA-256 mismatch/);
    assert.deepEqual(readdirSync(root), []);
    const none = install('--root', root, '--sha256', '0'.repeat(64), tarball);
    assert.match(none.stderr, /SHA-256 mismatch/);
  });

  test('install into a temporary root: files, users, permissions, units that systemd accepts', async () => {
    const r = install('--root', root, tarball);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /checksum ok/);
    const current = join(root, 'opt/airlock/current');
    assert.equal(readlinkSync(current), `releases/${AIRLOCK_VERSION}`);
    assert.equal(readlinkSync(join(root, 'usr/local/bin/airlock')), '/opt/airlock/current/packages/cli/bin/airlock.js');
    const version = sh(process.execPath, [join(current, 'packages/cli/bin/airlock.js'), '--version']);
    assert.equal(version.stdout.trim(), AIRLOCK_VERSION);

    // The packs arrive byte for byte: their content hashes (what trust is decided on) are unchanged.
    const cli = join(repoRoot, 'packages/cli/bin/airlock.js');
    for (const pack of readdirSync(join(repoRoot, 'packs')).filter((p) =>
      existsSync(join(repoRoot, 'packs', p, 'pack.yaml')),
    )) {
      const here = sh(process.execPath, [cli, 'pack', 'hash', join(repoRoot, 'packs', pack)]).stdout;
      const there = sh(process.execPath, [cli, 'pack', 'hash', join(current, 'packs', pack)]).stdout;
      assert.equal(there, here, `pack ${pack}`);
    }

    // Users from sysusers.d, in the target's own passwd.
    const airlock = idIn(root, 'passwd', 'airlock');
    const runner = idIn(root, 'passwd', 'airlock-runner');
    assert.notEqual(airlock, runner);

    const expected: [string, string, number, number][] = [
      ['etc/airlock/server.env', '0640', 0, idIn(root, 'group', 'airlock')],
      ['etc/airlock/runner.env', '0640', 0, idIn(root, 'group', 'airlock-runner')],
      ['etc/airlock/runner.yaml', '0640', 0, idIn(root, 'group', 'airlock-runner')],
      ['etc/airlock/sandbox.env', '0600', 0, 0],
      ['var/lib/airlock/server', '0700', airlock, idIn(root, 'group', 'airlock')],
      ['var/lib/airlock/runner', '0700', runner, idIn(root, 'group', 'airlock-runner')],
      ['var/lib/airlock/sandbox', '0700', 0, 0],
      ...UNITS.map((u): [string, string, number, number] => [`etc/systemd/system/${u}.service`, '0644', 0, 0]),
    ];
    for (const [path, m, uid, gid] of expected) {
      const full = join(root, path);
      assert.equal(mode(full), m, path);
      if (isRoot) assert.deepEqual([statSync(full).uid, statSync(full).gid], [uid, gid], `${path} owner`);
    }

    for (const u of UNITS) {
      const file = join(root, 'etc/systemd/system', `${u}.service`);
      const text = readFileSync(file, 'utf8');
      assert.doesNotMatch(text, /@NODE@|@PREFIX@/);
      assert.match(
        text,
        new RegExp(`^ExecStart=${process.execPath} /opt/airlock/current/packages/cli/bin/airlock\\.js `, 'm'),
      );
      for (const d of [
        'NoNewPrivileges=yes',
        'ProtectSystem=strict',
        'ProtectHome=yes',
        'PrivateTmp=yes',
        'ProtectKernelTunables=yes',
        'ProtectKernelModules=yes',
        'Restart=on-failure',
        'StartLimitIntervalSec=300',
        'StartLimitBurst=5',
      ]) {
        assert.match(text, new RegExp(`^${d}$`, 'm'), `${u}: ${d}`);
      }
      assert.match(text, /^SystemCallFilter=@system-service/m, `${u}: SystemCallFilter`);
      assert.match(text, /^RestrictNamespaces=/m, `${u}: RestrictNamespaces`);

      // systemd's own parser: warnings (unknown directive, bad value) go to stderr with status 0.
      const v = sh('systemd-analyze', ['verify', file]);
      assert.ok(v.error === undefined, 'systemd-analyze is installed by scripts/system-deps.mjs');
      assert.equal(v.status, 0, `${u}: ${v.stderr}`);
      assert.equal(v.stderr.trim(), '', `${u}: systemd-analyze verify warned:\n${v.stderr}`);
      const sec = sh('systemd-analyze', ['security', '--offline=yes', file]);
      const level = Number(/Overall exposure level for [^:]+: ([\d.]+)/.exec(sec.stdout + sec.stderr)?.[1]);
      assert.ok(level <= MAX_EXPOSURE[u], `${u}: exposure ${level} > ${MAX_EXPOSURE[u]}`);
    }
    // A unit whose hardening is broken is caught by the same check (the check is real).
    const broken = join(work, 'broken.service');
    writeFileSync(
      broken,
      readFileSync(join(root, 'etc/systemd/system/airlock-server.service'), 'utf8').replace(
        'ProtectSystem=strict',
        'ProtectSystem=sometimes',
      ),
    );
    assert.match(sh('systemd-analyze', ['verify', broken]).stderr, /protect system value/i);
  });

  test('the installed release runs: a server from the installed config, checked by airlock doctor', async () => {
    const current = join(root, 'opt/airlock/current');
    const env: NodeJS.ProcessEnv = {
      PATH: process.env['PATH'],
      AIRLOCK_HOME: join(root, 'var/lib/airlock/server'),
      AIRLOCK_LISTEN: `127.0.0.1:${await freePort()}`,
      AIRLOCK_LOG_LEVEL: 'warn',
    };
    const server = spawn(process.execPath, [join(current, 'packages/cli/bin/airlock.js'), 'server'], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let log = '';
    server.stderr.on('data', (d: Buffer) => {
      log += d.toString();
    });
    try {
      const deadline = Date.now() + 60_000;
      while (!/listening on (\S+)/.test(log) && Date.now() < deadline && server.exitCode === null) {
        await new Promise((r) => setTimeout(r, 100));
      }
      const url = /listening on (\S+)/.exec(log)?.[1];
      assert.ok(url, log);
      const ready = await fetch(`${url}/readyz`);
      assert.equal(ready.status, 200);
      const doctor = sh(
        process.execPath,
        [join(current, 'packages/cli/bin/airlock.js'), 'doctor', '--only', 'server', '--json'],
        { env: { ...env, AIRLOCK_SERVER: url } },
      );
      const report = JSON.parse(doctor.stdout) as { ok: boolean; checks: { check: string; status: string }[] };
      assert.equal(doctor.status, 0, doctor.stdout);
      assert.deepEqual(
        report.checks
          .filter((c) => ['database', 'server', 'server ready', 'clock'].includes(c.check))
          .map((c) => c.status),
        ['ok', 'ok', 'ok', 'ok'],
      );
    } finally {
      server.kill('SIGTERM');
      await new Promise((r) => server.once('exit', r));
    }
  });

  test('upgrade in place keeps configuration and data, keeps the previous release for rollback', () => {
    // An operator's edit and some data.
    appendFileSync(join(root, 'etc/airlock/server.env'), 'AIRLOCK_PUBLIC_URL=https://airlock.example.com\n');
    writeFileSync(join(root, 'var/lib/airlock/server/keep-me'), 'data');

    // A "next version" of the same release: the version lives in RELEASE and the folder name.
    const next = '99.0.0';
    const unpack = join(work, 'next');
    sh('mkdir', ['-p', unpack]);
    assert.equal(sh('tar', ['-xzf', tarball, '-C', unpack]).status, 0);
    renameSync(join(unpack, `airlock-${AIRLOCK_VERSION}`), join(unpack, `airlock-${next}`));
    const rel = join(unpack, `airlock-${next}`, 'RELEASE');
    writeFileSync(rel, readFileSync(rel, 'utf8').replace(`airlock ${AIRLOCK_VERSION}`, `airlock ${next}`));
    const nextTar = join(unpack, `airlock-${next}.tar.gz`);
    assert.equal(sh('tar', ['-czf', nextTar, '-C', unpack, `airlock-${next}`]).status, 0);

    const r = install('--root', root, '--sha256', sha256(nextTar), nextTar);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`upgraded ${AIRLOCK_VERSION} -> ${next}`));
    assert.equal(readlinkSync(join(root, 'opt/airlock/current')), `releases/${next}`);
    assert.ok(existsSync(join(root, 'opt/airlock/releases', AIRLOCK_VERSION)), 'previous release kept');
    assert.match(readFileSync(join(root, 'etc/airlock/server.env'), 'utf8'), /airlock\.example\.com/);
    assert.equal(readFileSync(join(root, 'var/lib/airlock/server/keep-me'), 'utf8'), 'data');
    // The default did not change between the releases: no .dist noise.
    assert.ok(!existsSync(join(root, 'etc/airlock/server.env.dist')));
    assert.equal(mode(join(root, 'etc/airlock/server.env')), '0640');
  });

  test('--uninstall keeps configuration and data; --purge removes them and the users', () => {
    const r = install('--root', root, '--uninstall');
    assert.equal(r.status, 0, r.stdout + r.stderr);
    for (const gone of ['opt/airlock', 'usr/local/bin/airlock', 'usr/lib/sysusers.d/airlock.conf']) {
      assert.ok(!existsSync(join(root, gone)) && !isLink(join(root, gone)), `${gone} removed`);
    }
    for (const u of UNITS) assert.ok(!existsSync(join(root, 'etc/systemd/system', `${u}.service`)));
    assert.ok(existsSync(join(root, 'etc/airlock/server.env')));
    assert.ok(existsSync(join(root, 'var/lib/airlock/server/keep-me')));
    assert.match(readFileSync(join(root, 'etc/passwd'), 'utf8'), /^airlock:/m);

    const p = install('--root', root, '--uninstall', '--purge');
    assert.equal(p.status, 0, p.stdout + p.stderr);
    assert.ok(!existsSync(join(root, 'etc/airlock')));
    assert.ok(!existsSync(join(root, 'var/lib/airlock')));
    assert.doesNotMatch(readFileSync(join(root, 'etc/passwd'), 'utf8'), /^airlock/m);
    assert.doesNotMatch(readFileSync(join(root, 'etc/group'), 'utf8'), /^airlock/m);
  });
});

function isLink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}
