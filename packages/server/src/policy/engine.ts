// The policy decision engine: pure functions over plain data (no database, no clock of its
// own), so every decision can be replayed, explained and tested exhaustively.
import type { Role } from '../db/schema.js';

export type Risk = 'read' | 'change' | 'destructive';
/** An action whose tier the runner did not advertise is treated as `destructive`. */
export type Tier = Risk | 'unknown';
export type RuleDecision = 'allow' | 'require_approval' | 'deny';

export const RISKS: readonly Risk[] = ['read', 'change', 'destructive'];
export const ROLE_ORDER: readonly Role[] = ['viewer', 'operator', 'admin', 'owner'];

/** Label selector: every key must be present with a matching value (`*` globs). Empty = every runner. */
export type Selector = Readonly<Record<string, string>>;

/** Which runners someone may act on: a label selector and/or explicit runner ids or names. */
export interface RunnerScope {
  readonly selector?: Selector | undefined;
  readonly runners?: readonly string[] | undefined;
}

/** A tier rule (`tier`) or an action override (`action`), for the runners its selector picks. */
export interface PolicyRule {
  readonly id: string;
  readonly kind: 'tier' | 'override';
  /** Lower first. */
  readonly priority: number;
  /** Tier rules: the tier, or `*` for every tier. */
  readonly tier?: Risk | '*' | undefined;
  /** Overrides: an action id or pattern (`docker.*`). */
  readonly action?: string | undefined;
  readonly selector: Selector;
  /** Null on an override that only tightens limits or pins arguments. */
  readonly decision: RuleDecision | null;
  readonly approvers?: number | undefined;
  readonly approverRole?: Role | undefined;
  /** Approvers must also belong to this approver group (id). */
  readonly approverGroup?: string | undefined;
  /** Upper bounds for limits (`timeout_s: 30`): requests are lowered into them. */
  readonly limits?: Readonly<Record<string, number>> | undefined;
  /** Argument → regular expression its value must fully match. */
  readonly pinArgs?: Readonly<Record<string, string>> | undefined;
}

/** A standing grant: run an action pattern on a selector without asking, within bounds. */
export interface Grant {
  readonly id: string;
  readonly subjectType: 'user' | 'api_key';
  readonly subjectId: string;
  readonly action: string;
  readonly selector: Selector;
  /** Argument → regular expression its value must fully match. */
  readonly argConstraints: Readonly<Record<string, string>>;
  readonly maxUses: number | null;
  readonly uses: number;
  readonly expiresAt: string | null;
  readonly revokedAt: string | null;
}

export interface DecisionInput {
  readonly subject: { readonly userId: string; readonly role: Role; readonly keyId?: string | undefined };
  /** The owner's current scope; null = every runner. */
  readonly userScope: RunnerScope | null;
  /** A key's own narrowing (intersected with the owner's); null = no narrowing. */
  readonly keyScope: RunnerScope | null;
  readonly runner: { readonly id: string; readonly name: string; readonly labels: Readonly<Record<string, string>> };
  readonly action: string;
  readonly risk: Tier;
  readonly args: Readonly<Record<string, unknown>>;
  readonly limits: Readonly<Record<string, number>>;
  readonly rules: readonly PolicyRule[];
  readonly grants: readonly Grant[];
  /** Tiers whose runs need an approver signature (signed dispatch). */
  readonly signedTiers: readonly Risk[];
  readonly approvalTtlS: number;
  readonly now: number;
}

export type Decision =
  | {
      readonly kind: 'allow';
      readonly rule: string;
      readonly limits: Record<string, number>;
      readonly grantId?: string;
      readonly trace: readonly string[];
    }
  | { readonly kind: 'deny'; readonly rule: string; readonly message: string; readonly trace: readonly string[] }
  | {
      readonly kind: 'require_approval';
      readonly rule: string;
      readonly approvers: number;
      readonly approverRole: Role;
      readonly approverGroup?: string;
      readonly expiresInS: number;
      readonly signatureRequired: boolean;
      readonly limits: Record<string, number>;
      readonly trace: readonly string[];
    };

