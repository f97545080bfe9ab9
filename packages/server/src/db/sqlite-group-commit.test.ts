import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import SQLite from 'better-sqlite3';
import { Kysely } from 'kysely';
import { GroupCommitSqliteDialect, WalSync } from './sqlite-group-commit.js';

test('WalSync: an fsync covers the commits made before it started; commits during it share the next one', async () => {
  const releases: (() => void)[] = [];
  const fsync = (): Promise<void> => new Promise((r) => releases.push(r));
  const w = new WalSync('/nonexistent', fsync);
  const done: string[] = [];
  const a = w.sync().then(() => done.push('a')); // starts an fsync at once
  const b = w.sync().then(() => done.push('b')); // committed after it started: waits
  const c = w.sync().then(() => done.push('c'));
  assert.equal(w.syncs, 1);
  releases[0]?.();
  await a;
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(done, ['a']);
  assert.equal(w.syncs, 2, 'b and c share the second fsync');
  releases[1]?.();
  await Promise.all([b, c]);
  assert.deepEqual(done, ['a', 'b', 'c']);
  assert.equal(w.syncs, 2);
});

test('WalSync: an fsync failure rejects the writes it covered', async () => {
  const w = new WalSync('/nonexistent', () => Promise.reject(new Error('EIO')));
  await assert.rejects(w.sync(), /EIO/);
});

test('group-commit dialect: concurrent writes share fsyncs and resolve only after an fsync that covers them', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-gc-'));
  try {
    const path = join(dir, 'x.db');
    const sqlite = new SQLite(path);
    sqlite.pragma('journal_mode = WAL');
    sqlite.pragma('synchronous = NORMAL');
    sqlite.exec('create table t (id integer primary key)');
    // A second connection sees only committed rows: what an fsync starting now would cover.
    const observer = new SQLite(path, { readonly: true });
    const covered = new Set<number>();
    const dialect = new GroupCommitSqliteDialect(sqlite, `${path}-wal`, async () => {
      const ids = (observer.prepare('select id from t').all() as { id: number }[]).map((r) => r.id);
      await new Promise((r) => setTimeout(r, 3));
      for (const id of ids) covered.add(id);
    });
    const db = new Kysely<{ t: { id: number } }>({ dialect });
    const writes = Array.from({ length: 40 }, async (_, i) => {
      if (i % 2 === 0) await db.insertInto('t').values({ id: i }).execute();
      else
        await db.transaction().execute(async (trx) => {
          await trx.insertInto('t').values({ id: i }).execute();
        });
      assert.ok(covered.has(i), `write ${i} resolved before an fsync covered it`);
    });
    await Promise.all(writes);
    assert.ok(dialect.wal.syncs < 20, `expected batching, got ${dialect.wal.syncs} fsyncs for 40 writes`);
    const before = dialect.wal.syncs;
    assert.equal((await db.selectFrom('t').selectAll().execute()).length, 40);
    assert.equal(dialect.wal.syncs, before, 'reads do not fsync');
    observer.close();
    await db.destroy();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
