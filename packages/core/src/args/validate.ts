/**
 * Argument validation. The runner calls this on every request (the control plane's own
 * check is not trusted), so it is strict: unknown names, wrong types and anything outside
 * the declared bounds are refused, and every problem is reported, not just the first.
 */
import type { ActionSpec, ArgSpec, ListItemSpec, PathValueSpec, StringValueSpec, ValueSpec } from '../pack/types.js';
import { formatDuration, parseDuration } from './duration.js';
import { checkAbsolutePath, isUnderPrefix } from './path.js';
import { compileArgPattern } from './pattern.js';

/** A validated argument value. Durations are whole seconds; paths are resolved absolute paths. */
export type ArgValue = string | number | boolean | readonly (string | number)[];

/** One refused argument: `field` is `args.NAME` (or `args.NAME[i]` for a list item). */
export interface ArgError {
  readonly field: string;
  readonly message: string;
  /** The same location as keys and indexes: `['args', 'paths', 1]`. */
  readonly path: readonly (string | number)[];
}

/** Options of {@link validateArgs}. */
export interface ValidateArgsOptions {
  /** Input comes from a command line: accept `"42"`, `"yes"`, `"a,b"` for integers, booleans, lists. */
  readonly coerceStrings?: boolean;
  /**
   * Resolve a lexically valid path (the runner passes `realpath`). Throwing means the path
   * does not exist or cannot be resolved. Without it, paths are used as given.
   */
  readonly resolvePath?: (p: string) => string;
}

/** Result of {@link validateArgs}. */
export type ValidateArgsResult =
  | { readonly ok: true; readonly values: Readonly<Record<string, ArgValue>> }
  | { readonly ok: false; readonly errors: readonly ArgError[] };

/** `args.lines: must be <= 1000 (got 5000)`, one per line. */
export function formatArgErrors(errors: readonly ArgError[]): string {
  return errors.map((e) => `${e.field}: ${e.message}`).join('\n');
}

/**
 * Validate request arguments against an action's declared `args`: refuses unknown and
 * missing required arguments, applies defaults (which are validated like any value, so a
 * default path is resolved too) and returns normalised values ready for argv rendering.
 */
export function validateArgs(
  action: Pick<ActionSpec, 'args'>,
  input: Readonly<Record<string, unknown>>,
  opts: ValidateArgsOptions = {},
): ValidateArgsResult {
  const errors: ArgError[] = [];
  const add = (path: readonly (string | number)[], message: string): void => {
    errors.push({ field: fieldOf(path), message, path: Object.freeze([...path]) });
  };
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    add(['args'], 'must be a mapping of argument names to values');
    return { ok: false, errors: Object.freeze(errors.map((e) => Object.freeze(e))) };
  }
  for (const key of Object.keys(input)) {
    if (!Object.hasOwn(action.args, key)) add(['args', key], 'unknown argument');
  }
  const values: Record<string, ArgValue> = {};
  for (const [name, spec] of Object.entries(action.args)) {
    const given = Object.hasOwn(input, name) ? input[name] : undefined;
    const path = ['args', name];
    let value: ArgValue | undefined;
    if (given !== undefined) {
      value = validateValue(spec, given, path, add, opts);
    } else if (spec.default !== undefined) {
      // Defaults are typed already; no string coercion, but paths still get resolved.
      value = validateValue(spec, spec.default, path, add, { ...opts, coerceStrings: false });
    } else if (spec.required) {
      add(path, 'required');
    }
    if (value !== undefined) values[name] = value;
  }
  if (errors.length > 0) return { ok: false, errors: Object.freeze(errors.map((e) => Object.freeze(e))) };
  return { ok: true, values: Object.freeze(values) };
}

/**
 * Validate one value against a value spec; reports through `add` and returns `undefined`
 * on failure. Exported for the spec parser (defaults, enum values) and for tests.
 */
