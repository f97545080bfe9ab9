import { isIP } from 'node:net';
import { z } from 'zod';
import { EgressPolicy, hostPatternProblem, parseAllowEntry } from '../egress/policy.js';
import { blockedReason } from '../egress/ranges.js';
import { SandboxError } from '../errors.js';
import { LIMIT_BOUNDS } from '../limits.js';

/**
 * Request bodies of the HTTP API: one schema per body, strict (an unknown
 * field is an error, not silently ignored), each bound explicit. A failure
 * becomes `invalid_request` naming the field.
 */

const envName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/, 'must be a shell-style variable name');
const envValue = z
  .string()
  .max(32 * 1024)
  .refine((v) => !v.includes('\0'), 'must not contain NUL');
const env = z.record(envName, envValue).refine((r) => Object.keys(r).length <= 256, 'at most 256 variables');
const noNul = (max: number) =>
  z
    .string()
    .max(max)
    .refine((v) => !v.includes('\0'), 'must not contain NUL');

function bound(k: keyof typeof LIMIT_BOUNDS) {
  return z.number().int().min(LIMIT_BOUNDS[k].min).max(LIMIT_BOUNDS[k].max).optional();
}

/** Most allow entries and secrets one sandbox may name. */
export const MAX_EGRESS_ALLOW = 64;
export const MAX_EGRESS_SECRETS = 16;

const EgressSecret = z.strictObject({
  name: envName,
  // A CR or LF would let the value inject header lines where it is swapped in.
  value: z
    .string()
    .min(1)
    .max(8192)
    .refine((v) => !/[\0\r\n]/.test(v), 'must not contain NUL, CR or LF (it is sent in an HTTP header)'),
  hosts: z.array(z.string().max(260)).min(1).max(16),
});

/**
 * Opt-in egress: `{allow: ["host:port", ...], secrets?: [{name, value, hosts}]}`.
 * `false` is the default (no egress); `true` alone is refused, there is no
 * "everything" allowlist.
 */
export const EgressBody = z
  .union([
    z.boolean(),
    z.strictObject({
      allow: z.array(z.string().max(300)).min(1).max(MAX_EGRESS_ALLOW),
      secrets: z.array(EgressSecret).max(MAX_EGRESS_SECRETS).optional(),
    }),
  ])
  .superRefine((v, ctx) => {
    if (v === true) {
      ctx.addIssue({
        code: 'custom',
        message: 'egress needs an allowlist: give {"allow": ["host:port", ...]} (there is no allow-all)',
      });
      return;
    }
    if (v === false) return;
    const ok: string[] = [];
    v.allow.forEach((a, i) => {
      try {
        const entry = parseAllowEntry(a);
        // An internal address would be refused at every connection: say so at create instead.
        const internal = isIP(entry.host) ? blockedReason(entry.host) : undefined;
        if (internal) throw new Error(`${entry.host} is ${internal}: egress never reaches internal ranges`);
        ok.push(a);
      } catch (e) {
        ctx.addIssue({ code: 'custom', path: ['allow', i], message: (e as Error).message });
      }
    });
    const policy = EgressPolicy.parse(ok);
    const names = new Set<string>();
    (v.secrets ?? []).forEach((sec, i) => {
      if (names.has(sec.name))
        ctx.addIssue({ code: 'custom', path: ['secrets', i, 'name'], message: `duplicate secret name ${sec.name}` });
      names.add(sec.name);
      sec.hosts.forEach((h, j) => {
        const problem = hostPatternProblem(h);
        if (problem) ctx.addIssue({ code: 'custom', path: ['secrets', i, 'hosts', j], message: `host ${problem}` });
        else if (!policy.coversPattern(h))
          ctx.addIssue({
            code: 'custom',
            path: ['secrets', i, 'hosts', j],
            message: `"${h}" is not the host of any egress.allow entry (a secret can only go where egress may)`,
          });
      });
    });
  });

export const CreateBody = z
  .strictObject({
    language_pack: z
      .string()
      .regex(/^[a-z][a-z0-9-]{0,31}$/)
      .default('python'),
    memory_mb: bound('memory_mb'),
    vcpus: bound('vcpus'),
    lifetime_s: bound('lifetime_s'),
    rw_mb: bound('rw_mb'),
    exec_timeout_ms: bound('exec_timeout_ms'),
    max_output_bytes: bound('max_output_bytes'),
    max_procs: bound('max_procs'),
    env: env.optional(),
    egress: EgressBody.optional(),
  })
  .superRefine((b, ctx) => {
    // A secret's placeholder is set in the environment under its name: a same-named env entry would hide it.
    if (typeof b.egress !== 'object') return;
    for (const [i, sec] of (b.egress.secrets ?? []).entries())
      if (b.env && Object.hasOwn(b.env, sec.name))
        ctx.addIssue({
          code: 'custom',
          path: ['egress', 'secrets', i, 'name'],
          message: `${sec.name} is also set in env; a secret's name is its environment variable`,
        });
  });

export const ExecBody = z
  .strictObject({
    code: z
      .string()
      .max(1 << 20)
      .optional(),
    argv: z
      .array(noNul(128 * 1024))
      .min(1)
      .max(1024)
      .optional(),
    timeout_ms: z.number().int().min(1).max(3_600_000).optional(),
    stdin: z
      .string()
      .max(1 << 20)
      .optional(),
    env: env.optional(),
    cwd: noNul(4096)
      .refine((v) => v.startsWith('/'), 'must be an absolute path')
      .optional(),
    max_output_bytes: z
      .number()
      .int()
      .min(0)
      .max(16 << 20)
      .optional(),
    background: z.boolean().optional(),
  })
  .refine((b) => (b.code === undefined) !== (b.argv === undefined), {
    message: 'give exactly one of "code" or "argv"',
    path: ['code'],
  });

const SIGNALS: Record<string, number> = {
  HUP: 1,
  INT: 2,
  QUIT: 3,
  KILL: 9,
  USR1: 10,
  USR2: 12,
  TERM: 15,
  CONT: 18,
  STOP: 19,
};

export const SignalBody = z.strictObject({
  signal: z
    .union([z.enum(Object.keys(SIGNALS) as [string, ...string[]]), z.number().int().min(1).max(64)])
    .default('TERM'),
});

/** Signal number for a name or number from {@link SignalBody}. */
export function signalNumber(s: string | number): number {
  return typeof s === 'number' ? s : (SIGNALS[s] ?? 15);
}

/** A file path in the guest: absolute, bounded, no NUL. */
export const GuestPath = z
  .string({ error: 'is required' })
  .min(1)
  .max(4096)
  .refine((v) => v.startsWith('/'), 'must be an absolute path')
  .refine((v) => !v.includes('\0'), 'must not contain NUL');

/** Parse or throw `invalid_request` with "field: problem; …". */
export function parse<T>(schema: z.ZodType<T>, value: unknown, where: string): T {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const msg = r.error.issues.map((i) => `${i.path.length ? i.path.join('.') : where}: ${i.message}`).join('; ');
  throw new SandboxError('invalid_request', msg);
}
