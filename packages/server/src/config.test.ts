import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describeServerConfig, serverConfig } from './config.js';

const home = '/var/lib/airlock';

test('every server setting is validated at start, and the error names the key', () => {
  const bad: [Record<string, string>, RegExp][] = [
    [{ AIRLOCK_LISTEN: 'nope' }, /^AIRLOCK_LISTEN: /],
    [{ DATABASE_URL: 'mysql://db/airlock' }, /^DATABASE_URL: expected a SQLite file path or a postgres:\/\/ URL/],
    [{ AIRLOCK_PUBLIC_URL: 'ftp://x' }, /^AIRLOCK_PUBLIC_URL: /],
    [{ AIRLOCK_LOG_LEVEL: 'loud' }, /^AIRLOCK_LOG_LEVEL: expected one of/],
    [{ AIRLOCK_METRICS_TOKEN: 'short' }, /^AIRLOCK_METRICS_TOKEN: .*value not shown/],
  ];
  for (const [env, message] of bad) assert.throws(() => serverConfig({ home }, env), { message }, JSON.stringify(env));
  // An option names itself instead of the variable.
  assert.throws(() => serverConfig({ home, logLevel: 'loud' }, {}), { message: /^--log-level: / });
});

test('a malformed postgres URL is refused without echoing its password', () => {
  let message = '';
  try {
    serverConfig({ home }, { DATABASE_URL: 'postgres://airlock:s3cret-pw@[bad/airlock' });
  } catch (e) {
    message = (e as Error).message;
  }
  assert.match(message, /^DATABASE_URL: /);
  assert.doesNotMatch(message, /s3cret-pw/);
});

test('the printed configuration uses the environment names and redacts secrets', () => {
  const c = serverConfig(
    { home },
    { DATABASE_URL: 'postgres://airlock:s3cret-pw@db.internal/airlock', AIRLOCK_METRICS_TOKEN: 't'.repeat(24) },
  );
  const d = describeServerConfig(c);
  assert.deepEqual(Object.keys(d), [
    'AIRLOCK_HOME',
    'AIRLOCK_LISTEN',
    'DATABASE_URL',
    'AIRLOCK_PUBLIC_URL',
    'AIRLOCK_LOG_LEVEL',
    'AIRLOCK_METRICS_TOKEN',
  ]);
  assert.equal(d['DATABASE_URL'], 'postgres://airlock:***@db.internal/airlock');
  assert.equal(d['AIRLOCK_METRICS_TOKEN'], '***');
  assert.doesNotMatch(JSON.stringify(d), /s3cret-pw|tttttttt/);
  assert.equal(serverConfig({ home }, {}).database, '/var/lib/airlock/airlock.db');
});
