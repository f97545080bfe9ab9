/** Secret redaction: the built-in rule set and the engine that applies it to output lines and values. */

export {
  createRedactor,
  type LineRedaction,
  type LineRedactor,
  type RedactionRuleSpec,
  type Redactor,
  redactValue,
} from './redactor.js';
export { BUILTIN_RULES, type RedactionRule } from './rules.js';
