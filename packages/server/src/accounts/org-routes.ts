import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { generatePassword, hashPassword } from '../auth/passwords.js';
import { principalRecord } from '../auth/principal.js';
import type { ServerContext } from '../context.js';
import { ApiError } from '../http/api-error.js';
import { isUniqueViolation, OrgName, OrgOut, Username, UserOut, userOut } from './schemas.js';
import { firstOrg } from './session-routes.js';

/** Organisations: create (instance owners only) and read the caller's own. */
export function registerOrgRoutes(ctx: ServerContext): void {
  const { db, audit } = ctx;

  ctx.routes.add({
    method: 'POST',
    url: '/api/v1/orgs',
    summary: 'Create an organisation and its owner (one-time password returned once); instance owners only',
    tag: 'orgs',
    auth: 'authenticated',
    body: z.strictObject({ name: OrgName, owner_username: Username }),
    status: 201,
    response: z.object({
      org: OrgOut,
      owner: UserOut,
      password: z.string().describe("the owner's one-time password, shown once"),
    }),
    handler: async ({ principal, body }) => {
      const p = principal!;
      const first = await firstOrg(ctx);
      // Instance owner: an owner of the first organisation, acting with users:write (so a
      // narrowly scoped key of an instance owner cannot create organisations).
      if (first?.id !== p.orgId || p.role !== 'owner' || !p.permissions.has('users:write')) {
        throw ApiError.forbidden('only owners of the first organisation (instance owners) may create organisations');
      }
      const now = new Date().toISOString();
      const org = { id: randomUUID(), name: body.name, created_at: now };
      const password = generatePassword();
      const owner = {
        id: randomUUID(),
        org_id: org.id,
        username: body.owner_username,
        password_hash: await hashPassword(password),
        role: 'owner' as const,
        disabled: 0,
        must_change_password: 1,
        created_at: now,
      };
      try {
        await db.kysely.transaction().execute(async (trx) => {
          await trx.insertInto('orgs').values(org).execute();
          await trx.insertInto('users').values(owner).execute();
        });
      } catch (e) {
        if (isUniqueViolation(e)) throw ApiError.conflict(`an organisation named ${body.name} already exists`);
        throw e;
      }
      const data = { org_id: org.id, name: org.name, owner: owner.username, owner_id: owner.id };
      await audit.record({ orgId: p.orgId, kind: 'org.created', actor: principalRecord(p), id: org.id, data });
      // In the new organisation's own log the creator appears as the instance, so no user id
      // of another organisation shows up in its tenants' view.
      await audit.record({
        orgId: org.id,
        kind: 'org.created',
        actor: { type: 'system', id: 'instance', name: 'instance owner' },
        id: org.id,
        data: { org_id: org.id, name: org.name, owner: owner.username, owner_id: owner.id },
      });
      return { org, owner: userOut(owner), password };
    },
  });

  ctx.routes.add({
    method: 'GET',
    url: '/api/v1/orgs/current',
    summary: "The caller's organisation",
    tag: 'orgs',
    auth: 'authenticated',
    response: OrgOut.extend({
      instance_owner_org: z
        .boolean()
        .describe('true for the first organisation, whose owners may create organisations'),
    }),
    handler: async ({ principal }) => {
      const org = await db.kysely
        .selectFrom('orgs')
        .select(['id', 'name', 'created_at'])
        .where('id', '=', principal!.orgId)
        .executeTakeFirstOrThrow();
      const first = await firstOrg(ctx);
      return { ...org, instance_owner_org: first?.id === org.id };
    },
  });
}
