import { randomUUID } from 'node:crypto';
import { type AuditEvent, type AuditStatus, appendEvent, GENESIS_HASH } from '@airlock/core';
import { sql } from 'kysely';
import type { Db } from '../db/database.js';

/** Arbitrary key for the Postgres advisory lock that serialises appends across instances. */
const AUDIT_LOCK_KEY = 7_700_001;

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

/**
 * The server's own hash-chained audit log, in the database. Appends are serialised (a
 * Postgres advisory lock, or SQLite's single writer) so the chain never forks, and each
 * append commits with the change it records when given the same transaction.
 */
export class ServerAuditLog {
  constructor(private readonly db: Db) {}

  async record(input: ServerAuditInput): Promise<AuditEvent> {
    return this.db.kysely.transaction().execute(async (trx) => {
      if (this.db.dialect === 'postgres') await sql`select pg_advisory_xact_lock(${AUDIT_LOCK_KEY})`.execute(trx);
      const last = await trx
        .selectFrom('audit_events')
        .select(['seq', 'hash'])
        .orderBy('seq', 'desc')
        .limit(1)
        .executeTakeFirst();
      const head = last === undefined ? null : { seq: Number(last.seq), hash: last.hash };
      const event = appendEvent(head, {
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
      await trx
        .insertInto('audit_events')
        .values({
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
        })
        .execute();
      return event;
    });
  }

  /** The current head, or the genesis marker for an empty log. */
  async head(): Promise<{ seq: number; hash: string }> {
    const last = await this.db.kysely
      .selectFrom('audit_events')
      .select(['seq', 'hash'])
      .orderBy('seq', 'desc')
      .limit(1)
      .executeTakeFirst();
    return last === undefined ? { seq: -1, hash: GENESIS_HASH } : { seq: Number(last.seq), hash: last.hash };
  }
}
