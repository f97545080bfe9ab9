/**
 * Parsing of one action file: YAML → schema → semantic checks → normalised, frozen
 * {@link ActionSpec}. Every check the doc promises is made here, once, at load time, so
 * that a loaded action can be trusted by the validator, the clamper and the renderer.
 */

import { parseDuration } from '../args/duration.js';
import { checkAbsolutePath } from '../args/path.js';
import { compileArgPattern } from '../args/pattern.js';
import { validateArgs, validateValue } from '../args/validate.js';
import { resolveLimits } from '../limits/resolve.js';
import { deepFreeze } from './freeze.js';
import {
  ActionSpecSchema,
  BINARY_NAME_RE,
  type RawActionSpec,
  type RawArgSpec,
  type RawListItemSpec,
} from './schema.js';
import { addZodIssues, parseYamlText, type SpecError, type SpecErrorSink, type SpecPath } from './spec-error.js';
import { isWholePlaceholder, parseTemplateString } from './template.js';
import type {
  ActionExample,
  ActionSpec,
  ArgSpec,
  ListItemSpec,
  RedactRuleSpec,
  ScriptSpec,
  TemplateElement,
  TemplatePart,
} from './types.js';

/** Result of parsing one pack file. */
export type SpecResult<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly errors: SpecError[] };

/** Context known only when an action is loaded as part of a pack. */
export interface ActionContext {
  /** The pack's namespace: the id must start with `namespace.`. */
  readonly namespace?: string;
  /** Whether a pack-relative file exists (for `script.path`). */
  readonly fileExists?: (path: string) => boolean;
}

/** Variables the runner controls itself; an action may neither import nor override them. */
function isReservedEnvName(name: string): boolean {
  return name === 'PATH' || name.startsWith('LD_');
}

/**
 * Parse and check one action file. `file` is the pack-relative path used in error messages
 * (`actions/journal.yaml`). Returns every problem found, each naming file, field and reason.
 */
export function parseActionSpec(text: string, file: string, ctx: ActionContext = {}): SpecResult<ActionSpec> {
  const parsed = parseYamlText(text, file);
  if (!parsed.ok) return { ok: false, errors: parsed.errors };
  const { sink } = parsed;
  const res = ActionSpecSchema.safeParse(parsed.data, { reportInput: true });
  if (!res.success) {
    addZodIssues(sink, res.error.issues);
    return { ok: false, errors: sink.errors };
  }
  const spec = checkAction(res.data, file, sink, ctx);
  if (spec === undefined || !sink.ok) return { ok: false, errors: sink.errors };
  return { ok: true, value: deepFreeze(spec) };
}

