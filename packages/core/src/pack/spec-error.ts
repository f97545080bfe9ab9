/**
 * Spec errors: every problem found in a pack names the file, the field (dotted path with
 * `[i]` for list items) and the reason, so an author can fix all of them in one pass.
 */
import { isNode, LineCounter, parseDocument } from 'yaml';
import type { z } from 'zod';

/** One problem in a pack file. `line`/`col` (1-based) point into the YAML when known. */
export interface SpecError {
  readonly file: string;
  readonly path: string;
  readonly message: string;
  readonly line?: number;
  readonly col?: number;
}

/** A path into a parsed document: keys and list indexes. */
export type SpecPath = readonly (string | number)[];

/** `file: path: message`, or `file: message` when the error concerns the whole file. */
export function formatSpecError(e: SpecError): string {
  return e.path === '' ? `${e.file}: ${e.message}` : `${e.file}: ${e.path}: ${e.message}`;
}

/** Dotted form of a path: `args.lines.max`, `argv[2].then[0]`. */
export function formatSpecPath(path: SpecPath): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out === '' ? seg : `.${seg}`;
  }
  return out;
}

/** Collects the errors of one file, attaching YAML positions when the path can be located. */
export class SpecErrorSink {
  readonly errors: SpecError[] = [];

  constructor(
    readonly file: string,
    private readonly locate: (path: SpecPath) => { line: number; col: number } | undefined = () => undefined,
  ) {}

  add(path: SpecPath, message: string): void {
    const pos = this.locate(path);
    const base = { file: this.file, path: formatSpecPath(path), message };
    this.errors.push(pos === undefined ? base : { ...base, line: pos.line, col: pos.col });
  }

  get ok(): boolean {
    return this.errors.length === 0;
  }
}

/** Result of {@link parseYamlText}: the plain data and a sink that knows where each path is. */
export type YamlParse = { ok: true; data: unknown; sink: SpecErrorSink } | { ok: false; errors: SpecError[] };

/**
 * Parse one YAML document (YAML 1.2 core schema: `yes`/`no` stay strings, no merge keys,
 * duplicate keys and unknown tags are errors, alias expansion is capped).
 */
export function parseYamlText(text: string, file: string): YamlParse {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, strict: true, uniqueKeys: true });
  const problems = [...doc.errors, ...doc.warnings];
  if (problems.length > 0) {
    return {
      ok: false,
      errors: problems.map((e) => {
        const { line, col } = lineCounter.linePos(e.pos[0]);
        return { file, path: '', message: `invalid YAML at line ${line}, col ${col}: ${e.message}`, line, col };
      }),
    };
  }
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    return { ok: false, errors: [{ file, path: '', message: `invalid YAML: ${(e as Error).message}` }] };
  }
  // `__proto__` survives YAML as an own key, but copying it into a fresh object (as the
  // schema layer does) would set that object's prototype instead. Refuse it up front.
  const proto = findProtoKey(data, []);
  if (proto !== undefined) {
    return { ok: false, errors: [{ file, path: formatSpecPath(proto), message: 'the key __proto__ is not allowed' }] };
  }
  const locate = (path: SpecPath): { line: number; col: number } | undefined => {
    for (let n = path.length; n >= 0; n--) {
      const node = n === 0 ? doc.contents : doc.getIn(path.slice(0, n), true);
      if (isNode(node) && node.range) return lineCounter.linePos(node.range[0]);
    }
    return undefined;
  };
  return { ok: true, data, sink: new SpecErrorSink(file, locate) };
}

function findProtoKey(v: unknown, path: (string | number)[]): SpecPath | undefined {
  if (v === null || typeof v !== 'object') return undefined;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const found = findProtoKey(v[i], [...path, i]);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  for (const key of Object.keys(v)) {
    if (key === '__proto__') return [...path, key];
    const found = findProtoKey((v as Record<string, unknown>)[key], [...path, key]);
    if (found !== undefined) return found;
  }
  return undefined;
}

