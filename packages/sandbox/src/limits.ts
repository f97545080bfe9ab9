import { z } from 'zod';
import { SandboxError } from './errors.js';

/**
 * Per-sandbox resource limits: what a create may ask for, the daemon-wide
 * defaults and maximums, and how a request is resolved against them. Each
 * limit is enforced where it cannot be bypassed by guest code running as root
 * in the guest, or, where it can (the process count), the host-side jail
 * bounds the VM monitor as well:
 *
 * | limit | enforced by | outcome when exceeded |
 * |---|---|---|
 * | memory_mb | VM RAM size; host cgroup memory on the VM monitor | guest OOM killer: the process dies, exit 137 |
 * | vcpus | VM vCPU count; host cgroup CPU quota | code runs slower |
 * | lifetime_s | daemon timer | sandbox destroyed; later calls `410 sandbox_expired` |
 * | exec_timeout_ms | guest agent (kills the exec's cgroup and session) | `timed_out: true`, exit 137 |
 * | max_output_bytes | guest agent, again on the host | output dropped, `truncated: true` |
 * | max_procs | guest cgroup `pids.max` set by the agent | fork()/clone() fail with EAGAIN |
 * | rw_mb | tmpfs size of the writable layer | writes fail with ENOSPC |
 */

/** Values one sandbox runs with. */
export interface LimitValues {
  readonly memory_mb: number;
  readonly vcpus: number;
  readonly rw_mb: number;
  /** Seconds until the sandbox is destroyed; null: until deleted. */
  readonly lifetime_s: number | null;
  readonly exec_timeout_ms: number;
  readonly max_output_bytes: number;
  /** Processes and threads of guest code at once (all execs together). */
  readonly max_procs: number;
}

/** Daemon-wide settings: defaults for a create that names no value, and the largest value it may name. */
export interface DaemonLimits {
  readonly defaults: Partial<LimitValues>;
  readonly max: Partial<LimitValues>;
}

/** Hard bounds of this implementation; a daemon maximum may only be lower. */
export const LIMIT_BOUNDS = {
  memory_mb: { min: 64, max: 4096 },
  vcpus: { min: 1, max: 4 },
  rw_mb: { min: 4, max: 4096 },
  lifetime_s: { min: 1, max: 7 * 24 * 3600 },
  exec_timeout_ms: { min: 1, max: 3_600_000 },
  max_output_bytes: { min: 0, max: 16 << 20 },
  max_procs: { min: 8, max: 65_536 },
} as const satisfies Record<keyof LimitValues, { min: number; max: number }>;

/** Defaults when neither the request nor the daemon names a value. */
export const BUILTIN_DEFAULTS = {
  memory_mb: 256,
  vcpus: 1,
  lifetime_s: null,
  exec_timeout_ms: 30_000,
  max_output_bytes: 1 << 20,
  max_procs: 512,
} as const;

function bounded(k: keyof typeof LIMIT_BOUNDS) {
  return z.number().int().min(LIMIT_BOUNDS[k].min).max(LIMIT_BOUNDS[k].max);
}

const PartialLimits = z.strictObject({
  memory_mb: bounded('memory_mb').optional(),
  vcpus: bounded('vcpus').optional(),
  rw_mb: bounded('rw_mb').optional(),
  lifetime_s: bounded('lifetime_s').nullable().optional(),
  exec_timeout_ms: bounded('exec_timeout_ms').optional(),
  max_output_bytes: bounded('max_output_bytes').optional(),
  max_procs: bounded('max_procs').optional(),
});

/** `$AIRLOCK_SANDBOX_LIMITS` and `ManagerOptions.limits`: `{defaults?: {...}, max?: {...}}`. */
export const DaemonLimitsSchema = z.strictObject({
  defaults: PartialLimits.optional(),
  max: PartialLimits.optional(),
});