function checkAction(
  raw: RawActionSpec,
  file: string,
  sink: SpecErrorSink,
  ctx: ActionContext,
): ActionSpec | undefined {
  if (ctx.namespace !== undefined && !raw.id.startsWith(`${ctx.namespace}.`)) {
    sink.add(['id'], `must start with the pack namespace "${ctx.namespace}."`);
  }

  const args: Record<string, ArgSpec> = {};
  for (const [name, rawArg] of Object.entries(raw.args ?? {})) {
    const arg = normaliseArg(rawArg, ['args', name], sink);
    if (arg !== undefined) args[name] = arg;
  }
  const argsOk = Object.keys(args).length === Object.keys(raw.args ?? {}).length;

  // Checked even when some argument specs failed, so one run reports template mistakes too.
  const template = checkTemplate(raw, args, sink);

  let script: ScriptSpec | undefined;
  if (raw.kind === 'script') {
    if (raw.script === undefined) sink.add(['script'], 'required for kind script');
    else {
      const bad = checkScriptPath(raw.script.path);
      if (bad !== undefined) sink.add(['script', 'path'], bad);
      else if (ctx.fileExists !== undefined && !ctx.fileExists(raw.script.path)) {
        sink.add(['script', 'path'], `${raw.script.path}: no such file in the pack`);
      }
      if (raw.script.interpreter !== undefined) {
        const badInterp = checkBinary(raw.script.interpreter);
        if (badInterp !== undefined) sink.add(['script', 'interpreter'], badInterp);
      }
      script =
        raw.script.interpreter === undefined
          ? { path: raw.script.path }
          : { path: raw.script.path, interpreter: raw.script.interpreter };
    }
  } else if (raw.script !== undefined) {
    sink.add(['script'], 'only allowed for kind script');
  }

  const limits = resolveLimits(raw.limits);
  if (!limits.ok) for (const e of limits.errors) sink.add(['limits', e.key], e.message);

  const env = raw.env ?? [];
  env.forEach((name, i) => {
    if (isReservedEnvName(name)) sink.add(['env', i], `${name} is controlled by the runner and cannot be passed`);
    else if (env.indexOf(name) !== i) sink.add(['env', i], `${name} is listed twice`);
  });
  const setEnv: Record<string, string> = {};
  for (const [name, value] of Object.entries(raw.set_env ?? {})) {
    if (isReservedEnvName(name)) sink.add(['set_env', name], `${name} is controlled by the runner and cannot be set`);
    else if (value.includes('\0')) sink.add(['set_env', name], 'must not contain NUL');
    setEnv[name] = value;
  }

  const redact = checkRedactRules(raw.redact ?? [], ['redact'], sink);

  const requires: string[] = [];
  const argv0 = raw.kind === 'exec' ? raw.argv[0] : undefined;
  if (typeof argv0 === 'string') requires.push(argv0);
  if (script?.interpreter !== undefined) requires.push(script.interpreter);
  (raw.requires ?? []).forEach((bin, i) => {
    const bad = checkBinary(bin);
    if (bad !== undefined) sink.add(['requires', i], bad);
    requires.push(bin);
  });

  const examples: ActionExample[] = [];
  (raw.examples ?? []).forEach((ex, i) => {
    if (argsOk) {
      const r = validateArgs({ args }, ex.args);
      if (!r.ok) for (const e of r.errors) sink.add(['examples', i, ...e.path], e.message);
    }
    examples.push(ex.description === undefined ? { args: ex.args } : { args: ex.args, description: ex.description });
  });

  if (template === undefined || !limits.ok || !sink.ok) return undefined;
  const spec: ActionSpec = {
    file,
    id: raw.id,
    title: raw.title,
    description: raw.description,
    risk: raw.risk,
    kind: raw.kind,
    argv: raw.argv,
    template,
    ...(script === undefined ? {} : { script }),
    args,
    limits: limits.limits,
    env,
    set_env: setEnv,
    redact,
    requires: [...new Set(requires)],
    examples,
  };
  return spec;
}

/** Check redaction rules (shared with `pack.yaml`): patterns must compile. */
export function checkRedactRules(
  rules: readonly { name: string; pattern: string; keywords?: string[] | undefined }[],
  base: SpecPath,
  sink: SpecErrorSink,
): RedactRuleSpec[] {
  return rules.map((r, i) => {
    try {
      new RegExp(r.pattern);
    } catch (e) {
      sink.add([...base, i, 'pattern'], `does not compile: ${(e as Error).message}`);
    }
    if (rules.findIndex((o) => o.name === r.name) !== i) sink.add([...base, i, 'name'], `${r.name} is defined twice`);
    return r.keywords === undefined
      ? { name: r.name, pattern: r.pattern }
      : { name: r.name, pattern: r.pattern, keywords: r.keywords };
  });
}

