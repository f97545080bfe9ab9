// Acceptance: every postgres.* action runs through the engine against a real PostgreSQL 15
// started here on a loopback port, in a temp cluster owned by the postgres user (the
// server refuses to run as root). A second session holds a lock and a third waits on it,
// so the lock and blocking reports have something to show.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { verifyLogFile } from '../security-log.js';
import { type TestRunner, testRunner } from '../testing/fixture.js';
import { freePort } from '../testing/free-port.js';
import {
  captureOutput,
  describeRun,
  packsDir,
  pollUntil,
  type Ran,
  requireBinaries,
  runAction,
  sh,
  stopChild,
  stopPid,
} from './support.js';

const PG_BIN = '/usr/lib/postgresql/15/bin';
const INITDB = join(PG_BIN, 'initdb');
const POSTGRES = join(PG_BIN, 'postgres');

describe('postgres pack against a real PostgreSQL 15', () => {
  let r: TestRunner;
  let dir = '';
  let data = '';
  let port = 0;
  let server: ChildProcess | undefined;
  let serverLog: () => string = () => '';
  let blocker: ChildProcess | undefined;
  let waiter: ChildProcess | undefined;
  let attempts = 0;
  const covered = new Set<string>();

  const psql = (db: string, sql: string): string =>
    sh('psql', [
      '-X',
      '-A',
      '-t',
      '-v',
      'ON_ERROR_STOP=1',
      '-h',
      '127.0.0.1',
      '-p',
      String(port),
      '-U',
      'postgres',
      '-d',
      db,
      '-c',
      sql,
    ]);

  const conn = (database = 'shop'): Record<string, unknown> => ({
    host: '127.0.0.1',
    port,
    user: 'postgres',
    database,
  });

  const run = async (action: string, args: Record<string, unknown>): Promise<Ran> => {
    const ran = await runAction(r, action, args);
    attempts++;
    covered.add(action);
    assert.equal(ran.res.status, 'success', `${describeRun(ran)}\n--- server log ---\n${serverLog()}`);
    assert.equal(ran.res.exitCode, 0);
    return ran;
  };

  before(async () => {
    if (process.getuid?.() !== 0)
      throw new Error('postgres tests start a cluster as the postgres user and need root (runuser)');
    requireBinaries('postgres pack test', [INITDB, POSTGRES, 'runuser', 'psql', 'pg_isready', 'vacuumdb']);
    const uid = Number(sh('id', ['-u', 'postgres']).trim());
    const gid = Number(sh('id', ['-g', 'postgres']).trim());
    dir = mkdtempSync(join(tmpdir(), 'airlock-pg-'));
    chownSync(dir, uid, gid);
    data = join(dir, 'data');
    sh(
      'runuser',
      [
        '-u',
        'postgres',
        '--',
        INITDB,
        '-D',
        data,
        '-A',
        'trust',
        '-U',
        'postgres',
        '-E',
        'UTF8',
        '--locale=C',
        '--no-sync',
      ],
      { cwd: dir },
    );
    port = await freePort();
    server = spawn(
      'runuser',
      [
        '-u',
        'postgres',
        '--',
        POSTGRES,
        '-D',
        data,
        '-k',
        dir,
        '-p',
        String(port),
        '-c',
        'listen_addresses=127.0.0.1',
        '-c',
        'fsync=off',
      ],
      { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    serverLog = captureOutput(server);
    await pollUntil(
      () => {
        if (server?.exitCode !== null) throw new Error(`postgres exited: ${serverLog()}`);
        sh('pg_isready', ['-h', '127.0.0.1', '-p', String(port), '-t', '1']);
        return true;
      },
      20_000,
      'pg_isready',
      150,
    );
    psql('postgres', 'CREATE DATABASE shop');
    psql('shop', 'CREATE TABLE orders (id serial PRIMARY KEY, item text NOT NULL, qty int NOT NULL)');
    psql('shop', "INSERT INTO orders (item, qty) SELECT 'item-' || g, g % 7 FROM generate_series(1, 3000) g");
    psql('shop', 'DELETE FROM orders WHERE id % 3 = 0'); // dead tuples for vacuum_stats / vacuum_analyze
    psql('postgres', "SELECT pg_create_physical_replication_slot('airlock_test_slot', true)");
    r = testRunner([packsDir]);
  });

  after(async () => {
    // Robust teardown, whatever failed above: end the lock sessions, stop the server, remove the cluster.
    blocker?.stdin?.end();
    await stopChild(blocker, 'SIGTERM', 3000);
    await stopChild(waiter, 'SIGTERM', 3000);
    let pmPid: number | undefined;
    try {
      if (data !== '') pmPid = Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
    } catch {
      pmPid = undefined; // never started
    }
    await stopPid(pmPid, 'SIGINT', 10_000); // fast shutdown
    await stopChild(server, 'SIGTERM', 3000);
    r?.cleanup();
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  test('ping: pg_isready says accepting connections', async () => {
    const ran = await run('postgres.ping', { host: '127.0.0.1', port });
    assert.match(ran.stdout, new RegExp(`127\\.0\\.0\\.1:${port} - accepting connections`));
  });

  test('read-only reports on an idle server', async () => {
    let ran = await run('postgres.connections', conn());
    assert.match(ran.stdout, /^max_connections\treserved\ttotal$/m);
    assert.match(ran.stdout, /^\d+\t\d+\t\d+$/m);

    ran = await run('postgres.database_sizes', conn('postgres'));
    assert.match(ran.stdout, /^datname\tsize\tbytes$/m);
    assert.match(ran.stdout, /^shop\t/m);

    ran = await run('postgres.table_sizes', conn());
    assert.match(ran.stdout, /^public\.orders\t\d+ kB\t/m);

    ran = await run('postgres.settings', conn());
    assert.match(ran.stdout, new RegExp(`^port\\t${port}\\t\\tcommand line\\tf$`, 'm'));
    assert.match(ran.stdout, /^listen_addresses\t127\.0\.0\.1\t/m);

    ran = await run('postgres.replication_lag', conn());
    assert.match(ran.stdout, /^in_recovery\treceive_lsn\treplay_lsn\treplay_delay$/m);
    assert.match(ran.stdout, /^f\t\t\t$/m); // a primary, no standby
    assert.match(ran.stdout, /^application_name\tclient_addr\tstate/m);

    ran = await run('postgres.replication_slots', conn());
    assert.match(ran.stdout, /^airlock_test_slot\tphysical\t\tf\treserved\t/m);

    ran = await run('postgres.vacuum_stats', conn());
    assert.match(ran.stdout, /^table_name\tn_live_tup\tn_dead_tup\tdead_pct/m);
    assert.match(ran.stdout, /^public\.orders\t/m);
  });

  test('sessions, locks and blockers while one session blocks another', async () => {
    blocker = spawn('psql', ['-X', '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', 'shop'], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const blockerOut = captureOutput(blocker);
    blocker.stdin?.write("BEGIN;\nLOCK TABLE orders IN ACCESS EXCLUSIVE MODE;\nSELECT 'airlock-lock-held';\n");
    await pollUntil(() => blockerOut().includes('airlock-lock-held'), 10_000, 'the blocker to take its lock');
    waiter = spawn(
      'psql',
      [
        '-X',
        '-h',
        '127.0.0.1',
        '-p',
        String(port),
        '-U',
        'postgres',
        '-d',
        'shop',
        '-c',
        'SELECT count(*) /* airlock-waiter */ FROM orders',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    await pollUntil(
      () => psql('shop', 'SELECT count(*) FROM pg_locks WHERE NOT granted').trim() !== '0',
      10_000,
      'the waiter to wait',
    );

    let ran = await run('postgres.activity', conn());
    assert.match(ran.stdout, /^pid\tusename\tdatname\tapplication_name/m);
    assert.match(ran.stdout, /airlock-waiter/);
    assert.match(ran.stdout, /idle in transaction/);

    ran = await run('postgres.blocking', conn());
    const line = ran.stdout.split('\n').find((l) => l.includes('airlock-waiter'));
    assert.ok(line !== undefined, describeRun(ran));
    assert.match(line, /\{\d+\}/); // blocked_by: the blocker's pid
    assert.match(line, /airlock-lock-held/); // the blocker's last query

    ran = await run('postgres.locks', conn());
    assert.match(ran.stdout, /\trelation\torders\t\tAccessExclusiveLock\tt\t/);
    assert.match(ran.stdout, /\trelation\torders\t\tAccessShareLock\tf\t/);

    ran = await run('postgres.slow_queries', conn());
    assert.match(ran.stdout, /airlock-waiter/);
    assert.match(ran.stdout, /idle in transaction/);

    // Release: the blocker rolls back, the waiter finishes.
    const waiterDone = new Promise<number | null>((res) => waiter!.once('exit', (code) => res(code)));
    blocker.stdin?.end();
    assert.equal(await waiterDone, 0);
  });

  test('vacuum_analyze of the table, then vacuum_stats shows it', async () => {
    const ran = await run('postgres.vacuum_analyze', { ...conn(), table: 'public.orders', verbose: true });
    assert.match(ran.all, /vacuuming database "shop"/);
    assert.match(ran.all, /INFO:\s+vacuuming "shop\.public\.orders"/);
    await pollUntil(
      () =>
        psql(
          'shop',
          "SELECT last_vacuum IS NOT NULL AND last_analyze IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'orders'",
        ).trim() === 't',
      5000,
      'the vacuum to show in pg_stat_user_tables',
    );
    const stats = await run('postgres.vacuum_stats', conn());
    const row = stats.stdout.split('\n').find((l) => l.startsWith('public.orders\t'));
    assert.ok(row !== undefined, describeRun(stats));
    const cols = row.split('\t');
    assert.equal(cols[1], '2000', `n_live_tup: ${row}`);
    assert.equal(cols[2], '0', `n_dead_tup after vacuum: ${row}`);
    assert.match(cols[4] ?? '', /^\d{4}-\d\d-\d\d /, `last_vacuum: ${row}`);
  });

  test('every postgres.* action ran, and the security log verifies', () => {
    const all = r.catalog.findPack('postgres')!.pack.actions.map((a) => a.id);
    assert.deepEqual(
      all.filter((id) => !covered.has(id)),
      [],
    );
    const v = verifyLogFile(r.config.logPath);
    assert.equal(v.ok, true, JSON.stringify(v));
    assert.equal(readFileSync(r.config.logPath, 'utf8').trim().split('\n').length, attempts);
    assert.ok(existsSync(data));
  });
});
