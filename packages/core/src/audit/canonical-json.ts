import { AirlockError } from '../errors.js';

/**
 * Deepest nesting canonicalJson accepts. It recurses, so an unbounded depth could exhaust
 * the stack on hostile input; audit events and wire messages are far shallower than this.
 */
export const CANONICAL_MAX_DEPTH = 1000;

/**
 * Deterministic JSON for hashing: object keys sorted by UTF-16 code unit order (the default
 * `Array.prototype.sort` order), no whitespace, strings and numbers written exactly as
 * `JSON.stringify` writes them (so `-0` becomes `0`).
 *
 * Object properties whose value is `undefined` are omitted, as `JSON.stringify` does, so an
 * absent optional field and `undefined` hash the same. Everything that JSON cannot represent
 * faithfully is refused with AirlockError `internal` rather than silently changed: non-finite
 * numbers, `undefined` (top level or inside an array, including holes), functions, symbols,
 * bigints, cycles, and objects that are not plain objects or arrays (Date, Map, class
 * instances: their `toJSON` would make the digest depend on code, not data).
 */
export function canonicalJson(value: unknown): string {
  return encode(value, '$', 0, new Set());
}

function fail(path: string, what: string): never {
  throw new AirlockError('internal', `canonicalJson: ${what} at ${path}`, { path });
}

function encode(value: unknown, path: string, depth: number, ancestors: Set<object>): string {
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'number':
      if (!Number.isFinite(value)) fail(path, `non-finite number ${String(value)}`);
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object': {
      if (value === null) return 'null';
      if (depth >= CANONICAL_MAX_DEPTH) fail(path, `nesting deeper than ${CANONICAL_MAX_DEPTH}`);
      if (ancestors.has(value)) fail(path, 'cycle');
      ancestors.add(value);
      try {
        return Array.isArray(value)
          ? encodeArray(value, path, depth, ancestors)
          : encodeObject(value, path, depth, ancestors);
      } finally {
        // Only ancestors count: the same object referenced twice side by side is not a cycle.
        ancestors.delete(value);
      }
    }
    default:
      return fail(path, `unsupported value of type ${typeof value}`);
  }
}

function encodeArray(value: readonly unknown[], path: string, depth: number, ancestors: Set<object>): string {
  const parts: string[] = [];
  for (let i = 0; i < value.length; i++) {
    const item = value[i];
    // JSON.stringify would write null here; that changes the data, so refuse instead.
    if (item === undefined) fail(`${path}[${i}]`, 'undefined array element');
    parts.push(encode(item, `${path}[${i}]`, depth + 1, ancestors));
  }
  return `[${parts.join(',')}]`;
}

function encodeObject(value: object, path: string, depth: number, ancestors: Set<object>): string {
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) {
    const name = (value as { constructor?: { name?: unknown } }).constructor?.name;
    fail(path, `unsupported object ${typeof name === 'string' ? name : '(unknown class)'}`);
  }
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record).sort();
  const parts: string[] = [];
  for (const key of keys) {
    const item = record[key];
    if (item === undefined) continue;
    parts.push(`${JSON.stringify(key)}:${encode(item, `${path}.${key}`, depth + 1, ancestors)}`);
  }
  return `{${parts.join(',')}}`;
}