function normaliseItem(raw: RawListItemSpec, path: SpecPath, sink: SpecErrorSink): ListItemSpec | undefined {
  const before = sink.errors.length;
  switch (raw.type) {
    case 'string': {
      const spec = {
        type: 'string' as const,
        ...(raw.pattern === undefined ? {} : { pattern: raw.pattern }),
        min_length: raw.min_length ?? 0,
        max_length: raw.max_length ?? 256,
        allow_newline: raw.allow_newline ?? false,
        allow_dash: raw.allow_dash ?? false,
      };
      if (spec.min_length > spec.max_length) sink.add([...path, 'max_length'], 'must be >= min_length');
      if (spec.pattern !== undefined) {
        try {
          compileArgPattern(spec.pattern);
        } catch (e) {
          sink.add([...path, 'pattern'], `does not compile: ${(e as Error).message}`);
        }
      }
      if (sink.errors.length > before || raw.enum === undefined) return sink.errors.length > before ? undefined : spec;
      // Every enum value must itself be a valid value (pattern, length, newline and dash rules).
      raw.enum.forEach((v, i) => {
        validateValue(spec, v, [...path, 'enum', i], (p, m) => sink.add(p, m));
      });
      return sink.errors.length > before ? undefined : { ...spec, enum: raw.enum };
    }
    case 'integer':
      if (raw.min > raw.max) {
        sink.add([...path, 'max'], 'must be >= min');
        return undefined;
      }
      return { type: 'integer', min: raw.min, max: raw.max };
    case 'path': {
      const deny = raw.deny ?? [];
      raw.allow.forEach((p, i) => {
        const bad = checkAbsolutePath(p);
        if (bad !== undefined) sink.add([...path, 'allow', i], bad);
      });
      deny.forEach((p, i) => {
        const bad = checkAbsolutePath(p);
        if (bad !== undefined) sink.add([...path, 'deny', i], bad);
      });
      if (sink.errors.length > before) return undefined;
      return { type: 'path', allow: raw.allow, deny, must_exist: raw.must_exist ?? true };
    }
  }
}

function normaliseArg(raw: RawArgSpec, path: SpecPath, sink: SpecErrorSink): ArgSpec | undefined {
  const before = sink.errors.length;
  const common = {
    required: raw.required ?? false,
    ...(raw.description === undefined ? {} : { description: raw.description }),
  };
  let value: ArgSpec | undefined;
  switch (raw.type) {
    case 'string':
    case 'integer':
    case 'path': {
      const { default: _d, required: _r, description: _desc, ...rest } = raw;
      const item = normaliseItem(rest as RawListItemSpec, path, sink);
      value = item === undefined ? undefined : { ...item, ...common };
      break;
    }
    case 'boolean':
      value = { type: 'boolean', ...common };
      break;
    case 'duration': {
      const min = durationOf(raw.min, [...path, 'min'], sink);
      const max = durationOf(raw.max, [...path, 'max'], sink);
      if (min !== undefined && max !== undefined) {
        if (min > max) sink.add([...path, 'max'], 'must be >= min');
        else value = { type: 'duration', min, max, ...common };
      }
      break;
    }
    case 'list': {
      const items = normaliseItem(raw.items, [...path, 'items'], sink);
      const minItems = raw.min_items ?? 0;
      if (minItems > raw.max_items) sink.add([...path, 'max_items'], 'must be >= min_items');
      else if (items !== undefined)
        value = { type: 'list', items, min_items: minItems, max_items: raw.max_items, ...common };
      break;
    }
  }
  if (value === undefined || sink.errors.length > before) return undefined;
  if (raw.default === undefined) return value;
  // A default must itself validate (lexically for paths: existence is a runtime matter).
  const def = validateValue(value, raw.default, [...path, 'default'], (p, m) => sink.add(p, m));
  if (def === undefined) return undefined;
  return { ...value, default: def } as ArgSpec;
}

function durationOf(v: string | number, path: SpecPath, sink: SpecErrorSink): number | undefined {
  const s = typeof v === 'number' ? v : parseDuration(v);
  if (s === undefined) sink.add(path, 'must be a duration like 30s, 5m, 1h30m, 7d or plain seconds');
  return s;
}

/** Why `s` cannot name a binary (plain name looked up on PATH, or absolute path), or undefined. */
function checkBinary(s: string): string | undefined {
  if (s.startsWith('/')) {
    const bad = checkAbsolutePath(s);
    return bad === undefined ? undefined : `must be a binary name or an absolute path: ${bad}`;
  }
  return BINARY_NAME_RE.test(s)
    ? undefined
    : 'must be a binary name (letters, digits, . _ + -, not starting with -) or an absolute path';
}

