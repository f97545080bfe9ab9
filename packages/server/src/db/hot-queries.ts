import { type Compilable, type CompiledQuery, type Kysely, type QueryResult, type RawBuilder, sql } from 'kysely';
import type { AuditTables } from '../audit/tables.js';
import type { AuditEventsTable, Database, RunnerEventsTable, RunOutputTable, RunsTable } from './schema.js';
import { directPath, mayWrite } from './sqlite-group-commit.js';

type HotDatabase = Database & AuditTables;

/**
 * A query of the run hot path, compiled once per database and executed with new parameters.
 *
 * Kysely builds an operation tree and compiles it to SQL for every query, which was about a
 * tenth of the server's CPU per run. A hot query is built once per database (so each dialect
 * gets its own SQL) with a unique placeholder string in place of each named parameter; later
 * calls copy the compiled query with the values put into the placeholders' parameter slots
 * and run it through the given Kysely instance or transaction (driver, plugins and result
 * handling unchanged). Only shapes whose SQL text does not depend on the values belong here:
 * no IN lists of variable length, no optional clauses, no values inlined into the SQL.
 */
export class HotQuery<P extends object, R> {
  /** Per database: keyed by its adapter, which a transaction shares with its root instance. */
  private readonly compiled = new WeakMap<object, { query: CompiledQuery<R>; slots: readonly (keyof P | null)[] }>();

  constructor(
    readonly name: string,
    private readonly keys: readonly (keyof P & string)[],
    private readonly build: (db: Kysely<HotDatabase>, p: P) => Compilable<R> | RawBuilder<R>,
  ) {}

  /** Run with these values on `db` (a Kysely instance or a transaction). */
  async execute(db: Kysely<Database>, values: P): Promise<QueryResult<R>> {
    const hot = db as unknown as Kysely<HotDatabase>;
    const adapter = hot.getExecutor().adapter;
    let c = this.compiled.get(adapter);
    if (c === undefined) {
      c = this.compile(hot);
      this.compiled.set(adapter, c);
    }
    const constants = c.query.parameters;
    const parameters = c.slots.map((key, i) => (key === null ? constants[i] : values[key]));
    const direct = directPath(adapter);
    if (direct?.ready(hot.isTransaction) === true)
      return direct.run<R>(c.query.sql, parameters, mayWrite(c.query), hot.isTransaction);
    return hot.executeQuery<R>({ ...c.query, parameters });
  }

  /** The first row, or undefined. */
  async first(db: Kysely<Database>, values: P): Promise<R | undefined> {
    return (await this.execute(db, values)).rows[0];
  }

  /** How many rows an insert, update or delete changed. */
  async changed(db: Kysely<Database>, values: P): Promise<number> {
    return Number((await this.execute(db, values)).numAffectedRows ?? 0n);
  }

  private compile(db: Kysely<HotDatabase>) {
    const marks = new Map<string, keyof P>(this.keys.map((k) => [`\u0000hot-query:${k}`, k]));
    const placeholders = Object.fromEntries([...marks].map(([mark, k]) => [k, mark])) as unknown as P;
    // A raw `sql` query compiles against a database; a builder ignores the argument.
    const query = (this.build(db, placeholders) as RawBuilder<R>).compile(db);
    const slots = query.parameters.map((p) => (typeof p === 'string' ? (marks.get(p) ?? null) : null));
    // Every parameter must be bound: one compiled into the SQL text would keep its placeholder.
    for (const k of this.keys)
      if (!slots.includes(k)) throw new Error(`hot query ${this.name}: ${k} is not a bound parameter`);
    if (query.sql.includes('\u0000')) throw new Error(`hot query ${this.name}: a placeholder is in the SQL text`);
    return { query, slots };
  }
}

/** Every column of a table, checked by the compiler to miss none (inserts name them all). */
function allColumns<T>() {
  return <const K extends readonly (keyof T & string)[]>(
    ...keys: K & ([Exclude<keyof T, K[number]>] extends [never] ? unknown : ['missing a column'])
  ): K => keys;
}

const FINAL = ['success', 'failure', 'validation_failed', 'error', 'timeout', 'cancelled'] as const;

const RUN_COLUMNS = allColumns<RunsTable>()(
  'id',
  'org_id',
  'runner_id',
  'action',
  'pack_name',
  'pack_hash',
  'args',
  'limits',
  'reason',
  'requested_by',
  'status',
  'exit_code',
  'created_at',
  'dispatched_at',
  'started_at',
  'finished_at',
  'duration_ms',
  'truncated',
  'output_bytes',
  'clamped',
  'audit_hash',
  'error_code',
  'error_message',
  'cancel_requested',
);

/** A new run row. */
export const insertRun = new HotQuery<RunsTable, never>('insertRun', RUN_COLUMNS, (db, row) =>
  db.insertInto('runs').values(row),
);

/** A run of this runner: every run frame from a runner is checked against it. */
export const runOfRunner = new HotQuery<{ id: string; runner_id: string }, RunsTable>(
  'runOfRunner',
  ['id', 'runner_id'],
  (db, p) => db.selectFrom('runs').selectAll().where('id', '=', p.id).where('runner_id', '=', p.runner_id),
);

