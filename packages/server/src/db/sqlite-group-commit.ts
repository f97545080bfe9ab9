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

/** Whether a query may write: anything but a select (a raw query is judged by its text). */
export function mayWrite(q: Parameters<DatabaseConnection['executeQuery']>[0]): boolean {
  if (q.query.kind === 'SelectQueryNode') return false;
  if (q.query.kind === 'RawNode') return !/^\s*(select|pragma)\b/i.test(q.sql);
  return true;
}

/**
 * One SQLite transaction collecting every write made in one turn of the event loop: autocommit
 * statements run inside it, Kysely transactions run inside it as savepoints. It commits when
 * the turn is over (setImmediate), then the WAL is fsync'd, then `durable` settles for every
 * caller that wrote into it. Under load, a commit writes each changed page once for a whole
 * batch of runs instead of once per statement.
 */
class Batch {
  readonly durable: Promise<void>;
  resolve!: () => void;
  reject!: (e: Error) => void;
  /** Set when SQLite rolled the batch back or its commit failed: nothing in it is stored. */
  failure: Error | undefined;

  constructor() {
    this.durable = new Promise<void>((res, rej) => {
      this.resolve = res;
      this.reject = rej;
    });
    // A batch nobody waits on (a failed statement's caller already has its error) must not
    // surface as an unhandled rejection; callers still see it through their own await.
    this.durable.catch(() => undefined);
  }

  fail(e: Error): void {
    if (this.failure !== undefined) return;
    this.failure = e;
    this.reject(e);
  }
}

class TrackedConnection implements DatabaseConnection {
  /** The batches this acquisition wrote into (two only if SQLite rolled one back midway). */
  readonly batches = new Set<Batch>();
  constructor(
    readonly inner: DatabaseConnection,
    private readonly driver: GroupCommitDriver,
  ) {}

  async executeQuery<R>(q: Parameters<DatabaseConnection['executeQuery']>[0]): Promise<QueryResult<R>> {
    if (mayWrite(q)) this.batches.add(this.driver.batchForWrite());
    try {
      return await this.inner.executeQuery<R>(q);
    } catch (e) {
      this.driver.afterError(e as Error);
      throw e;
    }
  }

  streamQuery<R>(
    q: Parameters<DatabaseConnection['streamQuery']>[0],
    chunkSize?: number,
  ): AsyncIterableIterator<QueryResult<R>> {
    if (mayWrite(q)) this.batches.add(this.driver.batchForWrite());
    return this.inner.streamQuery<R>(q, chunkSize);
  }
}

const inner = (c: DatabaseConnection): DatabaseConnection => (c as TrackedConnection).inner;

/** A Kysely transaction, run as a savepoint of the batch it began in. */
interface Explicit {
  readonly name: string;
  readonly batch: Batch;
}

class GroupCommitDriver implements Driver {
  private batch: Batch | undefined;
  private readonly explicit: Explicit[] = [];
  private savepoints = 0;
  private commitScheduled = false;

  constructor(
    private readonly driver: Driver,
    private readonly sqlite: SQLite.Database,
    private readonly wal: WalSync,
    private readonly prepare: (sql: string) => SQLite.Statement,
  ) {}

  /**
   * Whether a compiled query may skip Kysely's executor and run on the statement directly.
   * On a transaction's handle: while that transaction is the only one open (the handle's
   * owner holds the connection). On the root handle: while no transaction is open, so the
   * statement cannot land inside someone else's savepoint; a plain statement of another
   * caller between two awaits is no different from one queued behind it.
   */
  ready(inTransaction: boolean): boolean {
    return this.explicit.length === (inTransaction ? 1 : 0);
  }

  /**
   * Run a compiled query on its cached statement: what Kysely's SQLite connection does,
   * without the executor's promise chain and connection lock around it (several times the
   * cost of a small statement). A write joins the open batch; outside a transaction it
   * resolves once the batch is durable, like any other write.
   */
  async run<R>(
    sql: string,
    parameters: readonly unknown[],
    write: boolean,
    inTransaction: boolean,
  ): Promise<QueryResult<R>> {
    const batch = write ? this.batchForWrite() : undefined;
    let result: QueryResult<R>;
    try {
      const st = this.prepare(sql);
      if (st.reader) result = { rows: st.all(parameters) as R[] };
      else {
        const { changes, lastInsertRowid } = st.run(parameters);
        result = { numAffectedRows: BigInt(changes), insertId: BigInt(lastInsertRowid), rows: [] };
      }
    } catch (e) {
      this.afterError(e as Error);
      throw e;
    }
    // Inside a transaction its end waits for the batch (see releaseConnection).
    if (batch !== undefined && !inTransaction) await batch.durable;
    return result;
  }

  init(): Promise<void> {
    return this.driver.init();
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    return new TrackedConnection(await this.driver.acquireConnection(), this);
  }

