import { AUDIT_STATUSES } from '@airlock/core';
import { z } from 'zod';
import type { ServerContext } from '../context.js';
import { ApiError } from '../http/api-error.js';
import type { ModuleHandle } from '../modules.js';
import { exportPage, exportStream } from './export.js';
import { decodeCursor, encodeCursor, parseBody, scopeOf, searchEvents, visible } from './query.js';
import { type Checkpoint, loadOrCreateSigningKey, type SigningKey, signCheckpoint } from './signing.js';
import { auditDb } from './tables.js';
import { verifyRunnerMirrors, verifyServerChain } from './verify.js';

/** Default seconds between checkpoints; AIRLOCK_AUDIT_CHECKPOINT_S overrides (0 turns the timer off). */
export const DEFAULT_CHECKPOINT_SECONDS = 300;

const isoTime = z.iso.datetime({ offset: true });
const eventObject = z.record(z.string(), z.unknown());
const checkpointSchema = z.object({
  seq: z.int(),
  hash: z.string(),
  time: z.string(),
  key_id: z.string(),
  signature: z.string().describe('base64 Ed25519 signature over the canonical JSON of {seq, hash, time, key_id}'),
});
const head = z.object({ seq: z.int(), hash: z.string() }).nullable();

function checkpointSeconds(ctx: ServerContext): number {
  const raw = process.env['AIRLOCK_AUDIT_CHECKPOINT_S'];
  if (raw === undefined || raw === '') return DEFAULT_CHECKPOINT_SECONDS;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0) {
    ctx.log.warn(
      { value: raw },
      `AIRLOCK_AUDIT_CHECKPOINT_S is not a number of seconds; using ${DEFAULT_CHECKPOINT_SECONDS}`,
    );
    return DEFAULT_CHECKPOINT_SECONDS;
  }
  return n;
}

/** Sign the current head unless the latest checkpoint already covers it. */
export async function checkpointIfMoved(
  ctx: ServerContext,
  key: SigningKey,
): Promise<{ created: boolean; checkpoint: Checkpoint | null }> {
  const h = await ctx.audit.head();
  if (h.seq < 0) return { created: false, checkpoint: null };
  const latest = await ctx.db.kysely
    .selectFrom('audit_checkpoints')
    .select(['seq', 'hash', 'time', 'key_id', 'signature'])
    .orderBy('seq', 'desc')
    .orderBy('id', 'desc')
    .limit(1)
    .executeTakeFirst();
  if (latest !== undefined && Number(latest.seq) === h.seq && latest.hash === h.hash) {
    return { created: false, checkpoint: { ...latest, seq: Number(latest.seq) } };
  }
  const cp = signCheckpoint(key, h, new Date().toISOString());
  await ctx.db.kysely.insertInto('audit_checkpoints').values(cp).execute();
  return { created: true, checkpoint: cp };
}

