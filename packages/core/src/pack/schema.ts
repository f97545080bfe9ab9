/**
 * The pack format as zod schemas: the single source of truth for the raw YAML shape and for
 * the JSON Schemas editors use. Every object is strict (unknown fields are errors). Semantic
 * rules that a schema cannot express (bounds ordering, placeholders, …) live in `action.ts`.
 */
import { z } from 'zod';

/** Pack name: `linux-core`. */
export const PACK_NAME_RE = /^[a-z][a-z0-9-]{0,62}$/;
/** Pack namespace, the prefix of every action id: `linux`. */
export const NAMESPACE_RE = /^[a-z][a-z0-9_]{0,31}$/;
/** Action id `namespace.action`. */
export const ACTION_ID_RE = /^[a-z][a-z0-9_]{0,31}\.[a-z][a-z0-9_]{0,62}$/;
/** Argument name. */
export const ARG_NAME_RE = /^[a-z][a-z0-9_]{0,31}$/;
/** Semantic version `MAJOR.MINOR.PATCH[-pre]`. */
export const SEMVER_RE = /^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$/;
/** Redaction rule name (becomes `[REDACTED:name]`). */
export const REDACT_NAME_RE = /^[a-z][a-z0-9_]{0,47}$/;
/** Environment variable name. */
export const ENV_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
/** A binary looked up on PATH: no slash, no leading dash. Absolute paths are checked separately. */
export const BINARY_NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9._+-]{0,127}$/;
/** Duration text as written in a spec (`30s`, `5m`, `1h30m`, `7d`, `250ms`, or plain seconds). */
export const DURATION_TEXT_RE = /^(?:[0-9]+|(?=[0-9])(?:[0-9]+d)?(?:[0-9]+h)?(?:[0-9]+m)?(?:[0-9]+s)?(?:[0-9]+ms)?)$/;

const redactRule = z
  .strictObject({
    name: z.string().regex(REDACT_NAME_RE, 'must match ^[a-z][a-z0-9_]{0,47}$').meta({
      description: 'Rule name; matches are replaced by [REDACTED:name].',
    }),
    pattern: z.string().min(1).max(4096).meta({ description: 'Regular expression (JavaScript syntax).' }),
    keywords: z
      .array(z.string().min(1).max(256))
      .max(64)
      .optional()
      .meta({ description: 'A line is scanned only when it contains one of these.' }),
  })
  .meta({ description: 'An extra redaction rule.' });

/** `pack.yaml`. */
export const PackManifestSchema = z
  .strictObject({
    name: z.string().regex(PACK_NAME_RE, 'must match ^[a-z][a-z0-9-]{0,62}$').meta({
      description: 'Pack name, unique in a catalog (linux-core).',
    }),
    version: z.string().regex(SEMVER_RE, 'must be a semantic version MAJOR.MINOR.PATCH[-pre]'),
    namespace: z.string().regex(NAMESPACE_RE, 'must match ^[a-z][a-z0-9_]{0,31}$').meta({
      description: 'Prefix of every action id in the pack (linux).',
    }),
    description: z.string().min(1).max(2000),
    redact: z.array(redactRule).max(256).optional(),
  })
  .meta({ title: 'airlock pack.yaml', description: 'An airlock action pack manifest.' });

const duration = z
  .union([
    z.string().regex(DURATION_TEXT_RE, 'must be a duration like 30s, 5m, 1h30m, 7d or plain seconds'),
    z.number().int().min(0),
  ])
  .meta({ description: 'A duration: 30s, 5m, 1h30m, 2h, 7d, 250ms (rounded up to seconds) or plain seconds.' });

const stringFields = {
  type: z.literal('string'),
  pattern: z
    .string()
    .min(1)
    .max(1024)
    .optional()
    .meta({ description: 'Regular expression the whole value must match (anchored implicitly).' }),
  enum: z.array(z.string()).min(1).max(256).optional(),
  min_length: z.number().int().min(0).max(65536).optional(),
  max_length: z.number().int().min(1).max(65536).optional().meta({ description: 'Default 256, at most 65536.' }),
  allow_newline: z.boolean().optional().meta({ description: 'Allow CR/LF in the value (default false).' }),
  allow_dash: z
    .boolean()
    .optional()
    .meta({ description: "Allow a leading '-' (default false), so a value cannot become an option." }),
};
const integerFields = {
  type: z.literal('integer'),
  min: z.number().int(),
  max: z.number().int(),
};
const pathFields = {
  type: z.literal('path'),
  allow: z.array(z.string()).min(1).max(64).meta({ description: 'Absolute prefixes (whole components).' }),
  deny: z.array(z.string()).max(64).optional(),
  must_exist: z.boolean().optional().meta({ description: 'Default true.' }),
};

