import { randomUUID } from 'node:crypto';
import { type AuditEvent, type AuditStatus, appendEvent, GENESIS_HASH } from '@airlock/core';
import { type Kysely, sql, type Transaction } from 'kysely';
import type { Db } from '../db/database.js';
import { auditHead, insertAuditEvent, insertAuditEventAfter } from '../db/hot-queries.js';
import type { Database } from '../db/schema.js';

/** Arbitrary key for the Postgres advisory lock that serialises appends across instances. */
const AUDIT_LOCK_KEY = 7_700_001;

/** A transaction an append joins, so that it commits (or rolls back) with the change it records. */
export type AuditTransaction = Transaction<Database>;

/** What a caller records; the chain fields are filled in by the log. */
export interface ServerAuditInput {
  readonly orgId: string | null;
  /** Dotted kind, e.g. `auth.login`, `runner.created`, `pack.trusted`, `run.dispatched`, `run.result`. */
  readonly kind: string;
  readonly actor: { readonly type: string; readonly id: string; readonly name?: string };
  readonly status?: AuditStatus;
  readonly runner?: string;
  readonly action?: string;
  readonly packHash?: string | null;
  readonly reason?: string | null;
  readonly args?: Record<string, unknown>;
  readonly argsDigest?: string;
  readonly exitCode?: number | null;
  readonly durationMs?: number;
  readonly error?: { code: string; message: string } | null;
  readonly data?: Record<string, unknown>;
  /** Attempt / object id the event is about (run id, key id…); random when omitted. */
  readonly id?: string;
}

type Head = { seq: number; hash: string };

/**
 * The server's own hash-chained audit log, in the database. Appends are serialised (a
 * Postgres advisory lock, or SQLite's single writer) so the chain never forks, and each
 * append commits with the change it records when given the same transaction.
 *
 * On SQLite the chain head is remembered in memory after each append instead of read back
 * before the next one; the insert itself checks, in the same statement, that the stored head
 * is still the remembered one, and inserts nothing otherwise (another process appended, or
 * the transaction that wrote the remembered head rolled back). Then the head is read and the
 * event rebuilt on it. A stale memory therefore costs one retry, never a fork or a gap.
 * Postgres (several instances share the log) always reads the head under the advisory lock.
 */
export class ServerAuditLog {
  /** SQLite only: the head after this process's last append, as a hint checked on insert. */
  private headHint: Head | undefined;

  constructor(private readonly db: Db) {}

  /**
   * Append one event. With `trx` it joins that transaction (callers put the change the event
   * records in the same one); on Postgres, call it last there: the chain lock is held to commit.
   */
  async record(input: ServerAuditInput, trx?: AuditTransaction): Promise<AuditEvent> {
    if (this.db.dialect === 'sqlite') return this.appendSqlite(trx ?? this.db.kysely, input);
    if (trx !== undefined) return this.appendLocked(trx, input);
    return this.db.kysely.transaction().execute((t) => this.appendLocked(t, input));
  }

  private async appendLocked(trx: AuditTransaction, input: ServerAuditInput): Promise<AuditEvent> {
    if (this.db.dialect === 'postgres') await sql`select pg_advisory_xact_lock(${AUDIT_LOCK_KEY})`.execute(trx);
    const event = buildEvent(await readHead(trx), input);
    await insertAuditEvent.execute(trx, eventRow(input, event));
    return event;
  }

  /**
   * SQLite: one statement when the remembered head is current (a single statement is atomic
   * without a transaction of its own), else read the head and insert on it. SQLite has one
   * writer and the connection is not shared while a statement or transaction runs, so the
   * head read and the insert cannot interleave with another append of this process.
   */
  private async appendSqlite(q: Kysely<Database>, input: ServerAuditInput): Promise<AuditEvent> {
    const hint = this.headHint;
    this.headHint = undefined;
    if (hint !== undefined) {
      const event = buildEvent(hint, input);
      if ((await insertAuditEventAfter.changed(q, { ...eventRow(input, event), head_hash: hint.hash })) === 1) {
        this.headHint = { seq: event.seq, hash: event.hash };
        return event;
      }
    }
    const run = async (t: Kysely<Database>): Promise<AuditEvent> => {
      const event = buildEvent(await readHead(t), input);
      await insertAuditEvent.execute(t, eventRow(input, event));
      return event;
    };
    // Outside a caller's transaction the read and the insert need one of their own.
    const event = q.isTransaction ? await run(q) : await q.transaction().execute(run);
    this.headHint = { seq: event.seq, hash: event.hash };
    return event;
  }

  /** The current head, or the genesis marker for an empty log. */
  async head(): Promise<{ seq: number; hash: string }> {
    return (await readHead(this.db.kysely)) ?? { seq: -1, hash: GENESIS_HASH };
  }
}

async function readHead(q: Kysely<Database>): Promise<Head | null> {
  const last = await auditHead.first(q, {});
  return last === undefined ? null : { seq: Number(last.seq), hash: last.hash };
}

function buildEvent(head: Head | null, input: ServerAuditInput): AuditEvent {
  return appendEvent(head, {
    id: input.id ?? randomUUID(),
    time: new Date().toISOString(),
    kind: input.kind,
    principal: { ...input.actor },
    // Events that concern no runner or action name the control plane and their kind.
    runner: input.runner ?? 'control-plane',
    action: input.action ?? input.kind,
    pack_hash: input.packHash ?? null,
    args_digest: input.argsDigest ?? `sha256:${'0'.repeat(64)}`,
    args: input.args ?? {},
    reason: input.reason ?? null,
    status: input.status ?? 'success',
    exit_code: input.exitCode ?? null,
    duration_ms: input.durationMs ?? 0,
    output_digest: null,
    output_bytes: 0,
    truncated: false,
    clamped: [],
    error: input.error ?? null,
    ...(input.data === undefined ? {} : { data: input.data }),
  });
}

function eventRow(input: ServerAuditInput, event: AuditEvent) {
  return {
    seq: event.seq,
    org_id: input.orgId,
    id: event.id,
    time: event.time,
    kind: event.kind,
    actor: JSON.stringify(event.principal),
    runner: event.runner,
    action: event.action,
    status: event.status,
    body: JSON.stringify(event),
    prev: event.prev,
    hash: event.hash,
  };
}
