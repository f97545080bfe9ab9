// Approvers: approver groups (who may vote on runs a rule gates) and enrolled approver keys
// (root-certified Ed25519 keys bound to one user, revocable before their certificate expires).
import { randomUUID } from 'node:crypto';
import { type ApproverCert, certBytes, certTimeProblem } from '@airlock/core';
import { z } from 'zod';
import { type Principal, principalRecord } from '../auth/principal.js';
import type { ServerContext } from '../context.js';
import type { Db } from '../db/database.js';
import { ApiError } from '../http/api-error.js';
import { verifyEd25519 } from './ed25519.js';
import { loadSettings } from './store.js';

/** Tables of migration 0700 (typed here so the shared schema stays small). */
export type ApproverTables = {
  approver_keys: {
    org_id: string;
    key_id: string;
    user_id: string;
    subject: string;
    public_key: string;
    cert: string;
    not_after: string;
    enrolled_at: string;
    revoked_at: string | null;
    revoked_by: string | null;
  };
  approver_groups: { id: string; org_id: string; name: string; created_at: string };
  approver_group_members: { group_id: string; user_id: string; org_id: string };
};

const tables = (db: Db) => db.kysely.withTables<ApproverTables>();

/** Whether a user is a member of an approver group of their organisation. */
export async function isGroupMember(db: Db, orgId: string, groupId: string, userId: string): Promise<boolean> {
  const row = await tables(db)
    .selectFrom('approver_group_members')
    .select('user_id')
    .where('org_id', '=', orgId)
    .where('group_id', '=', groupId)
    .where('user_id', '=', userId)
    .executeTakeFirst();
  return row !== undefined;
}

/** A group by id or name within an organisation. */
export async function findGroup(db: Db, orgId: string, idOrName: string) {
  return tables(db)
    .selectFrom('approver_groups')
    .selectAll()
    .where('org_id', '=', orgId)
    .where((eb) => eb.or([eb('id', '=', idOrName), eb('name', '=', idOrName)]))
    .executeTakeFirst();
}

/**
 * Why an approver key may not sign for this user, or undefined. A revoked key is refused
 * before its certificate expires; an enrolled key signs only for the user who enrolled it.
 * A key never enrolled is accepted (the CLI's local key); its certificate is still checked.
 */
export async function approverKeyProblem(
  db: Db,
  orgId: string,
  userId: string,
  keyId: string,
): Promise<{ code: 'cert_revoked' | 'cert_not_yours'; message: string } | undefined> {
  const row = await tables(db)
    .selectFrom('approver_keys')
    .select(['user_id', 'revoked_at'])
    .where('org_id', '=', orgId)
    .where('key_id', '=', keyId)
    .executeTakeFirst();
  if (row === undefined) return undefined;
  if (row.revoked_at !== null)
    return { code: 'cert_revoked', message: `approver key ${keyId} was revoked at ${row.revoked_at}` };
  if (row.user_id !== userId)
    return { code: 'cert_not_yours', message: `approver key ${keyId} is enrolled to another user` };
  return undefined;
}

const certSchema = z.strictObject({
  cert: z.strictObject({
    v: z.literal(1),
    key_id: z.string().min(1).max(256),
    public_key: z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'a raw Ed25519 public key, base64url'),
    subject: z.string().min(1).max(256),
    not_before: z.iso.datetime({ offset: true }),
    not_after: z.iso.datetime({ offset: true }),
  }),
  signature: z.string().regex(/^[A-Za-z0-9_-]{86}$/, 'expected a base64url Ed25519 signature'),
});
const idParams = z.strictObject({ id: z.string().min(1).max(256) });
const groupName = z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, 'lowercase letters, digits, . _ -');
const members = z.array(z.string().min(1).max(128)).max(500);