/** `accepted`: the run starts, unless it is already further along. */
export const markRunning = new HotQuery<{ id: string; started_at: string }, never>(
  'markRunning',
  ['id', 'started_at'],
  (db, p) =>
    db
      .updateTable('runs')
      .set({ status: 'running', started_at: p.started_at })
      .where('id', '=', p.id)
      .where('status', 'in', ['queued', 'dispatched']),
);

/** One output line; a re-sent line (same seq) is ignored. */
export const insertOutput = new HotQuery<RunOutputTable, never>(
  'insertOutput',
  allColumns<RunOutputTable>()('run_id', 'seq', 'stream', 'line', 'partial'),
  (db, p) =>
    db
      .insertInto('run_output')
      .values(p)
      .onConflict((oc) => oc.columns(['run_id', 'seq']).doNothing()),
);

type FinalFields = Pick<
  RunsTable,
  | 'id'
  | 'status'
  | 'exit_code'
  | 'finished_at'
  | 'started_at'
  | 'duration_ms'
  | 'truncated'
  | 'output_bytes'
  | 'clamped'
  | 'audit_hash'
  | 'error_code'
  | 'error_message'
>;

/** The result, once: guarded on "not final yet", so a re-sent result changes nothing. */
export const finaliseRun = new HotQuery<FinalFields, never>(
  'finaliseRun',
  allColumns<FinalFields>()(
    'id',
    'status',
    'exit_code',
    'finished_at',
    'started_at',
    'duration_ms',
    'truncated',
    'output_bytes',
    'clamped',
    'audit_hash',
    'error_code',
    'error_message',
  ),
  (db, { id, ...set }) =>
    db
      .updateTable('runs')
      .set(set)
      .where('id', '=', id)
      .where('status', 'not in', [...FINAL]),
);

type RunnerChain = { name: string; chain_seq: number | null; chain_hash: string | null };

/** Mirror: the runner's name and mirrored chain head. */
export const runnerChain = new HotQuery<{ id: string; org_id: string }, RunnerChain>(
  'runnerChain',
  ['id', 'org_id'],
  (db, p) =>
    db
      .selectFrom('runners')
      .select(['name', 'chain_seq', 'chain_hash'])
      .where('id', '=', p.id)
      .where('org_id', '=', p.org_id),
);

/** Postgres: the same, locking the runner row, which orders two results of one runner. */
export const runnerChainForUpdate = new HotQuery<{ id: string; org_id: string }, RunnerChain>(
  'runnerChainForUpdate',
  ['id', 'org_id'],
  (db, p) =>
    db
      .selectFrom('runners')
      .select(['name', 'chain_seq', 'chain_hash'])
      .where('id', '=', p.id)
      .where('org_id', '=', p.org_id)
      .forUpdate(),
);

/** Mirror: the hash of a mirrored runner event. */
export const runnerEventHash = new HotQuery<{ runner_id: string; seq: number }, { hash: string }>(
  'runnerEventHash',
  ['runner_id', 'seq'],
  (db, p) =>
    db.selectFrom('runner_events').select('hash').where('runner_id', '=', p.runner_id).where('seq', '=', p.seq),
);

type RunnerEventRow = RunnerEventsTable & AuditTables['runner_events'];

/** Mirror: store one runner event (a re-delivered one is ignored). */
export const insertRunnerEvent = new HotQuery<RunnerEventRow, never>(
  'insertRunnerEvent',
  allColumns<RunnerEventRow>()('runner_id', 'seq', 'time', 'action', 'status', 'body', 'prev', 'hash', 'link'),
  (db, p) =>
    db
      .insertInto('runner_events')
      .values(p)
      .onConflict((oc) => oc.columns(['runner_id', 'seq']).doNothing()),
);

/** Mirror: the row after this one, stored as a gap, now links (a late re-delivery). */
export const relinkNext = new HotQuery<{ runner_id: string; seq: number; prev: string }, never>(
  'relinkNext',
  ['runner_id', 'seq', 'prev'],
  (db, p) =>
    db
      .updateTable('runner_events')
      .set({ link: 'linked' })
      .where('runner_id', '=', p.runner_id)
      .where('seq', '=', p.seq)
      .where('prev', '=', p.prev)
      .where('link', '=', 'gap'),
);

/** Mirror: move the runner's mirrored chain head. */
export const moveRunnerHead = new HotQuery<{ id: string; chain_seq: number; chain_hash: string }, never>(
  'moveRunnerHead',
  ['id', 'chain_seq', 'chain_hash'],
  (db, p) => db.updateTable('runners').set({ chain_seq: p.chain_seq, chain_hash: p.chain_hash }).where('id', '=', p.id),
);

/** The server chain's head. */
export const auditHead = new HotQuery<Record<string, never>, { seq: number; hash: string }>('auditHead', [], (db) =>
  db.selectFrom('audit_events').select(['seq', 'hash']).orderBy('seq', 'desc').limit(1),
);

