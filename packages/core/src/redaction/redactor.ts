/**
 * The redaction engine. Output leaves a host only after passing through it, so it must be both
 * thorough (every rule, every line) and cheap on the common line that holds no secret at all.
 *
 * Cost model: each line is tested once against a single case-insensitive alternation of every
 * rule keyword. Only lines that contain a keyword pay for the rules, and only for the rules whose
 * keywords occur, so adding rules barely changes the cost of an ordinary line.
 */
import { AirlockError } from '../errors.js';
import { BUILTIN_RULES } from './rules.js';

/** A redaction rule as supplied by a pack (or any caller) on top of the built-ins. */
export interface RedactionRuleSpec {
  /** snake_case, unique across the built-ins and the other extra rules; appears in `[REDACTED:<name>]`. */
  name: string;
  /** RegExp source. Named groups starting with `secret` limit the replacement to that group. */
  pattern: string;
  /** Any of `i`, `m`, `s`, `u`. */
  flags?: string;
  /**
   * Literals (compared case-insensitively) at least one of which occurs in every match. When absent,
   * a literal prefix is derived from the pattern; when none can be derived the rule runs on every line.
   */
  keywords?: readonly string[];
  description?: string;
}

/**
 * What one line became, and which rules fired on it (in application order, no duplicates). Results with
 * hits are frozen; the result for an untouched line is a fresh object, left unfrozen to keep the hot path lean.
 */
export interface LineRedaction {
  readonly text: string;
  readonly hits: readonly string[];
}

/** Redacts one line at a time while remembering multi-line private keys across calls. */
export type LineRedactor = (line: string) => LineRedaction;

/** A compiled rule set. Stateless and safe to share; `stream()` gives a stateful per-stream view. */
export interface Redactor {
  /** Redacts one line (no newline inside) on its own. */
  redactLine(line: string): LineRedaction;
  /** Redacts multi-line text, keeping line breaks; bodies of multi-line private keys are removed too. */
  redactText(text: string): string;
  /**
   * A line redactor for one output stream: like `redactLine`, and additionally redacts the body lines
   * of PEM/OpenSSH/PGP private keys and PuTTY private lines, which no single line reveals.
   */
  stream(): LineRedactor;
  /** Rule names in application order (extra rules first, then the built-ins). */
  readonly ruleNames: readonly string[];
}

interface CompiledRule {
  readonly name: string;
  readonly re: RegExp;
  /** Named groups to replace instead of the whole match, in preference order; empty: whole match. */
  readonly secretGroups: readonly string[];
  readonly marker: string;
}

