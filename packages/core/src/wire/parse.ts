import type { z } from 'zod';
import { AirlockError } from '../errors.js';
import {
  MAX_FRAME_BYTES,
  MAX_FRAME_DEPTH,
  WIRE_MESSAGE_TYPES,
  WIRE_SCHEMAS,
  type WireMessage,
  type WireMessageType,
} from './messages.js';

/** Why a frame was refused; `message` names the field path and the reason. */
export interface WireFrameError {
  readonly code: 'frame_too_large' | 'not_json' | 'not_object' | 'unknown_type' | 'invalid_field';
  readonly message: string;
  /** Path of the offending field inside the message, e.g. `args` or `packs[0].hash`. */
  readonly field?: string;
}

/** Outcome of {@link parseMessage}. */
export type ParseMessageResult =
  | { readonly ok: true; readonly value: WireMessage }
  | { readonly ok: false; readonly error: WireFrameError };

const KNOWN_TYPES: ReadonlySet<string> = new Set(WIRE_MESSAGE_TYPES);
const utf8Decoder = new TextDecoder('utf-8', { fatal: true });

function refuse(code: WireFrameError['code'], message: string, field?: string): ParseMessageResult {
  return { ok: false, error: field === undefined ? { code, message } : { code, message, field } };
}

/** UTF-8 length of a string without allocating, stopping once past `limit`. */
function utf8Length(s: string, limit: number): number {
  if (s.length > limit) return s.length; // every UTF-16 unit is at least one byte
  if (s.length * 3 <= limit) return s.length; // even all-BMP 3-byte characters fit
  let n = 0;
  for (let i = 0; i < s.length && n <= limit; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4;
        i++;
      } else n += 3;
    } else n += 3;
  }
  return n;
}

function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out === '' ? String(p) : `.${String(p)}`;
  return out;
}

/** Path of the first container nested deeper than `max`, or null. Iterative: input is hostile. */
function tooDeep(root: unknown, max: number): PropertyKey[] | null {
  const stack: { value: unknown; depth: number; path: PropertyKey[] }[] = [{ value: root, depth: 0, path: [] }];
  for (let top = stack.pop(); top !== undefined; top = stack.pop()) {
    const { value, depth, path } = top;
    if (typeof value !== 'object' || value === null) continue;
    if (depth > max) return path;
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) stack.push({ value: value[i], depth: depth + 1, path: [...path, i] });
    } else for (const [k, v] of Object.entries(value)) stack.push({ value: v, depth: depth + 1, path: [...path, k] });
  }
  return null;
}

function valueAt(root: unknown, path: readonly PropertyKey[]): { found: boolean; value: unknown } {
  let cur: unknown = root;
  for (const p of path) {
    if (typeof cur !== 'object' || cur === null || !Object.hasOwn(cur, p)) return { found: false, value: undefined };
    cur = (cur as Record<PropertyKey, unknown>)[p];
  }
  return { found: true, value: cur };
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number' && !Number.isInteger(v)) return 'non-integer number';
  return typeof v;
}

const TYPE_NAMES: Readonly<Record<string, string>> = { record: 'object', int: 'integer' };

/** One zod issue as `path` + a short reason a person can act on. */
function explain(issue: z.core.$ZodIssue, root: unknown): { path: PropertyKey[]; reason: string } {
  const path = [...issue.path];
  switch (issue.code) {
    case 'invalid_type': {
      const at = valueAt(root, path);
      if (!at.found) return { path, reason: 'required' };
      return { path, reason: `expected ${TYPE_NAMES[issue.expected] ?? issue.expected}, got ${describe(at.value)}` };
    }
    case 'unrecognized_keys':
      return { path: [...path, issue.keys[0] ?? ''], reason: 'unknown field' };
    case 'invalid_value':
      return { path, reason: `expected ${issue.values.map((v) => JSON.stringify(v)).join(' or ')}` };
    case 'too_small':
    case 'too_big': {
      const small = issue.code === 'too_small';
      const bound = String(small ? issue.minimum : issue.maximum);
      if (issue.origin === 'string' || issue.origin === 'array') {
        if (small && bound === '1') return { path, reason: 'must not be empty' };
        const unit = issue.origin === 'string' ? 'characters' : 'items';
        return { path, reason: `must have ${small ? 'at least' : 'at most'} ${bound} ${unit}` };
      }
      const cmp = small ? (issue.inclusive ? '>=' : '>') : issue.inclusive ? '<=' : '<';
      return { path, reason: `must be ${cmp} ${bound}` };
    }
    case 'invalid_format':
      return { path, reason: issue.format === 'regex' ? issue.message : `expected ${issue.format}` };
    default:
      return { path, reason: issue.message };
  }
}

