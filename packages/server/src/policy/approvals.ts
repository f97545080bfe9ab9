// Approvals: a run that policy gates waits in `pending_approval` until enough eligible people
// approve (quorum), anyone eligible denies, or it expires (fails closed). Signed tiers also
// need an approver signature over the dispatch envelope, which the runner verifies itself.
import { randomBytes } from 'node:crypto';
import {
  type ApproverCert,
  certBytes,
  certTimeProblem,
  createRedactor,
  type DispatchEnvelope,
  dispatchBytes,
  type RunActionMessage,
  redactValue,
  type SignedApproverCert,
} from '@airlock/core';
import { type Principal, principalRecord } from '../auth/principal.js';
import type { ServerContext } from '../context.js';
import type { Db } from '../db/database.js';
import type { Role, RunApprovalsTable, RunsTable } from '../db/schema.js';
import { ApiError } from '../http/api-error.js';
import type { RunnerHub } from '../runners/hub.js';
import { approverKeyProblem, isGroupMember } from './approvers.js';
import { verifyEd25519 } from './ed25519.js';
import { approverProblem } from './engine.js';
import { loadSettings } from './store.js';
import { notify } from './webhook.js';

/** How long after the approval deadline a signed envelope stays valid (runner offline, queue). */
export const ENVELOPE_GRACE_S = 60 * 60;

const redactor = createRedactor();

/** Record that a run waits for approval; audited with the rule and announced on the webhook. */
export async function openApproval(
  ctx: ServerContext,
  run: RunsTable,
  runnerName: string,
  principal: Principal,
  risk: string,
  d: {
    rule: string;
    approvers: number;
    approverRole: string;
    approverGroup?: string;
    expiresInS: number;
    signatureRequired?: boolean;
  },
): Promise<RunApprovalsTable> {
  const now = Date.now();
  const expires = new Date(now + d.expiresInS * 1000).toISOString();
  const row: RunApprovalsTable = {
    run_id: run.id,
    org_id: run.org_id,
    state: 'pending',
    rule: d.rule,
    risk,
    requester_user_id: principal.userId,
    approvers_required: d.approvers,
    approver_role: d.approverRole as Role,
    approver_group: d.approverGroup ?? null,
    signature_required: d.signatureRequired === true ? 1 : 0,
    runner_name: runnerName,
    nonce: randomBytes(18).toString('base64url'),
    envelope_expires_at: new Date(now + (d.expiresInS + ENVELOPE_GRACE_S) * 1000).toISOString(),
    expires_at: expires,
    created_at: new Date(now).toISOString(),
    decided_at: null,
  };
  await ctx.db.kysely.insertInto('run_approvals').values(row).execute();
  await ctx.audit.record({
    orgId: run.org_id,
    id: run.id,
    kind: 'run.approval_requested',
    actor: principalRecord(principal),
    runner: run.runner_id,
    action: run.action,
    packHash: run.pack_hash,
    reason: run.reason,
    data: {
      rule: d.rule,
      risk,
      approvers: d.approvers,
      approver_role: d.approverRole,
      approver_group: d.approverGroup ?? null,
      expires_at: expires,
      signature_required: d.signatureRequired === true,
    },
  });
  await notify(ctx, run.org_id, 'approval.requested', { approval: approvalSummary(run, row, []) });
  return row;
}

/** The envelope approvers sign for a run (the runner rebuilds it from `run_action`). */
export function envelopeFor(run: RunsTable, a: RunApprovalsTable): DispatchEnvelope {
  return {
    v: 1,
    runner: a.runner_name,
    request_id: run.id,
    action: run.action,
    pack_hash: run.pack_hash,
    args: JSON.parse(run.args) as Record<string, unknown>,
    limits: JSON.parse(run.limits) as Record<string, number>,
    expires_at: a.envelope_expires_at,
    nonce: a.nonce,
  };
}

type Vote = {
  approver_id: string;
  approver_name: string;
  vote: string;
  comment: string;
  signature: string | null;
  created_at: string;
};

