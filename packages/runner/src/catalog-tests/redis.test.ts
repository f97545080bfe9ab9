// Acceptance: every redis.* action runs through the engine against a real redis-server
// started here on a loopback port (no persistence), seeded with keys of several types, a
// slow log (every command is logged) and one recorded latency event.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { verifyLogFile } from '../security-log.js';
import { type TestRunner, tempDir, testRunner } from '../testing/fixture.js';
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
} from './support.js';

describe('redis pack against a real redis-server', () => {
  let r: TestRunner;
  let t: ReturnType<typeof tempDir> | undefined;
  let port = 0;
  let server: ChildProcess | undefined;
  let serverLog: () => string = () => '';
  let attempts = 0;
  const covered = new Set<string>();

  const cli = (...args: string[]): string => sh('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args]);

  const run = async (action: string, args: Record<string, unknown> = {}): Promise<Ran> => {
    const ran = await runAction(r, action, { host: '127.0.0.1', port, ...args });
    attempts++;
    covered.add(action);
    assert.equal(ran.res.status, 'success', `${describeRun(ran)}\n--- server log ---\n${serverLog()}`);
    assert.equal(ran.res.exitCode, 0);
    return ran;
  };

  before(async () => {
    requireBinaries('redis pack test', ['redis-server', 'redis-cli']);
    t = tempDir('airlock-redis-');
    port = await freePort();
    server = spawn(
      'redis-server',
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--daemonize',
        'no',
        '--dir',
        t.dir,
        '--slowlog-log-slower-than',
        '0',
        '--latency-monitor-threshold',
        '1',
        '--enable-debug-command',
        'local',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    serverLog = captureOutput(server);
    await pollUntil(
      () => {
        if (server?.exitCode !== null) throw new Error(`redis-server exited: ${serverLog()}`);
        return cli('PING').trim() === 'PONG';
      },
      10_000,
      'redis-server to answer PING',
    );
    cli('SET', 'airlock:string', 'hello');
    cli('RPUSH', 'airlock:list', ...Array.from({ length: 50 }, (_, i) => `item-${i}`));
    cli('HSET', 'airlock:hash', 'a', '1', 'b', '2', 'c', '3');
    cli('SADD', 'airlock:set', 'x', 'y');
    cli('-n', '1', 'SET', 'airlock:db1', 'one');
    cli('DEBUG', 'SLEEP', '0.05'); // one latency event over the 1 ms threshold
    r = testRunner([packsDir]);
  });

  after(async () => {
    await stopChild(server, 'SIGTERM', 5000);
    r?.cleanup();
    t?.cleanup();
  });

  test('ping, role, dbsize', async () => {
    assert.equal((await run('redis.ping')).stdout, 'PONG');
    assert.match((await run('redis.role')).stdout, /^master$/m);
    assert.equal((await run('redis.dbsize', { db: 0 })).stdout, '4');
    assert.equal((await run('redis.dbsize', { db: 1 })).stdout, '1');
  });

  test('info, clients, memory', async () => {
    let ran = await run('redis.info', { section: 'server' });
    assert.match(ran.stdout, new RegExp(`^tcp_port:${port}$`, 'm'));
    assert.match(ran.stdout, /^redis_version:\d+\./m);
    ran = await run('redis.info');
    assert.match(ran.stdout, /^db0:keys=4,/m);
    ran = await run('redis.client_list');
    assert.match(ran.stdout, /addr=127\.0\.0\.1:\d+ /);
    assert.match(ran.stdout, /cmd=client/);
    ran = await run('redis.memory_stats');
    assert.match(ran.stdout, /^peak\.allocated$/m);
    assert.match(ran.stdout, /^keys\.count$/m);
    ran = await run('redis.memory_doctor');
    assert.ok(ran.stdout.length > 20, describeRun(ran));
  });

  test('latency monitor', async () => {
    let ran = await run('redis.latency_latest');
    assert.match(ran.stdout, /^command$/m);
    ran = await run('redis.latency_doctor');
    assert.match(ran.stdout, /command/);
  });

  test('bigkeys by count and by memory', async () => {
    let ran = await run('redis.bigkeys');
    assert.match(ran.stdout, /Biggest\s+list found '"airlock:list"' has 50 items/);
    ran = await run('redis.bigkeys', { rank_by: 'memkeys', pause: '0' });
    assert.match(ran.stdout, /Biggest\s+list found '"airlock:list"' has \d+ bytes/);
  });

  test('slow log, then reset', async () => {
    let ran = await run('redis.slowlog', { count: 10 });
    assert.match(ran.stdout, /^(SCAN|TYPE|DBSIZE|STRLEN|LLEN|HLEN|SCARD|MEMORY|INFO|CLIENT|LATENCY|PING|ROLE)$/m);
    assert.match(ran.stdout, /127\.0\.0\.1:\d+/);
    ran = await run('redis.slowlog_reset');
    assert.equal(ran.stdout, 'OK');
    // After RESET only the commands since then are in the log.
    assert.ok(Number(cli('SLOWLOG', 'LEN').trim()) <= 2);
  });

  test('every redis.* action ran, and the security log verifies', () => {
    const all = r.catalog.findPack('redis')!.pack.actions.map((a) => a.id);
    assert.deepEqual(
      all.filter((id) => !covered.has(id)),
      [],
    );
    const v = verifyLogFile(r.config.logPath);
    assert.equal(v.ok, true, JSON.stringify(v));
    assert.equal(readFileSync(r.config.logPath, 'utf8').trim().split('\n').length, attempts);
  });
});
