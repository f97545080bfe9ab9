/**
 * Normalised, in-memory shapes of the pack format (docs/action-packs.md). The raw YAML
 * shape is described by the zod schemas in `schema.ts`; these types are what the parser
 * returns after semantic checks, with every default filled in. All values handed out are
 * deeply frozen: the runner's security decisions read them, so nothing may mutate them.
 */

/** Risk tier used by policy. */
export type Risk = 'read' | 'change' | 'destructive';

/** How an action runs: a binary from PATH, or a file from the pack's `scripts/`. There is no shell kind. */
export type ActionKind = 'exec' | 'script';

/** An extra redaction rule declared by a pack or an action. */
export interface RedactRuleSpec {
  readonly name: string;
  readonly pattern: string;
  readonly keywords?: readonly string[];
}

/** `pack.yaml`, normalised. */
export interface PackManifest {
  readonly name: string;
  readonly version: string;
  readonly namespace: string;
  readonly description: string;
  readonly redact: readonly RedactRuleSpec[];
}

/** Value rules of a string (also used for list items). */
export interface StringValueSpec {
  readonly type: 'string';
  readonly pattern?: string;
  readonly enum?: readonly string[];
  readonly min_length: number;
  readonly max_length: number;
  readonly allow_newline: boolean;
  readonly allow_dash: boolean;
}

/** Value rules of an integer (also used for list items). */
export interface IntegerValueSpec {
  readonly type: 'integer';
  readonly min: number;
  readonly max: number;
}

/** Value rules of a path (also used for list items). */
export interface PathValueSpec {
  readonly type: 'path';
  readonly allow: readonly string[];
  readonly deny: readonly string[];
  readonly must_exist: boolean;
}

/** Value rules of a boolean. */
export interface BooleanValueSpec {
  readonly type: 'boolean';
}

/** Value rules of a duration; bounds are normalised to whole seconds. */
export interface DurationValueSpec {
  readonly type: 'duration';
  readonly min: number;
  readonly max: number;
}

/** What a list may hold. */
export type ListItemSpec = StringValueSpec | IntegerValueSpec | PathValueSpec;

/** Value rules of a list. */
export interface ListValueSpec {
  readonly type: 'list';
  readonly items: ListItemSpec;
  readonly min_items: number;
  readonly max_items: number;
}

/** Value rules of any argument type. */
export type ValueSpec =
  | StringValueSpec
  | IntegerValueSpec
  | BooleanValueSpec
  | DurationValueSpec
  | PathValueSpec
  | ListValueSpec;

/** Fields common to every argument. */
interface ArgCommon {
  readonly description?: string;
  readonly required: boolean;
}

/** A string argument. */
export type StringArgSpec = StringValueSpec & ArgCommon & { readonly default?: string };
/** An integer argument. */
export type IntegerArgSpec = IntegerValueSpec & ArgCommon & { readonly default?: number };
/** A boolean argument. */
export type BooleanArgSpec = BooleanValueSpec & ArgCommon & { readonly default?: boolean };
/** A duration argument; the default is normalised to whole seconds. */
export type DurationArgSpec = DurationValueSpec & ArgCommon & { readonly default?: number };
/** A path argument; the default is the lexical path (resolved when arguments are validated). */
export type PathArgSpec = PathValueSpec & ArgCommon & { readonly default?: string };
/** A list argument. */
export type ListArgSpec = ListValueSpec & ArgCommon & { readonly default?: readonly (string | number)[] };

/** One declared argument, normalised (defaults of the spec itself filled in). */
export type ArgSpec = StringArgSpec | IntegerArgSpec | BooleanArgSpec | DurationArgSpec | PathArgSpec | ListArgSpec;

/** An argv element as written in YAML. */
export type RawArgvElement = string | { readonly if: string; readonly then: readonly string[] };

/** A parsed argv element part: literal text, or one placeholder with optional fixed text around it. */
export type TemplatePart =
  | { readonly kind: 'literal'; readonly text: string }
  | { readonly kind: 'placeholder'; readonly arg: string; readonly prefix: string; readonly suffix: string };

/** A parsed argv element: a part, or a conditional group of parts. */
export type TemplateElement =
  | TemplatePart
  | { readonly kind: 'if'; readonly arg: string; readonly then: readonly TemplatePart[] };

/** Default and bounds of one limit for one action. */
export interface LimitRange {
  readonly default?: number;
  readonly min: number;
  readonly max: number;
}

/** Default and bounds of a limit that always has a default. */
export interface LimitRangeWithDefault extends LimitRange {
  readonly default: number;
}

/** Every limit of an action, resolved against the built-in defaults and bounds. */
export interface ResolvedLimits {
  readonly timeout_s: LimitRangeWithDefault;
  readonly output_bytes: LimitRangeWithDefault;
  readonly cpu_s: LimitRange;
  readonly memory_bytes: LimitRange;
  readonly max_procs: LimitRange;
  readonly max_files: LimitRange;
}

/** The script a `script` action runs. */
export interface ScriptSpec {
  readonly path: string;
  readonly interpreter?: string;
}

/** An example invocation (arguments as written; they validate against `args`). */
export interface ActionExample {
  readonly args: Readonly<Record<string, unknown>>;
  readonly description?: string;
}

/** One action (`actions/*.yaml`), normalised. */
export interface ActionSpec {
  /** Pack-relative file the action came from, for error messages. */
  readonly file: string;
  readonly id: string;
  readonly title: string;
  readonly description: string;
  readonly risk: Risk;
  readonly kind: ActionKind;
  /** The argv template as written. */
  readonly argv: readonly RawArgvElement[];
  /** The argv template, parsed. */
  readonly template: readonly TemplateElement[];
  readonly script?: ScriptSpec;
  readonly args: Readonly<Record<string, ArgSpec>>;
  readonly limits: ResolvedLimits;
  readonly env: readonly string[];
  readonly set_env: Readonly<Record<string, string>>;
  readonly redact: readonly RedactRuleSpec[];
  /** Binaries needed on PATH: as declared, plus argv[0] of `exec` and the script interpreter. */
  readonly requires: readonly string[];
  readonly examples: readonly ActionExample[];
}

/** One file of a loaded pack with its content digest (hex SHA-256). */
export interface PackFileDigest {
  readonly path: string;
  readonly sha256: string;
}

/** A loaded, validated pack. */
export interface Pack {
  readonly manifest: PackManifest;
  readonly name: string;
  readonly version: string;
  readonly namespace: string;
  /** `sha256:<hex>` over every file of the pack. */
  readonly hash: string;
  /** Actions sorted by id. */
  readonly actions: readonly ActionSpec[];
  /** Every file, sorted by path. */
  readonly files: readonly PackFileDigest[];
  /** Every file under `scripts/` → hex SHA-256, so a runner can detect tampering before executing. */
  readonly scripts: ReadonlyMap<string, string>;
}
