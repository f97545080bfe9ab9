/** The limits a runner enforces, with built-in defaults and the bounds no action may widen. */

/** Names of the limits, in documentation order. */
export const LIMIT_NAMES = Object.freeze([
  'timeout_s',
  'output_bytes',
  'cpu_s',
  'memory_bytes',
  'max_procs',
  'max_files',
] as const);

/** A limit name. */
export type LimitName = (typeof LIMIT_NAMES)[number];

/** Built-in default (absent: no limit unless requested or set by the action) and bounds of one limit. */
export interface BuiltinLimit {
  readonly default?: number;
  readonly min: number;
  readonly max: number;
  readonly description: string;
}

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/** Built-in defaults and bounds (docs/action-packs.md, *Limits*). */
export const BUILTIN_LIMITS: Readonly<Record<LimitName, BuiltinLimit>> = Object.freeze({
  timeout_s: Object.freeze({
    default: 30,
    min: 1,
    max: 3600,
    description: 'wall-clock timeout in seconds; SIGTERM to the process group, SIGKILL after 2 s',
  }),
  output_bytes: Object.freeze({
    default: 1_048_576,
    min: 1024,
    max: 67_108_864,
    description: 'total stdout+stderr bytes kept; past it the process is killed and the result is truncated',
  }),
  cpu_s: Object.freeze({ min: 1, max: 3600, description: 'RLIMIT_CPU in seconds' }),
  memory_bytes: Object.freeze({ min: 16 * MiB, max: 64 * GiB, description: 'RLIMIT_AS in bytes' }),
  max_procs: Object.freeze({ min: 1, max: 4096, description: 'RLIMIT_NPROC' }),
  max_files: Object.freeze({ min: 16, max: 65536, description: 'RLIMIT_NOFILE' }),
});

/** True when `name` is a limit name. */
export function isLimitName(name: string): name is LimitName {
  return (LIMIT_NAMES as readonly string[]).includes(name);
}
