import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer as netServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { defaultRunnerConfig, startRunner } from '@airlock/runner';
import { ensureLocalRunnerToken } from '@airlock/server';
import { mintTestKey, ownerId, startTestServer } from '@airlock/server/testing';
import { airlockBin } from '../testing/processes.js';
import type { CheckResult, DoctorContext } from './check.js';
import { checkApiKey, checkRunnerToken } from './credentials.js';
import { checkDatabase } from './database.js';
import { clockSkewSeconds } from './http-probe.js';
import { checkNode } from './node-version.js';
import { checkPacks } from './packs.js';
import { runDoctor } from './run-doctor.js';
import { checkServer } from './server.js';

/** A loopback port with nothing listening on it. */
async function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const s = netServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

function context(home: string, url: string, env: NodeJS.ProcessEnv = {}): DoctorContext {
  return {
    env: { AIRLOCK_HOME: home, ...env },
    home,
    server: { url, configured: true, source: 'test' },
    skew: { warnSeconds: 5, failSeconds: 60 },
    timeoutMs: 3000,
    probeKvm: false,
  };
}

function byName(results: readonly CheckResult[], name: string): CheckResult {
  const r = results.find((x) => x.check === name);
  assert.ok(r, `no ${name} check in ${results.map((x) => x.check).join(', ')}`);
  return r;
}

