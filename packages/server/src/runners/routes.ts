import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { principalRecord } from '../auth/principal.js';
import { startInstanceLiveness } from '../cluster/instances.js';
import { startRequeueSweep } from '../cluster/requeue.js';
import type { ServerContext } from '../context.js';
import { ApiError } from '../http/api-error.js';
import type { ModuleHandle } from '../modules.js';
import { registerPackRoutes } from '../packs/routes.js';
import { runnerVisibility } from '../policy/visibility.js';
import { registerRunRoutes } from '../runs/routes.js';
import { CLOSE, RunnerHub } from './hub.js';
import { createRunner, redeemBootstrapKey, runnerForToken, runnerView } from './runner-store.js';

const runnerName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, 'use 1-63 letters, digits, dot, dash or underscore');
const labels = z.record(z.string().regex(/^[a-z][a-z0-9_.-]{0,62}$/, 'label names are lowercase'), z.string().max(128));
const idParams = z.strictObject({ id: z.string().min(1).max(128) });

/** The runner hub's public handle, for other modules (runs, MCP). */
export let activeHub: RunnerHub | undefined;

/** Runners: create (bootstrap key), register (token), list, revoke, the WebSocket hub; runs and packs ride on it. */
export async function registerRunnerModule(
  ctx: ServerContext,
  app: FastifyInstance,
): Promise<ModuleHandle | undefined> {
  const hub = new RunnerHub(ctx);
  activeHub = hub;
  const { routes, db } = ctx;

  routes.add({
    method: 'POST',
    url: '/api/v1/runners',
    summary: 'Create a runner; returns a one-time bootstrap key and the command to start it',
    tag: 'runners',
    auth: { permission: 'runners:write' },
    body: z.strictObject({ name: runnerName, labels: labels.default({}) }),
    status: 201,
    handler: async ({ principal, body }) => {
      const p = principal!;
      const exists = await db.kysely
        .selectFrom('runners')
        .select('id')
        .where('org_id', '=', p.orgId)
        .where('name', '=', body.name)
        .executeTakeFirst();
      if (exists !== undefined) throw ApiError.conflict(`a runner named ${body.name} already exists`);
      const { row, bootstrapKey } = await createRunner(db, p.orgId, body.name, body.labels);
      await ctx.audit.record({
        orgId: p.orgId,
        kind: 'runner.created',
        actor: principalRecord(p),
        runner: row.id,
        data: { name: row.name, labels: body.labels },
      });
      return {
        runner: runnerView(row, false),
        bootstrap_key: bootstrapKey,
        bootstrap_expires_at: row.bootstrap_expires_at,
        command: `airlock runner connect --server ${ctx.config.publicUrl} --bootstrap-key ${bootstrapKey}`,
      };
    },
  });

  routes.add({
    method: 'POST',
    url: '/api/v1/runners/register',
    summary: 'Exchange a one-time bootstrap key for a long-lived runner token (called by `airlock runner connect`)',
    tag: 'runners',
    auth: 'public',
    body: z.strictObject({ bootstrap_key: z.string().min(1).max(256) }),
    handler: async ({ body }) => {
      const res = await redeemBootstrapKey(db, body.bootstrap_key);
      if (res === undefined) throw ApiError.unauthorized('bootstrap key is invalid, expired or already used');
      await ctx.audit.record({
        orgId: res.row.org_id,
        kind: 'runner.registered',
        actor: { type: 'runner', id: res.row.id, name: res.row.name },
        runner: res.row.id,
        data: { token_prefix: res.row.token_prefix },
      });
      return { runner_id: res.row.id, name: res.row.name, token: res.token };
    },
  });

  routes.add({
    method: 'GET',
    url: '/api/v1/runners',
    summary: 'List runners with status, labels, version, last seen and advertised packs',
    tag: 'runners',
    auth: { permission: 'runners:read' },
    handler: async ({ principal }) => {
      const rows = await db.kysely
        .selectFrom('runners')
        .selectAll()
        .where('org_id', '=', principal!.orgId)
        .orderBy('name')
        .execute();
      // Only the runners inside the caller's runner scope (user scope ∩ key scope).
      const visible = await runnerVisibility(ctx, principal!);
      return { runners: rows.filter(visible).map((r) => runnerView(r, hub.isOnline(r.id, r))) };
    },
  });

  routes.add({
    method: 'GET',
    url: '/api/v1/runners/:id',
    summary: 'One runner',
    tag: 'runners',
    auth: { permission: 'runners:read' },
    params: idParams,
    handler: async ({ principal, params }) => {
      const row = await db.kysely
        .selectFrom('runners')
        .selectAll()
        .where('org_id', '=', principal!.orgId)
        .where('id', '=', params.id)
        .executeTakeFirst();
      if (row === undefined) throw ApiError.notFound('runner');
      return runnerView(row, hub.isOnline(row.id, row));
    },
  });

  routes.add({
    method: 'POST',
    url: '/api/v1/runners/:id/revoke',
    summary: 'Revoke a runner: its token stops working at once and its connection is closed',
    tag: 'runners',
    auth: { permission: 'runners:write' },
    params: idParams,
    body: z.strictObject({ reason: z.string().max(2000).optional() }).optional(),
    handler: async ({ principal, params, body }) => {
      const p = principal!;
      const row = await db.kysely
        .selectFrom('runners')
        .selectAll()
        .where('org_id', '=', p.orgId)
        .where('id', '=', params.id)
        .executeTakeFirst();
      if (row === undefined) throw ApiError.notFound('runner');
      const now = new Date().toISOString();
      await db.kysely
        .updateTable('runners')
        .set({ status: 'revoked', revoked_at: now, token_hash: null, bootstrap_hash: null })
        .where('id', '=', row.id)
        .execute();
      hub.kick(row.id, CLOSE.revoked, 'runner revoked');
      await ctx.audit.record({
        orgId: p.orgId,
        kind: 'runner.revoked',
        actor: principalRecord(p),
        runner: row.id,
        reason: body?.reason ?? null,
        data: { name: row.name },
      });
      return runnerView({ ...row, status: 'revoked', revoked_at: now }, false);
    },
  });

  // The runner WebSocket, authenticated by the runner token before the upgrade: a bad or
  // revoked token gets a plain 401 and never a socket.
  const authed = new WeakMap<object, Awaited<ReturnType<typeof runnerForToken>>>();
  app.get(
    '/api/v1/runners/connect',
    {
      websocket: true,
      preValidation: async (req, reply) => {
        const token = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
        const runner = token === undefined ? undefined : await runnerForToken(db, token);
        if (runner === undefined) {
          await reply.code(401).send({ error: { code: 'unauthorized', message: 'invalid or revoked runner token' } });
          return;
        }
        authed.set(req, runner);
      },
    },
    (socket, req) => {
      const runner = authed.get(req);
      if (runner === undefined) {
        socket.close(CLOSE.unauthorized, 'unauthorized');
        return;
      }
      hub.attach(socket, runner);
    },
  );

  registerRunRoutes(ctx, hub);
  registerPackRoutes(ctx);
  const stopLiveness = startInstanceLiveness(ctx);
  const stopRequeue = startRequeueSweep(ctx);
  return {
    async close() {
      stopRequeue();
      await hub.close();
      await stopLiveness();
    },
  };
}
