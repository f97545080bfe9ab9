import { z } from 'zod';
import { principalRecord } from '../auth/principal.js';
import type { ServerContext } from '../context.js';
import type { PacksTable } from '../db/schema.js';
import { ApiError } from '../http/api-error.js';
import { decidePack, packDiff } from './pack-store.js';

const idParams = z.strictObject({ id: z.string().min(1).max(128) });

function packView(p: PacksTable) {
  return {
    id: p.id,
    name: p.name,
    version: p.version,
    hash: p.hash,
    status: p.status,
    first_seen_at: p.first_seen_at,
    first_seen_runner: p.first_seen_runner,
    decided_by: p.decided_by,
    decided_at: p.decided_at,
    comment: p.comment,
  };
}

/** Packs and trust-on-hash: list versions seen, review a diff, trust or reject. */
export function registerPackRoutes(ctx: ServerContext): void {
  const { routes, db } = ctx;
  const load = async (orgId: string, id: string): Promise<PacksTable> => {
    const row = await db.kysely
      .selectFrom('packs')
      .selectAll()
      .where('org_id', '=', orgId)
      .where('id', '=', id)
      .executeTakeFirst();
    if (row === undefined) throw ApiError.notFound('pack');
    return row;
  };

  routes.add({
    method: 'GET',
    url: '/api/v1/packs',
    summary: 'Pack versions seen on runners, with trust status',
    tag: 'packs',
    auth: { permission: 'packs:read' },
    query: z.strictObject({ status: z.enum(['pending', 'trusted', 'rejected']).optional() }),
    handler: async ({ principal, query }) => {
      let q = db.kysely.selectFrom('packs').selectAll().where('org_id', '=', principal!.orgId);
      if (query.status !== undefined) q = q.where('status', '=', query.status);
      const rows = await q.orderBy('name').orderBy('first_seen_at', 'desc').execute();
      return { packs: rows.map(packView) };
    },
  });

  routes.add({
    method: 'GET',
    url: '/api/v1/packs/:id',
    summary: 'One pack version with its per-file diff against the newest trusted version of the same pack',
    tag: 'packs',
    auth: { permission: 'packs:read' },
    params: idParams,
    handler: async ({ principal, params }) => {
      const pack = await load(principal!.orgId, params.id);
      const diff = await packDiff(db, pack);
      return { ...packView(pack), base: diff.base === null ? null : packView(diff.base), files: diff.files };
    },
  });

  for (const decision of ['trust', 'reject'] as const) {
    routes.add({
      method: 'POST',
      url: `/api/v1/packs/:id/${decision}`,
      summary: decision === 'trust' ? 'Trust this pack hash: its actions may be dispatched' : 'Reject this pack hash',
      tag: 'packs',
      auth: { permission: 'packs:trust' },
      params: idParams,
      body: z.strictObject({ comment: z.string().max(2000).optional() }).default({}),
      handler: async ({ principal, params, body }) => {
        const pack = await load(principal!.orgId, params.id);
        const updated = await decidePack(
          db,
          ctx.audit,
          pack,
          decision === 'trust' ? 'trusted' : 'rejected',
          principalRecord(principal!),
          body.comment ?? null,
        );
        return packView(updated);
      },
    });
  }
}
