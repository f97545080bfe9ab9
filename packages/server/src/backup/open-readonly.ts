import SQLite from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
import type { Db } from '../db/database.js';
import type { Database } from '../db/schema.js';

/**
 * Open a SQLite file read-only, without running migrations: checking a backup must not change
 * it, and a backup taken by an older airlock is verified as it was written.
 */
export function openSqliteReadonly(file: string): { db: Db; raw: SQLite.Database } {
  const raw = new SQLite(file, { readonly: true, fileMustExist: true });
  const kysely = new Kysely<Database>({ dialect: new SqliteDialect({ database: raw }) });
  return { raw, db: { kysely, dialect: 'sqlite', location: file, close: () => kysely.destroy() } };
}