const AUDIT_COLUMNS = allColumns<AuditEventsTable>()(
  'seq',
  'org_id',
  'id',
  'time',
  'kind',
  'actor',
  'runner',
  'action',
  'status',
  'body',
  'prev',
  'hash',
);

/** Append one server audit event. */
export const insertAuditEvent = new HotQuery<AuditEventsTable, never>('insertAuditEvent', AUDIT_COLUMNS, (db, p) =>
  db.insertInto('audit_events').values(p),
);

/**
 * SQLite: append one server audit event if the chain head is still `head_hash`, in one
 * statement (see ServerAuditLog); inserts nothing when another append came first.
 */
export const insertAuditEventAfter = new HotQuery<AuditEventsTable & { head_hash: string }, never>(
  'insertAuditEventAfter',
  [...AUDIT_COLUMNS, 'head_hash'],
  (_db, p) =>
    sql<never>`insert into audit_events (seq, org_id, id, time, kind, actor, runner, action, status, body, prev, hash)
      select ${p.seq}, ${p.org_id}, ${p.id}, ${p.time}, ${p.kind}, ${p.actor}, ${p.runner}, ${p.action}, ${p.status}, ${p.body}, ${p.prev}, ${p.hash}
      where (select hash from audit_events order by seq desc limit 1) = ${p.head_hash}`,
);

/** Authentication: an API key by its prefix, with its owner (read on every request, never cached). */
export const apiKeyByPrefix = new HotQuery('apiKeyByPrefix', ['prefix'], (db, p: { prefix: string }) =>
  db
    .selectFrom('api_keys')
    .innerJoin('users', 'users.id', 'api_keys.user_id')
    .select([
      'api_keys.id as key_id',
      'api_keys.key_hash',
      'api_keys.scopes',
      'api_keys.expires_at',
      'api_keys.revoked_at',
      'api_keys.last_used_at',
      'api_keys.org_id',
      'users.id as user_id',
      'users.username',
      'users.role',
      'users.disabled',
      'users.org_id as user_org',
    ])
    .where('api_keys.prefix', '=', p.prefix),
);

/** A runner of an organisation by id or name. */
export const runnerByIdOrName = new HotQuery(
  'runnerByIdOrName',
  ['org_id', 'key'],
  (db, p: { org_id: string; key: string }) =>
    db
      .selectFrom('runners')
      .selectAll()
      .where('org_id', '=', p.org_id)
      .where((eb) => eb.or([eb('id', '=', p.key), eb('name', '=', p.key)])),
);

/** Policy: an organisation's rules. */
export const policyRules = new HotQuery('policyRules', ['org_id'], (db, p: { org_id: string }) =>
  db.selectFrom('policy_rules').selectAll().where('org_id', '=', p.org_id),
);

/** Policy: grants of one subject (a user), oldest first. */
export const policyGrantsOf = new HotQuery(
  'policyGrantsOf',
  ['org_id', 'subject'],
  (db, p: { org_id: string; subject: string }) =>
    db
      .selectFrom('policy_grants')
      .selectAll()
      .where('org_id', '=', p.org_id)
      .where('subject_id', '=', p.subject)
      .orderBy('created_at')
      .orderBy('id'),
);

/** Policy: grants of a user and one of their keys, oldest first. */
export const policyGrantsOfTwo = new HotQuery(
  'policyGrantsOfTwo',
  ['org_id', 'subject', 'other'],
  (db, p: { org_id: string; subject: string; other: string }) =>
    db
      .selectFrom('policy_grants')
      .selectAll()
      .where('org_id', '=', p.org_id)
      .where('subject_id', 'in', [p.subject, p.other])
      .orderBy('created_at')
      .orderBy('id'),
);

/** Policy: the runner scope of a user or key. */
export const policyScope = new HotQuery(
  'policyScope',
  ['subject_type', 'subject_id'],
  (db, p: { subject_type: 'user' | 'api_key'; subject_id: string }) =>
    db
      .selectFrom('policy_scopes')
      .selectAll()
      .where('subject_type', '=', p.subject_type)
      .where('subject_id', '=', p.subject_id),
);

/** Policy: an organisation's settings. */
export const policySettings = new HotQuery('policySettings', ['org_id'], (db, p: { org_id: string }) =>
  db.selectFrom('policy_settings').selectAll().where('org_id', '=', p.org_id),
);

/** Trust: the status of one pack version in an organisation (checked on every run request). */
export const packStatus = new HotQuery(
  'packStatus',
  ['org_id', 'name', 'hash'],
  (db, p: { org_id: string; name: string; hash: string }) =>
    db
      .selectFrom('packs')
      .select(['status'])
      .where('org_id', '=', p.org_id)
      .where('name', '=', p.name)
      .where('hash', '=', p.hash),
);

/** Metrics: when a run was requested and dispatched (observed on every result). */
export const runDispatchTimes = new HotQuery('runDispatchTimes', ['id'], (db, p: { id: string }) =>
  db.selectFrom('runs').select(['created_at', 'dispatched_at']).where('id', '=', p.id),
);