/** What an approver sees: action, redacted args, reason, requester, the rule, votes so far. */
export function approvalSummary(run: RunsTable, a: RunApprovalsTable, votes: readonly Vote[]) {
  return {
    run_id: run.id,
    state: a.state,
    rule: a.rule,
    risk: a.risk,
    action: run.action,
    runner: { id: run.runner_id, name: a.runner_name },
    args: redactValue(JSON.parse(run.args), redactor) as Record<string, unknown>,
    limits: JSON.parse(run.limits) as Record<string, number>,
    reason: redactor.redactLine(run.reason).text,
    requested_by: JSON.parse(run.requested_by) as Record<string, unknown>,
    /** The person on whose authority the run was asked (also when asked with their key). */
    requester_user_id: a.requester_user_id,
    approvers_required: a.approvers_required,
    approver_role: a.approver_role,
    approver_group: a.approver_group ?? null,
    signature_required: a.signature_required === 1,
    expires_at: a.expires_at,
    created_at: a.created_at,
    decided_at: a.decided_at,
    votes: votes.map((v) => ({
      approver: { id: v.approver_id, name: v.approver_name },
      vote: v.vote,
      comment: v.comment,
      signed: v.signature !== null,
      at: v.created_at,
    })),
  };
}

export async function loadApproval(
  db: Db,
  runId: string,
): Promise<{ approval: RunApprovalsTable; votes: Vote[] } | undefined> {
  const approval = await db.kysely
    .selectFrom('run_approvals')
    .selectAll()
    .where('run_id', '=', runId)
    .executeTakeFirst();
  if (approval === undefined) return undefined;
  const votes = await db.kysely
    .selectFrom('approval_votes')
    .select(['approver_id', 'approver_name', 'vote', 'comment', 'signature', 'created_at'])
    .where('run_id', '=', runId)
    .orderBy('created_at')
    .execute();
  return { approval, votes };
}

/** Close a pending approval as denied or expired: the run ends `cancelled`, never dispatched. */
async function closeRun(
  ctx: ServerContext,
  hub: RunnerHub | undefined,
  run: RunsTable,
  state: 'denied' | 'expired',
  actor: { type: string; id: string; name?: string },
  message: string,
  data: Record<string, unknown>,
): Promise<boolean> {
  const now = new Date().toISOString();
  const moved = await ctx.db.kysely
    .updateTable('run_approvals')
    .set({ state, decided_at: now })
    .where('run_id', '=', run.id)
    .where('state', '=', 'pending')
    .executeTakeFirst();
  if (Number(moved.numUpdatedRows) !== 1) return false;
  await ctx.audit.record({
    orgId: run.org_id,
    id: run.id,
    kind: state === 'denied' ? 'run.approval_denied' : 'run.approval_expired',
    actor,
    runner: run.runner_id,
    action: run.action,
    packHash: run.pack_hash,
    status: 'cancelled',
    error: { code: state === 'denied' ? 'approval_denied' : 'approval_expired', message },
    data,
  });
  // The run's final status is written after its audit event, so a finished run is always audited.
  await ctx.db.kysely
    .updateTable('runs')
    .set({
      status: 'cancelled',
      finished_at: now,
      error_code: state === 'denied' ? 'approval_denied' : 'approval_expired',
      error_message: message,
    })
    .where('id', '=', run.id)
    .where('status', '=', 'pending_approval')
    .execute();
  await notify(ctx, run.org_id, state === 'denied' ? 'approval.denied' : 'approval.expired', {
    run_id: run.id,
    action: run.action,
    ...data,
  });
  await hub?.emitStatus(run.id);
  return true;
}

/** Expire every pending approval past its deadline. Returns how many were closed. */
export async function expireApprovals(ctx: ServerContext, hub: RunnerHub | undefined): Promise<number> {
  const now = new Date().toISOString();
  const due = await ctx.db.kysely
    .selectFrom('run_approvals')
    .innerJoin('runs', 'runs.id', 'run_approvals.run_id')
    .selectAll('runs')
    .select(['run_approvals.rule as approval_rule', 'run_approvals.expires_at as approval_expires_at'])
    .where('run_approvals.state', '=', 'pending')
    .where('run_approvals.expires_at', '<=', now)
    .execute();
  let n = 0;
  for (const row of due) {
    const { approval_rule, approval_expires_at, ...run } = row;
    if (
      await closeRun(
        ctx,
        hub,
        run,
        'expired',
        { type: 'system', id: 'approval-expiry', name: 'approval expiry' },
        `no decision before ${approval_expires_at}; expired requests fail closed`,
        {
          rule: approval_rule,
          expires_at: approval_expires_at,
        },
      )
    )
      n++;
  }
  return n;
}

