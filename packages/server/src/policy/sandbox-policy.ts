// Sandbox policy: who may create sandboxes, with which packs and limits, whether egress may
// be enabled, lifetime caps and quotas. A pure function over plain data, like the action
// policy engine (engine.ts), whose scope rules it reuses for host placement.
import { egressEntryCovers, parseEgressAllowEntry, type SandboxEgressSpec } from '@airlock/core';
import { z } from 'zod';
import type { Role } from '../db/schema.js';
import { globMatch, ROLE_ORDER, roleAtLeast } from './engine.js';

const quota = z.strictObject({
  concurrent: z.int().min(0).max(10_000).nullable().describe('live sandboxes at once; null = no limit'),
  cpu_seconds_per_day: z
    .int()
    .min(0)
    .max(100_000_000)
    .nullable()
    .describe('exec time × vCPUs per UTC day; null = no limit'),
});

/** An organisation's sandbox policy, as stored and as `PUT /api/v1/policy/sandboxes` takes it. */
export const sandboxPolicySchema = z.strictObject({
  enabled: z.boolean().describe('false: nobody may create sandboxes'),
  min_role: z.enum(ROLE_ORDER as unknown as ['viewer', 'operator', 'admin', 'owner']).describe('who may create'),
  packs: z
    .array(z.string().regex(/^[a-z*][a-z0-9_*-]{0,31}$/, 'a language pack name or glob'))
    .max(64)
    .describe('language packs allowed (`*` globs)'),
  max_memory_mb: z.int().min(64).max(4096),
  max_vcpus: z.int().min(1).max(4),
  max_lifetime_s: z
    .int()
    .min(1)
    .max(7 * 24 * 3600),
  default_lifetime_s: z
    .int()
    .min(1)
    .max(7 * 24 * 3600),
  max_exec_timeout_ms: z.int().min(1).max(3_600_000),
  allow_egress: z.boolean().describe('whether a create may ask for network egress'),
  egress_allow: z
    .array(
      z
        .string()
        .max(300)
        .superRefine((v, ctx) => {
          const r = parseEgressAllowEntry(v);
          if (!r.ok) ctx.addIssue({ code: 'custom', message: r.reason });
        }),
    )
    .max(256)
    .default([])
    .describe(
      'host:port patterns ("api.example.com:443", "*.pypi.org:443") a create may ask for; empty = any (when allow_egress)',
    ),
  quotas: z.strictObject({ user: quota, org: quota }),
});

export type SandboxPolicy = z.infer<typeof sandboxPolicySchema>;

/** The policy of an organisation that never set one. Pinned by a test. */
export const DEFAULT_SANDBOX_POLICY: SandboxPolicy = Object.freeze({
  enabled: true,
  min_role: 'operator',
  packs: ['*'],
  max_memory_mb: 512,
  max_vcpus: 2,
  max_lifetime_s: 3600,
  default_lifetime_s: 900,
  max_exec_timeout_ms: 300_000,
  allow_egress: false,
  egress_allow: [],
  quotas: {
    user: { concurrent: 5, cpu_seconds_per_day: 3600 },
    org: { concurrent: 50, cpu_seconds_per_day: 36_000 },
  },
}) as SandboxPolicy;

/** What a create asks for (after request validation). */
export interface SandboxCreateAsk {
  readonly language_pack: string;
  readonly memory_mb?: number | undefined;
  readonly vcpus?: number | undefined;
  readonly lifetime_s?: number | undefined;
  /** The egress asked for (its allowlist is checked against the organisation's cap); absent = none. */
  readonly egress?: Pick<SandboxEgressSpec, 'allow'> | undefined;
}

/** Current use, counted from the database at the moment of the decision. */
export interface SandboxUsage {
  readonly userConcurrent: number;
  readonly orgConcurrent: number;
  readonly userCpuMsToday: number;
  readonly orgCpuMsToday: number;
}

export interface SandboxDecisionInput {
  readonly subject: { readonly username: string; readonly role: Role };
  readonly ask: SandboxCreateAsk;
  readonly policy: SandboxPolicy;
  readonly usage: SandboxUsage;
  /** Default guest memory when the ask names none. */
  readonly defaultMemoryMb: number;
}

/** A create decision, with the rule that made it (`sandbox:<rule>`) and a trace like the action explain. */
export type SandboxDecision =
  | {
      readonly kind: 'allow';
      readonly rule: string;
      readonly limits: { readonly memory_mb: number; readonly vcpus: number; readonly lifetime_s: number };
      readonly trace: readonly string[];
    }
  | {
      readonly kind: 'deny';
      readonly rule: string;
      /** `quota_exceeded` for quotas (HTTP 429), `policy_denied` otherwise (403). */
      readonly code: 'policy_denied' | 'quota_exceeded';
      readonly message: string;
      readonly trace: readonly string[];
    };

function deny(
  rule: string,
  message: string,
  trace: string[],
  code: 'policy_denied' | 'quota_exceeded' = 'policy_denied',
): SandboxDecision {
  return { kind: 'deny', rule: `sandbox:${rule}`, code, message, trace };
}

