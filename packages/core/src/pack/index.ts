export { type ActionContext, parseActionSpec, type SpecResult } from './action.js';
export { type ArgsJsonSchema, argsJsonSchema } from './args-schema.js';
export { deepFreeze, FrozenMap } from './freeze.js';
export { loadPackFromFiles, type PackInputFile } from './load.js';
export { parsePackManifest } from './manifest.js';
export {
  ACTION_ID_RE,
  ActionSpecSchema,
  ARG_NAME_RE,
  actionSpecJsonSchema,
  NAMESPACE_RE,
  PACK_NAME_RE,
  PackManifestSchema,
  packManifestJsonSchema,
} from './schema.js';
export { formatSpecError, formatSpecPath, type SpecError, type SpecPath } from './spec-error.js';
export { isWholePlaceholder, parseTemplateString } from './template.js';
export type {
  ActionExample,
  ActionKind,
  ActionSpec,
  ArgSpec,
  BooleanArgSpec,
  DurationArgSpec,
  IntegerArgSpec,
  LimitRange,
  LimitRangeWithDefault,
  ListArgSpec,
  ListItemSpec,
  Pack,
  PackFileDigest,
  PackManifest,
  PathArgSpec,
  RawArgvElement,
  RedactRuleSpec,
  ResolvedLimits,
  Risk,
  ScriptSpec,
  StringArgSpec,
  TemplateElement,
  TemplatePart,
  ValueSpec,
} from './types.js';