/** Approver keys and approver groups: list, enroll, revoke; create, set members, delete. */
export function registerApproverRoutes(ctx: ServerContext): void {
  const { routes, db } = ctx;
  const t = tables(db);
  const audit = (p: Principal, kind: string, id: string, data: Record<string, unknown>) =>
    ctx.audit.record({ orgId: p.orgId, id, kind, actor: principalRecord(p), data });

  const keyView = (k: ApproverTables['approver_keys'], users: Map<string, string>) => ({
    key_id: k.key_id,
    user: { id: k.user_id, username: users.get(k.user_id) ?? null },
    subject: k.subject,
    public_key: k.public_key,
    not_after: k.not_after,
    enrolled_at: k.enrolled_at,
    revoked_at: k.revoked_at,
    revoked_by: k.revoked_by,
    state: k.revoked_at !== null ? 'revoked' : k.not_after <= new Date().toISOString() ? 'expired' : 'active',
  });
  const usernames = async (orgId: string): Promise<Map<string, string>> =>
    new Map(
      (await db.kysely.selectFrom('users').select(['id', 'username']).where('org_id', '=', orgId).execute()).map(
        (u) => [u.id, u.username],
      ),
    );

  routes.add({
    method: 'GET',
    url: '/api/v1/policy/approver-keys',
    summary: 'Enrolled approver keys (yours; with users:read every key of the organisation)',
    tag: 'approvals',
    auth: { permission: 'runs:read' },
    handler: async ({ principal }) => {
      const p = principal!;
      let q = t.selectFrom('approver_keys').selectAll().where('org_id', '=', p.orgId);
      if (!p.permissions.has('users:read')) q = q.where('user_id', '=', p.userId);
      const rows = await q.orderBy('enrolled_at', 'desc').execute();
      const names = await usernames(p.orgId);
      return { keys: rows.map((k) => keyView(k, names)) };
    },
  });

  routes.add({
    method: 'POST',
    url: '/api/v1/policy/approver-keys',
    summary: 'Enroll your approver key: a certificate signed by the organisation root key, valid now (≤ 24 h)',
    tag: 'approvals',
    auth: { permission: 'runs:write' },
    body: z.strictObject({ cert: certSchema }),
    status: 201,
    handler: async ({ principal, body }) => {
      const p = principal!;
      const settings = await loadSettings(db, p.orgId);
      const field = (message: string) =>
        ApiError.badRequest(`body.cert: ${message}`, [{ field: 'body.cert', message }]);
      if (settings.rootPublicKey === null)
        throw field('this organisation has no root public key (set it in the policy settings first)');
      const cert = body.cert.cert as ApproverCert;
      if (!verifyEd25519(settings.rootPublicKey, certBytes(cert), body.cert.signature))
        throw field('the certificate is not signed by the organisation root key');
      const when = certTimeProblem(cert, Date.now());
      if (when === 'cert_invalid') throw field('the certificate is malformed or valid for more than 24 hours');
      if (when === 'cert_expired') throw field('the certificate is not valid now');
      const existing = await t
        .selectFrom('approver_keys')
        .selectAll()
        .where('org_id', '=', p.orgId)
        .where('key_id', '=', cert.key_id)
        .executeTakeFirst();
      if (existing !== undefined && (existing.user_id !== p.userId || existing.revoked_at !== null))
        throw ApiError.conflict(
          `approver key ${cert.key_id} is ${existing.revoked_at !== null ? 'revoked' : 'enrolled to another user'}`,
        );
      const row = {
        org_id: p.orgId,
        key_id: cert.key_id,
        user_id: p.userId,
        subject: cert.subject,
        public_key: cert.public_key,
        cert: JSON.stringify(body.cert),
        not_after: new Date(cert.not_after).toISOString(),
        enrolled_at: new Date().toISOString(),
        revoked_at: null,
        revoked_by: null,
      };
      // Re-enrolling the same key (a renewed certificate) replaces the stored certificate.
      if (existing === undefined) await t.insertInto('approver_keys').values(row).execute();
      else
        await t
          .updateTable('approver_keys')
          .set({ cert: row.cert, not_after: row.not_after, subject: row.subject, public_key: row.public_key })
          .where('org_id', '=', p.orgId)
          .where('key_id', '=', cert.key_id)
          .execute();
      await audit(p, 'approver_key.enrolled', cert.key_id, {
        key_id: cert.key_id,
        subject: cert.subject,
        not_after: row.not_after,
        renewed: existing !== undefined,
      });
      return keyView(row, await usernames(p.orgId));
    },
  });

  routes.add({
    method: 'POST',
    url: '/api/v1/policy/approver-keys/:id/revoke',
    summary: 'Revoke an approver key at once (yours, or any with users:write): votes signed with it are refused',
    tag: 'approvals',
    auth: { permission: 'runs:write' },
    params: idParams,
    body: z.strictObject({ reason: z.string().max(2000).optional() }).optional(),
    handler: async ({ principal, params, body }) => {
      const p = principal!;
      const k = await t
        .selectFrom('approver_keys')
        .selectAll()
        .where('org_id', '=', p.orgId)
        .where('key_id', '=', params.id)
        .executeTakeFirst();
      if (k === undefined) throw ApiError.notFound('approver key');
      if (k.user_id !== p.userId && !p.permissions.has('users:write'))
        throw ApiError.forbidden("revoking another user's approver key needs the users:write permission");
      if (k.revoked_at !== null) throw ApiError.conflict(`approver key ${k.key_id} is already revoked`);
      const now = new Date().toISOString();
      await t
        .updateTable('approver_keys')
        .set({ revoked_at: now, revoked_by: p.username })
        .where('org_id', '=', p.orgId)
        .where('key_id', '=', k.key_id)
        .execute();
      await audit(p, 'approver_key.revoked', k.key_id, {
        key_id: k.key_id,
        user: k.user_id,
        reason: body?.reason ?? null,
      });
      return keyView({ ...k, revoked_at: now, revoked_by: p.username }, await usernames(p.orgId));
    },
  });

  // ---- groups
  const resolveMembers = async (orgId: string, names: readonly string[]): Promise<string[]> => {
    if (names.length === 0) return [];
    const rows = await db.kysely
      .selectFrom('users')
      .select(['id', 'username'])
      .where('org_id', '=', orgId)
      .where((eb) => eb.or([eb('id', 'in', [...names]), eb('username', 'in', [...names])]))
      .execute();
    const out: string[] = [];
    names.forEach((n, i) => {
      const u = rows.find((r) => r.id === n || r.username === n);
      if (u === undefined)
        throw ApiError.badRequest(`body.members.${i}: no user ${JSON.stringify(n)} in this organisation`, [
          { field: `body.members.${i}`, message: `no user ${JSON.stringify(n)} in this organisation` },
        ]);
      if (!out.includes(u.id)) out.push(u.id);
    });
    return out;
  };
  const groupView = async (orgId: string, g: ApproverTables['approver_groups']) => {
    const m = await t
      .selectFrom('approver_group_members')
      .select('user_id')
      .where('org_id', '=', orgId)
      .where('group_id', '=', g.id)
      .execute();
    const names = await usernames(orgId);
    return {
      id: g.id,
      name: g.name,
      created_at: g.created_at,
      members: m.map((x) => ({ id: x.user_id, username: names.get(x.user_id) ?? null })),
    };
  };
  const setMembers = (orgId: string, groupId: string, ids: readonly string[]) =>
    t.transaction().execute(async (trx) => {
      await trx.deleteFrom('approver_group_members').where('group_id', '=', groupId).execute();
      if (ids.length > 0)
        await trx
          .insertInto('approver_group_members')
          .values(ids.map((user_id) => ({ group_id: groupId, user_id, org_id: orgId })))
          .execute();
    });
  const loadGroup = async (orgId: string, id: string) => {
    const g = await findGroup(db, orgId, id);
    if (g === undefined) throw ApiError.notFound('approver group');
    return g;
  };

  routes.add({
    method: 'GET',
    url: '/api/v1/policy/approver-groups',
    summary: 'Approver groups and their members',
    tag: 'approvals',
    auth: { permission: 'runs:read' },
    handler: async ({ principal }) => {
      const p = principal!;
      const rows = await t
        .selectFrom('approver_groups')
        .selectAll()
        .where('org_id', '=', p.orgId)
        .orderBy('name')
        .execute();
      return { groups: await Promise.all(rows.map((g) => groupView(p.orgId, g))) };
    },
  });
  routes.add({
    method: 'POST',
    url: '/api/v1/policy/approver-groups',
    summary: 'Create an approver group (rules may require their approvers to come from it)',
    tag: 'approvals',
    auth: { permission: 'users:write' },
    body: z.strictObject({ name: groupName, members: members.default([]) }),
    status: 201,
    handler: async ({ principal, body }) => {
      const p = principal!;
      if ((await findGroup(db, p.orgId, body.name)) !== undefined)
        throw ApiError.conflict(`an approver group named ${body.name} exists`);
      const ids = await resolveMembers(p.orgId, body.members);
      const g = {
        id: `grp_${randomUUID().slice(0, 8)}`,
        org_id: p.orgId,
        name: body.name,
        created_at: new Date().toISOString(),
      };
      await t.insertInto('approver_groups').values(g).execute();
      await setMembers(p.orgId, g.id, ids);
      const view = await groupView(p.orgId, g);
      await audit(p, 'approver_group.created', g.id, { before: null, after: view });
      return view;
    },
  });
  routes.add({
    method: 'PUT',
    url: '/api/v1/policy/approver-groups/:id/members',
    summary: "Replace an approver group's members (takes effect on the next vote)",
    tag: 'approvals',
    auth: { permission: 'users:write' },
    params: idParams,
    body: z.strictObject({ members }),
    handler: async ({ principal, params, body }) => {
      const p = principal!;
      const g = await loadGroup(p.orgId, params.id);
      const before = await groupView(p.orgId, g);
      await setMembers(p.orgId, g.id, await resolveMembers(p.orgId, body.members));
      const after = await groupView(p.orgId, g);
      await audit(p, 'approver_group.updated', g.id, { before, after });
      return after;
    },
  });
  routes.add({
    method: 'DELETE',
    url: '/api/v1/policy/approver-groups/:id',
    summary: 'Delete an approver group no rule uses',
    tag: 'approvals',
    auth: { permission: 'users:write' },
    params: idParams,
    handler: async ({ principal, params }) => {
      const p = principal!;
      const g = await loadGroup(p.orgId, params.id);
      const used = await db.kysely
        .selectFrom('policy_rules')
        .select('id')
        .where('org_id', '=', p.orgId)
        .where('approver_group', '=', g.id)
        .execute();
      if (used.length > 0)
        throw ApiError.conflict(`approver group ${g.name} is used by ${used.map((r) => r.id).join(', ')}`);
      const before = await groupView(p.orgId, g);
      await t.transaction().execute(async (trx) => {
        await trx.deleteFrom('approver_group_members').where('group_id', '=', g.id).execute();
        await trx.deleteFrom('approver_groups').where('id', '=', g.id).execute();
      });
      await audit(p, 'approver_group.deleted', g.id, { before, after: null });
      return undefined;
    },
  });
}
