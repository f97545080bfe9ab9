import { randomUUID } from 'node:crypto';
import { digestArgs } from '@airlock/core';
import { type Principal, principalRecord } from '../auth/principal.js';
import type { ServerContext } from '../context.js';
import { insertRun, runnerByIdOrName } from '../db/hot-queries.js';
import type { RunnersTable, RunsTable } from '../db/schema.js';
import { ApiError } from '../http/api-error.js';
import { isPackTrusted } from '../packs/pack-store.js';
import { openApproval } from '../policy/approvals.js';
import { decideRun } from '../policy/decide.js';
import type { RunnerHub } from '../runners/hub.js';
import { parseState, type RunnerState } from '../runners/runner-store.js';
import { isFinal } from './run-view.js';

/** A request to run an action, as accepted by `POST /api/v1/runs`. */
export interface RunRequest {
  readonly runner: string;
  readonly action: string;
  readonly args: Record<string, unknown>;
  readonly limits: Record<string, number>;
  readonly reason: string;
}

/**
 * The runner's advertised state (packs and actions from its last hello), parsed once per
 * stored version: the JSON is large and changes only on hello. A parse memo, not a decision;
 * the runner row itself is read on every request.
 */
const parsedStates = new Map<string, { raw: string | null; state: Readonly<RunnerState> }>();
function advertisedState(runner: RunnersTable): Readonly<RunnerState> {
  const hit = parsedStates.get(runner.id);
  if (hit !== undefined && hit.raw === runner.state) return hit.state;
  const state = parseState(runner);
  parsedStates.delete(runner.id);
  parsedStates.set(runner.id, { raw: runner.state, state });
  // Bounded: the least recently parsed runner goes first.
  if (parsedStates.size > 1000) parsedStates.delete(parsedStates.keys().next().value as string);
  return state;
}

/** Find a runner of the caller's organisation by id or name. */
export async function findRunner(ctx: ServerContext, orgId: string, idOrName: string) {
  return runnerByIdOrName.first(ctx.db.kysely, { org_id: orgId, key: idOrName });
}

/**
 * Queue a run and dispatch it when the runner is connected. Refuses (with the field at fault)
 * an unknown runner, a revoked runner, an action the runner does not offer, and a pack hash
 * the organisation has not trusted. Arguments are validated again, authoritatively, on the runner.
 */