/** Verify an approver's signature and certificate against the organisation root key. */
function checkSignature(
  rootKey: string | null,
  envelope: DispatchEnvelope,
  signature: string,
  cert: SignedApproverCert,
): string | undefined {
  if (rootKey === null) return 'this organisation has no root public key configured (PUT /api/v1/policy/settings)';
  if (!verifyEd25519(rootKey, certBytes(cert.cert as ApproverCert), cert.signature))
    return 'the approver certificate is not signed by the organisation root key';
  const t = certTimeProblem(cert.cert, Date.now());
  if (t !== undefined)
    return t === 'cert_expired'
      ? 'the approver certificate is not valid now'
      : 'the approver certificate is malformed or longer than 24 hours';
  if (!verifyEd25519(cert.cert.public_key, dispatchBytes(envelope), signature))
    return 'the signature does not match this run\u2019s dispatch envelope';
  return undefined;
}

export interface VoteInput {
  readonly vote: 'approve' | 'deny';
  readonly comment: string;
  readonly signature?: string | undefined;
  readonly cert?: SignedApproverCert | undefined;
}

/**
 * Cast a vote. Refuses: no pending approval, expired (and closes it), the requester, a role
 * below the rule's, a second vote by the same person, a bad signature. A deny closes the
 * run at once; the last approval of the quorum queues and dispatches it.
 */
