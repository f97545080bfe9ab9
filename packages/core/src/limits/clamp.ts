/**
 * Clamping of requested limits. Limits come from the control plane or a CLI user; the
 * runner never trusts them: each is forced into the action's `[min, max]` and every
 * adjustment is recorded so the result (and the audit log) shows what really applied.
 */
import type { ActionSpec } from '../pack/types.js';
import { isLimitName, LIMIT_NAMES, type LimitName } from './builtin.js';

/** The limits a run actually gets. Optional limits are absent when neither requested nor defaulted. */
export interface EffectiveLimits {
  timeout_s: number;
  output_bytes: number;
  cpu_s?: number;
  memory_bytes?: number;
  max_procs?: number;
  max_files?: number;
}

/** One adjustment made by {@link clampLimits}. */
export interface LimitClamp {
  readonly name: LimitName;
  readonly requested: number;
  readonly applied: number;
  readonly bound: 'min' | 'max';
}

/** A malformed request (`field` is `limits.NAME`); reported with code `invalid_limits`. */
export interface LimitError {
  readonly field: string;
  readonly message: string;
}

/** Result of {@link clampLimits}. */
export type ClampResult =
  | { readonly ok: true; readonly limits: Readonly<EffectiveLimits>; readonly clamped: readonly LimitClamp[] }
  | { readonly ok: false; readonly errors: readonly LimitError[] };

/**
 * Apply requested limits to an action: a missing limit takes the action's default, a
 * requested one is clamped into the action's bounds. Unknown names and values that are not
 * finite integers are errors (malformed rather than merely too large).
 */
export function clampLimits(
  action: Pick<ActionSpec, 'limits'>,
  requested: Readonly<Record<string, unknown>> | undefined,
): ClampResult {
  const errors: LimitError[] = [];
  const req = requested ?? {};
  if (req === null || typeof req !== 'object' || Array.isArray(req)) {
    return {
      ok: false,
      errors: Object.freeze([{ field: 'limits', message: 'must be a mapping of limit names to numbers' }]),
    };
  }
  for (const key of Object.keys(req)) {
    if (!isLimitName(key)) {
      errors.push({ field: `limits.${key}`, message: `unknown limit (known: ${LIMIT_NAMES.join(', ')})` });
      continue;
    }
    const v = req[key];
    if (v === undefined) continue;
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      errors.push({ field: `limits.${key}`, message: `must be a finite number (got ${String(v)})` });
    } else if (!Number.isInteger(v)) {
      errors.push({ field: `limits.${key}`, message: `must be a whole number (got ${v})` });
    }
  }
  if (errors.length > 0) return { ok: false, errors: Object.freeze(errors.map((e) => Object.freeze(e))) };

  const limits: Partial<Record<LimitName, number>> = {};
  const clamped: LimitClamp[] = [];
  for (const name of LIMIT_NAMES) {
    const range = action.limits[name];
    const v = Object.hasOwn(req, name) ? (req[name] as number | undefined) : undefined;
    if (v === undefined) {
      if (range.default !== undefined) limits[name] = range.default;
      continue;
    }
    if (v < range.min) {
      limits[name] = range.min;
      clamped.push(Object.freeze({ name, requested: v, applied: range.min, bound: 'min' as const }));
    } else if (v > range.max) {
      limits[name] = range.max;
      clamped.push(Object.freeze({ name, requested: v, applied: range.max, bound: 'max' as const }));
    } else {
      limits[name] = v;
    }
  }
  return {
    ok: true,
    limits: Object.freeze(limits as EffectiveLimits),
    clamped: Object.freeze(clamped),
  };
}
