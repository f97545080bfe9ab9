import { z } from 'zod';
import type { ServerContext } from '../context.js';
import type { RunsTable } from '../db/schema.js';
import { ApiError } from '../http/api-error.js';
import { approvalSummary, envelopeFor, loadApproval, voteOnRun } from '../policy/approvals.js';
import { visibleRunnerIds } from '../policy/visibility.js';
import type { RunEvent, RunnerHub } from '../runners/hub.js';
import { cancelRun, createRun } from './run-service.js';
import { FINAL_STATUSES, isFinal, runView } from './run-view.js';

const idParams = z.strictObject({ id: z.string().min(1).max(128) });
const statuses = ['pending_approval', 'queued', 'dispatched', 'running', ...FINAL_STATUSES] as const;

/** Runs: request, list, inspect, output (JSON or live SSE), cancel. */
export function registerRunRoutes(ctx: ServerContext, hub: RunnerHub): void {
  const { routes, db } = ctx;
  const load = async (orgId: string, id: string): Promise<RunsTable> => {
    const row = await db.kysely
      .selectFrom('runs')
      .selectAll()
      .where('org_id', '=', orgId)
      .where('id', '=', id)
      .executeTakeFirst();
    if (row === undefined) throw ApiError.notFound('run');
    return row;
  };

  routes.add({
    method: 'POST',
    url: '/api/v1/runs',
    summary: 'Request a run of a declared action on a runner',
    tag: 'runs',
    auth: { permission: 'runs:write' },
    body: z.strictObject({
      runner: z.string().min(1).max(128).describe('runner id or name'),
      action: z.string().regex(/^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$/, 'expected namespace.action'),
      args: z.record(z.string(), z.unknown()).default({}),
      limits: z.record(z.string(), z.number()).default({}),
      reason: z.string().trim().min(1, 'say why you run it').max(2000),
    }),
    status: 201,
    handler: async ({ principal, body }) => runView(await createRun(ctx, hub, principal!, body)),
  });

  routes.add({
    method: 'GET',
    url: '/api/v1/runs',
    summary: 'Run history, newest first, with filters',
    tag: 'runs',
    auth: { permission: 'runs:read' },
    query: z.strictObject({
      status: z.enum(statuses).optional(),
      runner: z.string().max(128).optional(),
      action: z.string().max(256).optional(),
      from: z.iso.datetime().optional(),
      to: z.iso.datetime().optional(),
      limit: z.coerce.number().int().min(1).max(500).default(50),
      before: z.iso.datetime().optional().describe('cursor: created_at of the last run of the previous page'),
    }),
    handler: async ({ principal, query }) => {
      let q = db.kysely.selectFrom('runs').selectAll().where('org_id', '=', principal!.orgId);
      // History only for runners inside the caller's runner scope.
      const scoped = await visibleRunnerIds(ctx, principal!);
      if (scoped !== undefined) q = q.where('runner_id', 'in', scoped.length > 0 ? scoped : ['']);
      if (query.status !== undefined) q = q.where('status', '=', query.status);
      if (query.runner !== undefined) q = q.where('runner_id', '=', query.runner);
      if (query.action !== undefined) q = q.where('action', '=', query.action);
      if (query.from !== undefined) q = q.where('created_at', '>=', query.from);
      if (query.to !== undefined) q = q.where('created_at', '<=', query.to);
      if (query.before !== undefined) q = q.where('created_at', '<', query.before);
      const rows = await q.orderBy('created_at', 'desc').limit(query.limit).execute();
      const last = rows[rows.length - 1];
      return {
        runs: rows.map(runView),
        next: rows.length === query.limit && last !== undefined ? last.created_at : null,
      };
    },
  });

  routes.add({
    method: 'GET',
    url: '/api/v1/runs/:id',
    summary: 'One run: status, timings, who asked, result',
    tag: 'runs',
    auth: { permission: 'runs:read' },
    params: idParams,
    handler: async ({ principal, params }) => runView(await load(principal!.orgId, params.id)),
  });

  routes.add({
    method: 'GET',
    url: '/api/v1/runs/:id/output',
    summary: 'Output lines of a run (redacted on the runner), from a sequence number',
    tag: 'runs',
    auth: { permission: 'runs:read' },
    params: idParams,
    query: z.strictObject({
      after: z.coerce.number().int().min(-1).default(-1),
      limit: z.coerce.number().int().min(1).max(10000).default(1000),
    }),
    handler: async ({ principal, params, query }) => {
      const run = await load(principal!.orgId, params.id);
      const lines = await db.kysely
        .selectFrom('run_output')
        .select(['seq', 'stream', 'line', 'partial'])
        .where('run_id', '=', run.id)
        .where('seq', '>', query.after)
        .orderBy('seq')
        .limit(query.limit)
        .execute();
      return { status: run.status, lines: lines.map((l) => ({ ...l, partial: l.partial === 1 })) };
    },
  });

  routes.add({
    method: 'GET',
    url: '/api/v1/runs/:id/stream',
    summary: 'Live output and status of a run as Server-Sent Events (events: output, status, end)',
    tag: 'runs',
    auth: { permission: 'runs:read' },
    params: idParams,
    handler: async ({ principal, params, reply, req }) => {
      const run = await load(principal!.orgId, params.id);
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        'content-type': 'text/event-stream',
        'cache-control': 'no-cache',
        connection: 'keep-alive',
        'x-request-id': req.id,
      });
      const send = (event: string, data: unknown): void =>
        void res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
      let lastSeq = -1;
      let done = false;
      const finish = (): void => {
        if (done) return;
        done = true;
        hub.events.off(`run:${run.id}`, onEvent);
        clearInterval(keepAlive);
        res.end();
      };
      const queue: RunEvent[] = [];
      let replaying = true;
      const onEvent = (e: RunEvent): void => {
        if (replaying) {
          queue.push(e);
          return;
        }
        deliver(e);
      };
      const deliver = (e: RunEvent): void => {
        if (e.type === 'output') {
          if (e.seq <= lastSeq) return;
          lastSeq = e.seq;
          send('output', { seq: e.seq, stream: e.stream, line: e.line, partial: e.partial });
        } else {
          send('status', e.run);
          if (isFinal(e.run.status)) {
            send('end', { status: e.run.status });
            finish();
          }
        }
      };
      // Subscribe first, then replay what is stored, so nothing falls in between.
      hub.events.on(`run:${run.id}`, onEvent);
      const keepAlive = setInterval(() => res.write(': keep-alive\n\n'), 15_000);
      req.raw.on('close', finish);
      const stored = await db.kysely
        .selectFrom('run_output')
        .selectAll()
        .where('run_id', '=', run.id)
        .orderBy('seq')
        .execute();
      for (const l of stored) {
        lastSeq = l.seq;
        send('output', { seq: l.seq, stream: l.stream, line: l.line, partial: l.partial === 1 });
      }
      const current = await load(principal!.orgId, params.id);
      send('status', runView(current));
      replaying = false;
      if (isFinal(current.status)) {
        send('end', { status: current.status });
        finish();
        return;
      }
      for (const e of queue.splice(0)) deliver(e);
    },
  });

  const certSchema = z.strictObject({
    cert: z.strictObject({
      v: z.literal(1),
      key_id: z.string().min(1).max(256),
      public_key: z.string().regex(/^[A-Za-z0-9_-]{43}$/),
      subject: z.string().min(1).max(256),
      not_before: z.iso.datetime({ offset: true }),
      not_after: z.iso.datetime({ offset: true }),
    }),
    signature: z.string().regex(/^[A-Za-z0-9_-]{86}$/, 'expected a base64url Ed25519 signature'),
  });

  routes.add({
    method: 'GET',
    url: '/api/v1/runs/:id/approval',
    summary: 'Approval state of a run: rule, requester, redacted args, votes, and the envelope to sign',
    tag: 'approvals',
    auth: { permission: 'runs:read' },
    params: idParams,
    handler: async ({ principal, params }) => {
      const run = await load(principal!.orgId, params.id);
      const loaded = await loadApproval(db, run.id);
      if (loaded === undefined) throw ApiError.notFound(`approval for run ${run.id}`);
      return { ...approvalSummary(run, loaded.approval, loaded.votes), envelope: envelopeFor(run, loaded.approval) };
    },
  });

  routes.add({
    method: 'GET',
    url: '/api/v1/approvals',
    summary: 'Runs waiting for (or decided by) approval, newest first',
    tag: 'approvals',
    auth: { permission: 'runs:read' },
    query: z.strictObject({
      state: z.enum(['pending', 'approved', 'denied', 'expired']).default('pending'),
      limit: z.coerce.number().int().min(1).max(500).default(100),
    }),
    handler: async ({ principal, query }) => {
      const rows = await db.kysely
        .selectFrom('run_approvals')
        .innerJoin('runs', 'runs.id', 'run_approvals.run_id')
        .selectAll('runs')
        .where('run_approvals.org_id', '=', principal!.orgId)
        .where('run_approvals.state', '=', query.state)
        .orderBy('run_approvals.created_at', 'desc')
        .limit(query.limit)
        .execute();
      const out = [];
      for (const run of rows) {
        const loaded = await loadApproval(db, run.id);
        if (loaded !== undefined) out.push(approvalSummary(run, loaded.approval, loaded.votes));
      }
      return { approvals: out };
    },
  });

  routes.add({
    method: 'POST',
    url: '/api/v1/runs/:id/approve',
    summary: 'Approve a run waiting for approval (never your own); signed tiers need signature + certificate',
    tag: 'approvals',
    auth: { permission: 'runs:write' },
    params: idParams,
    body: z
      .strictObject({
        comment: z.string().trim().max(2000).default(''),
        signature: z
          .string()
          .regex(/^[A-Za-z0-9_-]{86}$/, 'expected a base64url Ed25519 signature')
          .optional(),
        cert: certSchema.optional(),
      })
      .default({ comment: '' }),
    handler: async ({ principal, params, body }) => {
      const run = await load(principal!.orgId, params.id);
      await voteOnRun(ctx, hub, principal!, run, {
        vote: 'approve',
        comment: body.comment,
        signature: body.signature,
        cert: body.cert,
      });
      const loaded = await loadApproval(db, run.id);
      const fresh = await load(principal!.orgId, params.id);
      return {
        run: runView(fresh),
        approval: loaded === undefined ? null : approvalSummary(fresh, loaded.approval, loaded.votes),
      };
    },
  });

  routes.add({
    method: 'POST',
    url: '/api/v1/runs/:id/deny',
    summary: 'Deny a run waiting for approval, with a comment; it ends cancelled and never runs',
    tag: 'approvals',
    auth: { permission: 'runs:write' },
    params: idParams,
    body: z.strictObject({ comment: z.string().trim().min(1, 'say why you deny it').max(2000) }),
    handler: async ({ principal, params, body }) => {
      const run = await load(principal!.orgId, params.id);
      await voteOnRun(ctx, hub, principal!, run, { vote: 'deny', comment: body.comment });
      const loaded = await loadApproval(db, run.id);
      const fresh = await load(principal!.orgId, params.id);
      return {
        run: runView(fresh),
        approval: loaded === undefined ? null : approvalSummary(fresh, loaded.approval, loaded.votes),
      };
    },
  });

  routes.add({
    method: 'POST',
    url: '/api/v1/runs/:id/cancel',
    summary: 'Cancel a run (at once if it has not reached the runner; otherwise the runner stops it)',
    tag: 'runs',
    auth: { permission: 'runs:write' },
    params: idParams,
    body: z
      .strictObject({ reason: z.string().trim().min(1).max(2000).default('cancelled by request') })
      .default({ reason: 'cancelled by request' }),
    status: 202,
    handler: async ({ principal, params, body }) => {
      const run = await load(principal!.orgId, params.id);
      await cancelRun(ctx, hub, principal!, run, body.reason);
      return runView(await load(principal!.orgId, params.id));
    },
  });
}
