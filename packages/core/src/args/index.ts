export { formatDuration, parseDuration } from './duration.js';
export { checkAbsolutePath, isUnderPrefix } from './path.js';
export { compileArgPattern } from './pattern.js';
export {
  type ArgError,
  type ArgValue,
  formatArgErrors,
  type ValidateArgsOptions,
  type ValidateArgsResult,
  validateArgs,
} from './validate.js';
