/**
 * Rendering validated arguments into an argv array. There is no expansion of any kind
 * (no globbing, word splitting, variables, quoting): each placeholder yields exactly one
 * element, a list one element per item, so a value can never become two arguments or a
 * shell command. The runner spawns the result with `shell: false`.
 */
import type { ArgValue } from '../args/validate.js';
import type { ActionSpec, ArgSpec, TemplatePart } from '../pack/types.js';

/** One rendering problem; `field` is the argument (`args.unit`) or the template position. */
export interface RenderError {
  readonly field: string;
  readonly message: string;
}

/** Result of {@link renderArgv}. */
export type RenderResult =
  | { readonly ok: true; readonly argv: readonly string[] }
  | { readonly ok: false; readonly errors: readonly RenderError[] };

/**
 * Render an action's argv from validated values (from `validateArgs`). For `exec` the
 * result starts with the literal binary (argv[0], resolved on PATH by the runner); for
 * `script` it is only the arguments that follow the script path. The checks here repeat
 * the validator's on purpose: a value that would start with `-` in a whole element, or
 * that holds NUL, is refused even if it somehow got past validation.
 */
export function renderArgv(
  action: Pick<ActionSpec, 'template' | 'args'>,
  values: Readonly<Record<string, ArgValue>>,
): RenderResult {
  const errors: RenderError[] = [];
  const argv: string[] = [];

  const renderPart = (part: TemplatePart): void => {
    if (part.kind === 'literal') {
      argv.push(part.text);
      return;
    }
    const field = `args.${part.arg}`;
    const spec = action.args[part.arg];
    const value = Object.hasOwn(values, part.arg) ? values[part.arg] : undefined;
    if (spec === undefined) {
      errors.push({ field, message: 'placeholder refers to an undeclared argument' });
      return;
    }
    if (value === undefined) {
      errors.push({ field, message: 'no value to render' });
      return;
    }
    const whole = part.prefix === '' && part.suffix === '';
    if (Array.isArray(value)) {
      if (spec.type !== 'list' || !whole) {
        errors.push({ field, message: 'a list may only be rendered as a whole element' });
        return;
      }
      value.forEach((item: unknown, i: number) => {
        const text = scalar(item);
        if (text === undefined) errors.push({ field: `${field}[${i}]`, message: 'not a string or integer' });
        else push(text, `${field}[${i}]`, itemAllowsDash(spec));
      });
      return;
    }
    if (spec.type === 'list') {
      errors.push({ field, message: 'must be a list' });
      return;
    }
    const text = scalar(value);
    if (text === undefined) {
      errors.push({ field, message: 'not a renderable value' });
      return;
    }
    push(part.prefix + text + part.suffix, field, !whole || itemAllowsDash(spec));
  };

  const push = (element: string, field: string, dashOk: boolean): void => {
    if (element.includes('\0')) errors.push({ field, message: 'must not contain NUL' });
    else if (!dashOk && element.startsWith('-')) {
      errors.push({ field, message: "must not start with '-' in a whole-placeholder element (allow_dash is not set)" });
    } else argv.push(element);
  };

  for (const el of action.template) {
    if (el.kind !== 'if') {
      renderPart(el);
      continue;
    }
    if (isPresent(values[el.arg])) for (const part of el.then) renderPart(part);
  }
  if (errors.length > 0) return { ok: false, errors: Object.freeze(errors.map((e) => Object.freeze(e))) };
  return { ok: true, argv: Object.freeze(argv) };
}

/** An `if` group applies when its argument has a value and, for a boolean, is true; an empty list counts as absent. */
function isPresent(v: ArgValue | undefined): boolean {
  if (v === undefined || v === false) return false;
  if (Array.isArray(v)) return v.length > 0;
  return true;
}

function scalar(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return Number.isSafeInteger(v) ? String(v) : undefined;
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  return undefined;
}

function itemAllowsDash(spec: ArgSpec): boolean {
  const s = spec.type === 'list' ? spec.items : spec;
  return s.type === 'string' && s.allow_dash;
}
