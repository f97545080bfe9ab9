/** Resolve an action's `limits:` block against the built-in defaults and bounds. */
import type { LimitRange, ResolvedLimits } from '../pack/types.js';
import { BUILTIN_LIMITS, LIMIT_NAMES } from './builtin.js';

/** A problem in a `limits:` block; `key` is the field (`timeout_s_max`). */
export interface LimitSpecError {
  readonly key: string;
  readonly message: string;
}

/**
 * Fill defaults and bounds from the built-ins, then check that every value lies within the
 * built-in bounds and that `min <= default <= max`. Keys are assumed to be known limit
 * fields (the schema rejects others).
 */
export function resolveLimits(
  raw: Readonly<Record<string, number | undefined>> | undefined,
):
  | { readonly ok: true; readonly limits: ResolvedLimits }
  | { readonly ok: false; readonly errors: readonly LimitSpecError[] } {
  const errors: LimitSpecError[] = [];
  const out: Record<string, LimitRange> = {};
  for (const name of LIMIT_NAMES) {
    const b = BUILTIN_LIMITS[name];
    const given = {
      default: raw?.[name],
      min: raw?.[`${name}_min`],
      max: raw?.[`${name}_max`],
    };
    let bad = false;
    for (const [suffix, v] of [
      ['', given.default],
      ['_min', given.min],
      ['_max', given.max],
    ] as const) {
      if (v !== undefined && (v < b.min || v > b.max)) {
        errors.push({
          key: name + suffix,
          message: `must be within the built-in bounds ${b.min}..${b.max} (got ${v})`,
        });
        bad = true;
      }
    }
    if (bad) continue;
    const min = given.min ?? b.min;
    const max = given.max ?? b.max;
    const def = given.default ?? b.default;
    if (min > max) {
      errors.push({ key: `${name}_max`, message: `must be >= ${name}_min (${min}) (got ${max})` });
      continue;
    }
    if (def !== undefined && def < min) {
      const message =
        given.default === undefined
          ? `must be <= the built-in default ${def} (got ${min}); set ${name} too`
          : `must be <= ${name} (${def}) (got ${min})`;
      errors.push({ key: `${name}_min`, message });
      continue;
    }
    if (def !== undefined && def > max) {
      // Say which default is out of range: an author who only narrowed the max needs to set the default too.
      const key = given.default === undefined ? `${name}_max` : name;
      const message =
        given.default === undefined
          ? `must be >= the built-in default ${def} (got ${max}); set ${name} too`
          : `must be <= ${name}_max (${max}) (got ${def})`;
      errors.push({ key, message });
      continue;
    }
    out[name] = def === undefined ? { min, max } : { default: def, min, max };
  }
  if (errors.length > 0) return { ok: false, errors };
  return { ok: true, limits: out as unknown as ResolvedLimits };
}
