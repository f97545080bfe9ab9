import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import { z } from 'zod';
import { type Principal, principalRecord } from '../auth/principal.js';
import { leaderJob } from '../cluster/cluster.js';
import type { ServerContext } from '../context.js';
import type { Database, PolicyRulesTable, Role } from '../db/schema.js';
import { ApiError } from '../http/api-error.js';
import type { ModuleHandle } from '../modules.js';
import { activeHub } from '../runners/routes.js';
import { parseState } from '../runners/runner-store.js';
import { findRunner } from '../runs/run-service.js';
import { expireApprovals } from './approvals.js';
import { findGroup, registerApproverRoutes } from './approvers.js';
import { evaluate } from './decide.js';
import type { Tier } from './engine.js';
import { grantView, loadScope, loadSettings, MAX_APPROVAL_TTL_S, ruleView } from './store.js';
import { webhookTargets, webhookUrlProblem } from './webhook.js';

/** Remove a subject's runner scope (back to "every runner its role allows"). */
async function clearScope(q: Kysely<Database>, subjectType: 'user' | 'api_key', subjectId: string): Promise<void> {
  await q
    .deleteFrom('policy_scopes')
    .where('subject_type', '=', subjectType)
    .where('subject_id', '=', subjectId)
    .execute();
}

const idParams = z.strictObject({ id: z.string().min(1).max(128) });
const labelKey = z.string().regex(/^[a-z][a-z0-9_.-]{0,62}$/, 'label names are lowercase');
const selector = z.record(labelKey, z.string().min(1).max(128));
const actionPattern = z
  .string()
  .regex(/^[a-z0-9_.*]{1,256}$/, 'an action id or pattern such as docker.* or docker.restart');
const regex = z
  .string()
  .min(1)
  .max(512)
  .refine((p) => {
    try {
      new RegExp(p);
      return true;
    } catch {
      return false;
    }
  }, 'not a valid regular expression');
const role = z.enum(['owner', 'admin', 'operator', 'viewer']);
const tier = z.enum(['read', 'change', 'destructive']);

const ruleBody = z
  .strictObject({
    kind: z.enum(['tier', 'override']),
    priority: z.int().min(0).max(1_000_000).default(100),
    tier: z.enum(['read', 'change', 'destructive', '*']).optional().describe('tier rules: the tier, or * for all'),
    action: actionPattern.optional().describe('overrides: action id or pattern'),
    selector: selector.default({}),
    decision: z.enum(['allow', 'require_approval', 'deny']).nullable().default(null),
    approvers: z.int().min(1).max(10).optional(),
    approver_role: role.optional(),
    approver_group: z
      .string()
      .min(1)
      .max(128)
      .optional()
      .describe('approvers must also be members of this group (id or name)'),
    limits: z
      .record(z.string().min(1).max(64), z.number().min(0))
      .optional()
      .describe('overrides: upper bounds for limits'),
    pin_args: z
      .record(z.string().min(1).max(64), regex)
      .optional()
      .describe('overrides: argument → regex its value must fully match'),
    comment: z.string().max(2000).optional(),
  })
  .check((ctx) => {
    const v = ctx.value;
    if (v.kind === 'tier' && v.tier === undefined)
      ctx.issues.push({ code: 'custom', path: ['tier'], message: 'a tier rule needs a tier', input: v });
    if (v.kind === 'tier' && v.decision === null)
      ctx.issues.push({ code: 'custom', path: ['decision'], message: 'a tier rule needs a decision', input: v });
    if (v.kind === 'tier' && (v.action !== undefined || v.limits !== undefined || v.pin_args !== undefined))
      ctx.issues.push({
        code: 'custom',
        path: ['kind'],
        message: 'action, limits and pin_args belong to overrides',
        input: v,
      });
    if (v.kind === 'override' && v.action === undefined)
      ctx.issues.push({
        code: 'custom',
        path: ['action'],
        message: 'an override needs an action or pattern',
        input: v,
      });
    if (v.kind === 'override' && v.tier !== undefined)
      ctx.issues.push({ code: 'custom', path: ['tier'], message: 'an override names an action, not a tier', input: v });
  });

