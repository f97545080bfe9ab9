import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { PERMISSIONS, type Permission } from '../auth/permissions.js';
import { principalRecord } from '../auth/principal.js';
import { newToken } from '../auth/tokens.js';
import type { ServerContext } from '../context.js';
import type { Role } from '../db/schema.js';
import { ApiError, type FieldError } from '../http/api-error.js';
import { ApiKeyOut, IdParams, isUniqueViolation, PermissionName } from './schemas.js';
import { assertRank } from './user-routes.js';

const DAY_MS = 24 * 60 * 60 * 1000;

function keyOut(k: {
  id: string;
  name: string;
  prefix: string;
  scopes: string;
  user_id: string;
  username: string;
  expires_at: string | null;
  revoked_at: string | null;
  created_at: string;
  last_used_at: string | null;
}): z.infer<typeof ApiKeyOut> {
  return {
    id: k.id,
    name: k.name,
    prefix: k.prefix,
    scopes: (JSON.parse(k.scopes) as string[]).filter((s): s is Permission =>
      (PERMISSIONS as readonly string[]).includes(s),
    ),
    user: { id: k.user_id, username: k.username },
    expires_at: k.expires_at,
    revoked_at: k.revoked_at,
    created_at: k.created_at,
    last_used_at: k.last_used_at,
  };
}

/** API keys: list, create (token shown once), revoke. */
export function registerKeyRoutes(ctx: ServerContext): void {
  const { db, audit } = ctx;
  const keyRows = () =>
    db.kysely
      .selectFrom('api_keys')
      .innerJoin('users', 'users.id', 'api_keys.user_id')
      .select([
        'api_keys.id',
        'api_keys.name',
        'api_keys.prefix',
        'api_keys.scopes',
        'api_keys.user_id',
        'users.username',
        'users.role',
        'api_keys.expires_at',
        'api_keys.revoked_at',
        'api_keys.created_at',
        'api_keys.last_used_at',
      ]);

  ctx.routes.add({
    method: 'GET',
    url: '/api/v1/api-keys',
    summary: 'List your API keys (with users:read, every key of the organisation); secrets are never shown again',
    tag: 'api-keys',
    auth: 'authenticated',
    response: z.object({ keys: z.array(ApiKeyOut) }),
    handler: async ({ principal }) => {
      const p = principal!;
      let q = keyRows().where('api_keys.org_id', '=', p.orgId);
      if (!p.permissions.has('users:read')) q = q.where('api_keys.user_id', '=', p.userId);
      const rows = await q.orderBy('api_keys.created_at', 'desc').orderBy('api_keys.id').execute();
      return { keys: rows.map(keyOut) };
    },
  });

  ctx.routes.add({
    method: 'POST',
    url: '/api/v1/api-keys',
    summary:
      'Create an API key for yourself with scopes no wider than your own permissions; the token is returned once',
    tag: 'api-keys',
    auth: { permission: 'keys:write' },
    body: z.strictObject({
      name: z.string().trim().min(1).max(100),
      scopes: z
        .array(PermissionName)
        .min(1)
        .max(PERMISSIONS.length * 2),
      expires_in_days: z.number().int().min(1).max(365).optional().describe('default 90'),
    }),
    status: 201,
    response: ApiKeyOut.extend({ token: z.string().describe('`alk_<id>_<secret>`; shown once, store it now') }),
    handler: async ({ principal, body }) => {
      const p = principal!;
      const bad: FieldError[] = [];
      body.scopes.forEach((s, i) => {
        if (!p.permissions.has(s)) {
          bad.push({
            field: `body.scopes.${i}`,
            message: `${s}: wider than your own permissions (a key can only narrow what its creator may do)`,
          });
        }
      });
      if (bad.length > 0) throw ApiError.badRequest(bad.map((f) => `${f.field}: ${f.message}`).join('; '), bad);
      const scopes = PERMISSIONS.filter((s) => body.scopes.includes(s));
      const now = new Date();
      let expires = now.getTime() + (body.expires_in_days ?? 90) * DAY_MS;
      if (p.kind === 'api_key' && p.keyId !== undefined) {
        // A key minted by a key never outlives it.
        const parent = await db.kysely
          .selectFrom('api_keys')
          .select(['expires_at'])
          .where('id', '=', p.keyId)
          .executeTakeFirst();
        if (parent?.expires_at != null) expires = Math.min(expires, Date.parse(parent.expires_at));
      }
      const base = {
        id: randomUUID(),
        org_id: p.orgId,
        user_id: p.userId,
        name: body.name,
        scopes: JSON.stringify(scopes),
        expires_at: new Date(expires).toISOString(),
        revoked_at: null,
        created_at: now.toISOString(),
        last_used_at: null,
      };
      for (let attempt = 0; ; attempt++) {
        const t = newToken('alk');
        try {
          await db.kysely
            .insertInto('api_keys')
            .values({ ...base, prefix: t.prefix, key_hash: t.hash })
            .execute();
        } catch (e) {
          if (isUniqueViolation(e) && attempt < 3) continue;
          throw e;
        }
        await audit.record({
          orgId: p.orgId,
          kind: 'apikey.created',
          actor: principalRecord(p),
          id: base.id,
          data: { key_id: base.id, prefix: t.prefix, name: base.name, scopes, expires_at: base.expires_at },
        });
        return { ...keyOut({ ...base, prefix: t.prefix, username: p.username }), token: t.token };
      }
    },
  });

  ctx.routes.add({
    method: 'DELETE',
    url: '/api/v1/api-keys/:id',
    summary: 'Revoke an API key (your own, or with users:write any key in the organisation of a role not above yours)',
    tag: 'api-keys',
    auth: 'authenticated',
    params: IdParams,
    status: 204,
    handler: async ({ principal, params }) => {
      const p = principal!;
      const key = await keyRows()
        .where('api_keys.id', '=', params.id)
        .where('api_keys.org_id', '=', p.orgId)
        .executeTakeFirst();
      if (key === undefined) throw ApiError.notFound('API key');
      if (key.user_id === p.userId) {
        if (p.kind === 'api_key' && p.keyId !== key.id && !p.permissions.has('keys:write')) {
          throw ApiError.forbidden('revoking another of your keys with an API key needs the keys:write permission');
        }
      } else {
        if (!p.permissions.has('users:write')) throw ApiError.notFound('API key');
        assertRank(p, key.role as Role, 'revoke a key of');
      }
      if (key.revoked_at !== null) return undefined;
      await db.kysely
        .updateTable('api_keys')
        .set({ revoked_at: new Date().toISOString() })
        .where('id', '=', key.id)
        .execute();
      await audit.record({
        orgId: p.orgId,
        kind: 'apikey.revoked',
        actor: principalRecord(p),
        id: key.id,
        data: { key_id: key.id, prefix: key.prefix, name: key.name, owner: key.username },
      });
      return undefined;
    },
  });
}