const RULE_NAME = /^[a-z][a-z0-9_]{1,63}$/;
const ALLOWED_FLAGS = /^[imsu]*$/;
const MAX_PATTERN_LENGTH = 4000;
const SECRET_GROUP = /\(\?<(secret\w*)>/g;
const EMPTY_HITS: readonly string[] = Object.freeze([]);
/** Safety cap so a stray BEGIN line cannot swallow a whole long-running stream. */
const MAX_BLOCK_LINES = 10_000;
/** Bound on redaction passes over one line (two suffice in practice; the cap guards pathological input). */
const MAX_ROUNDS = 4;

function invalid(name: string, why: string): AirlockError {
  return new AirlockError('invalid_spec', `redaction rule "${name}": ${why}`, { rule: name });
}

/**
 * The literal text every match must start with, lowercased, or '' when there is none worth using.
 * Conservative: stops at the first construct it does not fully understand, and gives up on any
 * top-level alternation, so the result is always a sound prefilter keyword.
 */
export function literalPrefix(source: string): string {
  if (hasTopLevelAlternation(source)) return '';
  let i = 0;
  for (;;) {
    if (source.startsWith('^', i)) i += 1;
    else if (source.startsWith('\\b', i)) i += 2;
    else break;
  }
  let out = '';
  while (i < source.length) {
    const c = source.charAt(i);
    let lit: string;
    let len: number;
    if (c === '\\') {
      const n = source.charAt(i + 1);
      if (n === '' || /[A-Za-z0-9]/.test(n)) break;
      lit = n;
      len = 2;
    } else if (/[A-Za-z0-9_\-:=@%#!~,;'"<>/ &]/.test(c)) {
      lit = c;
      len = 1;
    } else {
      break;
    }
    const next = source.charAt(i + len);
    if (next === '?' || next === '*' || next === '{') break;
    out += lit;
    if (next === '+') break;
    i += len;
  }
  return out.length >= 2 ? out.toLowerCase() : '';
}

function hasTopLevelAlternation(source: string): boolean {
  let depth = 0;
  let inClass = false;
  for (let i = 0; i < source.length; i++) {
    const c = source.charAt(i);
    if (c === '\\') {
      i += 1;
    } else if (inClass) {
      if (c === ']') inClass = false;
    } else if (c === '[') {
      inClass = true;
    } else if (c === '(') {
      depth += 1;
    } else if (c === ')') {
      depth -= 1;
    } else if (c === '|' && depth === 0) {
      return true;
    }
  }
  return false;
}

function compileRule(name: string, pattern: string, flags: string): CompiledRule {
  const secretGroups = [...pattern.matchAll(SECRET_GROUP)].map((m) => m[1] ?? '').filter((g) => g !== '');
  let re: RegExp;
  try {
    re = new RegExp(pattern, `${flags}g${secretGroups.length > 0 ? 'd' : ''}`);
  } catch (e) {
    throw invalid(name, `invalid regular expression: ${e instanceof Error ? e.message : String(e)}`);
  }
  return Object.freeze({ name, re, secretGroups: Object.freeze(secretGroups), marker: `[REDACTED:${name}]` });
}

interface PreparedRule {
  readonly rule: CompiledRule;
  /** Lowercase keywords; empty: always tried. */
  readonly keywords: readonly string[];
}

function prepareExtra(spec: RedactionRuleSpec, taken: Set<string>): PreparedRule {
  const name = typeof spec?.name === 'string' ? spec.name : '';
  const label = name === '' ? '(unnamed)' : name;
  if (!RULE_NAME.test(name)) throw invalid(label, 'name must be snake_case (a-z, 0-9, _), 2 to 64 characters');
  if (taken.has(name)) throw invalid(name, 'duplicate rule name');
  if (typeof spec.pattern !== 'string' || spec.pattern === '')
    throw invalid(name, 'pattern must be a non-empty string');
  if (spec.pattern.length > MAX_PATTERN_LENGTH) throw invalid(name, `pattern longer than ${MAX_PATTERN_LENGTH}`);
  const flags = spec.flags ?? '';
  if (typeof flags !== 'string' || !ALLOWED_FLAGS.test(flags) || new Set(flags).size !== flags.length) {
    throw invalid(name, `flags must be a subset of "imsu", got "${String(flags)}"`);
  }
  let keywords: string[];
  if (spec.keywords === undefined) {
    const prefix = literalPrefix(spec.pattern);
    keywords = prefix === '' ? [] : [prefix];
  } else {
    if (!Array.isArray(spec.keywords) || spec.keywords.length === 0)
      throw invalid(name, 'keywords must be a non-empty list');
    keywords = spec.keywords.map((k: unknown) => {
      if (typeof k !== 'string' || k === '') throw invalid(name, 'keywords must be non-empty strings');
      return k.toLowerCase();
    });
  }
  const rule = compileRule(name, spec.pattern, flags);
  // A rule that can match nothing would stamp markers between characters.
  if (new RegExp(spec.pattern, flags).test('')) throw invalid(name, 'pattern matches the empty string');
  return { rule, keywords };
}

const MARKER = /\[REDACTED:[a-z0-9_]+\]/g;

/** Spans of the `[REDACTED:…]` markers already in `text`, as [start, end) pairs. */
function markerSpans(text: string): number[] {
  const spans: number[] = [];
  MARKER.lastIndex = 0;
  for (let m = MARKER.exec(text); m !== null; m = MARKER.exec(text)) spans.push(m.index, m.index + m[0].length);
  return spans;
}

/**
 * True when replacing [start, end) would cut into an existing marker or re-redact nothing but markers.
 * This makes idempotence and stable labels a property of the engine rather than of every pattern.
 */
function touchesMarkerOnly(text: string, spans: readonly number[], start: number, end: number): boolean {
  let rest = '';
  let cursor = start;
  for (let k = 0; k < spans.length; k += 2) {
    const ms = spans[k] as number;
    const me = spans[k + 1] as number;
    if (me <= start || ms >= end) continue;
    if (ms < start || me > end) return true;
    rest += text.slice(cursor, ms);
    cursor = me;
  }
  if (cursor === start) return false;
  rest += text.slice(cursor, end);
  return !/[A-Za-z0-9]/.test(rest);
}

/** Replaces every match of one rule; returns null when nothing matched. */
function applyRule(rule: CompiledRule, text: string): string | null {
  const re = rule.re;
  re.lastIndex = 0;
  const spans = text.includes('[REDACTED:') ? markerSpans(text) : null;
  let out = '';
  let last = 0;
  let changed = false;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    let start = m.index;
    let end = start + m[0].length;
    if (end === start) {
      re.lastIndex += 1;
      continue;
    }
    if (rule.secretGroups.length > 0) {
      const spans = m.indices?.groups;
      if (spans !== undefined) {
        for (const g of rule.secretGroups) {
          const span = spans[g];
          if (span !== undefined) {
            [start, end] = span;
            break;
          }
        }
      }
      if (end === start) continue;
    }
    if (spans !== null && touchesMarkerOnly(text, spans, start, end)) continue;
    out += text.slice(last, start) + rule.marker;
    last = end;
    changed = true;
  }
  return changed ? out + text.slice(last) : null;
}

/** ASCII lowercase of a code unit below 128. */
const FOLD = new Uint8Array(128);
for (let c = 0; c < 128; c++) FOLD[c] = c >= 65 && c <= 90 ? c + 32 : c;

interface KeywordEntry {
  readonly codes: Uint8Array;
  readonly rules: number[];
}

/**
 * Finds which rules a line can possibly match in one pass over its characters. Keyword characters
 * get small class numbers (6 bits); the last three classes form an 18-bit window that indexes a
 * 256 KiB table of keyword starts, so an ordinary line costs one table probe per character and a
 * keyword is verified only where its first three characters really occur. This is what keeps the
 * engine's speed independent of the number of rules.
 */
class KeywordIndex {
  /** Class of each UTF-16 code unit (case-folded); 0 = occurs in no keyword. Full width: no branch per char. */
  private readonly cls = new Uint8Array(65536);
  private nextClass = 1;
  private readonly byWord = new Map<string, KeywordEntry>();
  /** Keyword starts by length of the head (1, 2, 3+ characters), indexed by the window of classes. */
  private readonly starts = [new Uint8Array(1 << 6), new Uint8Array(1 << 12), new Uint8Array(1 << 18)] as const;
  private readonly buckets: [
    (KeywordEntry[] | undefined)[],
    (KeywordEntry[] | undefined)[],
    (KeywordEntry[] | undefined)[],
  ] = [[], [], []];
  private short = false;

  /** Registers `keyword` for rule `rule`; false when the keyword cannot be indexed (non-ASCII). */
  add(keyword: string, rule: number): boolean {
    const k = keyword.toLowerCase();
    if (k === '' || !/^[\x01-\x7f]+$/.test(k)) return false;
    const existing = this.byWord.get(k);
    if (existing !== undefined) {
      if (!existing.rules.includes(rule)) existing.rules.push(rule);
      return true;
    }
    const codes = Uint8Array.from(k, (ch) => ch.charCodeAt(0));
    const entry: KeywordEntry = { codes, rules: [rule] };
    this.byWord.set(k, entry);
    const head = Math.min(3, codes.length);
    let window = 0;
    for (let q = 0; q < head; q++) window = (window << 6) | this.classOf(codes[q] as number);
    (this.starts[head - 1] as Uint8Array)[window] = 1;
    const buckets = this.buckets[head - 1] as (KeywordEntry[] | undefined)[];
    const bucket = buckets[window] ?? [];
    bucket.push(entry);
    buckets[window] = bucket;
    if (head < 3) this.short = true;
    return true;
  }

  private classOf(code: number): number {
    const folded = FOLD[code] as number;
    let c = this.cls[folded] as number;
    if (c === 0) {
      // Past 63 distinct characters classes are shared; verification keeps the result exact.
      c = this.nextClass < 63 ? this.nextClass++ : 63;
      this.cls[folded] = c;
      if (folded >= 97 && folded <= 122) this.cls[folded - 32] = c;
    }
    return c;
  }

  /** Sorted indexes of the rules to try on `line` (plus `always`), or null when there are none. */
  collect(line: string, always: readonly number[]): number[] | null {
    let found: number[] | null = always.length > 0 ? [...always] : null;
    const n = line.length;
    const cls = this.cls;
    const [s1, s2, s3] = this.starts;
    const [b1, b2, b3] = this.buckets;
    let w = 0;
    if (!this.short) {
      for (let i = 0; i < n; i++) {
        const code = line.charCodeAt(i);
        w = ((w << 6) | (cls[code] as number)) & 0x3ffff;
        // Windows reaching before the line start hold class 0, which no keyword head contains.
        if (s3[w] === 1) found = verify(b3[w], line, i - 2, found);
      }
    } else {
      for (let i = 0; i < n; i++) {
        const code = line.charCodeAt(i);
        w = ((w << 6) | (cls[code] as number)) & 0x3ffff;
        if (s3[w] === 1) found = verify(b3[w], line, i - 2, found);
        if (s2[w & 0xfff] === 1) found = verify(b2[w & 0xfff], line, i - 1, found);
        if (s1[w & 0x3f] === 1) found = verify(b1[w & 0x3f], line, i, found);
      }
    }
    if (found === null) return null;
    return found.length > 1 ? [...new Set(found)].sort((x, y) => x - y) : found;
  }
}

function verify(
  bucket: KeywordEntry[] | undefined,
  line: string,
  start: number,
  found: number[] | null,
): number[] | null {
  if (bucket === undefined) return found;
  for (const entry of bucket) {
    const codes = entry.codes;
    const len = codes.length;
    if (start + len > line.length) continue;
    // All characters are rechecked: classes may be shared and a 1-2 character window is not a full key.
    let j = 0;
    for (; j < len; j++) {
      const code = line.charCodeAt(start + j);
      if ((code < 128 ? FOLD[code] : 0) !== codes[j]) break;
    }
    if (j === len) {
      if (found === null) found = [];
      for (const r of entry.rules) found.push(r);
    }
  }
  return found;
}

const BLOCK_HEADER = /^(.*?)-----BEGIN ([A-Z0-9 ]{0,40}?)PRIVATE KEY( BLOCK)?-----\s*$/;
const PUTTY_PRIVATE_LINES = /^(.*?)Private-Lines:\s*(\d{1,5})\s*$/;

/**
 * Builds a redactor from the built-in rules plus `extra` (typically a pack's rules, which run first).
 * Throws `AirlockError('invalid_spec')` naming the offending rule for a bad extra rule.
 */
export function createRedactor(extra: readonly RedactionRuleSpec[] = []): Redactor {
  const taken = new Set(BUILTIN_RULES.map((r) => r.name));
  const prepared: PreparedRule[] = [];
  for (const spec of extra) {
    const p = prepareExtra(spec, taken);
    taken.add(p.rule.name);
    prepared.push(p);
  }
  for (const b of BUILTIN_RULES) {
    prepared.push({ rule: compileRule(b.name, b.pattern, b.flags ?? ''), keywords: b.keywords });
  }
  const rules = prepared.map((p) => p.rule);

  const index = new KeywordIndex();
  const always: number[] = [];
  prepared.forEach((p, i) => {
    if (p.keywords.length === 0) always.push(i);
    for (const k of p.keywords) if (!index.add(k, i)) always.push(i);
  });
  const alwaysRules = [...new Set(always)].sort((a, b) => a - b);

  function redactLine(line: string): LineRedaction {
    let found = index.collect(line, alwaysRules);
    if (found === null) return { text: line, hits: EMPTY_HITS };
    let text = line;
    let hits: string[] | undefined;
    // A replacement can remove what blocked another match (a marker has no '?', '#' or quote), so
    // rerun until nothing changes: that makes redacting a redacted line a no-op.
    for (let round = 0; round < MAX_ROUNDS && found !== null; round++) {
      let changed = false;
      for (const i of found) {
        const rule = rules[i] as CompiledRule;
        const next = applyRule(rule, text);
        if (next !== null) {
          text = next;
          changed = true;
          if (hits === undefined) hits = [rule.name];
          else if (!hits.includes(rule.name)) hits.push(rule.name);
        }
      }
      if (!changed) break;
      found = index.collect(text, alwaysRules);
    }
    return hits === undefined ? { text: line, hits: EMPTY_HITS } : Object.freeze({ text, hits: Object.freeze(hits) });
  }

  function stream(): LineRedactor {
    let blockRule = '';
    let blockPrefix = '';
    let remaining = 0;
    return (line: string): LineRedaction => {
      if (remaining > 0) {
        if (blockRule !== 'putty_private_key' && line.includes('-----END')) {
          remaining = 0;
        } else {
          remaining -= 1;
          const keep = blockPrefix !== '' && line.startsWith(blockPrefix) ? blockPrefix : '';
          const cr = line.endsWith('\r') ? '\r' : '';
          const text = line.trim() === '' ? line : `${keep}[REDACTED:${blockRule}]${cr}`;
          return { text, hits: text === line ? EMPTY_HITS : Object.freeze([blockRule]) };
        }
      }
      const result = redactLine(line);
      if (line.includes('-----BEGIN ')) {
        const h = BLOCK_HEADER.exec(line);
        if (h !== null) {
          const kind = h[2] ?? '';
          blockRule =
            kind === 'OPENSSH '
              ? 'openssh_private_key'
              : kind === 'PGP '
                ? 'pgp_private_key_block'
                : 'private_key_block';
          blockPrefix = h[1] ?? '';
          remaining = MAX_BLOCK_LINES;
        }
      } else if (line.includes('Private-Lines:')) {
        const p = PUTTY_PRIVATE_LINES.exec(line);
        if (p !== null) {
          blockRule = 'putty_private_key';
          blockPrefix = p[1] ?? '';
          remaining = Math.min(Number(p[2]), MAX_BLOCK_LINES);
        }
      }
      return result;
    };
  }

  function redactText(text: string): string {
    const next = stream();
    return text
      .split('\n')
      .map((l) => next(l).text)
      .join('\n');
  }

  return Object.freeze({ redactLine, redactText, stream, ruleNames: Object.freeze(rules.map((r) => r.name)) });
}

/** Key endings whose value is a secret as a whole, whatever it looks like (split on case and separators). */
const SECRET_FIELD =
  /(?:^|_)(?:password|passwd|passphrase|secret|secrets|token|auth|authorization|credential|credentials|cookie|apikey|api_key|private_key|privatekey|access_key|secret_key|client_secret|signing_key|encryption_key|master_key)$/;

function isSecretField(key: string): boolean {
  const snake = key
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/[-.\s]+/g, '_')
    .toLowerCase();
  return SECRET_FIELD.test(snake);
}

