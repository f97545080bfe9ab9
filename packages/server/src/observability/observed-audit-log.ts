import type { AuditEvent } from '@airlock/core';
import { type AuditTransaction, type ServerAuditInput, ServerAuditLog } from '../audit/audit-log.js';
import type { Db } from '../db/database.js';
import type { ServerMetrics } from './metrics.js';

/**
 * The server audit log, counting each appended event into the metrics. Every decision and
 * result the control plane makes is an audit event, so counting here covers them all
 * without a second set of hooks in each module.
 */
export class ObservedAuditLog extends ServerAuditLog {
  constructor(
    db: Db,
    private readonly metrics: ServerMetrics,
  ) {
    super(db);
  }

  override async record(input: ServerAuditInput, trx?: AuditTransaction): Promise<AuditEvent> {
    const event = await super.record(input, trx);
    this.metrics.observeAudit({
      kind: input.kind,
      id: input.id,
      status: input.status,
      durationMs: input.durationMs,
      data: input.data,
    });
    return event;
  }
}
