import { z } from 'zod';
import { AirlockError } from '../errors.js';
import { sha256Hex } from '../hash/index.js';
import { canonicalJson } from './canonical-json.js';

/** `prev` of the first event of a chain: `sha256:` followed by 64 zeros. */
export const GENESIS_HASH = `sha256:${'0'.repeat(64)}`;

/** Version of the audit event format; part of every event and of its hash. */
export const AUDIT_EVENT_VERSION = 1;

/** Outcome of an attempt; the same set as the wire `result.status`. */
export type AuditStatus = 'success' | 'failure' | 'validation_failed' | 'error' | 'timeout' | 'cancelled';

/** All audit statuses, in a stable order. */
export const AUDIT_STATUSES: readonly AuditStatus[] = Object.freeze([
  'success',
  'failure',
  'validation_failed',
  'error',
  'timeout',
  'cancelled',
]);

/** Who asked for the attempt. */
export interface AuditPrincipal {
  readonly type: string;
  readonly id: string;
  readonly name?: string;
}

/**
 * One entry of a hash-chained audit log. Built only by {@link appendEvent}, deeply frozen.
 * `args` is already redacted by the caller; `args_digest` is over the arguments before
 * redaction, so a party holding the real arguments can prove what ran. Kinds other than
 * `action.attempt` (sandbox exec, approvals) put their extra fields in `data`.
 */
export interface AuditEvent {
  readonly v: 1;
  readonly seq: number;
  readonly id: string;
  readonly time: string;
  readonly kind: string;
  readonly principal: AuditPrincipal;
  readonly runner: string;
  readonly action: string;
  readonly pack_hash: string | null;
  readonly args_digest: string;
  readonly args: Readonly<Record<string, unknown>>;
  readonly reason: string | null;
  readonly status: AuditStatus;
  readonly exit_code: number | null;
  readonly duration_ms: number;
  readonly output_digest: string | null;
  readonly output_bytes: number;
  readonly truncated: boolean;
  readonly clamped: readonly unknown[];
  readonly error: { readonly code: string; readonly message: string } | null;
  readonly data?: Readonly<Record<string, unknown>>;
  readonly prev: string;
  readonly hash: string;
}

/** The fields a caller supplies; the chain position (`v`, `seq`, `prev`, `hash`) is filled in. */
export type AuditEventFields = Omit<AuditEvent, 'v' | 'seq' | 'prev' | 'hash'>;

/** An event without its `hash`: what the hash covers. */
export type AuditEventBody = Omit<AuditEvent, 'hash'>;

/** Position of the last event of a chain. */
export interface ChainHead {
  readonly seq: number;
  readonly hash: string;
}

const digest = z.string().regex(/^sha256:[0-9a-f]{64}$/, 'expected sha256:<64 lowercase hex>');
const text = z.string().min(1).max(1024);

/** Shape of a v1 event. Strict: an unknown top-level field is malformed, extras go in `data`. */
export const auditEventSchema = z.strictObject({
  v: z.literal(1),
  seq: z.int().min(0),
  id: text,
  time: z.iso.datetime({ offset: true }),
  kind: z.string().min(1).max(128),
  principal: z.strictObject({ type: z.string().min(1).max(64), id: text, name: z.string().max(1024).optional() }),
  runner: text,
  action: text,
  pack_hash: digest.nullable(),
  args_digest: digest,
  args: z.record(z.string(), z.unknown()),
  reason: z.string().max(10_000).nullable(),
  status: z.enum(['success', 'failure', 'validation_failed', 'error', 'timeout', 'cancelled']),
  exit_code: z.int().nullable(),
  duration_ms: z.number().min(0),
  output_digest: digest.nullable(),
  output_bytes: z.int().min(0),
  truncated: z.boolean(),
  clamped: z.array(z.unknown()),
  error: z.strictObject({ code: z.string(), message: z.string() }).nullable(),
  data: z.record(z.string(), z.unknown()).optional(),
  prev: digest,
  hash: digest,
});

/** Field order of a stored event, so log lines read naturally (the hash does not depend on it). */
const FIELD_ORDER = Object.keys(auditEventSchema.shape) as readonly (keyof AuditEvent)[];

/** First reason an unknown value is not a v1 audit event, or null when it is one. */
export function auditEventShapeError(value: unknown): string | null {
  const res = auditEventSchema.safeParse(value);
  if (res.success) return null;
  const issue = res.error.issues[0];
  if (issue === undefined) return 'invalid event';
  const path = issue.code === 'unrecognized_keys' ? [...issue.path, ...issue.keys.slice(0, 1)] : issue.path;
  const where = path.length === 0 ? 'event' : path.map(String).join('.');
  const what = issue.code === 'unrecognized_keys' ? 'unknown field' : issue.message;
  return `${where}: ${what}`;
}

/**
 * The exact string whose UTF-8 bytes are hashed: `prev` (the 71 ASCII characters
 * `sha256:<hex>`) immediately followed by the canonical JSON of the event without its `hash`
 * key (which still contains `prev`). No separator, no trailing newline.
 */
export function auditHashInput(event: AuditEventBody | AuditEvent): string {
  const { hash: _ignored, ...body } = event as AuditEvent;
  return body.prev + canonicalJson(body);
}

/** `sha256:` + hex SHA-256 of {@link auditHashInput}: the hash an event must carry. */
export function hashEvent(event: AuditEventBody | AuditEvent): string {
  return `sha256:${sha256Hex(auditHashInput(event))}`;
}

/** `sha256:` digest of the canonical JSON of arguments, taken before redaction. */
export function digestArgs(args: Readonly<Record<string, unknown>>): string {
  return `sha256:${sha256Hex(canonicalJson(args))}`;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/**
 * Build the next event of a chain: `seq = head.seq + 1` and `prev = head.hash`, or seq 0 and
 * {@link GENESIS_HASH} for an empty chain. The result is a deep copy of the fields (the
 * caller's objects are neither kept nor frozen), validated, hashed and deeply frozen.
 * Throws AirlockError `internal` when the head or fields are not a valid event: that is a
 * bug in the caller, and writing it would make the log unverifiable.
 */
export function appendEvent(head: ChainHead | null, fields: AuditEventFields): AuditEvent {
  if (head !== null && (!Number.isSafeInteger(head.seq) || head.seq < 0 || !/^sha256:[0-9a-f]{64}$/.test(head.hash))) {
    throw new AirlockError('internal', 'appendEvent: head is not a valid chain head', { head: { ...head } });
  }
  // Strip chain fields a caller might smuggle in at runtime: they are ours to set.
  const { v: _v, seq: _seq, prev: _prev, hash: _hash, ...rest } = fields as AuditEventFields & Partial<AuditEvent>;
  const prev = head === null ? GENESIS_HASH : head.hash;
  const body = { ...rest, v: 1 as const, seq: head === null ? 0 : head.seq + 1, prev };
  // Canonicalising first both rejects non-JSON values and gives a copy equal to what is hashed.
  const canonical = canonicalJson(body);
  const copy = JSON.parse(canonical) as Record<string, unknown>;
  copy['hash'] = `sha256:${sha256Hex(prev + canonical)}`;
  const problem = auditEventShapeError(copy);
  if (problem !== null) throw new AirlockError('internal', `appendEvent: ${problem}`);
  const ordered: Record<string, unknown> = {};
  for (const key of FIELD_ORDER) if (key in copy) ordered[key] = copy[key];
  return deepFreeze(ordered as unknown as AuditEvent);
}
