import { randomUUID } from 'node:crypto';
import { sql, type Transaction } from 'kysely';
import { z } from 'zod';
import { generatePassword, hashPassword } from '../auth/passwords.js';
import { ROLE_RANK } from '../auth/permissions.js';
import { type Principal, principalRecord } from '../auth/principal.js';
import type { ServerContext } from '../context.js';
import type { Db } from '../db/database.js';
import type { Database, Role } from '../db/schema.js';
import { ApiError } from '../http/api-error.js';
import { IdParams, isUniqueViolation, NewPassword, RoleName, Username, UserOut, userOut } from './schemas.js';

/**
 * Serialise changes to one organisation's users, so two concurrent demotions cannot both
 * pass the "at least one enabled owner" check: Postgres locks the org row; SQLite has a
 * single writer already.
 */
export async function lockOrg(db: Db, trx: Transaction<Database>, orgId: string): Promise<void> {
  if (db.dialect === 'postgres') await sql`select id from orgs where id = ${orgId} for update`.execute(trx);
}

/** Throw 403 unless the caller may act on (or grant) `role`: nobody manages a role above their own. */
export function assertRank(principal: Principal, role: Role, verb: string): void {
  if (ROLE_RANK[principal.role] < ROLE_RANK[role]) {
    throw ApiError.forbidden(`${withArticle(principal.role)} cannot ${verb} ${withArticle(role)}`);
  }
}

function withArticle(role: Role): string {
  return `${/^[aeiou]/.test(role) ? 'an' : 'a'} ${role}`;
}

/** Users of the caller's organisation: list, create, change role, disable. */
export function registerUserRoutes(ctx: ServerContext): void {
  const { db, audit } = ctx;

  ctx.routes.add({
    method: 'GET',
    url: '/api/v1/users',
    summary: "List the users of the caller's organisation",
    tag: 'users',
    auth: { permission: 'users:read' },
    response: z.object({ users: z.array(UserOut) }),
    handler: async ({ principal }) => {
      const rows = await db.kysely
        .selectFrom('users')
        .select(['id', 'username', 'role', 'disabled', 'must_change_password', 'created_at'])
        .where('org_id', '=', principal!.orgId)
        .orderBy('created_at')
        .orderBy('username')
        .execute();
      return { users: rows.map(userOut) };
    },
  });

  ctx.routes.add({
    method: 'POST',
    url: '/api/v1/users',
    summary:
      'Create a user in your organisation; without a password, a one-time password is generated and returned once',
    tag: 'users',
    auth: { permission: 'users:write' },
    body: z.strictObject({ username: Username, role: RoleName, password: NewPassword.optional() }),
    status: 201,
    response: z.object({
      user: UserOut,
      password: z.string().optional().describe('the generated one-time password, shown once'),
    }),
    handler: async ({ principal, body }) => {
      const p = principal!;
      assertRank(p, body.role, 'create');
      const generated = body.password === undefined ? generatePassword() : undefined;
      const row = {
        id: randomUUID(),
        org_id: p.orgId,
        username: body.username,
        password_hash: await hashPassword(body.password ?? generated ?? ''),
        role: body.role,
        disabled: 0,
        must_change_password: 1,
        created_at: new Date().toISOString(),
      };
      try {
        await db.kysely.insertInto('users').values(row).execute();
      } catch (e) {
        if (isUniqueViolation(e))
          throw ApiError.conflict(`a user named ${body.username} already exists in this organisation`);
        throw e;
      }
      await audit.record({
        orgId: p.orgId,
        kind: 'user.created',
        actor: principalRecord(p),
        id: row.id,
        data: { user_id: row.id, username: row.username, role: row.role, generated_password: generated !== undefined },
      });
      return { user: userOut(row), ...(generated === undefined ? {} : { password: generated }) };
    },
  });

  ctx.routes.add({
    method: 'PATCH',
    url: '/api/v1/users/:id',
    summary:
      'Change a user’s role or disable/enable them (disabling ends their sessions and stops their API keys at once)',
    tag: 'users',
    auth: { permission: 'users:write' },
    params: IdParams,
    body: z.strictObject({ role: RoleName.optional(), disabled: z.boolean().optional() }),
    response: UserOut,
    handler: async ({ principal, params, body }) => {
      const p = principal!;
      const result = await db.kysely.transaction().execute(async (trx) => {
        await lockOrg(db, trx, p.orgId);
        const target = await trx
          .selectFrom('users')
          .select(['id', 'username', 'role', 'disabled', 'must_change_password', 'created_at'])
          .where('id', '=', params.id)
          .where('org_id', '=', p.orgId)
          .executeTakeFirst();
        if (target === undefined) throw ApiError.notFound('user');
        assertRank(p, target.role, 'manage');
        if (body.role !== undefined) assertRank(p, body.role, 'grant the role of');
        if (body.disabled === true && target.id === p.userId) throw ApiError.conflict('you cannot disable yourself');
        const changes: { role?: Role; disabled?: number } = {};
        if (body.role !== undefined && body.role !== target.role) changes.role = body.role;
        if (body.disabled !== undefined && (body.disabled ? 1 : 0) !== target.disabled)
          changes.disabled = body.disabled ? 1 : 0;
        if (Object.keys(changes).length === 0) return { user: target, changes, before: target };
        await trx.updateTable('users').set(changes).where('id', '=', target.id).execute();
        const owners = await trx
          .selectFrom('users')
          .select((eb) => eb.fn.countAll<string | number>().as('n'))
          .where('org_id', '=', p.orgId)
          .where('role', '=', 'owner')
          .where('disabled', '=', 0)
          .executeTakeFirstOrThrow();
        if (Number(owners.n) < 1) throw ApiError.conflict('an organisation must keep at least one enabled owner');
        if (changes.disabled === 1) await trx.deleteFrom('sessions').where('user_id', '=', target.id).execute();
        return { user: { ...target, ...changes }, changes, before: target };
      });
      if (Object.keys(result.changes).length > 0) {
        await audit.record({
          orgId: p.orgId,
          kind: 'user.updated',
          actor: principalRecord(p),
          id: result.user.id,
          data: {
            user_id: result.user.id,
            username: result.user.username,
            ...(result.changes.role === undefined
              ? {}
              : { role: { from: result.before.role, to: result.changes.role } }),
            ...(result.changes.disabled === undefined ? {} : { disabled: result.changes.disabled === 1 }),
          },
        });
      }
      return userOut(result.user);
    },
  });
}