/** `*` matches any run of characters; everything else is literal. */
export function globMatch(pattern: string, value: string): boolean {
  const re = new RegExp(`^${pattern.split('*').map(escapeRe).join('.*')}$`);
  return re.test(value);
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export function selectorMatches(selector: Selector, labels: Readonly<Record<string, string>>): boolean {
  for (const [k, v] of Object.entries(selector)) {
    const have = labels[k];
    if (have === undefined || !globMatch(v, have)) return false;
  }
  return true;
}

/** Whether a scope covers a runner. null = unrestricted; a scope with neither part covers nothing. */
export function scopeCovers(scope: RunnerScope | null, runner: DecisionInput['runner']): boolean {
  if (scope === null) return true;
  if (scope.runners !== undefined && (scope.runners.includes(runner.id) || scope.runners.includes(runner.name)))
    return true;
  if (scope.selector !== undefined && selectorMatches(scope.selector, runner.labels)) return true;
  return false;
}

/** Full match of a value (stringified scalars only) against a regular expression. */
export function valueMatches(pattern: string, value: unknown): boolean {
  if (value === undefined || value === null || typeof value === 'object') return false;
  try {
    return new RegExp(`^(?:${pattern})$`).test(String(value));
  } catch {
    return false;
  }
}

export function roleAtLeast(role: Role, needed: Role): boolean {
  return ROLE_ORDER.indexOf(role) >= ROLE_ORDER.indexOf(needed);
}

const effectiveTier = (risk: Tier): Risk => (risk === 'unknown' ? 'destructive' : risk);

function ruleName(r: PolicyRule): string {
  return r.kind === 'tier' ? `tier:${r.id}` : `override:${r.id}`;
}

function byPriority(a: PolicyRule, b: PolicyRule): number {
  return a.priority - b.priority || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/** Whether a grant is usable now for this subject, runner, action and arguments; else why not. */
export function grantProblem(
  g: Grant,
  input: Pick<DecisionInput, 'subject' | 'runner' | 'action' | 'args' | 'now'>,
): string | undefined {
  const subjectOk =
    (g.subjectType === 'user' && g.subjectId === input.subject.userId) ||
    (g.subjectType === 'api_key' && input.subject.keyId !== undefined && g.subjectId === input.subject.keyId);
  if (!subjectOk) return 'other subject';
  if (!globMatch(g.action, input.action)) return 'other action';
  if (!selectorMatches(g.selector, input.runner.labels)) return 'selector does not match the runner';
  if (g.revokedAt !== null) return 'revoked';
  if (g.expiresAt !== null && Date.parse(g.expiresAt) <= input.now) return 'expired';
  if (g.maxUses !== null && g.uses >= g.maxUses) return 'used up';
  for (const [arg, pattern] of Object.entries(g.argConstraints)) {
    if (!valueMatches(pattern, input.args[arg])) return `argument ${arg} outside /${pattern}/`;
  }
  return undefined;
}

/**
 * Decide one run. Order: scope (user, then key: a key only narrows) → any matching `deny`
 * (deny always wins, grants never lift it) → pinned arguments → limit bounds → the first
 * matching override with a decision, else the first matching tier rule, else the built-in
 * default (read and change allowed, destructive and unknown need one admin) → signed tiers
 * turn `allow` into an approval → a standing grant turns an unsigned approval into `allow`.
 */
export function decide(input: DecisionInput): Decision {
  const trace: string[] = [];
  if (!scopeCovers(input.userScope, input.runner)) {
    return {
      kind: 'deny',
      rule: 'scope:user',
      message: `runner ${input.runner.name} is outside the scope of the requesting user`,
      trace,
    };
  }
  if (input.subject.keyId !== undefined && !scopeCovers(input.keyScope, input.runner)) {
    return {
      kind: 'deny',
      rule: 'scope:key',
      message: `runner ${input.runner.name} is outside the scope of this API key`,
      trace,
    };
  }
  if (!roleAtLeast(input.subject.role, 'operator')) {
    return { kind: 'deny', rule: 'role', message: `role ${input.subject.role} may not run actions`, trace };
  }
  const tier = effectiveTier(input.risk);
  const overrides = input.rules
    .filter(
      (r) =>
        r.kind === 'override' &&
        r.action !== undefined &&
        globMatch(r.action, input.action) &&
        selectorMatches(r.selector, input.runner.labels),
    )
    .sort(byPriority);
  const tiers = input.rules
    .filter(
      (r) =>
        r.kind === 'tier' && (r.tier === tier || r.tier === '*') && selectorMatches(r.selector, input.runner.labels),
    )
    .sort(byPriority);
  for (const r of [...overrides, ...tiers]) trace.push(`matches ${ruleName(r)} (${r.decision ?? 'bounds only'})`);

  const deny = [...overrides, ...tiers].find((r) => r.decision === 'deny');
  if (deny !== undefined) {
    return {
      kind: 'deny',
      rule: ruleName(deny),
      message: `${input.action} (${input.risk}) is denied on ${input.runner.name}`,
      trace,
    };
  }
  for (const r of overrides) {
    for (const [arg, pattern] of Object.entries(r.pinArgs ?? {})) {
      if (!valueMatches(pattern, input.args[arg])) {
        return {
          kind: 'deny',
          rule: ruleName(r),
          message: `argument ${arg} must match /${pattern}/ for ${input.action} here`,
          trace,
        };
      }
    }
  }
  const limits: Record<string, number> = { ...input.limits };
  for (const r of overrides) {
    for (const [name, bound] of Object.entries(r.limits ?? {})) {
      const asked = limits[name];
      if (asked === undefined || asked > bound) {
        limits[name] = bound;
        trace.push(`${ruleName(r)} bounds ${name} to ${bound}${asked === undefined ? '' : ` (asked ${asked})`}`);
      }
    }
  }

  const chosen = overrides.find((r) => r.decision !== null) ?? tiers.find((r) => r.decision !== null);
  let kind: RuleDecision;
  let rule: string;
  let approvers = 1;
  let approverRole: Role = 'admin';
  let approverGroup: string | undefined;
  if (chosen !== undefined) {
    kind = chosen.decision!;
    rule = ruleName(chosen);
    approvers = chosen.approvers ?? 1;
    approverRole = chosen.approverRole ?? 'admin';
    approverGroup = chosen.approverGroup;
  } else {
    kind = tier === 'destructive' ? 'require_approval' : 'allow';
    rule = `default:${input.risk}`;
  }
  const signatureRequired = input.signedTiers.includes(tier);
  if (kind === 'allow' && signatureRequired) {
    kind = 'require_approval';
    trace.push(`${rule} allows, but ${tier} runs need an approver signature`);
    rule = `signed-dispatch:${tier}`;
  }
  if (kind === 'allow') return { kind, rule, limits, trace };

  if (!signatureRequired) {
    for (const g of input.grants) {
      const problem = grantProblem(g, input);
      if (problem === undefined) {
        trace.push(`${rule} asks for approval; grant:${g.id} allows it`);
        return { kind: 'allow', rule: `grant:${g.id}`, limits, grantId: g.id, trace };
      }
      if (problem !== 'other subject' && problem !== 'other action') trace.push(`grant:${g.id} not usable: ${problem}`);
    }
  }
  return {
    kind: 'require_approval',
    rule,
    approvers: Math.max(1, approvers),
    approverRole,
    ...(approverGroup === undefined ? {} : { approverGroup }),
    expiresInS: input.approvalTtlS,
    signatureRequired,
    limits,
    trace,
  };
}

/** Whether someone may cast an approval vote on a run (the requester never may). */
export function approverProblem(
  approver: { readonly userId: string; readonly role: Role },
  run: { readonly requesterUserId: string; readonly approverRole: Role },
): string | undefined {
  if (approver.userId === run.requesterUserId) return 'the requester cannot approve their own run';
  if (!roleAtLeast(approver.role, run.approverRole)) return `approving this run needs the ${run.approverRole} role`;
  return undefined;
}
