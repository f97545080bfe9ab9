import { closeSync, fsync, open as openCb } from 'node:fs';
import type SQLite from 'better-sqlite3';
import {
  type DatabaseConnection,
  type Driver,
  type QueryCompiler,
  type QueryResult,
  SqliteDialect,
  type SqliteDialectConfig,
  type TransactionSettings,
} from 'kysely';

/**
 * Group commit for SQLite. The database runs in WAL mode with `synchronous = NORMAL`, so a
 * commit writes its WAL frames without an fsync; before any write is reported to its caller,
 * this layer fsyncs the WAL file, once for every commit that happened since the last fsync.
 * fsync flushes the file (inode), whatever descriptor it is called on, so committed frames
 * are on disk before any caller sees "done": the durability of `synchronous = FULL`, at one
 * fsync per batch instead of one per statement, and off the event loop (libuv threadpool).
 * Checkpoints keep SQLite's own ordering under NORMAL (WAL synced before, database after).
 */
export class WalSync {
  private requested = 0;
  private done = 0;
  private running = false;
  private waiters: { seq: number; resolve: () => void; reject: (e: Error) => void }[] = [];
  /** How many fsyncs ran (tests and benchmarks look at it). */
  syncs = 0;

  private readonly file = new WalFile();
  private readonly fsync: (path: string) => Promise<void>;

  constructor(
    private readonly walPath: string,
    fsync?: (path: string) => Promise<void>,
  ) {
    this.fsync = fsync ?? this.file.sync;
  }

  /** Close the WAL descriptor (the database is closing). */
  close(): void {
    // An fsync still on the threadpool keeps the descriptor until it settles.
    this.closing = true;
    if (!this.running) this.file.close();
  }

  private closing = false;

  /** Resolves once everything committed before this call is durable. */
  sync(): Promise<void> {
    const seq = ++this.requested;
    const p = new Promise<void>((resolve, reject) => this.waiters.push({ seq, resolve, reject }));
    this.kick();
    return p;
  }

  private kick(): void {
    if (this.running || this.done >= this.requested) return;
    this.running = true;
    // Commits after this point wait for the next round: this fsync may not cover them.
    const upTo = this.requested;
    this.syncs++;
    const settle = (err: Error | undefined): void => {
      this.done = upTo;
      const ready = this.waiters.filter((w) => w.seq <= upTo);
      this.waiters = this.waiters.filter((w) => w.seq > upTo);
      for (const w of ready) {
        if (err === undefined) w.resolve();
        else w.reject(err);
      }
      this.running = false;
      if (this.closing && this.done >= this.requested) this.file.close();
      this.kick();
    };
    this.fsync(this.walPath).then(
      () => settle(undefined),
      (e: unknown) => settle(e as Error),
    );
  }
}

/**
 * fsync of the WAL through one descriptor kept open for the life of the process. SQLite
 * deletes the WAL only when the last connection to the database closes (and resets it in
 * place otherwise), and the server holds its connection until it exits, so the inode this
 * descriptor names is the WAL's for as long as anyone syncs through it. Opening and closing
 * the file for every batch cost more main-thread time than the fsync itself.
 */
class WalFile {
  private fd: number | undefined;

  readonly sync = (path: string): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      const run = (d: number): void => fsync(d, (err) => (err ? reject(err) : resolve()));
      if (this.fd !== undefined) return run(this.fd);
      openCb(path, 'r', (err, d) => {
        // No WAL file yet: nothing has been written through it.
        if (err) return err.code === 'ENOENT' ? resolve() : reject(err);
        this.fd = d;
        run(d);
      });
    });

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

/**
 * Prepared statements cached by SQL text (bounded, least recently used out). Preparing is a
 * large part of a small query's cost, and Kysely's SQLite driver prepares every time.
 */
export function cachingDatabase(db: SQLite.Database, max = 500): SqliteDialectConfig['database'] {
  const cache = new Map<string, SQLite.Statement>();
  return {
    close: () => {
      cache.clear();
      db.close();
    },
    prepare: (sql: string) => {
      let st = cache.get(sql);
      if (st !== undefined) {
        cache.delete(sql);
        cache.set(sql, st);
        return st;
      }
      st = db.prepare(sql);
      cache.set(sql, st);
      if (cache.size > max) cache.delete(cache.keys().next().value as string);
      return st;
    },
  } as unknown as SqliteDialectConfig['database'];
}

class TrackedConnection implements DatabaseConnection {
  wrote = false;
  constructor(readonly inner: DatabaseConnection) {}

  executeQuery<R>(q: Parameters<DatabaseConnection['executeQuery']>[0]): Promise<QueryResult<R>> {
    if (q.query.kind !== 'SelectQueryNode') this.wrote = true;
    return this.inner.executeQuery<R>(q);
  }

  streamQuery<R>(
    q: Parameters<DatabaseConnection['streamQuery']>[0],
    chunkSize?: number,
  ): AsyncIterableIterator<QueryResult<R>> {
    if (q.query.kind !== 'SelectQueryNode') this.wrote = true;
    return this.inner.streamQuery<R>(q, chunkSize);
  }
}

const inner = (c: DatabaseConnection): DatabaseConnection => (c as TrackedConnection).inner;

class GroupCommitDriver implements Driver {
  constructor(
    private readonly driver: Driver,
    private readonly wal: WalSync,
  ) {}

  init(): Promise<void> {
    return this.driver.init();
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    return new TrackedConnection(await this.driver.acquireConnection());
  }

  beginTransaction(c: DatabaseConnection, s: TransactionSettings): Promise<void> {
    return this.driver.beginTransaction(inner(c), s);
  }

  commitTransaction(c: DatabaseConnection): Promise<void> {
    return this.driver.commitTransaction(inner(c));
  }

  rollbackTransaction(c: DatabaseConnection): Promise<void> {
    return this.driver.rollbackTransaction(inner(c));
  }

  savepoint(c: DatabaseConnection, name: string, compile: QueryCompiler['compileQuery']): Promise<void> {
    return this.driver.savepoint!(inner(c), name, compile);
  }

  rollbackToSavepoint(c: DatabaseConnection, name: string, compile: QueryCompiler['compileQuery']): Promise<void> {
    return this.driver.rollbackToSavepoint!(inner(c), name, compile);
  }

  releaseSavepoint(c: DatabaseConnection, name: string, compile: QueryCompiler['compileQuery']): Promise<void> {
    return this.driver.releaseSavepoint!(inner(c), name, compile);
  }

  async releaseConnection(c: DatabaseConnection): Promise<void> {
    const wrote = (c as TrackedConnection).wrote;
    // Release first, so other queries run (and commit) while this batch's fsync is under way.
    await this.driver.releaseConnection(inner(c));
    if (wrote) await this.wal.sync();
  }

  async destroy(): Promise<void> {
    await this.driver.destroy();
    this.wal.close();
  }
}

/** Kysely's SQLite dialect with cached statements and group-committed, fsync'd writes. */
export class GroupCommitSqliteDialect extends SqliteDialect {
  readonly wal: WalSync;

  constructor(db: SQLite.Database, walPath: string, fsync?: (path: string) => Promise<void>) {
    super({ database: cachingDatabase(db) });
    this.wal = new WalSync(walPath, fsync);
  }

  override createDriver(): Driver {
    return new GroupCommitDriver(super.createDriver(), this.wal);
  }
}