export function validateValue(
  spec: ValueSpec | ArgSpec,
  raw: unknown,
  path: readonly (string | number)[],
  add: (path: readonly (string | number)[], message: string) => void,
  opts: ValidateArgsOptions = {},
): ArgValue | undefined {
  const coerce = opts.coerceStrings === true;
  switch (spec.type) {
    case 'string':
      return validateString(spec, raw, path, add);
    case 'integer': {
      let n: unknown = raw;
      if (coerce && typeof raw === 'string' && /^-?[0-9]{1,16}$/.test(raw)) n = Number(raw);
      if (typeof n !== 'number' || !Number.isSafeInteger(n)) {
        add(path, `must be an integer (got ${describe(raw)})`);
        return undefined;
      }
      if (n < spec.min) add(path, `must be >= ${spec.min} (got ${n})`);
      else if (n > spec.max) add(path, `must be <= ${spec.max} (got ${n})`);
      else return n;
      return undefined;
    }
    case 'boolean': {
      if (typeof raw === 'boolean') return raw;
      if (coerce && typeof raw === 'string') {
        const s = raw.toLowerCase();
        if (s === 'true' || s === '1' || s === 'yes') return true;
        if (s === 'false' || s === '0' || s === 'no') return false;
      }
      add(path, `must be true or false (got ${describe(raw)})`);
      return undefined;
    }
    case 'duration': {
      // Durations are naturally written as text, so strings are accepted from any caller.
      const s =
        typeof raw === 'number' && Number.isSafeInteger(raw) && raw >= 0
          ? raw
          : typeof raw === 'string'
            ? parseDuration(raw)
            : undefined;
      if (s === undefined) {
        add(path, `must be a duration like 30s, 5m, 1h30m or whole seconds (got ${describe(raw)})`);
        return undefined;
      }
      if (s < spec.min) add(path, `must be >= ${formatDuration(spec.min)} (got ${formatDuration(s)})`);
      else if (s > spec.max) add(path, `must be <= ${formatDuration(spec.max)} (got ${formatDuration(s)})`);
      else return s;
      return undefined;
    }
    case 'path':
      return validatePath(spec, raw, path, add, opts.resolvePath);
    case 'list': {
      let items: unknown = raw;
      if (coerce && typeof raw === 'string') items = raw === '' ? [] : raw.split(',');
      if (!Array.isArray(items)) {
        add(path, `must be a list (got ${describe(raw)})`);
        return undefined;
      }
      // Count first so an oversized list costs nothing to refuse.
      if (items.length > spec.max_items) {
        add(path, `must have at most ${spec.max_items} items (got ${items.length})`);
        return undefined;
      }
      if (items.length < spec.min_items) {
        add(path, `must have at least ${spec.min_items} items (got ${items.length})`);
        return undefined;
      }
      const out: (string | number)[] = [];
      let failed = false;
      items.forEach((item, i) => {
        const v = validateValue(spec.items, item, [...path, i], add, opts);
        if (v === undefined) failed = true;
        else out.push(v as string | number);
      });
      return failed ? undefined : Object.freeze(out);
    }
  }
}

function validateString(
  spec: StringValueSpec,
  raw: unknown,
  path: readonly (string | number)[],
  add: (path: readonly (string | number)[], message: string) => void,
): string | undefined {
  if (typeof raw !== 'string') {
    add(path, `must be a string (got ${describe(raw)})`);
    return undefined;
  }
  if (raw.includes('\0')) {
    add(path, 'must not contain NUL');
    return undefined;
  }
  if (!spec.allow_newline && /[\r\n]/.test(raw)) {
    add(path, 'must not contain line breaks');
    return undefined;
  }
  // Refused for every use, not only whole-placeholder elements: simpler to reason about and
  // a value can never become an option, whichever way the template uses it.
  if (!spec.allow_dash && raw.startsWith('-')) {
    add(path, "must not start with '-' (it could be read as an option)");
    return undefined;
  }
  // Length before pattern so the regex never runs on oversized input.
  const length = codePoints(raw);
  if (length > spec.max_length) {
    add(path, `must be at most ${spec.max_length} characters (got ${length})`);
    return undefined;
  }
  if (length < spec.min_length) {
    add(path, `must be at least ${spec.min_length} characters (got ${length})`);
    return undefined;
  }
  if (spec.pattern !== undefined && !compileArgPattern(spec.pattern).test(raw)) {
    add(path, `must match ${spec.pattern} (got ${describe(raw)})`);
    return undefined;
  }
  if (spec.enum !== undefined && !spec.enum.includes(raw)) {
    add(path, `must be one of: ${spec.enum.join(', ')} (got ${describe(raw)})`);
    return undefined;
  }
  return raw;
}

