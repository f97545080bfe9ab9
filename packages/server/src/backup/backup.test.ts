import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import SQLite from 'better-sqlite3';
import { verifyServerChain } from '../audit/verify.js';
import { openDatabase } from '../db/database.js';
import { startTestServer } from '../testing/server.js';
import { backupSqlite, restoreSqlite } from './sqlite-backup.js';

const actor = { type: 'user', id: 'u-backup' };

describe('SQLite backup and restore', () => {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-backup-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const dbFile = join(dir, 'home', 'airlock.db');
  const backupFile = join(dir, 'airlock-backup.db');

  test('an online backup of a running server restores to a database whose audit chain verifies', async () => {
    const srv = await startTestServer(dbFile, join(dir, 'home'));
    try {
      for (let i = 0; i < 5; i++) await srv.server.ctx.audit.record({ orgId: null, kind: 'test.before', actor });
      // Online: the server keeps writing while the copy is taken.
      const writes = (async () => {
        for (let i = 0; i < 5; i++) await srv.server.ctx.audit.record({ orgId: null, kind: 'test.during', actor });
      })();
      const b = await backupSqlite(dbFile, backupFile);
      await writes;
      assert.ok(b.ok, JSON.stringify(b));
      assert.ok(b.auditEvents >= 5);

      // While the server holds the database, restore refuses.
      const refused = await restoreSqlite(backupFile, dbFile);
      assert.equal(refused.ok, false);
      assert.equal(!refused.ok && refused.reason, 'in_use');
      assert.match(!refused.ok ? refused.message : '', new RegExp(`process .*${process.pid}`));

      // A second backup to the same name needs --force.
      const again = await backupSqlite(dbFile, backupFile);
      assert.equal(!again.ok && again.reason, 'exists');
    } finally {
      await srv.stop();
    }
    const backedUp = await backupSqlite(dbFile, backupFile, { force: true });
    assert.ok(backedUp.ok);

    // Later changes, then the restore brings the backed-up state back.
    const live = await openDatabase(dbFile);
    const { ServerAuditLog } = await import('../audit/audit-log.js');
    await new ServerAuditLog(live).record({ orgId: null, kind: 'test.after', actor });
    await live.close();

    const r = await restoreSqlite(backupFile, dbFile);
    assert.ok(r.ok, JSON.stringify(r));
    assert.equal(r.auditEvents, backedUp.auditEvents);
    assert.equal(r.auditHead, backedUp.auditHead);
    assert.ok(r.previous !== undefined && existsSync(r.previous), 'the replaced database is kept');

    // The restored database opens for a server and its chain verifies there too.
    const restored = await openDatabase(dbFile);
    try {
      const v = await verifyServerChain(restored);
      assert.ok(v.result.ok, JSON.stringify(v.result));
      assert.equal(v.result.ok && v.result.count, backedUp.auditEvents);
      const kinds = await restored.kysely.selectFrom('audit_events').select('kind').execute();
      assert.equal(kinds.filter((k) => k.kind === 'test.after').length, 0);
      assert.equal(kinds.filter((k) => k.kind === 'test.before').length, 5);
    } finally {
      await restored.close();
    }
  });

  test('a backup whose audit chain was edited is refused, and the database is left alone', async () => {
    const tampered = join(dir, 'tampered.db');
    const b = await backupSqlite(dbFile, tampered);
    assert.ok(b.ok);
    const raw = new SQLite(tampered);
    raw.prepare("update audit_events set body = replace(body, 'test.before', 'test.edited') where seq = 1").run();
    raw.close();
    const r = await restoreSqlite(tampered, dbFile);
    assert.equal(r.ok, false);
    assert.equal(!r.ok && r.reason, 'audit_chain');
    const notSqlite = join(dir, 'not.db');
    writeFileSync(notSqlite, 'this is not a database');
    const r2 = await restoreSqlite(notSqlite, dbFile);
    assert.equal(!r2.ok && r2.reason, 'not_sqlite');
    // The live database is the one from the previous test, untouched.
    const db = await openDatabase(dbFile);
    try {
      assert.ok((await verifyServerChain(db)).result.ok);
    } finally {
      await db.close();
    }
  });
});