function checkScriptPath(p: string): string | undefined {
  const segments = p.split('/');
  const normalised =
    !p.startsWith('/') &&
    !p.includes('\\') &&
    !/[\x00-\x1f\x7f]/.test(p) &&
    segments.every((s) => s !== '' && s !== '.' && s !== '..' && !s.startsWith('.'));
  if (!normalised) return 'must be a normalised relative path (no leading /, no . or .. or hidden components)';
  if (segments[0] !== 'scripts' || segments.length < 2) return 'must be under scripts/';
  return undefined;
}

/** Parse the argv template and check every rule of *Argv templates*. */
function checkTemplate(
  raw: RawActionSpec,
  args: Readonly<Record<string, ArgSpec>>,
  sink: SpecErrorSink,
): TemplateElement[] | undefined {
  const before = sink.errors.length;
  const declared = new Set(Object.keys(raw.args ?? {}));
  const used = new Set<string>();
  const out: TemplateElement[] = [];

  const checkPart = (text: string, path: SpecPath, inIf: string | undefined): TemplatePart | undefined => {
    const r = parseTemplateString(text);
    if (!r.ok) {
      sink.add(path, r.message);
      return undefined;
    }
    const part = r.part;
    if (part.kind === 'literal') return part;
    const spec = args[part.arg];
    used.add(part.arg);
    if (spec === undefined) {
      // An argument whose own spec failed was already reported; do not call it undeclared.
      if (!declared.has(part.arg)) sink.add(path, `refers to undeclared argument "${part.arg}"`);
      return undefined;
    }
    const whole = isWholePlaceholder(part);
    if (spec.type === 'list' && !whole) {
      sink.add(path, `list argument "${part.arg}" may only be used as a whole element "{{${part.arg}}}"`);
    }
    if (whole && spec.type === 'integer' && spec.min < 0) {
      sink.add(path, `integer argument "${part.arg}" may be negative and would read as an option; use a prefix`);
    }
    if (whole && spec.type === 'list' && spec.items.type === 'integer' && spec.items.min < 0) {
      sink.add(path, `list argument "${part.arg}" may hold negative integers that would read as options`);
    }
    if (!spec.required && spec.default === undefined && inIf !== part.arg) {
      sink.add(
        path,
        `optional argument "${part.arg}" has no default; use it only inside { if: ${part.arg}, then: [...] }`,
      );
    }
    return part;
  };

  if (raw.kind === 'exec') {
    const first = raw.argv[0];
    if (first === undefined) sink.add(['argv'], 'must not be empty for kind exec (element 0 is the binary)');
    else if (typeof first !== 'string') sink.add(['argv', 0], 'must be the binary (a literal), not an if group');
    else if (first.includes('{{') || first.includes('}}')) {
      sink.add(['argv', 0], 'must be a literal binary name or absolute path, not a placeholder');
    } else {
      const bad = checkBinary(first);
      if (bad !== undefined) sink.add(['argv', 0], bad);
    }
  }

  raw.argv.forEach((el, i) => {
    if (raw.kind === 'exec' && i === 0) {
      // Already reported above when not a literal; only record what it mentions.
      if (typeof el === 'string' && !el.includes('{{')) out.push({ kind: 'literal', text: el });
      else if (typeof el !== 'string') used.add(el.if);
      else for (const m of el.matchAll(/\{\{([a-z][a-z0-9_]*)\}\}/g)) used.add(m[1] ?? '');
      return;
    }
    if (typeof el === 'string') {
      const part = checkPart(el, ['argv', i], undefined);
      if (part !== undefined) out.push(part);
      return;
    }
    const cond = args[el.if];
    used.add(el.if);
    if (cond === undefined && !declared.has(el.if)) {
      sink.add(['argv', i, 'if'], `refers to undeclared argument "${el.if}"`);
    }
    const then: TemplatePart[] = [];
    el.then.forEach((t, j) => {
      const part = checkPart(t, ['argv', i, 'then', j], el.if);
      if (part !== undefined) then.push(part);
    });
    out.push({ kind: 'if', arg: el.if, then });
  });

  for (const name of declared) {
    if (!used.has(name)) sink.add(['args', name], 'declared but not used in argv');
  }
  return sink.errors.length > before ? undefined : out;
}
