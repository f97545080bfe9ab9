export { BUILTIN_LIMITS, type BuiltinLimit, isLimitName, LIMIT_NAMES, type LimitName } from './builtin.js';
export { type ClampResult, clampLimits, type EffectiveLimits, type LimitClamp, type LimitError } from './clamp.js';
export { type LimitSpecError, resolveLimits } from './resolve.js';