/** Read daemon limits from `$AIRLOCK_SANDBOX_LIMITS` (JSON); `backend_unavailable` naming the field when malformed. */
export function daemonLimitsFromEnv(env: NodeJS.ProcessEnv = process.env): DaemonLimits | undefined {
  const text = env['AIRLOCK_SANDBOX_LIMITS'];
  if (!text) return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new SandboxError('backend_unavailable', `AIRLOCK_SANDBOX_LIMITS: not valid JSON (${(e as Error).message})`);
  }
  const r = DaemonLimitsSchema.safeParse(raw);
  if (!r.success)
    throw new SandboxError(
      'backend_unavailable',
      `AIRLOCK_SANDBOX_LIMITS: ${r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
    );
  return stripUndefined(r.data);
}

function stripUndefined(d: z.infer<typeof DaemonLimitsSchema>): DaemonLimits {
  const clean = (o: Record<string, unknown> | undefined) =>
    Object.fromEntries(Object.entries(o ?? {}).filter(([, v]) => v !== undefined)) as Partial<LimitValues>;
  return { defaults: clean(d.defaults), max: clean(d.max) };
}

/** What a create request may name. */
export type LimitRequest = { readonly [K in keyof LimitValues]?: LimitValues[K] | undefined };

/** The writable layer when nobody names one: a quarter of the RAM, 16–256 MiB. */
export function defaultRwMb(memoryMb: number): number {
  return Math.min(256, Math.max(16, Math.floor(memoryMb / 4)));
}

/**
 * Resolve a request against the daemon's defaults and maximums. A value above
 * the daemon maximum is refused (`invalid_request` naming the field and the
 * maximum), never silently lowered.
 */
export function resolveLimits(req: LimitRequest, daemon: DaemonLimits): LimitValues {
  const max = daemon.max;
  const pick = <K extends keyof LimitValues>(k: K, fallback: LimitValues[K]): LimitValues[K] => {
    const v = req[k] ?? daemon.defaults[k] ?? fallback;
    const ceiling = max[k];
    if (typeof v === 'number' && typeof ceiling === 'number' && v > ceiling) {
      const asked = req[k] !== undefined;
      throw new SandboxError(
        'invalid_request',
        `${k}: ${v} is above this daemon's maximum of ${ceiling}${asked ? '' : ' (its configured default is higher than its maximum)'}`,
      );
    }
    return v;
  };
  const memory = pick('memory_mb', BUILTIN_DEFAULTS.memory_mb);
  // A daemon with a maximum lifetime gives every sandbox one.
  const lifetime = pick('lifetime_s', max.lifetime_s ?? BUILTIN_DEFAULTS.lifetime_s);
  return {
    memory_mb: memory,
    vcpus: pick('vcpus', BUILTIN_DEFAULTS.vcpus),
    rw_mb: pick('rw_mb', Math.min(defaultRwMb(memory), max.rw_mb ?? Number.POSITIVE_INFINITY)),
    lifetime_s: lifetime,
    exec_timeout_ms: pick(
      'exec_timeout_ms',
      Math.min(BUILTIN_DEFAULTS.exec_timeout_ms, max.exec_timeout_ms ?? Infinity),
    ),
    max_output_bytes: pick(
      'max_output_bytes',
      Math.min(BUILTIN_DEFAULTS.max_output_bytes, max.max_output_bytes ?? Number.POSITIVE_INFINITY),
    ),
    max_procs: pick('max_procs', Math.min(BUILTIN_DEFAULTS.max_procs, max.max_procs ?? Number.POSITIVE_INFINITY)),
  };
}

/** The largest value an exec may ask for in a sandbox: what the create named, else the daemon maximum. */
export function execCeilings(
  req: LimitRequest,
  daemon: DaemonLimits,
): { max_exec_timeout_ms: number; max_exec_output_bytes: number } {
  return {
    max_exec_timeout_ms: req.exec_timeout_ms ?? daemon.max.exec_timeout_ms ?? LIMIT_BOUNDS.exec_timeout_ms.max,
    max_exec_output_bytes: req.max_output_bytes ?? daemon.max.max_output_bytes ?? LIMIT_BOUNDS.max_output_bytes.max,
  };
}

/** The `limits` block of `GET /info`. */
export function describeDaemonLimits(daemon: DaemonLimits): Record<string, { default: unknown; max: number }> {
  const d = resolveLimits({}, { defaults: daemon.defaults, max: {} });
  return Object.fromEntries(
    (Object.keys(LIMIT_BOUNDS) as (keyof LimitValues)[]).map((k) => [
      k,
      {
        default: k === 'rw_mb' && daemon.defaults.rw_mb === undefined ? 'memory_mb/4, 16–256' : d[k],
        max: daemon.max[k] ?? LIMIT_BOUNDS[k].max,
      },
    ]),
  );
}