describe('doctor checks', () => {
  test('clock skew from a one-second Date header', () => {
    const t = Date.parse('2026-01-01T00:00:10.000Z');
    const date = new Date(t).toUTCString();
    assert.equal(clockSkewSeconds(date, t + 200, t + 300), 0); // server 10.x, local 10.2–10.3: in step
    assert.equal(clockSkewSeconds(date, t + 30_000, t + 30_100), -29); // local 30 s ahead
    assert.equal(clockSkewSeconds(date, t - 20_000, t - 19_900), 19.9); // local ~20 s behind
    assert.equal(clockSkewSeconds('not a date', 0, 1), undefined);
  });

  test('node version', () => {
    assert.equal(checkNode('20.19.0').status, 'ok');
    assert.equal(checkNode('22.1.0').status, 'ok');
    assert.equal(checkNode('20.11.1').status, 'fail');
  });

  test('a live server: reachable, ready, in step, runner token and API key accepted, packs trusted or pending', async () => {
    const home = mkdtempSync(join(tmpdir(), 'airlock-doctor-'));
    const srv = await startTestServer(join(home, 'airlock.db'), home);
    const env = { AIRLOCK_HOME: home };
    const config = { ...defaultRunnerConfig(env), name: 'doctor-host' };
    const tokenFile = join(home, 'runner', 'token');
    const token = await ensureLocalRunnerToken(srv.server, 'doctor-host', tokenFile);
    // A live runner with this token: the doctor's check must not displace its session.
    const runner = startRunner({ config, serverUrl: srv.url, token, logger: () => {} });
    after(async () => {
      runner.stop();
      await srv.stop();
      rmSync(home, { recursive: true, force: true });
    });
    for (let i = 0; i < 200 && !runner.client.connected; i++) await new Promise((r) => setTimeout(r, 25));
    assert.ok(runner.client.connected);
    const connects = async () =>
      (await srv.server.ctx.db.kysely.selectFrom('audit_events').select('kind').execute()).filter(
        (e) => e.kind === 'runner.connected',
      ).length;
    const before = await connects();

    const ctx = context(home, srv.url);
    const { results, reach } = await checkServer(ctx);
    assert.deepEqual(
      results.map((r) => [r.check, r.status]),
      [
        ['server', 'ok'],
        ['server ready', 'ok'],
        ['clock', 'ok'],
      ],
    );
    const tokenCheck = await checkRunnerToken(ctx, config, reach);
    assert.equal(tokenCheck.status, 'ok', tokenCheck.detail);
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(runner.client.connected, 'the runner session survived the check');
    assert.equal(await connects(), before, 'no new runner session was opened');

    // The API key reads the server's pack decisions; the bundled packs were seen by the hello.
    const key = await mintTestKey(
      srv.server.ctx.db,
      srv.server.bootstrap.orgId,
      await ownerId(srv.server.ctx.db, srv.server.bootstrap.orgId),
      ['packs:read'],
    );
    const k = await checkApiKey(context(home, srv.url, { AIRLOCK_API_KEY: key }), reach);
    assert.equal(k.result?.status, 'ok');
    const packs = checkPacks(config, k.packs);
    assert.equal(packs.at(-1)?.status, 'warn', 'untrusted bundled packs wait for review');
    assert.match(packs.at(-1)?.detail ?? '', /waiting for trust.*linux-core \(pending\)/);
    const bad = await checkApiKey(context(home, srv.url, { AIRLOCK_API_KEY: 'alk_nope_nope' }), reach);
    assert.equal(bad.result?.status, 'fail');

    // A token file others can read is a failure, whatever the server says.
    chmodSync(tokenFile, 0o644);
    assert.equal((await checkRunnerToken(ctx, config, reach)).status, 'fail');
    chmodSync(tokenFile, 0o600);

    // Revoked on the server: refused.
    await srv.server.ctx.db.kysely.updateTable('runners').set({ token_hash: null, status: 'revoked' }).execute();
    const revoked = await checkRunnerToken(ctx, config, reach);
    assert.equal(revoked.status, 'fail');
    assert.match(revoked.detail, /refused/);
  });

  test('a database that cannot be reached fails without printing its password', async () => {
    const home = mkdtempSync(join(tmpdir(), 'airlock-doctor-'));
    after(() => rmSync(home, { recursive: true, force: true }));
    const port = await closedPort();
    const url = `postgres://airlock:s3cret-pw@127.0.0.1:${port}/airlock`;
    const r = await checkDatabase(context(home, 'http://127.0.0.1:1', { DATABASE_URL: url }));
    assert.equal(r.status, 'fail');
    assert.match(r.detail, /ECONNREFUSED|connect/);
    assert.doesNotMatch(JSON.stringify(r), /s3cret-pw/);
    // No SQLite file yet: a warning (the server creates it), not a failure.
    assert.equal((await checkDatabase(context(home, 'http://127.0.0.1:1'))).status, 'warn');
  });

  test('a real PostgreSQL is reachable and its pending migrations are listed', async () => {
    const admin = process.env['AIRLOCK_TEST_PG_URL'];
    assert.ok(admin, 'AIRLOCK_TEST_PG_URL is set by scripts/test.mjs');
    const home = mkdtempSync(join(tmpdir(), 'airlock-doctor-'));
    after(() => rmSync(home, { recursive: true, force: true }));
    // The admin database has never been migrated by airlock: reachable, every migration pending.
    const r = await checkDatabase(context(home, 'http://127.0.0.1:1', { DATABASE_URL: admin }));
    assert.equal(r.status, 'warn', r.detail);
    assert.match(r.detail, /reachable; \d+ migration\(s\) pending \(0001-initial/);
  });

  test('runDoctor on a host whose configured server is down fails', async () => {
    const home = mkdtempSync(join(tmpdir(), 'airlock-doctor-'));
    after(() => rmSync(home, { recursive: true, force: true }));
    const results = await runDoctor(context(home, `http://127.0.0.1:${await closedPort()}`), {
      server: true,
      runner: true,
      sandbox: false,
    });
    assert.equal(byName(results, 'node').status, 'ok');
    assert.equal(byName(results, 'server').status, 'fail');
    assert.equal(byName(results, 'runner token').status, 'warn');
  });
});

describe('airlock doctor (command)', () => {
  function run(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      execFile(process.execPath, [airlockBin, ...args], { env: { ...process.env, ...env } }, (err, stdout, stderr) =>
        resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr }),
      );
    });
  }

  test('--json, exit 1 on a failure, invalid configuration named by its key, secrets redacted', async () => {
    const home = mkdtempSync(join(tmpdir(), 'airlock-doctor-'));
    after(() => rmSync(home, { recursive: true, force: true }));
    const port = await closedPort();
    const r = await run(['doctor', '--json', '--only', 'server,runner', '--timeout', '3'], {
      AIRLOCK_HOME: home,
      AIRLOCK_SERVER: `http://127.0.0.1:${port}`,
      AIRLOCK_RUNNER_CONFIG: '',
      DATABASE_URL: `postgres://airlock:s3cret-pw@127.0.0.1:${port}/airlock`,
      AIRLOCK_LOG_LEVEL: 'chatty',
    });
    assert.equal(r.code, 1, r.stderr);
    assert.doesNotMatch(r.stdout + r.stderr, /s3cret-pw/);
    const report = JSON.parse(r.stdout) as { ok: boolean; checks: CheckResult[] };
    assert.equal(report.ok, false);
    assert.equal(byName(report.checks, 'server').status, 'fail');
    assert.equal(byName(report.checks, 'database').status, 'fail');
    const cfg = byName(report.checks, 'server config');
    assert.equal(cfg.status, 'fail');
    assert.match(cfg.detail, /^AIRLOCK_LOG_LEVEL: /);

    const human = await run(['doctor', '--only', 'runner', '--timeout', '3'], {
      AIRLOCK_HOME: home,
      AIRLOCK_SERVER: `http://127.0.0.1:${port}`,
      AIRLOCK_RUNNER_CONFIG: '',
    });
    assert.equal(human.code, 1);
    assert.match(human.stdout, /^FAIL {2}server +http:\/\/127\.0\.0\.1:\d+ \(AIRLOCK_SERVER\): connect ECONNREFUSED/m);
    assert.match(human.stdout, /fix: start the control plane/);
  });
});