  /** The open batch a write joins; opens one (BEGIN IMMEDIATE) when none is. */
  batchForWrite(): Batch {
    const open = this.batch;
    if (open !== undefined && open.failure === undefined) return open;
    // Inside a Kysely transaction whose batch SQLite rolled back, a write must not start a
    // new one: the transaction's earlier writes are gone, so it fails as a whole.
    const top = this.explicit[this.explicit.length - 1];
    if (top !== undefined) throw top.batch.failure ?? new Error('transaction lost');
    this.sqlite.exec('BEGIN IMMEDIATE');
    const b = new Batch();
    this.batch = b;
    this.scheduleCommit();
    return b;
  }

  /**
   * A statement failed. Most errors undo only that statement; some (I/O errors, a full disk)
   * make SQLite roll back the whole transaction, and with it everything the batch held.
   */
  afterError(e: Error): void {
    const b = this.batch;
    if (b !== undefined && !this.sqlite.inTransaction) {
      this.batch = undefined;
      b.fail(new Error(`the write was rolled back with its batch: ${e.message}`));
    }
  }

  private scheduleCommit(): void {
    if (this.commitScheduled) return;
    this.commitScheduled = true;
    setImmediate(() => {
      this.commitScheduled = false;
      this.commit();
    });
  }

  /** Commit the batch (unless a Kysely transaction is still open in it), then fsync. */
  private commit(): void {
    const b = this.batch;
    if (b === undefined || this.explicit.length > 0) return;
    this.batch = undefined;
    if (b.failure !== undefined) return;
    try {
      this.sqlite.exec('COMMIT');
    } catch (e) {
      if (this.sqlite.inTransaction) this.sqlite.exec('ROLLBACK');
      b.fail(e as Error);
      return;
    }
    this.wal.sync().then(b.resolve, b.reject);
  }

  async beginTransaction(c: DatabaseConnection, _s: TransactionSettings): Promise<void> {
    const batch = this.batchForWrite();
    (c as TrackedConnection).batches.add(batch);
    const name = `airlock_tx_${++this.savepoints}`;
    this.sqlite.exec(`SAVEPOINT ${name}`);
    this.explicit.push({ name, batch });
  }

  async commitTransaction(_c: DatabaseConnection): Promise<void> {
    const tx = this.explicit.pop();
    if (tx === undefined) throw new Error('commit without a transaction');
    if (tx.batch.failure !== undefined) throw tx.batch.failure;
    this.sqlite.exec(`RELEASE ${tx.name}`);
    // The batch's commit waited for this transaction to end.
    if (this.explicit.length === 0 && this.batch !== undefined) this.scheduleCommit();
  }

  async rollbackTransaction(_c: DatabaseConnection): Promise<void> {
    const tx = this.explicit.pop();
    if (tx === undefined) return;
    // A batch SQLite already rolled back has no savepoint left to return to.
    if (tx.batch.failure === undefined && this.sqlite.inTransaction) {
      this.sqlite.exec(`ROLLBACK TO ${tx.name}`);
      this.sqlite.exec(`RELEASE ${tx.name}`);
    }
    if (this.explicit.length === 0 && this.batch !== undefined) this.scheduleCommit();
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
    const batches = [...(c as TrackedConnection).batches];
    // Release first, so other queries join the batch while it waits for its commit and fsync.
    await this.driver.releaseConnection(inner(c));
    for (const b of batches) await b.durable;
  }

  async destroy(): Promise<void> {
    this.commit();
    // Only a Kysely transaction left open at close keeps a batch here; closing rolls it back.
    this.batch?.fail(new Error('the database closed before the write committed'));
    this.batch = undefined;
    await this.driver.destroy();
    this.wal.close();
  }
}

/** The direct path of a group-commit database, by the Kysely adapter it created. */
const fastPaths = new WeakMap<object, GroupCommitDriver>();

/**
 * The direct path for compiled queries on a Kysely instance's database (its adapter, which
 * a transaction shares with its root), when that is SQLite with group commit; see
 * {@link GroupCommitDriver.ready} for when it may be used.
 */
export function directPath(adapter: object): Pick<GroupCommitDriver, 'ready' | 'run'> | undefined {
  return fastPaths.get(adapter);
}

/** Kysely's SQLite dialect with cached statements and group-committed, fsync'd writes. */
export class GroupCommitSqliteDialect extends SqliteDialect {
  readonly wal: WalSync;
  private readonly cached: { prepare(sql: string): unknown };
  private driver: GroupCommitDriver | undefined;

  constructor(
    private readonly sqlite: SQLite.Database,
    walPath: string,
    fsync?: (path: string) => Promise<void>,
  ) {
    const cached = cachingDatabase(sqlite);
    super({ database: cached });
    this.cached = cached as unknown as { prepare(sql: string): unknown };
    this.wal = new WalSync(walPath, fsync);
  }

  override createDriver(): Driver {
    const prepare = (sql: string) => this.cached.prepare(sql) as unknown as SQLite.Statement;
    this.driver = new GroupCommitDriver(super.createDriver(), this.sqlite, this.wal, prepare);
    return this.driver;
  }

  override createAdapter() {
    const adapter = super.createAdapter();
    if (this.driver !== undefined) fastPaths.set(adapter, this.driver);
    return adapter;
  }
}
