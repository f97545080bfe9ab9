import type { RunsTable } from '../db/schema.js';

/** Statuses after which a run never changes again. */
export const FINAL_STATUSES = ['success', 'failure', 'validation_failed', 'error', 'timeout', 'cancelled'] as const;

export function isFinal(status: string): boolean {
  return (FINAL_STATUSES as readonly string[]).includes(status);
}

/** A run as the API shows it. */
export function runView(r: RunsTable) {
  return {
    id: r.id,
    runner_id: r.runner_id,
    action: r.action,
    pack: r.pack_name,
    pack_hash: r.pack_hash,
    args: JSON.parse(r.args) as Record<string, unknown>,
    limits: JSON.parse(r.limits) as Record<string, number>,
    reason: r.reason,
    requested_by: JSON.parse(r.requested_by) as { type: string; id: string; name?: string },
    status: r.status,
    exit_code: r.exit_code,
    created_at: r.created_at,
    dispatched_at: r.dispatched_at,
    started_at: r.started_at,
    finished_at: r.finished_at,
    duration_ms: r.duration_ms,
    truncated: r.truncated === 1,
    output_bytes: r.output_bytes,
    clamped: r.clamped === null ? [] : (JSON.parse(r.clamped) as unknown[]),
    audit_hash: r.audit_hash,
    error: r.error_code === null ? null : { code: r.error_code, message: r.error_message ?? '' },
    cancel_requested: r.cancel_requested === 1,
  };
}

export type RunView = ReturnType<typeof runView>;