function validatePath(
  spec: PathValueSpec,
  raw: unknown,
  path: readonly (string | number)[],
  add: (path: readonly (string | number)[], message: string) => void,
  resolvePath: ((p: string) => string) | undefined,
): string | undefined {
  if (typeof raw !== 'string') {
    add(path, `must be a path (got ${describe(raw)})`);
    return undefined;
  }
  const lexical = checkAbsolutePath(raw);
  if (lexical !== undefined) {
    add(path, lexical);
    return undefined;
  }
  // Deny is checked on the path as given too: refusing more is always safe.
  if (spec.deny.some((d) => isUnderPrefix(raw, d))) {
    add(path, `${raw} is denied`);
    return undefined;
  }
  let resolved = raw;
  if (resolvePath !== undefined) {
    const r = resolveExisting(raw, resolvePath, spec.must_exist);
    if (r === undefined) {
      add(path, spec.must_exist ? `${raw} does not exist or cannot be resolved` : `${raw} cannot be resolved`);
      return undefined;
    }
    resolved = r;
    const bad = checkAbsolutePath(resolved);
    if (bad !== undefined) {
      add(path, `${raw} resolves to an unacceptable path (${bad})`);
      return undefined;
    }
  }
  const shown = resolved === raw ? raw : `${raw} (resolves to ${resolved})`;
  if (spec.deny.some((d) => isUnderPrefix(resolved, d))) {
    add(path, `${shown} is denied`);
    return undefined;
  }
  if (!spec.allow.some((a) => isUnderPrefix(resolved, a))) {
    add(path, `${shown} is not under an allowed prefix (${spec.allow.join(', ')})`);
    return undefined;
  }
  return resolved;
}

/**
 * Resolve `p`. When it does not exist and need not, resolve its longest existing ancestor
 * and append the remaining components: otherwise `/var/log/link/new` with `link → /etc`
 * would pass the prefix check lexically and then be created in `/etc`.
 */
function resolveExisting(p: string, resolvePath: (p: string) => string, mustExist: boolean): string | undefined {
  const attempt = (q: string): string | undefined => {
    try {
      const r = resolvePath(q);
      return typeof r === 'string' ? r : undefined;
    } catch {
      return undefined;
    }
  };
  const direct = attempt(p);
  if (direct !== undefined || mustExist) return direct;
  const parts = p.split('/').slice(1);
  for (let n = parts.length - 1; n >= 0; n--) {
    const ancestor = `/${parts.slice(0, n).join('/')}`;
    const base = attempt(ancestor);
    if (base !== undefined) {
      const rest = parts.slice(n).join('/');
      return base === '/' ? `/${rest}` : `${base}/${rest}`;
    }
  }
  return undefined;
}

function fieldOf(path: readonly (string | number)[]): string {
  let out = '';
  for (const seg of path) out += typeof seg === 'number' ? `[${seg}]` : out === '' ? seg : `.${seg}`;
  return out;
}

function codePoints(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'nothing';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') {
    const s = JSON.stringify(v);
    return s.length > 42 ? `${s.slice(0, 40)}…"` : s;
  }
  return String(v);
}

/** Whether a value spec's values can start with `-` (used by the template checks). */
export function mayStartWithDash(spec: ValueSpec | ListItemSpec): boolean {
  switch (spec.type) {
    case 'string':
      return spec.allow_dash;
    case 'integer':
      return spec.min < 0;
    case 'list':
      return mayStartWithDash(spec.items);
    default:
      return false;
  }
}
