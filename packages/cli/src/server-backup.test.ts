// `airlock server backup` / `restore` as an operator runs them, against a real server process.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { airlockBin, spawnAirlock } from './testing/processes.js';

function cli(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [airlockBin, ...args], { env: { ...process.env, ...env } }, (err, stdout, stderr) =>
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr }),
    );
  });
}

test('backup while the server runs; restore refused until it stops, then verified', async () => {
  const home = mkdtempSync(join(tmpdir(), 'airlock-backup-cli-'));
  after(() => rmSync(home, { recursive: true, force: true }));
  const env = { AIRLOCK_HOME: home, DATABASE_URL: '' };
  const server = spawnAirlock(['server', '--listen', '127.0.0.1:0'], env);
  try {
    await server.waitFor(/listening on http:\/\/127\.0\.0\.1:\d+/, 60_000);
    const file = join(home, 'backup.db');
    const b = await cli(['server', 'backup', file], env);
    assert.equal(b.code, 0, b.stderr);
    assert.match(b.stdout, /^backup ok: .*integrity ok, audit chain verified: \d+ events/);
    assert.ok(existsSync(file));

    const refused = await cli(['server', 'restore', file], env);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, new RegExp(`restore refused \\(in_use\\): .* process ${server.child.pid}`));

    const pg = await cli(['server', 'backup', file], { ...env, DATABASE_URL: 'postgres://a:secret@127.0.0.1:1/x' });
    assert.equal(pg.code, 1);
    assert.match(pg.stderr, /DATABASE_URL: backup and restore work on SQLite files; for PostgreSQL use pg_dump/);
    assert.doesNotMatch(pg.stderr, /secret/);
  } finally {
    await server.kill();
  }
  const r = await cli(['server', 'restore', join(home, 'backup.db'), '--json'], env);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { ok: boolean; auditEvents: number; previous?: string };
  assert.equal(out.ok, true);
  assert.ok(out.auditEvents > 0);
  assert.ok(out.previous !== undefined && existsSync(out.previous));
});