const scopeBody = z
  .strictObject({
    selector: selector.nullable().default(null),
    runners: z.array(z.string().min(1).max(128)).max(1000).nullable().default(null),
  })
  .describe('runners matching the selector or listed (ids or names) are in scope; both null = no runner');

function ruleRow(
  orgId: string,
  id: string,
  by: string,
  b: z.infer<typeof ruleBody>,
  createdAt: string,
  approverGroup: string | null,
): PolicyRulesTable {
  const now = new Date().toISOString();
  return {
    id,
    org_id: orgId,
    kind: b.kind,
    priority: b.priority,
    tier: b.tier ?? null,
    action: b.action ?? null,
    selector: JSON.stringify(b.selector),
    decision: b.decision,
    approvers: b.approvers ?? null,
    approver_role: b.approver_role ?? null,
    approver_group: approverGroup,
    limits: b.limits === undefined ? null : JSON.stringify(b.limits),
    pin_args: b.pin_args === undefined ? null : JSON.stringify(b.pin_args),
    comment: b.comment ?? null,
    created_by: by,
    created_at: createdAt,
    updated_at: now,
  };
}

/** How often pending approvals are checked for expiry (tests shorten it). */
function sweepMs(): number {
  const v = Number(process.env['AIRLOCK_APPROVAL_SWEEP_MS']);
  return Number.isFinite(v) && v >= 50 ? v : 5000;
}