export async function createRun(
  ctx: ServerContext,
  hub: RunnerHub,
  principal: Principal,
  req: RunRequest,
): Promise<RunsTable> {
  const runner = await findRunner(ctx, principal.orgId, req.runner);
  if (runner === undefined) throw ApiError.notFound(`runner ${JSON.stringify(req.runner)}`);
  if (runner.status === 'revoked') throw ApiError.conflict(`runner ${runner.name} is revoked`);
  const state = advertisedState(runner);
  const pack = state.packs.find((p) => p.actions.includes(req.action));
  if (pack === undefined) {
    throw ApiError.badRequest(`body.action: runner ${runner.name} does not offer ${req.action}`, [
      { field: 'body.action', message: `runner ${runner.name} does not offer ${req.action}` },
    ]);
  }
  if (!(await isPackTrusted(ctx.db, principal.orgId, pack.name, pack.hash))) {
    throw new ApiError(
      409,
      'pack_untrusted',
      `pack ${pack.name} with hash ${pack.hash} on runner ${runner.name} is not trusted in this organisation; an admin must review and trust it first`,
    );
  }
  const risk =
    (pack as { action_risks?: Record<string, 'read' | 'change' | 'destructive'> }).action_risks?.[req.action] ??
    'unknown';
  const decision = await decideRun(ctx, {
    principal,
    runner,
    action: req.action,
    risk,
    args: req.args,
    limits: req.limits,
  });
  if (decision.kind === 'deny') {
    await ctx.audit.record({
      orgId: principal.orgId,
      kind: 'run.denied',
      actor: principalRecord(principal),
      runner: runner.id,
      action: req.action,
      packHash: pack.hash,
      reason: req.reason,
      status: 'validation_failed',
      error: { code: 'policy_denied', message: decision.message },
      data: { rule: decision.rule, risk, ...(decision.trace === undefined ? {} : { trace: decision.trace }) },
    });
    throw ApiError.forbidden(
      `policy denies ${req.action} on ${runner.name}: ${decision.message} (rule: ${decision.rule})`,
    );
  }
  const now = new Date().toISOString();
  // Allowed and the runner's session is on this instance: stored as dispatched and sent
  // after the commit (see RunnerHub.sendFresh), one write instead of an insert and an update.
  const direct = decision.kind === 'allow' && hub.isLocal(runner.id);
  const row: RunsTable = {
    id: randomUUID(),
    org_id: principal.orgId,
    runner_id: runner.id,
    action: req.action,
    pack_name: pack.name,
    pack_hash: pack.hash,
    args: JSON.stringify(req.args),
    // Policy may lower limits into an override's bounds; what is stored is what is dispatched.
    limits: JSON.stringify(decision.limits ?? req.limits),
    reason: req.reason,
    requested_by: JSON.stringify(principalRecord(principal)),
    status: decision.kind === 'require_approval' ? 'pending_approval' : direct ? 'dispatched' : 'queued',
    exit_code: null,
    created_at: now,
    dispatched_at: direct ? now : null,
    started_at: null,
    finished_at: null,
    duration_ms: null,
    truncated: 0,
    output_bytes: 0,
    clamped: null,
    audit_hash: null,
    error_code: null,
    error_message: null,
    cancel_requested: 0,
  };
  // The run and its `run.requested` (and `grant.used`) events commit together.
  await ctx.db.kysely.transaction().execute(async (trx) => {
    await insertRun.execute(trx, row);
    await ctx.audit.record(
      {
        orgId: principal.orgId,
        id: row.id,
        kind: 'run.requested',
        actor: principalRecord(principal),
        runner: runner.id,
        action: req.action,
        packHash: pack.hash,
        reason: req.reason,
        argsDigest: digestArgs(req.args),
        status: 'success',
        data: {
          runner: runner.name,
          limits: decision.limits ?? req.limits,
          decision: decision.kind,
          rule: decision.rule,
          risk,
          ...(decision.kind === 'allow' && decision.grantId !== undefined ? { grant: decision.grantId } : {}),
        },
      },
      trx,
    );
    if (decision.kind === 'allow' && decision.grantId !== undefined) {
      await ctx.audit.record(
        {
          orgId: principal.orgId,
          id: row.id,
          kind: 'grant.used',
          actor: principalRecord(principal),
          runner: runner.id,
          action: req.action,
          packHash: pack.hash,
          data: { rule: decision.rule, grant: decision.grantId },
        },
        trx,
      );
    }
  });
  if (decision.kind === 'require_approval') {
    await openApproval(ctx, row, runner.name, principal, risk, decision);
    return row;
  }
  if (direct) {
    await hub.sendFresh(row);
    return row;
  }
  await hub.dispatch(row);
  return (await ctx.db.kysely.selectFrom('runs').selectAll().where('id', '=', row.id).executeTakeFirst()) ?? row;
}

/** Cancel a run: at once when it has not reached the runner, else by asking the runner. */
export async function cancelRun(
  ctx: ServerContext,
  hub: RunnerHub,
  principal: Principal,
  run: RunsTable,
  reason: string,
): Promise<void> {
  if (isFinal(run.status)) throw ApiError.conflict(`run ${run.id} already finished (${run.status})`);
  await ctx.db.kysely.updateTable('runs').set({ cancel_requested: 1 }).where('id', '=', run.id).execute();
  await ctx.audit.record({
    orgId: principal.orgId,
    id: run.id,
    kind: 'run.cancel_requested',
    actor: principalRecord(principal),
    runner: run.runner_id,
    action: run.action,
    reason,
  });
  // Only a queued run is known never to have reached the runner; anything later is cancelled
  // by the runner itself (now, or when it reconnects), so its final status stays truthful.
  if (run.status === 'pending_approval') {
    await ctx.db.kysely
      .updateTable('run_approvals')
      .set({ state: 'denied', decided_at: new Date().toISOString() })
      .where('run_id', '=', run.id)
      .where('state', '=', 'pending')
      .execute();
    await ctx.db.kysely
      .updateTable('runs')
      .set({
        status: 'cancelled',
        finished_at: new Date().toISOString(),
        error_code: 'cancelled',
        error_message: `cancelled while waiting for approval: ${reason}`,
      })
      .where('id', '=', run.id)
      .where('status', '=', 'pending_approval')
      .execute();
    await hub.emitStatus(run.id);
    return;
  }
  if (run.status === 'queued') {
    const res = await ctx.db.kysely
      .updateTable('runs')
      .set({
        status: 'cancelled',
        finished_at: new Date().toISOString(),
        error_code: 'cancelled',
        error_message: `cancelled before it started: ${reason}`,
      })
      .where('id', '=', run.id)
      .where('status', '=', 'queued')
      .executeTakeFirst();
    if (Number(res.numUpdatedRows) === 1) {
      await hub.emitStatus(run.id);
      return;
    }
  }
  hub.cancel(run, reason);
}