/** Validate an already parsed value as a wire message. */
function validate(value: unknown): ParseMessageResult {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return refuse('not_object', `frame: expected a JSON object, got ${describe(value)}`);
  }
  const type = (value as Record<string, unknown>)['type'];
  if (typeof type !== 'string') {
    return refuse(
      'invalid_field',
      `message.type: ${type === undefined ? 'required' : `expected string, got ${describe(type)}`}`,
      'type',
    );
  }
  if (!KNOWN_TYPES.has(type)) {
    return refuse('unknown_type', `message.type: unknown message type ${JSON.stringify(type.slice(0, 64))}`, 'type');
  }
  const deep = tooDeep(value, MAX_FRAME_DEPTH);
  if (deep !== null) {
    const field = formatPath(deep);
    return refuse('invalid_field', `${type}.${field}: nested deeper than ${MAX_FRAME_DEPTH} levels`, field);
  }
  const res = WIRE_SCHEMAS[type as WireMessageType].safeParse(value);
  if (!res.success) {
    const issue = res.error.issues[0];
    if (issue === undefined) return refuse('invalid_field', `${type}: invalid message`);
    const { path, reason } = explain(issue, value);
    const field = formatPath(path);
    return refuse(
      'invalid_field',
      `${field === '' ? type : `${type}.${field}`}: ${reason}`,
      field === '' ? undefined : field,
    );
  }
  // The input, not zod's copy: the schemas have no transforms, so both are equal, and the
  // input is plain JSON.parse output with no prototype surprises.
  return { ok: true, value: value as WireMessage };
}

/**
 * Parse and validate one WebSocket text frame. Never throws: every refusal is a
 * {@link WireFrameError} whose message names the field and the reason, e.g.
 * `run_action.args: expected object, got array`. Frames over {@link MAX_FRAME_BYTES} UTF-8
 * bytes are refused before parsing; binary frames must be valid UTF-8.
 */
export function parseMessage(frame: string | Uint8Array): ParseMessageResult {
  let text: string;
  if (typeof frame === 'string') {
    const size = utf8Length(frame, MAX_FRAME_BYTES);
    if (size > MAX_FRAME_BYTES) return refuse('frame_too_large', `frame: larger than ${MAX_FRAME_BYTES} bytes`);
    text = frame;
  } else {
    if (frame.byteLength > MAX_FRAME_BYTES) {
      return refuse('frame_too_large', `frame: ${frame.byteLength} bytes, limit ${MAX_FRAME_BYTES}`);
    }
    try {
      text = utf8Decoder.decode(frame);
    } catch {
      return refuse('not_json', 'frame: not valid UTF-8');
    }
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return refuse('not_json', `frame: not JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  return validate(value);
}

/**
 * Validate a message and serialise it as one text frame. Throws AirlockError
 * `invalid_message` (with `data.field`) when the message would be refused by the peer,
 * so a bug surfaces at the sender rather than as a protocol error on the other side.
 */
export function encodeMessage(msg: WireMessage): string {
  const checked = validate(msg);
  if (!checked.ok) {
    const data: Record<string, unknown> = { reason: checked.error.code };
    if (checked.error.field !== undefined) data['field'] = checked.error.field;
    throw new AirlockError('invalid_message', checked.error.message, data);
  }
  const text = JSON.stringify(msg);
  if (utf8Length(text, MAX_FRAME_BYTES) > MAX_FRAME_BYTES) {
    throw new AirlockError('invalid_message', `${msg.type}: frame larger than ${MAX_FRAME_BYTES} bytes`, {
      reason: 'frame_too_large',
    });
  }
  return text;
}
