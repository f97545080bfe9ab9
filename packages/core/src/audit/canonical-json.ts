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
  return new Encoder().encode(value, 0);
}

/**
 * One encoding pass. The path to the current value is a stack of keys, turned into text only
 * when refusing: building path strings for every value would dominate the cost of hashing.
 */
class Encoder {
  private readonly path: (string | number)[] = [];
  private readonly ancestors = new Set<object>();

  encode(value: unknown, depth: number): string {
    switch (typeof value) {
      case 'string':
        return JSON.stringify(value);
      case 'number':
        if (!Number.isFinite(value)) this.fail(`non-finite number ${String(value)}`);
        return JSON.stringify(value);
      case 'boolean':
        return value ? 'true' : 'false';
      case 'object': {
        if (value === null) return 'null';
        if (depth >= CANONICAL_MAX_DEPTH) this.fail(`nesting deeper than ${CANONICAL_MAX_DEPTH}`);
        if (this.ancestors.has(value)) this.fail('cycle');
        this.ancestors.add(value);
        const out = Array.isArray(value) ? this.encodeArray(value, depth) : this.encodeObject(value, depth);
        // Only ancestors count: the same object referenced twice side by side is not a cycle.
        this.ancestors.delete(value);
        return out;
      }
      default:
        return this.fail(`unsupported value of type ${typeof value}`);
    }
  }

  private encodeArray(value: readonly unknown[], depth: number): string {
    let out = '[';
    for (let i = 0; i < value.length; i++) {
      const item = value[i];
      this.path.push(i);
      // JSON.stringify would write null here; that changes the data, so refuse instead.
      if (item === undefined) this.fail('undefined array element');
      out += (i === 0 ? '' : ',') + this.encode(item, depth + 1);
      this.path.pop();
    }
    return `${out}]`;
  }

  private encodeObject(value: object, depth: number): string {
    const proto: unknown = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) {
      const name = (value as { constructor?: { name?: unknown } }).constructor?.name;
      this.fail(`unsupported object ${typeof name === 'string' ? name : '(unknown class)'}`);
    }
    const record = value as Record<string, unknown>;
    const keys = Object.keys(record).sort();
    let out = '{';
    let first = true;
    for (const key of keys) {
      const item = record[key];
      if (item === undefined) continue;
      this.path.push(key);
      out += `${first ? '' : ','}${JSON.stringify(key)}:${this.encode(item, depth + 1)}`;
      this.path.pop();
      first = false;
    }
    return `${out}}`;
  }

  private fail(what: string): never {
    let where = '$';
    for (const p of this.path) where += typeof p === 'number' ? `[${p}]` : `.${p}`;
    throw new AirlockError('internal', `canonicalJson: ${what} at ${where}`, { path: where });
  }
}
