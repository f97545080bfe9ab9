import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { OutputLine } from './engine.js';
import { spawnBackend } from './process-runner.js';
import { verifyLogFile } from './security-log.js';
import { pidAlive, type TestRunner, tempDir, testRunner, waitFor } from './testing/fixture.js';
import { writeFixturePack } from './testing/fixture-pack.js';
import { ensureSpawnerBuilt } from './testing/spawner-build.js';

// Default: the spawn helper (engine-exec.test.ts runs this suite on the fallback path).
if (process.env['AIRLOCK_SPAWNER'] !== 'exec') ensureSpawnerBuilt();

const principal = { type: 'local', id: 'tester' };

describe(`action engine (${spawnBackend()} spawn path)`, () => {
  let t: ReturnType<typeof tempDir>;
  let allowed: string;
  let packDir: string;
  let r: TestRunner;

  before(() => {
    t = tempDir();
    allowed = join(t.dir, 'allowed');
    mkdirSync(allowed);
    packDir = writeFixturePack(join(t.dir, 'pack'), allowed);
    r = testRunner([packDir]);
  });
  after(() => {
    r.cleanup();
    t.cleanup();
  });

  const run = async (action: string, args: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) => {
    const lines: OutputLine[] = [];
    const res = await r.engine.run(
      { action, args, reason: 'test', principal, ...extra },
      { onOutput: (l) => lines.push(l) },
    );
    return { res, lines, stdout: lines.filter((l) => l.stream === 'stdout').map((l) => l.line) };
  };
  const lastEvent = (): Record<string, unknown> => {
    const lines = readFileSync(r.config.logPath, 'utf8').trim().split('\n');
    return JSON.parse(lines[lines.length - 1]!) as Record<string, unknown>;
  };

  test('runs a declared action and records a chained event', async () => {
    const { res, stdout } = await run('fx.echo', { msg: 'hello' });
    assert.equal(res.status, 'success');
    assert.equal(res.exitCode, 0);
    assert.deepEqual(stdout, ['hello']);
    const ev = lastEvent();
    assert.equal(ev['hash'], res.auditHash);
    assert.equal(ev['status'], 'success');
    assert.equal(ev['action'], 'fx.echo');
    assert.equal(ev['pack_hash'], r.catalog.findPack('fixture')!.pack.hash);
  });

  test('shell metacharacters stay literal: $(touch …) never runs', async () => {
    const marker = join(t.dir, 'pwned');
    for (const payload of [
      `$(touch ${marker})`,
      `\`touch ${marker}\``,
      `x; touch ${marker}`,
      `x && touch ${marker}`,
      `x | touch ${marker}`,
    ]) {
      const { res, stdout } = await run('fx.echo', { msg: payload });
      assert.equal(res.status, 'success', payload);
      assert.deepEqual(stdout, [payload]);
    }
    assert.equal(existsSync(marker), false);
  });

  test('an unknown action is refused and logged as validation_failed', async () => {
    const { res } = await run('fx.nope', {});
    assert.equal(res.status, 'validation_failed');
    assert.equal(res.error?.code, 'unknown_action');
    assert.equal(lastEvent()['status'], 'validation_failed');
  });

  test('bad arguments are refused and logged as validation_failed', async () => {
    for (const args of [{}, { msg: 'a\nb' }, { msg: '-n' }, { msg: 'ok', extra: 1 }, { msg: 'x'.repeat(1001) }]) {
      const { res } = await run('fx.echo', args);
      assert.equal(res.status, 'validation_failed', JSON.stringify(args));
      assert.equal(res.error?.code, 'invalid_args');
      assert.equal(lastEvent()['status'], 'validation_failed');
    }
  });

  test('a pack hash that differs from the trusted one is refused as error', async () => {
    const { res } = await run('fx.echo', { msg: 'x' }, { packHash: `sha256:${'1'.repeat(64)}` });
    assert.equal(res.status, 'error');
    assert.equal(res.error?.code, 'pack_hash_mismatch');
    assert.equal(lastEvent()['status'], 'error');
    const pinned = testRunner([packDir], { trusted: { fixture: `sha256:${'2'.repeat(64)}` } });
    try {
      const res2 = await pinned.engine.run({ action: 'fx.echo', args: { msg: 'x' }, reason: 't', principal });
      assert.equal(res2.status, 'error');
      assert.equal(res2.error?.code, 'pack_hash_mismatch');
    } finally {
      pinned.cleanup();
    }
  });

  test('a script modified after load is refused', async () => {
    const t2 = tempDir();
    const dir = writeFixturePack(join(t2.dir, 'pack'), allowed);
    const r2 = testRunner([dir]);
    try {
      writeFileSync(join(dir, 'scripts', 'sleep.sh'), 'echo tampered\n');
      const res = await r2.engine.run({ action: 'fx.sleep', args: { seconds: 1 }, reason: 't', principal });
      assert.equal(res.status, 'error');
      assert.equal(res.error?.code, 'script_tampered');
    } finally {
      r2.cleanup();
      t2.cleanup();
    }
  });

  test('a symlink inside an allowed folder pointing to /etc/shadow is refused', async () => {
    const link = join(allowed, 'innocent.log');
    symlinkSync('/etc/shadow', link);
    const { res } = await run('fx.cat', { file: link });
    assert.equal(res.status, 'validation_failed');
    assert.match(res.error?.message ?? '', /file/);
    writeFileSync(join(allowed, 'real.log'), 'fine\n');
    const ok = await run('fx.cat', { file: join(allowed, 'real.log') });
    assert.equal(ok.res.status, 'success');
    assert.deepEqual(ok.stdout, ['fine']);
    const traversal = await run('fx.cat', { file: `${allowed}/../../../etc/passwd` });
    assert.equal(traversal.res.status, 'validation_failed');
  });

  test('timeout kills the whole process group, grandchildren included', async () => {
    const pidfile = join(allowed, 'grandchild.pid');
    const { res, stdout } = await run('fx.tree', { pidfile });
    assert.equal(res.status, 'timeout');
    assert.deepEqual(stdout, ['started']);
    const pid = Number.parseInt(readFileSync(pidfile, 'utf8'), 10);
    assert.ok(pid > 0);
    assert.ok(await waitFor(() => !pidAlive(pid), 5000), `grandchild ${pid} still alive`);
  });

  test('output cap truncates and kills', async () => {
    const started = Date.now();
    const { res, lines } = await run('fx.flood');
    assert.equal(res.status, 'failure');
    assert.equal(res.truncated, true);
    assert.ok(res.outputBytes <= 4096);
    assert.ok(lines.length > 0 && lines.length <= 2048);
    assert.ok(Date.now() - started < 15_000, 'flood must be killed long before its timeout');
    assert.equal(lastEvent()['truncated'], true);
  });

  test('requested limits are clamped to the action bounds and recorded', async () => {
    const { res } = await run('fx.flood', {}, { limits: { output_bytes: 10, timeout_s: 99999 } });
    assert.deepEqual(res.clamped.map((c) => [c.name, c.requested, c.applied, c.bound]).sort(), [
      ['output_bytes', 10, 1024, 'min'],
      ['timeout_s', 99999, 3600, 'max'],
    ]);
    assert.deepEqual(lastEvent()['clamped'], res.clamped);
    assert.ok(res.clamped.some((c) => c.name === 'output_bytes' && c.applied === 1024));
    assert.ok(res.outputBytes <= 1024);
    const bad = await run('fx.flood', {}, { limits: { nonsense: 1 } });
    assert.equal(bad.res.status, 'validation_failed');
    assert.equal(bad.res.error?.code, 'invalid_limits');
  });

  test('long lines are split, not buffered whole', async () => {
    const { res, lines } = await run('fx.longline', { n: 40000 });
    assert.equal(res.status, 'success');
    assert.ok(lines.length > 1, 'a ~230 KB line must arrive in pieces');
    assert.ok(lines.every((l) => l.line.length <= 16 * 1024));
    assert.ok(lines.slice(0, -1).every((l) => l.partial));
    assert.deepEqual(
      lines.map((l) => l.seq),
      lines.map((_, i) => i),
    );
  });

  test('a non-zero exit is a failure with its exit code', async () => {
    const { res } = await run('fx.fail');
    assert.equal(res.status, 'failure');
    assert.equal(res.exitCode, 1);
  });

  test('secrets never leave unredacted: stream and log', async () => {
    const { res, stdout } = await run('fx.secrets', { extra: 'password=Tr0ub4dor&3xyz' });
    assert.equal(res.status, 'success');
    const text = stdout.join('\n');
    assert.ok(!text.includes('AKIAZ7Q3LJHX4TNBV2WM'), text);
    assert.ok(!text.includes('fxsecret_0123456789abcdef'), text);
    assert.ok(!text.includes('Tr0ub4dor&3xyz'), text);
    assert.match(text, /\[REDACTED:fx_secret\]/);
    const log = readFileSync(r.config.logPath, 'utf8');
    for (const s of ['AKIAZ7Q3LJHX4TNBV2WM', 'fxsecret_0123456789abcdef', 'Tr0ub4dor&3xyz'])
      assert.ok(!log.includes(s), s);
  });

  test('a multi-line private key block is redacted line by line in the stream', async () => {
    const body = [
      'MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj',
      'MZRSlLrc2xKcbAJHFe0Kx8L1r9Ek6qYk2yQ7T3wVJ9fEo3pQ2kXs0Q8j1lq3Ww5',
    ];
    const file = join(allowed, 'key.pem');
    writeFileSync(file, ['-----BEGIN PRIVATE KEY-----', ...body, '-----END PRIVATE KEY-----', 'after'].join('\n'));
    const { res, stdout } = await run('fx.pem', { file });
    assert.equal(res.status, 'success');
    const text = stdout.join('\n');
    for (const b of body) assert.ok(!text.includes(b), `key body leaked: ${text}`);
    assert.match(text, /after/);
  });

  test('the child environment is exactly PATH, LANG, allowlisted and fixed variables', async () => {
    const r2 = new (r.engine.constructor as typeof import('./engine.js').ActionEngine)(r.catalog, r.config, r.log, {
      FX_ALLOWED: 'yes',
      FX_SECRET: 'must-not-pass',
      HOME: '/root',
    });
    const lines: string[] = [];
    const res = await r2.run(
      { action: 'fx.env', args: {}, reason: 't', principal },
      { onOutput: (l) => lines.push(l.line) },
    );
    assert.equal(res.status, 'success');
    assert.deepEqual(lines.sort(), [`FX_ALLOWED=yes`, 'FX_FIXED=1', 'LANG=C.UTF-8', `PATH=${r.config.path}`].sort());
  });

  test('cancel stops the run with status cancelled', async () => {
    const ac = new AbortController();
    const p = r.engine.run(
      { action: 'fx.sleep', args: { seconds: 60 }, reason: 't', principal },
      { signal: ac.signal, onOutput: () => ac.abort() },
    );
    const res = await p;
    assert.equal(res.status, 'cancelled');
  });

  test('the log verifies, and editing one byte breaks it at that index', () => {
    const v = verifyLogFile(r.config.logPath);
    assert.equal(v.ok, true);
    const text = readFileSync(r.config.logPath, 'utf8');
    const lines = text.split('\n');
    const target = 3;
    lines[target] = lines[target]!.replace('"duration_ms":', '"duration_ms":1');
    const copy = join(t.dir, 'tampered.jsonl');
    writeFileSync(copy, lines.join('\n'));
    const bad = verifyLogFile(copy);
    assert.equal(bad.ok, false);
    if (!bad.ok) assert.equal(bad.index, target);
  });
});