/** Audit: search, export (NDJSON, CEF), verification, signed checkpoints. */
export async function registerAuditRoutes(ctx: ServerContext): Promise<ModuleHandle | undefined> {
  const key = loadOrCreateSigningKey(ctx.config.home);
  await auditDb(ctx.db)
    .insertInto('audit_signing_keys')
    .values({ key_id: key.keyId, public_key: key.publicKeyPem, created_at: new Date().toISOString() })
    .onConflict((oc) => oc.column('key_id').doNothing())
    .execute();

  ctx.routes.add({
    method: 'GET',
    url: '/api/v1/audit/events',
    summary: 'Search audit events of your organisation, newest first',
    tag: 'audit',
    auth: { permission: 'audit:read' },
    query: z.strictObject({
      from: isoTime.optional().describe('events at or after this time'),
      to: isoTime.optional().describe('events before this time'),
      actor: z.string().min(1).max(1024).optional().describe('principal id or name'),
      runner: z.string().min(1).max(1024).optional().describe('runner name or id'),
      action: z.string().min(1).max(1024).optional(),
      status: z.enum(AUDIT_STATUSES as [string, ...string[]]).optional(),
      kind: z.string().min(1).max(128).optional().describe('prefix of the kind, e.g. "auth." or "run.result"'),
      q: z.string().min(1).max(1024).optional().describe('case-insensitive text anywhere in the event'),
      limit: z.coerce.number().int().min(1).max(500).default(100),
      cursor: z.string().max(200).optional().describe('next_cursor of the previous page'),
    }),
    response: z.object({ events: z.array(eventObject), next_cursor: z.string().nullable() }),
    handler: async ({ principal, query }) => searchEvents(ctx.db, await scopeOf(ctx.db, principal!), query),
  });

  ctx.routes.add({
    method: 'GET',
    url: '/api/v1/audit/events/:seq',
    summary: 'One audit event by its position in the server chain',
    tag: 'audit',
    auth: { permission: 'audit:read' },
    params: z.strictObject({ seq: z.coerce.number().int().min(0) }),
    response: eventObject,
    handler: async ({ principal, params }) => {
      const row = await ctx.db.kysely
        .selectFrom('audit_events')
        .select(['org_id', 'body'])
        .where('seq', '=', params.seq)
        .executeTakeFirst();
      if (row === undefined || !visible(await scopeOf(ctx.db, principal!), row.org_id))
        throw ApiError.notFound('audit event');
      return parseBody(row.body);
    },
  });

  ctx.routes.add({
    method: 'GET',
    url: '/api/v1/audit/export',
    summary: 'Export audit events, oldest first, as NDJSON (with signed checkpoints) or CEF; page with x-next-cursor',
    tag: 'audit',
    auth: { permission: 'audit:read' },
    query: z.strictObject({
      format: z.enum(['ndjson', 'cef']).default('ndjson'),
      cursor: z.string().max(200).optional().describe('x-next-cursor of the previous page'),
      limit: z.coerce.number().int().min(1).max(10_000).default(1000).describe('chain positions per page'),
    }),
    handler: async ({ principal, query, reply }) => {
      const scope = await scopeOf(ctx.db, principal!);
      const page = await exportPage(ctx.db, query.cursor, query.limit);
      void reply
        .header(
          'content-type',
          query.format === 'ndjson' ? 'application/x-ndjson; charset=utf-8' : 'text/plain; charset=utf-8',
        )
        .header('x-next-cursor', page.nextCursor)
        .header('x-has-more', String(page.hasMore))
        .header('cache-control', 'no-store');
      return exportStream(ctx.db, scope, page, query.format);
    },
  });

  ctx.routes.add({
    method: 'GET',
    url: '/api/v1/audit/verify',
    summary: "Verify the server's hash chain and signed checkpoints, and your organisation's runner mirrors",
    tag: 'audit',
    auth: { permission: 'audit:read' },
    response: z.object({
      ok: z.boolean(),
      count: z.int().optional(),
      head: head.optional(),
      index: z.int().optional(),
      reason: z.string().optional(),
      message: z.string().optional(),
      checkpoints: z.object({ count: z.int(), latest: checkpointSchema.nullable() }),
      runners: z.array(z.record(z.string(), z.unknown())),
    }),
    handler: async ({ principal }) => {
      const { result, checkpoints } = await verifyServerChain(ctx.db);
      const runners = await verifyRunnerMirrors(ctx.db, principal!.orgId);
      const badRunner = runners.find((r) => !r.ok);
      if (result.ok && badRunner !== undefined) {
        return {
          ok: false,
          count: result.count,
          head: result.head,
          reason: 'runner_mirror',
          message: `runner ${badRunner.name}: ${badRunner.message ?? 'mirror broken'}`,
          checkpoints,
          runners,
        };
      }
      return { ...result, checkpoints, runners };
    },
  });

  ctx.routes.add({
    method: 'GET',
    url: '/api/v1/audit/public-key',
    summary: 'The Ed25519 public key(s) that sign audit checkpoints (format=pem: this instance key as PEM text)',
    tag: 'audit',
    auth: { permission: 'audit:read' },
    query: z.strictObject({ format: z.enum(['json', 'pem']).default('json') }),
    response: z.object({
      algorithm: z.literal('Ed25519'),
      key_id: z.string(),
      public_key: z.string(),
      keys: z.array(z.object({ key_id: z.string(), public_key: z.string(), created_at: z.string() })),
    }),
    handler: async ({ query, reply }) => {
      if (query.format === 'pem') {
        void reply.header('content-type', 'application/x-pem-file').header('x-key-id', key.keyId);
        return key.publicKeyPem;
      }
      const keys = await auditDb(ctx.db)
        .selectFrom('audit_signing_keys')
        .select(['key_id', 'public_key', 'created_at'])
        .orderBy('created_at')
        .execute();
      return { algorithm: 'Ed25519' as const, key_id: key.keyId, public_key: key.publicKeyPem, keys };
    },
  });

  ctx.routes.add({
    method: 'GET',
    url: '/api/v1/audit/checkpoints',
    summary: 'Signed checkpoints of the server chain head, newest first',
    tag: 'audit',
    auth: { permission: 'audit:read' },
    query: z.strictObject({
      limit: z.coerce.number().int().min(1).max(500).default(100),
      cursor: z.string().max(200).optional(),
    }),
    response: z.object({ checkpoints: z.array(checkpointSchema), next_cursor: z.string().nullable() }),
    handler: async ({ query }) => {
      let q = ctx.db.kysely
        .selectFrom('audit_checkpoints')
        .select(['id', 'seq', 'hash', 'time', 'key_id', 'signature']);
      if (query.cursor !== undefined) q = q.where('id', '<', decodeCursor('s', query.cursor));
      const rows = await q
        .orderBy('id', 'desc')
        .limit(query.limit + 1)
        .execute();
      const page = rows.slice(0, query.limit);
      const last = page[page.length - 1];
      return {
        checkpoints: page.map(({ id: _id, ...c }) => ({ ...c, seq: Number(c.seq) })),
        next_cursor: rows.length > query.limit && last !== undefined ? encodeCursor('s', Number(last.id)) : null,
      };
    },
  });

  ctx.routes.add({
    method: 'POST',
    url: '/api/v1/audit/checkpoints',
    summary: 'Sign a checkpoint of the current head now (admins); returns the latest when the head has not moved',
    tag: 'audit',
    auth: { permission: 'audit:read' },
    response: z.object({ created: z.boolean(), checkpoint: checkpointSchema.nullable() }),
    handler: async ({ principal, reply }) => {
      if (principal!.role !== 'owner' && principal!.role !== 'admin')
        throw ApiError.forbidden('signing a checkpoint needs the admin or owner role');
      const res = await checkpointIfMoved(ctx, key);
      void reply.code(res.created ? 201 : 200);
      return res;
    },
  });

  // The timer: sign the head when it moved. One more at shutdown.
  const seconds = checkpointSeconds(ctx);
  let running: Promise<unknown> | undefined;
  const tick = (): Promise<unknown> => {
    running ??= checkpointIfMoved(ctx, key)
      .catch((err: unknown) => ctx.log.error({ err }, 'audit checkpoint failed'))
      .finally(() => {
        running = undefined;
      });
    return running;
  };
  // Leader-only with several instances (cluster/): one signer, not one per instance.
  const timer =
    seconds > 0
      ? setInterval(() => {
          if (ctx.cluster.isLeader()) void tick();
        }, seconds * 1000)
      : undefined;
  timer?.unref();
  return {
    async close() {
      if (timer !== undefined) clearInterval(timer);
      if (running !== undefined) await running;
      await tick();
    },
  };
}