export async function voteOnRun(
  ctx: ServerContext,
  hub: RunnerHub | undefined,
  principal: Principal,
  run: RunsTable,
  input: VoteInput,
): Promise<void> {
  const loaded = await loadApproval(ctx.db, run.id);
  if (loaded === undefined || run.status !== 'pending_approval' || loaded.approval.state !== 'pending') {
    throw ApiError.conflict(`run ${run.id} is not waiting for approval (status ${run.status})`);
  }
  const a = loaded.approval;
  if (a.expires_at <= new Date().toISOString()) {
    await expireApprovals(ctx, hub);
    throw new ApiError(
      409,
      'approval_expired',
      `the approval request for run ${run.id} expired at ${a.expires_at}; it fails closed`,
    );
  }
  const actor = principalRecord(principal);
  const refuse = async (code: string, message: string, status = 403): Promise<never> => {
    await ctx.audit.record({
      orgId: run.org_id,
      id: run.id,
      kind: 'run.approval_refused',
      actor,
      runner: run.runner_id,
      action: run.action,
      status: 'validation_failed',
      error: { code, message },
      data: { rule: a.rule, vote: input.vote },
    });
    throw new ApiError(status, code, message);
  };
  const problem = approverProblem(
    { userId: principal.userId, role: principal.role },
    { requesterUserId: a.requester_user_id, approverRole: a.approver_role },
  );
  if (problem !== undefined)
    return refuse(problem.startsWith('the requester') ? 'self_approval' : 'approver_role', problem);
  if (a.approver_group != null && !(await isGroupMember(ctx.db, run.org_id, a.approver_group, principal.userId)))
    return refuse('approver_group', `approving this run needs membership of approver group ${a.approver_group}`);
  if (loaded.votes.some((v) => v.approver_id === principal.userId))
    return refuse('already_voted', `${principal.username} already voted on run ${run.id}`, 409);
  let signature: string | null = null;
  if (input.vote === 'approve' && (input.signature !== undefined || a.signature_required === 1)) {
    if (input.signature === undefined || input.cert === undefined) {
      return refuse(
        'signature_required',
        `run ${run.id} is in a signed tier: approve with a signature over its envelope (airlock approve ${run.id} --sign)`,
        400,
      );
    }
    const keyProblem = await approverKeyProblem(ctx.db, run.org_id, principal.userId, input.cert.cert.key_id);
    if (keyProblem !== undefined) return refuse(keyProblem.code, keyProblem.message, 400);
    const settings = await loadSettings(ctx.db, run.org_id);
    const bad = checkSignature(settings.rootPublicKey, envelopeFor(run, a), input.signature, input.cert);
    if (bad !== undefined) return refuse('signature_invalid', bad, 400);
    signature = input.signature;
  }
  await ctx.db.kysely
    .insertInto('approval_votes')
    .values({
      run_id: run.id,
      approver_id: principal.userId,
      org_id: run.org_id,
      approver_name: principal.username,
      vote: input.vote,
      comment: input.comment,
      signature,
      cert: input.cert === undefined || signature === null ? null : JSON.stringify(input.cert),
      created_at: new Date().toISOString(),
    })
    .execute();
  await ctx.audit.record({
    orgId: run.org_id,
    id: run.id,
    kind: input.vote === 'approve' ? 'run.approved' : 'run.denied_by_approver',
    actor,
    runner: run.runner_id,
    action: run.action,
    packHash: run.pack_hash,
    reason: input.comment,
    data: {
      rule: a.rule,
      signed: signature !== null,
      ...(input.cert === undefined ? {} : { key_id: input.cert.cert.key_id }),
    },
  });
  if (input.vote === 'deny') {
    await closeRun(ctx, hub, run, 'denied', actor, `denied by ${principal.username}: ${input.comment}`, {
      rule: a.rule,
      approver: principal.username,
      comment: input.comment,
    });
    return;
  }
  const votes = [...loaded.votes, { approver_id: principal.userId, signature }];
  const approvals = votes.filter((v) => !('vote' in v) || v.vote === 'approve');
  const signed = approvals.some((v) => v.signature !== null);
  if (approvals.length < a.approvers_required || (a.signature_required === 1 && !signed)) return;
  const now = new Date().toISOString();
  const moved = await ctx.db.kysely
    .updateTable('run_approvals')
    .set({ state: 'approved', decided_at: now })
    .where('run_id', '=', run.id)
    .where('state', '=', 'pending')
    .executeTakeFirst();
  if (Number(moved.numUpdatedRows) !== 1) return;
  await ctx.db.kysely
    .updateTable('runs')
    .set({ status: 'queued' })
    .where('id', '=', run.id)
    .where('status', '=', 'pending_approval')
    .execute();
  await ctx.audit.record({
    orgId: run.org_id,
    id: run.id,
    kind: 'run.approval_granted',
    actor,
    runner: run.runner_id,
    action: run.action,
    packHash: run.pack_hash,
    data: { rule: a.rule, approvers: approvals.length, signed },
  });
  await notify(ctx, run.org_id, 'approval.granted', { run_id: run.id, action: run.action, rule: a.rule });
  const fresh = await ctx.db.kysely.selectFrom('runs').selectAll().where('id', '=', run.id).executeTakeFirstOrThrow();
  if (hub !== undefined && !(await hub.dispatch(fresh))) await hub.emitStatus(run.id);
}

/** The `approval` block of a `run_action` for an approved run (signature included when signed). */
export async function approvalForDispatch(db: Db, run: RunsTable): Promise<RunActionMessage['approval'] | undefined> {
  const loaded = await loadApproval(db, run.id);
  if (loaded === undefined || loaded.approval.state !== 'approved') return undefined;
  const approvers = loaded.votes.filter((v) => v.vote === 'approve').map((v) => v.approver_name);
  if (approvers.length === 0) return undefined;
  const signedVote = await db.kysely
    .selectFrom('approval_votes')
    .select(['signature', 'cert'])
    .where('run_id', '=', run.id)
    .where('vote', '=', 'approve')
    .where('signature', 'is not', null)
    .orderBy('created_at')
    .executeTakeFirst();
  if (signedVote?.signature == null || signedVote.cert === null) return { approvers };
  const cert = JSON.parse(signedVote.cert) as SignedApproverCert;
  return {
    approvers,
    signature: signedVote.signature,
    key_id: cert.cert.key_id,
    expires_at: loaded.approval.envelope_expires_at,
    nonce: loaded.approval.nonce,
    cert: { cert: { ...cert.cert }, signature: cert.signature },
  };
}