/**
 * Deep-copies a JSON-like value, redacting every string and replacing the value of every key that
 * names a secret (password, token, api_key, …) with `[REDACTED:secret_field]`. Booleans, null and
 * undefined under such keys are kept: they carry no secret material. Results are frozen.
 */
export function redactValue(value: unknown, redactor: Redactor): unknown {
  const seen = new WeakSet<object>();
  const walk = (v: unknown): unknown => {
    if (typeof v === 'string') return v.includes('\n') ? redactor.redactText(v) : redactor.redactLine(v).text;
    if (v === null || typeof v !== 'object') return v;
    if (seen.has(v)) return '[Circular]';
    const toJSON = (v as { toJSON?: unknown }).toJSON;
    if (typeof toJSON === 'function') return walk((toJSON as () => unknown).call(v));
    seen.add(v);
    let out: unknown;
    if (Array.isArray(v)) {
      out = Object.freeze(v.map(walk));
    } else {
      const obj: Record<string, unknown> = {};
      for (const [k, child] of Object.entries(v)) {
        obj[k] =
          isSecretField(k) && child !== null && child !== undefined && typeof child !== 'boolean'
            ? '[REDACTED:secret_field]'
            : walk(child);
      }
      out = Object.freeze(obj);
    }
    seen.delete(v);
    return out;
  };
  return walk(value);
}
