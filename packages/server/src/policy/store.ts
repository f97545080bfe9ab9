// Reading and writing policy data. Everything is re-read per decision, so a change (a shrunk
// scope, a revoked grant, a new deny rule) takes effect on the very next request.
import type { Db } from '../db/database.js';
import { policyGrantsOf, policyGrantsOfTwo, policyRules, policyScope, policySettings } from '../db/hot-queries.js';
import type { PolicyGrantsTable, PolicyRulesTable, PolicySettingsTable, Role } from '../db/schema.js';
import type { Grant, PolicyRule, Risk, RunnerScope } from './engine.js';

export const DEFAULT_APPROVAL_TTL_S = 15 * 60;
/** An approval may wait at most 23 h, so its signed envelope (expiry + 1 h) stays within 24 h. */
export const MAX_APPROVAL_TTL_S = 23 * 60 * 60;

export interface PolicySettings {
  readonly signedTiers: Risk[];
  readonly rootPublicKey: string | null;
  readonly webhookUrl: string | null;
  readonly webhookSecret: string | null;
  readonly approvalTtlS: number;
}

const parse = <T>(s: string | null, fallback: T): T => (s === null ? fallback : (JSON.parse(s) as T));

export function ruleFromRow(r: PolicyRulesTable): PolicyRule {
  return {
    id: r.id,
    kind: r.kind,
    priority: r.priority,
    ...(r.tier === null ? {} : { tier: r.tier as PolicyRule['tier'] }),
    ...(r.action === null ? {} : { action: r.action }),
    selector: parse(r.selector, {}),
    decision: r.decision,
    ...(r.approvers === null ? {} : { approvers: r.approvers }),
    ...(r.approver_role === null ? {} : { approverRole: r.approver_role }),
    ...(r.approver_group == null ? {} : { approverGroup: r.approver_group }),
    ...(r.limits === null ? {} : { limits: parse(r.limits, {}) }),
    ...(r.pin_args === null ? {} : { pinArgs: parse(r.pin_args, {}) }),
  };
}

export function grantFromRow(g: PolicyGrantsTable): Grant {
  return {
    id: g.id,
    subjectType: g.subject_type,
    subjectId: g.subject_id,
    action: g.action,
    selector: parse(g.selector, {}),
    argConstraints: parse(g.arg_constraints, {}),
    maxUses: g.max_uses,
    uses: Number(g.uses),
    expiresAt: g.expires_at,
    revokedAt: g.revoked_at,
  };
}

export function ruleView(r: PolicyRulesTable) {
  return {
    id: r.id,
    kind: r.kind,
    priority: r.priority,
    tier: r.tier,
    action: r.action,
    selector: parse<Record<string, string>>(r.selector, {}),
    decision: r.decision,
    approvers: r.approvers,
    approver_role: r.approver_role,
    approver_group: r.approver_group ?? null,
    limits: parse<Record<string, number> | null>(r.limits, null),
    pin_args: parse<Record<string, string> | null>(r.pin_args, null),
    comment: r.comment,
    created_by: r.created_by,
    created_at: r.created_at,
    updated_at: r.updated_at,
  };
}

export function grantView(g: PolicyGrantsTable) {
  return {
    id: g.id,
    subject: { type: g.subject_type, id: g.subject_id },
    action: g.action,
    selector: parse<Record<string, string>>(g.selector, {}),
    arg_constraints: parse<Record<string, string>>(g.arg_constraints, {}),
    max_uses: g.max_uses,
    uses: Number(g.uses),
    expires_at: g.expires_at,
    revoked_at: g.revoked_at,
    comment: g.comment,
    created_by: g.created_by,
    created_at: g.created_at,
  };
}

export async function loadRules(db: Db, orgId: string): Promise<PolicyRule[]> {
  const { rows } = await policyRules.execute(db.kysely, { org_id: orgId });
  return rows.map(ruleFromRow);
}

/** Live-or-not grants of a user and (when given) one of their keys; the engine checks liveness. */
export async function loadGrants(db: Db, orgId: string, userId: string, keyId: string | undefined): Promise<Grant[]> {
  const { rows } =
    keyId === undefined
      ? await policyGrantsOf.execute(db.kysely, { org_id: orgId, subject: userId })
      : await policyGrantsOfTwo.execute(db.kysely, { org_id: orgId, subject: userId, other: keyId });
  return rows.map(grantFromRow);
}

export async function loadScope(
  db: Db,
  subjectType: 'user' | 'api_key',
  subjectId: string,
): Promise<RunnerScope | null> {
  const row = await policyScope.first(db.kysely, { subject_type: subjectType, subject_id: subjectId });
  if (row === undefined) return null;
  return {
    ...(row.selector === null ? {} : { selector: JSON.parse(row.selector) as Record<string, string> }),
    ...(row.runners === null ? {} : { runners: JSON.parse(row.runners) as string[] }),
  };
}

export function settingsFromRow(row: PolicySettingsTable | undefined): PolicySettings {
  if (row === undefined)
    return {
      signedTiers: [],
      rootPublicKey: null,
      webhookUrl: null,
      webhookSecret: null,
      approvalTtlS: DEFAULT_APPROVAL_TTL_S,
    };
  return {
    signedTiers: JSON.parse(row.signed_tiers) as Risk[],
    rootPublicKey: row.root_public_key,
    webhookUrl: row.webhook_url,
    webhookSecret: row.webhook_secret,
    approvalTtlS: row.approval_ttl_s,
  };
}

export async function loadSettings(db: Db, orgId: string): Promise<PolicySettings> {
  return settingsFromRow(await policySettings.first(db.kysely, { org_id: orgId }));
}

export async function userRole(db: Db, userId: string): Promise<Role | undefined> {
  const row = await db.kysely
    .selectFrom('users')
    .select(['role', 'disabled'])
    .where('id', '=', userId)
    .executeTakeFirst();
  return row === undefined || row.disabled !== 0 ? undefined : row.role;
}