const listItem = z.discriminatedUnion('type', [
  z.strictObject(stringFields),
  z.strictObject(integerFields),
  z.strictObject(pathFields),
]);

const common = {
  description: z.string().max(2000).optional(),
  required: z.boolean().optional().meta({ description: 'Default false. An argument with a default is never missing.' }),
};

const argSpec = z.discriminatedUnion('type', [
  z.strictObject({ ...common, ...stringFields, default: z.string().optional() }),
  z.strictObject({ ...common, ...integerFields, default: z.number().int().optional() }),
  z.strictObject({ ...common, type: z.literal('boolean'), default: z.boolean().optional() }),
  z.strictObject({
    ...common,
    type: z.literal('duration'),
    min: duration,
    max: duration,
    default: duration.optional(),
  }),
  z.strictObject({ ...common, ...pathFields, default: z.string().optional() }),
  z.strictObject({
    ...common,
    type: z.literal('list'),
    items: listItem,
    min_items: z.number().int().min(0).max(256).optional(),
    max_items: z.number().int().min(1).max(256),
    default: z.array(z.union([z.string(), z.number()])).optional(),
  }),
]);

const limitValue = z.number().int().min(0);
const limitsFields: Record<string, typeof limitValue | z.ZodOptional<typeof limitValue>> = {};
for (const name of ['timeout_s', 'output_bytes', 'cpu_s', 'memory_bytes', 'max_procs', 'max_files']) {
  for (const suffix of ['', '_min', '_max']) limitsFields[name + suffix] = limitValue.optional();
}

const argvElement = z.union([
  z.string(),
  z
    .strictObject({
      if: z.string().regex(ARG_NAME_RE, 'must be an argument name'),
      // biome-ignore lint/suspicious/noThenProperty: `then` is the format's field name; its value is a list, never callable.
      then: z.array(z.string()).min(1).max(64),
    })
    .meta({ description: 'Included only when argument `if` is present (and true, for a boolean).' }),
]);

/** `actions/*.yaml`. */
export const ActionSpecSchema = z
  .strictObject({
    id: z.string().regex(ACTION_ID_RE, 'must be namespace.action (lowercase letters, digits, _)'),
    title: z.string().min(1).max(120),
    description: z.string().min(1).max(4000),
    risk: z.enum(['read', 'change', 'destructive']),
    kind: z.enum(['exec', 'script']),
    argv: z.array(argvElement).max(256).meta({ description: 'Argv template; a placeholder is one whole element.' }),
    script: z
      .strictObject({
        path: z.string().min(1).max(1024).meta({ description: 'Relative to the pack, under scripts/.' }),
        interpreter: z.string().min(1).max(1024).optional().meta({ description: 'Binary looked up on PATH.' }),
      })
      .optional(),
    args: z
      .record(z.string().regex(ARG_NAME_RE, 'argument names must match ^[a-z][a-z0-9_]{0,31}$'), argSpec)
      .optional(),
    limits: z.strictObject(limitsFields).optional(),
    env: z.array(z.string().regex(ENV_NAME_RE, 'must be an environment variable name')).max(128).optional(),
    set_env: z
      .record(z.string().regex(ENV_NAME_RE, 'must be an environment variable name'), z.string().max(4096))
      .optional(),
    redact: z.array(redactRule).max(256).optional(),
    requires: z.array(z.string().min(1).max(1024)).max(64).optional(),
    examples: z
      .array(z.strictObject({ args: z.record(z.string(), z.unknown()), description: z.string().max(2000).optional() }))
      .max(64)
      .optional(),
  })
  .meta({ title: 'airlock action', description: 'One action of an airlock action pack.' });

/** Raw `pack.yaml` as validated by the schema, before normalisation. */
export type RawPackManifest = z.output<typeof PackManifestSchema>;
/** Raw action file as validated by the schema, before normalisation. */
export type RawActionSpec = z.output<typeof ActionSpecSchema>;
/** Raw argument spec. */
export type RawArgSpec = z.output<typeof argSpec>;
/** Raw list item spec. */
export type RawListItemSpec = z.output<typeof listItem>;

/** JSON Schema (draft 2020-12) of `pack.yaml`, generated from the zod schema. */
export function packManifestJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(PackManifestSchema, { io: 'input' }) as Record<string, unknown>;
}

/** JSON Schema (draft 2020-12) of an action file, generated from the zod schema. */
export function actionSpecJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(ActionSpecSchema, { io: 'input' }) as Record<string, unknown>;
}