/** Short description of a value for messages, bounded so huge inputs do not flood logs. */
export function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') {
    const s = JSON.stringify(v);
    return s.length > 42 ? `${s.slice(0, 40)}…"` : s;
  }
  return String(v);
}

const EXPECTED: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'a boolean',
  object: 'a mapping',
  record: 'a mapping',
  array: 'a list',
};

type Issue = z.core.$ZodIssue;

/** Turn zod issues into spec errors with messages meant for pack authors. */
export function addZodIssues(sink: SpecErrorSink, issues: readonly Issue[], base: SpecPath = []): void {
  for (const issue of issues) addIssue(sink, issue, base);
}

function addIssue(sink: SpecErrorSink, issue: Issue, base: SpecPath): void {
  const path: (string | number)[] = [...base, ...issue.path.map((p) => (typeof p === 'number' ? p : String(p)))];
  switch (issue.code) {
    case 'unrecognized_keys':
      for (const key of issue.keys) sink.add([...path, key], 'unknown field');
      return;
    case 'invalid_type': {
      if (issue.input === undefined) {
        sink.add(path, 'required');
        return;
      }
      const want = EXPECTED[issue.expected] ?? issue.expected;
      sink.add(path, `must be ${want} (got ${describeValue(issue.input)})`);
      return;
    }
    case 'invalid_union': {
      const disc = (issue as { discriminator?: string }).discriminator;
      if (disc !== undefined) {
        const options = (issue as { options?: unknown[] }).options ?? [];
        const input = issue.input as Record<string, unknown> | undefined;
        const given = input !== null && typeof input === 'object' ? input[disc] : undefined;
        // Older zod versions put the discriminator in the path, newer ones do not.
        const p = path[path.length - 1] === disc ? path : [...path, disc];
        sink.add(p, given === undefined ? 'required' : `must be one of: ${options.map(String).join(', ')}`);
        return;
      }
      // Report the branch that got furthest: one that failed on more than its top-level type.
      const deep = issue.errors.filter(
        (branch) => !branch.every((i) => i.code === 'invalid_type' && i.path.length === 0),
      );
      if (deep.length === 1) {
        addZodIssues(sink, deep[0] ?? [], path);
        return;
      }
      const wants = issue.errors.flatMap((branch) =>
        branch.filter((i) => i.code === 'invalid_type').map((i) => EXPECTED[(i as { expected: string }).expected]),
      );
      const unique = [...new Set(wants.filter((w): w is string => w !== undefined))];
      sink.add(
        path,
        unique.length > 0 ? `must be ${unique.join(' or ')} (got ${describeValue(issue.input)})` : issue.message,
      );
      return;
    }
    case 'invalid_key': {
      const inner = issue.issues[0];
      sink.add(path, inner?.message ?? 'invalid name');
      return;
    }
    case 'too_small': {
      const n = Number(issue.minimum);
      if (issue.origin === 'string') sink.add(path, n === 1 ? 'must not be empty' : `must be at least ${n} characters`);
      else if (issue.origin === 'array') sink.add(path, `must have at least ${n} item${n === 1 ? '' : 's'}`);
      else sink.add(path, `must be ${issue.inclusive === false ? '>' : '>='} ${n} (got ${describeValue(issue.input)})`);
      return;
    }
    case 'too_big': {
      const n = Number(issue.maximum);
      if (issue.origin === 'string') sink.add(path, `must be at most ${n} characters`);
      else if (issue.origin === 'array') sink.add(path, `must have at most ${n} items`);
      else sink.add(path, `must be ${issue.inclusive === false ? '<' : '<='} ${n} (got ${describeValue(issue.input)})`);
      return;
    }
    case 'invalid_value':
      if (issue.input === undefined) {
        sink.add(path, 'required');
        return;
      }
      sink.add(path, `must be one of: ${issue.values.map(String).join(', ')} (got ${describeValue(issue.input)})`);
      return;
    default:
      sink.add(path, issue.message);
  }
}
