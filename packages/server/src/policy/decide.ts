import { sql } from 'kysely';
import type { Principal } from '../auth/principal.js';
import type { ServerContext } from '../context.js';
import type { Role, RunnersTable } from '../db/schema.js';
import { type Decision, decide, type Tier } from './engine.js';
import { loadGrants, loadRules, loadScope, loadSettings } from './store.js';

/** What policy says about one requested run. */
export type PolicyDecision =
  | {
      readonly kind: 'allow';
      readonly rule: string;
      readonly limits?: Record<string, number>;
      readonly grantId?: string;
      readonly trace?: readonly string[];
    }
  | { readonly kind: 'deny'; readonly rule: string; readonly message: string; readonly trace?: readonly string[] }
  | {
      readonly kind: 'require_approval';
      readonly rule: string;
      readonly approvers: number;
      readonly approverRole: string;
      readonly approverGroup?: string;
      readonly expiresInS: number;
      readonly signatureRequired?: boolean;
      readonly limits?: Record<string, number>;
      readonly trace?: readonly string[];
    };

/** The facts a decision is made on. */
export interface PolicyInput {
  readonly principal: Principal;
  readonly runner: RunnersTable;
  readonly action: string;
  readonly risk: 'read' | 'change' | 'destructive' | 'unknown';
  readonly args: Readonly<Record<string, unknown>>;
  readonly limits: Readonly<Record<string, number>>;
}

/** Facts for a decision about anyone (explain): who, with which key, their role now. */
export interface SubjectFacts {
  readonly orgId: string;
  readonly userId: string;
  readonly role: Role;
  readonly keyId?: string | undefined;
}

/** Evaluate without side effects (used by explain and by decideRun). */
export async function evaluate(
  ctx: ServerContext,
  subject: SubjectFacts,
  runner: RunnersTable,
  action: string,
  risk: Tier,
  args: Readonly<Record<string, unknown>>,
  limits: Readonly<Record<string, number>>,
  excludeGrants: readonly string[] = [],
): Promise<Decision> {
  const { db } = ctx;
  const [rules, grants, userScope, keyScope, settings] = await Promise.all([
    loadRules(db, subject.orgId),
    loadGrants(db, subject.orgId, subject.userId, subject.keyId),
    loadScope(db, 'user', subject.userId),
    subject.keyId === undefined ? Promise.resolve(null) : loadScope(db, 'api_key', subject.keyId),
    loadSettings(db, subject.orgId),
  ]);
  return decide({
    subject: {
      userId: subject.userId,
      role: subject.role,
      ...(subject.keyId === undefined ? {} : { keyId: subject.keyId }),
    },
    userScope,
    keyScope,
    runner: { id: runner.id, name: runner.name, labels: JSON.parse(runner.labels) as Record<string, string> },
    action,
    risk,
    args,
    limits,
    rules,
    grants: grants.filter((g) => !excludeGrants.includes(g.id)),
    signedTiers: settings.signedTiers,
    approvalTtlS: settings.approvalTtlS,
    now: Date.now(),
  });
}

/**
 * Decide a run with the organisation's current policy. A decision that uses a standing grant
 * consumes one use atomically (guarded on revocation, expiry and the use count), so a grant
 * revoked or used up a moment ago is never used; the decision is then made again without it.
 */
export async function decideRun(ctx: ServerContext, input: PolicyInput): Promise<PolicyDecision> {
  const p = input.principal;
  const subject: SubjectFacts = {
    orgId: p.orgId,
    userId: p.userId,
    role: p.role,
    ...(p.kind === 'api_key' && p.keyId !== undefined ? { keyId: p.keyId } : {}),
  };
  const excluded: string[] = [];
  for (;;) {
    const d = await evaluate(ctx, subject, input.runner, input.action, input.risk, input.args, input.limits, excluded);
    if (d.kind !== 'allow' || d.grantId === undefined) return d;
    const now = new Date().toISOString();
    const res = await ctx.db.kysely
      .updateTable('policy_grants')
      .set({ uses: sql<number>`uses + 1` })
      .where('id', '=', d.grantId)
      .where('revoked_at', 'is', null)
      .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)]))
      .where((eb) => eb.or([eb('max_uses', 'is', null), eb('uses', '<', eb.ref('max_uses'))]))
      .executeTakeFirst();
    if (Number(res.numUpdatedRows) === 1) return d;
    excluded.push(d.grantId);
  }
}