/** Policy: tier rules, overrides, scopes, grants, settings, explain; the approval expiry job. */
export async function registerPolicyRoutes(ctx: ServerContext): Promise<ModuleHandle | undefined> {
  const { routes, db } = ctx;
  // The runner module registers first; capture this server's hub (not a later one's).
  const hub = activeHub;
  const audit = (
    p: Principal,
    kind: string,
    id: string,
    before: unknown,
    after: unknown,
    extra: Record<string, unknown> = {},
  ) =>
    ctx.audit.record({
      orgId: p.orgId,
      id,
      kind,
      actor: principalRecord(p),
      data: { before: before ?? null, after: after ?? null, ...extra },
    });

  /** The id of the approver group a rule names (by id or name), or a field error. */
  const groupFor = async (orgId: string, name: string | undefined): Promise<string | null> => {
    if (name === undefined) return null;
    const g = await findGroup(db, orgId, name);
    if (g === undefined)
      throw ApiError.badRequest(`body.approver_group: no approver group ${JSON.stringify(name)}`, [
        { field: 'body.approver_group', message: `no approver group ${JSON.stringify(name)}` },
      ]);
    return g.id;
  };
  registerApproverRoutes(ctx);

  // ---- rules
  routes.add({
    method: 'GET',
    url: '/api/v1/policy',
    summary: 'The organisation policy: tier rules, action overrides and settings',
    tag: 'policy',
    auth: { permission: 'runs:read' },
    handler: async ({ principal }) => {
      const rows = await db.kysely
        .selectFrom('policy_rules')
        .selectAll()
        .where('org_id', '=', principal!.orgId)
        .orderBy('priority')
        .orderBy('id')
        .execute();
      const s = await loadSettings(db, principal!.orgId);
      return {
        rules: rows.map(ruleView),
        settings: {
          signed_tiers: s.signedTiers,
          root_public_key: s.rootPublicKey,
          webhook_url: s.webhookUrl,
          webhook_secret_set: s.webhookSecret !== null,
          approval_ttl_s: s.approvalTtlS,
        },
        defaults: {
          read: 'allow',
          change: 'allow',
          destructive: 'require_approval (1 admin)',
          unknown: 'as destructive',
        },
      };
    },
  });

  routes.add({
    method: 'POST',
    url: '/api/v1/policy/rules',
    summary: 'Add a tier rule or an action override',
    tag: 'policy',
    auth: { permission: 'users:write' },
    body: ruleBody,
    status: 201,
    handler: async ({ principal, body }) => {
      const p = principal!;
      const row = ruleRow(
        p.orgId,
        `rule_${randomUUID().slice(0, 8)}`,
        p.username,
        body,
        new Date().toISOString(),
        await groupFor(p.orgId, body.approver_group),
      );
      await db.kysely.insertInto('policy_rules').values(row).execute();
      await audit(p, 'policy.rule_created', row.id, null, ruleView(row));
      return ruleView(row);
    },
  });

  routes.add({
    method: 'PUT',
    url: '/api/v1/policy/rules/:id',
    summary: 'Replace a rule',
    tag: 'policy',
    auth: { permission: 'users:write' },
    params: idParams,
    body: ruleBody,
    handler: async ({ principal, params, body }) => {
      const p = principal!;
      const old = await db.kysely
        .selectFrom('policy_rules')
        .selectAll()
        .where('org_id', '=', p.orgId)
        .where('id', '=', params.id)
        .executeTakeFirst();
      if (old === undefined) throw ApiError.notFound('rule');
      const row = ruleRow(
        p.orgId,
        old.id,
        old.created_by,
        body,
        old.created_at,
        await groupFor(p.orgId, body.approver_group),
      );
      const { id: _id, org_id: _org, ...set } = row;
      await db.kysely.updateTable('policy_rules').set(set).where('id', '=', old.id).execute();
      await audit(p, 'policy.rule_updated', row.id, ruleView(old), ruleView(row));
      return ruleView(row);
    },
  });

  routes.add({
    method: 'DELETE',
    url: '/api/v1/policy/rules/:id',
    summary: 'Delete a rule',
    tag: 'policy',
    auth: { permission: 'users:write' },
    params: idParams,
    handler: async ({ principal, params }) => {
      const p = principal!;
      const old = await db.kysely
        .selectFrom('policy_rules')
        .selectAll()
        .where('org_id', '=', p.orgId)
        .where('id', '=', params.id)
        .executeTakeFirst();
      if (old === undefined) throw ApiError.notFound('rule');
      await db.kysely.deleteFrom('policy_rules').where('id', '=', old.id).execute();
      await audit(p, 'policy.rule_deleted', old.id, ruleView(old), null);
      return undefined;
    },
  });

  // ---- settings
  routes.add({
    method: 'PUT',
    url: '/api/v1/policy/settings',
    summary: 'Signed tiers, organisation root public key, approval expiry, approval webhook (HMAC-signed)',
    tag: 'policy',
    auth: { permission: 'users:write' },
    body: z.strictObject({
      signed_tiers: z.array(tier).max(3).optional(),
      root_public_key: z
        .string()
        .regex(/^[A-Za-z0-9_-]{43}$/, 'a raw Ed25519 public key, base64url')
        .nullable()
        .optional(),
      approval_ttl_s: z.int().min(1).max(MAX_APPROVAL_TTL_S).optional(),
      webhook_url: z
        .url({ protocol: /^https?$/ })
        .nullable()
        .optional(),
      webhook_secret: z.string().min(16).max(256).nullable().optional(),
    }),
    handler: async ({ principal, body }) => {
      const p = principal!;
      if (typeof body.webhook_url === 'string') {
        const why = await webhookUrlProblem(webhookTargets(ctx), body.webhook_url);
        if (why !== undefined)
          throw ApiError.badRequest(`webhook_url: ${why}`, [{ field: 'webhook_url', message: why }]);
      }
      const old = await db.kysely
        .selectFrom('policy_settings')
        .selectAll()
        .where('org_id', '=', p.orgId)
        .executeTakeFirst();
      const cur = await loadSettings(db, p.orgId);
      const next = {
        org_id: p.orgId,
        signed_tiers: JSON.stringify(body.signed_tiers ?? cur.signedTiers),
        root_public_key: body.root_public_key === undefined ? cur.rootPublicKey : body.root_public_key,
        webhook_url: body.webhook_url === undefined ? cur.webhookUrl : body.webhook_url,
        webhook_secret: body.webhook_secret === undefined ? cur.webhookSecret : body.webhook_secret,
        approval_ttl_s: body.approval_ttl_s ?? cur.approvalTtlS,
        updated_at: new Date().toISOString(),
      };
      if (old === undefined) await db.kysely.insertInto('policy_settings').values(next).execute();
      else await db.kysely.updateTable('policy_settings').set(next).where('org_id', '=', p.orgId).execute();
      const view = (s: typeof next | undefined) =>
        s === undefined
          ? null
          : {
              signed_tiers: JSON.parse(s.signed_tiers) as string[],
              root_public_key: s.root_public_key,
              webhook_url: s.webhook_url,
              webhook_secret_set: s.webhook_secret !== null,
              approval_ttl_s: s.approval_ttl_s,
            };
      const after = view(next);
      await audit(p, 'policy.settings_changed', p.orgId, view(old), after);
      return after;
    },
  });

  // ---- scopes
  const userInOrg = async (orgId: string, id: string) => {
    const u = await db.kysely
      .selectFrom('users')
      .select(['id', 'username', 'role'])
      .where('org_id', '=', orgId)
      .where((eb) => eb.or([eb('id', '=', id), eb('username', '=', id)]))
      .executeTakeFirst();
    if (u === undefined) throw ApiError.notFound('user');
    return u;
  };
  routes.add({
    method: 'GET',
    url: '/api/v1/policy/scopes/users/:id',
    summary: "A user's runner scope (null = every runner)",
    tag: 'policy',
    auth: { permission: 'runs:read' },
    params: idParams,
    handler: async ({ principal, params }) => {
      const u = await userInOrg(principal!.orgId, params.id);
      return { user: u.id, scope: await loadScope(db, 'user', u.id) };
    },
  });
  /** Replace a subject's runner scope in one transaction (the old one is gone, the new one set). */
  const replaceScope = (
    subjectType: 'user' | 'api_key',
    subjectId: string,
    orgId: string,
    body: { selector: unknown; runners: unknown },
  ): Promise<void> =>
    db.kysely.transaction().execute(async (trx) => {
      await clearScope(trx, subjectType, subjectId);
      await trx
        .insertInto('policy_scopes')
        .values({
          subject_type: subjectType,
          subject_id: subjectId,
          org_id: orgId,
          selector: body.selector === null ? null : JSON.stringify(body.selector),
          runners: body.runners === null ? null : JSON.stringify(body.runners),
          updated_at: new Date().toISOString(),
        })
        .execute();
    });

  routes.add({
    method: 'PUT',
    url: '/api/v1/policy/scopes/users/:id',
    summary: "Set a user's runner scope; every key they minted shrinks with it at once",
    tag: 'policy',
    auth: { permission: 'users:write' },
    params: idParams,
    body: scopeBody,
    handler: async ({ principal, params, body }) => {
      const p = principal!;
      const u = await userInOrg(p.orgId, params.id);
      const before = await loadScope(db, 'user', u.id);
      await replaceScope('user', u.id, p.orgId, body);
      const after = await loadScope(db, 'user', u.id);
      await audit(p, 'policy.scope_set', u.id, before, after, {
        subject: { type: 'user', id: u.id, name: u.username },
      });
      return { user: u.id, scope: after };
    },
  });
  routes.add({
    method: 'DELETE',
    url: '/api/v1/policy/scopes/users/:id',
    summary: "Remove a user's scope restriction (every runner)",
    tag: 'policy',
    auth: { permission: 'users:write' },
    params: idParams,
    handler: async ({ principal, params }) => {
      const p = principal!;
      const u = await userInOrg(p.orgId, params.id);
      const before = await loadScope(db, 'user', u.id);
      await clearScope(db.kysely, 'user', u.id);
      await audit(p, 'policy.scope_cleared', u.id, before, null, {
        subject: { type: 'user', id: u.id, name: u.username },
      });
      return undefined;
    },
  });
  routes.add({
    method: 'PUT',
    url: '/api/v1/policy/scopes/keys/:id',
    summary: "Narrow an API key's runner scope (intersected with its owner's at every request; never widens)",
    tag: 'policy',
    auth: { permission: 'keys:write' },
    params: idParams,
    body: scopeBody,
    handler: async ({ principal, params, body }) => {
      const p = principal!;
      const key = await db.kysely
        .selectFrom('api_keys')
        .select(['id', 'user_id', 'name'])
        .where('org_id', '=', p.orgId)
        .where('id', '=', params.id)
        .executeTakeFirst();
      if (key === undefined) throw ApiError.notFound('API key');
      if (key.user_id !== p.userId && !p.permissions.has('users:write'))
        throw ApiError.forbidden('only the key owner or an admin may narrow a key');
      const before = await loadScope(db, 'api_key', key.id);
      await replaceScope('api_key', key.id, p.orgId, body);
      const after = await loadScope(db, 'api_key', key.id);
      await audit(p, 'policy.scope_set', key.id, before, after, {
        subject: { type: 'api_key', id: key.id, name: key.name },
      });
      return { key: key.id, scope: after };
    },
  });

  // ---- grants
  routes.add({
    method: 'GET',
    url: '/api/v1/policy/grants',
    summary: 'Standing grants with their use counts (revoked and expired included)',
    tag: 'policy',
    auth: { permission: 'runs:read' },
    query: z.strictObject({ subject: z.string().max(128).optional(), active: z.enum(['true', 'false']).optional() }),
    handler: async ({ principal, query }) => {
      let q = db.kysely.selectFrom('policy_grants').selectAll().where('org_id', '=', principal!.orgId);
      if (query.subject !== undefined) q = q.where('subject_id', '=', query.subject);
      if (query.active === 'true') q = q.where('revoked_at', 'is', null);
      const rows = await q.orderBy('created_at', 'desc').execute();
      const now = new Date().toISOString();
      return {
        grants: rows
          .filter(
            (g) =>
              query.active !== 'true' ||
              ((g.expires_at === null || g.expires_at > now) && (g.max_uses === null || Number(g.uses) < g.max_uses)),
          )
          .map(grantView),
      };
    },
  });
  routes.add({
    method: 'POST',
    url: '/api/v1/policy/grants',
    summary: 'Grant a user or API key the standing right to run an action pattern on a selector (never overrides deny)',
    tag: 'policy',
    auth: { permission: 'users:write' },
    body: z.strictObject({
      subject: z.strictObject({ type: z.enum(['user', 'api_key']), id: z.string().min(1).max(128) }),
      action: actionPattern,
      selector: selector.default({}),
      arg_constraints: z.record(z.string().min(1).max(64), regex).default({}),
      max_uses: z.int().min(1).max(1_000_000).optional(),
      expires_at: z.iso.datetime({ offset: true }).optional(),
      expires_in_s: z
        .int()
        .min(1)
        .max(366 * 24 * 3600)
        .optional(),
      comment: z.string().max(2000).optional(),
    }),
    status: 201,
    handler: async ({ principal, body }) => {
      const p = principal!;
      let subjectId = body.subject.id;
      if (body.subject.type === 'user') subjectId = (await userInOrg(p.orgId, body.subject.id)).id;
      else {
        const key = await db.kysely
          .selectFrom('api_keys')
          .select('id')
          .where('org_id', '=', p.orgId)
          .where('id', '=', body.subject.id)
          .executeTakeFirst();
        if (key === undefined) throw ApiError.notFound('API key');
      }
      const expires =
        body.expires_at !== undefined
          ? new Date(body.expires_at).toISOString()
          : body.expires_in_s !== undefined
            ? new Date(Date.now() + body.expires_in_s * 1000).toISOString()
            : null;
      const row = {
        id: `grant_${randomUUID().slice(0, 8)}`,
        org_id: p.orgId,
        subject_type: body.subject.type,
        subject_id: subjectId,
        action: body.action,
        selector: JSON.stringify(body.selector),
        arg_constraints: JSON.stringify(body.arg_constraints),
        max_uses: body.max_uses ?? null,
        uses: 0,
        expires_at: expires,
        revoked_at: null,
        comment: body.comment ?? null,
        created_by: p.username,
        created_at: new Date().toISOString(),
      };
      await db.kysely.insertInto('policy_grants').values(row).execute();
      await audit(p, 'grant.created', row.id, null, grantView(row));
      return grantView(row);
    },
  });
  routes.add({
    method: 'POST',
    url: '/api/v1/policy/grants/:id/revoke',
    summary: 'Revoke a grant at once',
    tag: 'policy',
    auth: { permission: 'users:write' },
    params: idParams,
    body: z.strictObject({ reason: z.string().max(2000).optional() }).optional(),
    handler: async ({ principal, params, body }) => {
      const p = principal!;
      const old = await db.kysely
        .selectFrom('policy_grants')
        .selectAll()
        .where('org_id', '=', p.orgId)
        .where('id', '=', params.id)
        .executeTakeFirst();
      if (old === undefined) throw ApiError.notFound('grant');
      if (old.revoked_at !== null) throw ApiError.conflict(`grant ${old.id} is already revoked`);
      const now = new Date().toISOString();
      await db.kysely.updateTable('policy_grants').set({ revoked_at: now }).where('id', '=', old.id).execute();
      const after = { ...old, revoked_at: now };
      await audit(p, 'grant.revoked', old.id, grantView(old), grantView(after), { reason: body?.reason ?? null });
      return grantView(after);
    },
  });

  // ---- explain
  routes.add({
    method: 'GET',
    url: '/api/v1/policy/explain',
    summary:
      'What would happen if user U (optionally with key K) asked for action A with args X on runner R; runs nothing',
    tag: 'policy',
    auth: { permission: 'runs:read' },
    query: z.strictObject({
      user: z.string().min(1).max(128).optional().describe('user id or name (default: you)'),
      key: z.string().min(1).max(128).optional().describe('API key id of that user'),
      runner: z.string().min(1).max(128),
      action: z.string().regex(/^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$/, 'expected namespace.action'),
      args: z.string().max(65536).default('{}').describe('arguments as JSON'),
      limits: z.string().max(4096).default('{}').describe('limits as JSON'),
    }),
    handler: async ({ principal, query }) => {
      const p = principal!;
      let userId = p.userId;
      let role: Role = p.role;
      if (query.user !== undefined) {
        const u = await userInOrg(p.orgId, query.user);
        if (u.id !== p.userId && !p.permissions.has('users:read'))
          throw ApiError.forbidden('explaining for another user needs the users:read permission');
        userId = u.id;
        role = u.role;
      }
      let keyId: string | undefined;
      if (query.key !== undefined) {
        const key = await db.kysely
          .selectFrom('api_keys')
          .select(['id', 'user_id', 'scopes', 'revoked_at'])
          .where('org_id', '=', p.orgId)
          .where('id', '=', query.key)
          .executeTakeFirst();
        if (key === undefined || key.user_id !== userId) throw ApiError.notFound('API key of that user');
        keyId = key.id;
      }
      const parseJson = (text: string, field: string): Record<string, unknown> => {
        try {
          const v: unknown = JSON.parse(text);
          if (typeof v === 'object' && v !== null && !Array.isArray(v)) return v as Record<string, unknown>;
        } catch {
          /* fall through */
        }
        throw ApiError.badRequest(`query.${field}: expected a JSON object`, [
          { field: `query.${field}`, message: 'expected a JSON object' },
        ]);
      };
      const args = parseJson(query.args, 'args');
      const limits = Object.fromEntries(
        Object.entries(parseJson(query.limits, 'limits')).filter(([, v]) => typeof v === 'number'),
      ) as Record<string, number>;
      const runner = await findRunner(ctx, p.orgId, query.runner);
      if (runner === undefined) throw ApiError.notFound(`runner ${JSON.stringify(query.runner)}`);
      const pack = parseState(runner).packs.find((x) => x.actions.includes(query.action)) as
        | { action_risks?: Record<string, Tier> }
        | undefined;
      const risk: Tier = pack?.action_risks?.[query.action] ?? 'unknown';
      const d = await evaluate(ctx, { orgId: p.orgId, userId, role, keyId }, runner, query.action, risk, args, limits);
      return {
        decision: d.kind,
        rule: d.rule,
        risk,
        offered: pack !== undefined,
        ...(d.kind === 'deny' ? { message: d.message } : {}),
        ...(d.kind === 'require_approval'
          ? {
              approvers: d.approvers,
              approver_role: d.approverRole,
              expires_in_s: d.expiresInS,
              signature_required: d.signatureRequired,
              limits: d.limits,
            }
          : {}),
        ...(d.kind === 'allow' ? { limits: d.limits, ...(d.grantId === undefined ? {} : { grant: d.grantId }) } : {}),
        trace: d.trace,
      };
    },
  });

  // ---- the expiry job: expired approvals fail closed
  // Leader-only: with several instances on one Postgres, one of them sweeps (cluster/).
  const stopSweep = leaderJob(
    ctx.cluster,
    sweepMs(),
    () => expireApprovals(ctx, hub),
    (e: unknown) => ctx.log.warn({ err: e }, 'approval expiry sweep failed'),
  );
  return {
    async close() {
      stopSweep();
    },
  };
}
