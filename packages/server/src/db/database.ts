import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { AirlockError } from '@airlock/core';
import SQLite from 'better-sqlite3';
import { Kysely, type Migration, type MigrationResult, Migrator, PostgresDialect, SqliteDialect } from 'kysely';
import pg from 'pg';
import type { Dialect } from './dialect.js';
import { initial } from './migrations/0001-initial.js';
import { accounts } from './migrations/0100-accounts.js';
import { audit } from './migrations/0200-audit.js';
import { packFiles } from './migrations/0300-pack-files.js';
import { policy } from './migrations/0400-policy.js';
import { oauth } from './migrations/0500-oauth.js';
import { sandboxes } from './migrations/0600-sandboxes.js';
import { approvers } from './migrations/0700-approvers.js';
import { cluster } from './migrations/0900-cluster.js';
import { sandboxEgress } from './migrations/1000-sandbox-egress.js';
import { egressSeen } from './migrations/1100-egress-seen.js';
import type { Database } from './schema.js';
import { cachingDatabase, GroupCommitSqliteDialect } from './sqlite-group-commit.js';

/** An open database with its dialect. */
export interface Db {
  readonly kysely: Kysely<Database>;
  readonly dialect: Dialect;
  /** Where it lives, with any password removed (for logs and `doctor`). */
  readonly location: string;
  close(): Promise<void>;
}

/** Versioned migrations, in order. Names are stable: they are recorded in the database. */
function migrations(dialect: Dialect): Record<string, Migration> {
  return {
    '0001-initial': initial(dialect),
    '0200-audit': audit(dialect),
    '0100-accounts': accounts(),
    '0300-pack-files': packFiles,
    '0400-policy': policy,
    '0500-oauth': oauth,
    '0600-sandboxes': sandboxes,
    '0700-approvers': approvers,
    '0900-cluster': cluster,
    '1000-sandbox-egress': sandboxEgress,
    '1100-egress-seen': egressSeen,
  };
}

/**
 * Open SQLite (a file path) or Postgres (a `postgres://` URL) and run pending migrations.
 * SQLite runs in WAL mode with foreign keys on; Postgres gets a small pool.
 */
export async function openDatabase(target: string): Promise<Db> {
  const isPg = /^postgres(ql)?:\/\//.test(target);
  let kysely: Kysely<Database>;
  let location: string;
  if (isPg) {
    const pool = new pg.Pool({ connectionString: target, max: 10 });
    // An idle pooled connection that Postgres closes (restart, failover) emits 'error' on the
    // pool; unhandled, that would crash the server. The pool drops it and reconnects on demand.
    pool.on('error', () => undefined);
    kysely = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    location = target.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@');
  } else {
    if (target !== ':memory:') mkdirSync(dirname(target), { recursive: true, mode: 0o700 });
    const sqlite = new SQLite(target);
    sqlite.pragma('journal_mode = WAL');
    sqlite.pragma('foreign_keys = ON');
    sqlite.pragma('busy_timeout = 5000');
    // NORMAL: commits do not fsync; GroupCommitSqliteDialect fsyncs the WAL once per batch
    // before any write returns, which keeps FULL's durability (see sqlite-group-commit.ts).
    sqlite.pragma(target === ':memory:' ? 'synchronous = FULL' : 'synchronous = NORMAL');
    const dialect =
      target === ':memory:'
        ? new SqliteDialect({ database: cachingDatabase(sqlite) })
        : new GroupCommitSqliteDialect(sqlite, `${target}-wal`);
    kysely = new Kysely<Database>({ dialect });
    location = target;
  }
  const dialect: Dialect = isPg ? 'postgres' : 'sqlite';
  const migrator = new Migrator({
    db: kysely,
    provider: { getMigrations: async () => migrations(dialect) },
  });
  const { error, results } = await migrator.migrateToLatest();
  if (error !== undefined) {
    await kysely.destroy();
    const failed = results?.find((r: MigrationResult) => r.status === 'Error');
    throw new AirlockError(
      'internal',
      `database migration ${failed?.migrationName ?? '?'} failed on ${location}: ${(error as Error).message}`,
    );
  }
  return { kysely, dialect, location, close: () => kysely.destroy() };
}

/** Migrations this build knows that the database has not run; empty when it is current (for /readyz). */
export async function pendingMigrations(db: Db): Promise<string[]> {
  const migrator = new Migrator({ db: db.kysely, provider: { getMigrations: async () => migrations(db.dialect) } });
  return (await migrator.getMigrations()).filter((m) => m.executedAt === undefined).map((m) => m.name);
}
