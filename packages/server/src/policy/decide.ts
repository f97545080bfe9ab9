import type { Principal } from '../auth/principal.js';
import type { ServerContext } from '../context.js';
import type { RunnersTable } from '../db/schema.js';

/** What policy says about one requested run. */
export type PolicyDecision =
  | { readonly kind: 'allow'; readonly rule: string }
  | { readonly kind: 'deny'; readonly rule: string; readonly message: string }
  | { readonly kind: 'require_approval'; readonly rule: string; readonly approvers: number; readonly approverRole: string; readonly expiresInS: number };

/** The facts a decision is made on. */
export interface PolicyInput {
  readonly principal: Principal;
  readonly runner: RunnersTable;
  readonly action: string;
  readonly risk: 'read' | 'change' | 'destructive' | 'unknown';
  readonly args: Readonly<Record<string, unknown>>;
  readonly limits: Readonly<Record<string, number>>;
}

/**
 * Decide a run. Until the policy engine lands, a caller holding `runs:write` may run any
 * action of a trusted pack; this function is the single place that will change.
 */
export async function decideRun(ctx: ServerContext, input: PolicyInput): Promise<PolicyDecision> {
  void ctx;
  void input;
  return { kind: 'allow', rule: 'default: runs:write may run trusted actions' };
}