/**
 * Decide a sandbox create. Order: enabled → role → pack → egress (allowed at all, then each
 * allow entry inside the organisation's `egress_allow` when that is not empty) → quotas (user, then
 * organisation; concurrent, then CPU seconds) → limits, each lowered into the policy's caps
 * (recorded in the trace, like override bounds on actions). Host scope is decided separately
 * at placement, with the same scope rules as runs.
 */
export function decideSandboxCreate(input: SandboxDecisionInput): SandboxDecision {
  const { policy: p, ask, usage, subject } = input;
  const trace: string[] = [];
  if (!p.enabled) return deny('disabled', 'sandboxes are disabled in this organisation', trace);
  if (!roleAtLeast(subject.role, p.min_role))
    return deny('role', `role ${subject.role} may not create sandboxes (needs ${p.min_role})`, trace);
  trace.push(`role ${subject.role} reaches ${p.min_role}`);
  if (!p.packs.some((g) => globMatch(g, ask.language_pack)))
    return deny(
      'packs',
      `language pack ${ask.language_pack} is not allowed (allowed: ${p.packs.join(', ') || 'none'})`,
      trace,
    );
  trace.push(`pack ${ask.language_pack} allowed`);
  if (ask.egress !== undefined) {
    if (!p.allow_egress)
      return deny('egress', 'network egress is not allowed for sandboxes in this organisation', trace);
    if (p.egress_allow.length > 0) {
      const outside = ask.egress.allow.find((a) => !p.egress_allow.some((pat) => egressEntryCovers(pat, a)));
      if (outside !== undefined)
        return deny(
          'egress_allow',
          `egress to ${outside} is not allowed in this organisation (allowed: ${p.egress_allow.join(', ')})`,
          trace,
        );
      trace.push(`egress to ${ask.egress.allow.join(', ') || 'nothing yet'} within the organisation's egress_allow`);
    } else trace.push('egress allowed (no organisation egress_allow cap)');
  }

  const checks: [string, number | null, number, string][] = [
    ['quota:user.concurrent', p.quotas.user.concurrent, usage.userConcurrent, `user ${subject.username} has`],
    ['quota:org.concurrent', p.quotas.org.concurrent, usage.orgConcurrent, 'the organisation has'],
  ];
  for (const [rule, limit, used, who] of checks) {
    if (limit !== null && used >= limit)
      return deny(
        rule,
        `quota reached: ${who} ${used} of ${limit} concurrent sandboxes; destroy one before creating another`,
        trace,
        'quota_exceeded',
      );
  }
  const cpu: [string, number | null, number, string][] = [
    [
      'quota:user.cpu_seconds_per_day',
      p.quotas.user.cpu_seconds_per_day,
      usage.userCpuMsToday,
      `user ${subject.username} used`,
    ],
    ['quota:org.cpu_seconds_per_day', p.quotas.org.cpu_seconds_per_day, usage.orgCpuMsToday, 'the organisation used'],
  ];
  for (const [rule, limit, usedMs, who] of cpu) {
    if (limit !== null && usedMs >= limit * 1000)
      return deny(
        rule,
        `quota reached: ${who} ${Math.round(usedMs / 1000)} of ${limit} sandbox CPU-seconds today (UTC); it resets at midnight UTC`,
        trace,
        'quota_exceeded',
      );
  }
  trace.push('within quotas');

  const bound = (name: string, asked: number | undefined, fallback: number, cap: number): number => {
    const want = asked ?? fallback;
    if (want > cap) {
      trace.push(`sandbox:limits bounds ${name} to ${cap} (asked ${want})`);
      return cap;
    }
    return want;
  };
  const limits = {
    memory_mb: bound('memory_mb', ask.memory_mb, Math.min(input.defaultMemoryMb, p.max_memory_mb), p.max_memory_mb),
    vcpus: bound('vcpus', ask.vcpus, 1, p.max_vcpus),
    lifetime_s: bound('lifetime_s', ask.lifetime_s, Math.min(p.default_lifetime_s, p.max_lifetime_s), p.max_lifetime_s),
  };
  return { kind: 'allow', rule: 'sandbox:allow', limits, trace };
}

/** Whether an exec may start: the CPU-second quotas are checked again before each exec. */
export function execQuotaProblem(p: SandboxPolicy, usage: SandboxUsage, username: string): string | undefined {
  if (p.quotas.user.cpu_seconds_per_day !== null && usage.userCpuMsToday >= p.quotas.user.cpu_seconds_per_day * 1000)
    return `quota reached: user ${username} used ${Math.round(usage.userCpuMsToday / 1000)} of ${p.quotas.user.cpu_seconds_per_day} sandbox CPU-seconds today (UTC)`;
  if (p.quotas.org.cpu_seconds_per_day !== null && usage.orgCpuMsToday >= p.quotas.org.cpu_seconds_per_day * 1000)
    return `quota reached: the organisation used ${Math.round(usage.orgCpuMsToday / 1000)} of ${p.quotas.org.cpu_seconds_per_day} sandbox CPU-seconds today (UTC)`;
  return undefined;
}
