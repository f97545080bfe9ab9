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

/** A group-commit database on a temp file with table t, and a second (read-only) connection. */
function batchDb(fsync?: (path: string) => Promise<void>) {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-gc-'));
  const path = join(dir, 'x.db');
  const sqlite = new SQLite(path);
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('synchronous = NORMAL');
  sqlite.exec('create table t (id integer primary key, v text)');
  // RAISE(ROLLBACK) undoes the whole transaction: what an I/O error or a full disk does.
  sqlite.exec("create trigger boom before insert on t when new.id = 999 begin select raise(rollback, 'boom'); end");
  const observer = new SQLite(path, { readonly: true });
  const dialect = new GroupCommitSqliteDialect(sqlite, `${path}-wal`, fsync);
  const db = new Kysely<{ t: { id: number; v: string | null } }>({ dialect });
  const ids = () => (observer.prepare('select id from t order by id').all() as { id: number }[]).map((r) => r.id);
  return {
    db,
    dialect,
    ids,
    close: async () => {
      observer.close();
      await db.destroy();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

test('batch: writes of one turn commit together; nothing is visible to others before the commit', async () => {
  const t = batchDb();
  try {
    const writes = [1, 2, 3].map((id) => t.db.insertInto('t').values({ id, v: null }).execute());
    // Issued, not yet committed: the batch commits when this turn of the event loop ends.
    await Promise.resolve();
    assert.deepEqual(t.ids(), []);
    await Promise.all(writes);
    assert.deepEqual(t.ids(), [1, 2, 3]);
    assert.equal(t.dialect.wal.syncs, 1, 'one batch, one fsync');
  } finally {
    await t.close();
  }
});

test('batch: a failing statement or a failed transaction undoes only itself', async () => {
  const t = batchDb();
  try {
    await t.db.insertInto('t').values({ id: 1, v: null }).execute();
    const results = await Promise.allSettled([
      t.db.insertInto('t').values({ id: 2, v: null }).execute(),
      t.db.insertInto('t').values({ id: 1, v: 'duplicate' }).execute(), // primary key conflict
      t.db.transaction().execute(async (trx) => {
        await trx.insertInto('t').values({ id: 3, v: null }).execute();
        throw new Error('changed my mind');
      }),
      t.db.transaction().execute(async (trx) => {
        await trx.insertInto('t').values({ id: 4, v: null }).execute();
        await trx.insertInto('t').values({ id: 5, v: null }).execute();
      }),
    ]);
    assert.deepEqual(
      results.map((r) => r.status),
      ['fulfilled', 'rejected', 'rejected', 'fulfilled'],
    );
    assert.match(String((results[1] as PromiseRejectedResult).reason), /UNIQUE|constraint/i);
    assert.match(String((results[2] as PromiseRejectedResult).reason), /changed my mind/);
    assert.deepEqual(t.ids(), [1, 2, 4, 5]);
  } finally {
    await t.close();
  }
});

test('batch: when SQLite rolls the whole batch back, every write in it fails; later writes succeed', async () => {
  const t = batchDb();
  try {
    const results = await Promise.allSettled([
      t.db.insertInto('t').values({ id: 1, v: null }).execute(),
      t.db.transaction().execute(async (trx) => {
        await trx.insertInto('t').values({ id: 2, v: null }).execute();
      }),
      t.db.insertInto('t').values({ id: 999, v: null }).execute(),
      t.db.insertInto('t').values({ id: 3, v: null }).execute(),
    ]);
    assert.deepEqual(
      results.map((r) => r.status),
      ['rejected', 'rejected', 'rejected', 'fulfilled'],
    );
    assert.match(String((results[0] as PromiseRejectedResult).reason), /rolled back with its batch: boom/);
    assert.deepEqual(t.ids(), [3]);
    // A transaction whose batch is lost midway fails as a whole instead of committing its tail.
    const tx = t.db.transaction().execute(async (trx) => {
      await trx.insertInto('t').values({ id: 4, v: null }).execute();
      await trx
        .insertInto('t')
        .values({ id: 999, v: null })
        .execute()
        .catch(() => undefined);
      await trx.insertInto('t').values({ id: 5, v: null }).execute();
    });
    await assert.rejects(tx, /boom/);
    assert.deepEqual(t.ids(), [3]);
  } finally {
    await t.close();
  }
});

test('batch: a failed fsync rejects every write of the batches it covered', async () => {
  let fail = true;
  const t = batchDb(async () => {
    if (fail) throw new Error('EIO');
  });
  try {
    const results = await Promise.allSettled([
      t.db.insertInto('t').values({ id: 1, v: null }).execute(),
      t.db.transaction().execute(async (trx) => trx.insertInto('t').values({ id: 2, v: null }).execute()),
    ]);
    assert.deepEqual(
      results.map((r) => r.status),
      ['rejected', 'rejected'],
    );
    fail = false;
    await t.db.insertInto('t').values({ id: 3, v: null }).execute();
  } finally {
    await t.close();
  }
});
