import { z } from 'zod';
import { SANDBOX_WIRE_SCHEMAS, type SandboxWireMessage } from './sandbox-messages.js';

/** Version of the runner ↔ control plane protocol, sent in `hello` and `welcome`. */
export const PROTOCOL_VERSION = 1;

/** Largest frame either side accepts, in UTF-8 bytes (1 MiB). */
export const MAX_FRAME_BYTES = 1024 * 1024;

/** Deepest JSON nesting accepted in a frame; action arguments are shallow, hostile input is not. */
export const MAX_FRAME_DEPTH = 32;

/** Final status of an attempt. */
export type ResultStatus = 'success' | 'failure' | 'validation_failed' | 'error' | 'timeout' | 'cancelled';

/** Kind of principal on whose behalf an action is requested. */
export type PrincipalType = 'user' | 'api_key' | 'oauth_client' | 'local';

/** Runner → server, first frame after the WebSocket opens. */
export interface HelloMessage {
  readonly type: 'hello';
  readonly protocol: 1;
  readonly runner: { readonly name: string; readonly id?: string };
  readonly version: string;
  readonly token?: string;
  readonly packs: readonly {
    readonly name: string;
    readonly version: string;
    readonly hash: string;
    readonly actions: readonly string[];
    /** Risk tier of each action (`read` | `change` | `destructive`), for the control plane's policy. */
    readonly action_risks?: Readonly<Record<string, 'read' | 'change' | 'destructive'>>;
    /** Per-action metadata for agent clients (MCP): title, risk and the JSON Schema of the arguments. */
    readonly action_specs?: readonly {
      readonly id: string;
      readonly title: string;
      readonly description?: string;
      readonly risk: 'read' | 'change' | 'destructive';
      readonly args_schema: Readonly<Record<string, unknown>>;
    }[];
    /** The pack's file listing, so the control plane can show what changed between hashes. */
    readonly files?: readonly { readonly path: string; readonly sha256: string }[];
  }[];
  readonly capabilities: readonly string[];
  readonly labels?: Readonly<Record<string, string>>;
  readonly outbox?: { readonly pending: number };
  /** Head of the runner's security log, so the server can notice a truncated log. */
  readonly log_head?: { readonly seq: number; readonly hash: string } | null;
}

/** Server → runner: send the contents of some files of a pack (for trust review diffs). */
export interface PackFilesRequestMessage {
  readonly type: 'pack_files_request';
  readonly request_id: string;
  readonly pack: string;
  readonly hash: string;
  readonly paths: readonly string[];
}

/** Runner → server: file contents; `content` is null for binary or oversized files. */
export interface PackFilesMessage {
  readonly type: 'pack_files';
  readonly request_id: string;
  readonly pack: string;
  readonly hash: string;
  readonly files: readonly { readonly path: string; readonly sha256: string; readonly content: string | null }[];
}

/** Server → runner, answer to `hello`. */
export interface WelcomeMessage {
  readonly type: 'welcome';
  readonly protocol: 1;
  readonly runner_id: string;
  readonly session_id: string;
  readonly server_version: string;
  readonly heartbeat_s: number;
}

/** Server → runner: execute one declared action. */
export interface RunActionMessage {
  readonly type: 'run_action';
  readonly request_id: string;
  readonly action: string;
  readonly pack: string;
  readonly pack_hash: string;
  readonly args: Readonly<Record<string, unknown>>;
  readonly limits?: Readonly<Record<string, number>>;
  readonly reason: string;
  readonly principal: { readonly type: PrincipalType; readonly id: string; readonly name?: string };
  readonly approval?: {
    readonly approvers: readonly string[];
    /** Ed25519 signature (base64url) by an approver over the canonical dispatch envelope. */
    readonly signature?: string;
    readonly key_id?: string;
    /** Envelope expiry and single-use nonce, both inside the signature. */
    readonly expires_at?: string;
    readonly nonce?: string;
    /** The approver key's certificate, signed by the organisation root key. */
    readonly cert?: {
      readonly cert: {
        readonly v: 1;
        readonly key_id: string;
        readonly public_key: string;
        readonly subject: string;
        readonly not_before: string;
        readonly not_after: string;
      };
      readonly signature: string;
    };
  };
  readonly deadline?: string;
}

/** Runner → server: the request passed the runner's checks and is starting (or was seen before). */
export interface AcceptedMessage {
  readonly type: 'accepted';
  readonly request_id: string;
}

/** Runner → server: one redacted line of output. */
export interface OutputMessage {
  readonly type: 'output';
  readonly request_id: string;
  readonly seq: number;
  readonly stream: 'stdout' | 'stderr';
  readonly line: string;
  readonly partial?: boolean;
}

/** One limit the runner clamped into the action's bounds. */
export interface ClampRecord {
  readonly name: string;
  readonly requested: number;
  readonly applied: number;
  readonly bound: 'min' | 'max';
}

/** Runner → server: final outcome; kept in the runner's outbox until acked. */
export interface ResultMessage {
  readonly type: 'result';
  readonly request_id: string;
  readonly status: ResultStatus;
  readonly exit_code: number | null;
  readonly duration_ms: number;
  readonly truncated: boolean;
  readonly output_bytes: number;
  readonly clamped: readonly ClampRecord[];
  readonly audit_hash: string;
  readonly error?: { readonly code: string; readonly message: string };
  readonly started_at?: string;
  readonly finished_at?: string;
  /** The runner's security-log event for this attempt (already redacted), mirrored by the server. */
  readonly audit_event?: Readonly<Record<string, unknown>>;
}

/** Server → runner: the result is stored; the runner may drop it from its outbox. */
export interface AckMessage {
  readonly type: 'ack';
  readonly request_id: string;
}

/** Server → runner: stop a running request. */
export interface CancelMessage {
  readonly type: 'cancel';
  readonly request_id: string;
  readonly reason?: string;
}

/** Either side: heartbeat probe. */
export interface PingMessage {
  readonly type: 'ping';
  readonly ts: number;
}

/** Either side: heartbeat answer, echoing `ts`. */
export interface PongMessage {
  readonly type: 'pong';
  readonly ts: number;
}

/** Either side: a frame was refused or a request cannot be served. */
export interface ErrorMessage {
  readonly type: 'error';
  readonly code: string;
  readonly message: string;
  readonly request_id?: string;
}

/** Every message of protocol version 1, discriminated by `type`. */
export type WireMessage =
  | HelloMessage
  | WelcomeMessage
  | RunActionMessage
  | AcceptedMessage
  | OutputMessage
  | ResultMessage
  | AckMessage
  | CancelMessage
  | PingMessage
  | PongMessage
  | ErrorMessage
  | PackFilesRequestMessage
  | PackFilesMessage
  | SandboxWireMessage;

/** The `type` of a wire message. */
export type WireMessageType = WireMessage['type'];

/** All message types, in protocol order. */
export const WIRE_MESSAGE_TYPES: readonly WireMessageType[] = Object.freeze([
  'hello',
  'welcome',
  'run_action',
  'accepted',
  'output',
  'result',
  'ack',
  'cancel',
  'ping',
  'pong',
  'error',
  'pack_files_request',
  'pack_files',
  'sandbox_host',
  'sandbox_create',
  'sandbox_exec',
  'sandbox_write_file',
  'sandbox_read_file',
  'sandbox_destroy',
  'sandbox_output',
  'sandbox_reply',
  'sandbox_egress',
  'sandbox_egress_ack',
]);

// ---- schemas: the single source of truth for validation and for docs' JSON Schemas ----

const requestId = z.string().regex(/^[A-Za-z0-9_-]{1,128}$/, 'expected 1..128 characters of [A-Za-z0-9_-]');
const digest = z.string().regex(/^sha256:[0-9a-f]{64}$/, 'expected sha256:<64 lowercase hex>');
const name = z.string().min(1).max(256);
const isoTime = z.iso.datetime({ offset: true });
const statuses = ['success', 'failure', 'validation_failed', 'error', 'timeout', 'cancelled'] as const;

const hello = z.strictObject({
  type: z.literal('hello'),
  protocol: z.literal(1),
  runner: z.strictObject({ name, id: name.optional() }),
  version: z.string().min(1).max(64),
  token: z.string().min(1).max(4096).optional(),
  packs: z
    .array(
      z.strictObject({
        name,
        version: z.string().min(1).max(64),
        hash: digest,
        actions: z.array(name).max(10_000),
        action_risks: z.record(name, z.enum(['read', 'change', 'destructive'])).optional(),
        action_specs: z
          .array(
            z.strictObject({
              id: name,
              title: z.string().max(256),
              description: z.string().max(8192).optional(),
              risk: z.enum(['read', 'change', 'destructive']),
              args_schema: z.record(z.string(), z.unknown()),
            }),
          )
          .max(10_000)
          .optional(),
        files: z
          .array(z.strictObject({ path: z.string().min(1).max(1024), sha256: z.string().regex(/^[0-9a-f]{64}$/) }))
          .max(2000)
          .optional(),
      }),
    )
    .max(1000),
  capabilities: z.array(z.string().min(1).max(64)).max(64),
  labels: z.record(z.string().min(1).max(64), z.string().max(256)).optional(),
  outbox: z.strictObject({ pending: z.int().min(0) }).optional(),
  log_head: z
    .strictObject({ seq: z.int().min(0), hash: digest })
    .nullable()
    .optional(),
});

const welcome = z.strictObject({
  type: z.literal('welcome'),
  protocol: z.literal(1),
  runner_id: name,
  session_id: name,
  server_version: z.string().min(1).max(64),
  heartbeat_s: z.int().min(1).max(3600),
});

const runAction = z.strictObject({
  type: z.literal('run_action'),
  request_id: requestId,
  action: name,
  pack: name,
  pack_hash: digest,
  args: z.record(z.string(), z.unknown()),
  limits: z.record(z.string().min(1).max(64), z.number()).optional(),
  reason: z.string().min(1).max(2000),
  principal: z.strictObject({
    type: z.enum(['user', 'api_key', 'oauth_client', 'local']),
    id: name,
    name: z.string().max(256).optional(),
  }),
  approval: z
    .strictObject({
      approvers: z.array(name).min(1).max(100),
      signature: z.string().min(1).max(4096).optional(),
      key_id: name.optional(),
      expires_at: isoTime.optional(),
      nonce: z
        .string()
        .regex(/^[A-Za-z0-9_-]{16,128}$/, 'expected 16..128 characters of [A-Za-z0-9_-]')
        .optional(),
      cert: z
        .strictObject({
          cert: z.strictObject({
            v: z.literal(1),
            key_id: name,
            public_key: z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'expected a base64url Ed25519 public key'),
            subject: name,
            not_before: isoTime,
            not_after: isoTime,
          }),
          signature: z.string().min(1).max(4096),
        })
        .optional(),
    })
    .optional(),
  deadline: isoTime.optional(),
});

const accepted = z.strictObject({ type: z.literal('accepted'), request_id: requestId });

const output = z.strictObject({
  type: z.literal('output'),
  request_id: requestId,
  seq: z.int().min(0),
  stream: z.enum(['stdout', 'stderr']),
  line: z.string(),
  partial: z.boolean().optional(),
});

const result = z.strictObject({
  type: z.literal('result'),
  request_id: requestId,
  status: z.enum(statuses),
  exit_code: z.int().nullable(),
  duration_ms: z.number().min(0),
  truncated: z.boolean(),
  output_bytes: z.int().min(0),
  clamped: z.array(z.strictObject({ name, requested: z.number(), applied: z.number(), bound: z.enum(['min', 'max']) })),
  audit_hash: digest,
  error: z.strictObject({ code: z.string().min(1).max(64), message: z.string().max(4096) }).optional(),
  started_at: isoTime.optional(),
  finished_at: isoTime.optional(),
  audit_event: z.record(z.string(), z.unknown()).optional(),
});

const packFilesRequest = z.strictObject({
  type: z.literal('pack_files_request'),
  request_id: requestId,
  pack: name,
  hash: digest,
  paths: z.array(z.string().min(1).max(1024)).min(1).max(2000),
});

const packFiles = z.strictObject({
  type: z.literal('pack_files'),
  request_id: requestId,
  pack: name,
  hash: digest,
  files: z
    .array(
      z.strictObject({
        path: z.string().min(1).max(1024),
        sha256: z.string().regex(/^[0-9a-f]{64}$/),
        content: z.string().nullable(),
      }),
    )
    .max(2000),
});

const ack = z.strictObject({ type: z.literal('ack'), request_id: requestId });

const cancel = z.strictObject({
  type: z.literal('cancel'),
  request_id: requestId,
  reason: z.string().max(2000).optional(),
});

const ping = z.strictObject({ type: z.literal('ping'), ts: z.number() });
const pong = z.strictObject({ type: z.literal('pong'), ts: z.number() });

const error = z.strictObject({
  type: z.literal('error'),
  code: z.string().min(1).max(64),
  message: z.string().max(4096),
  request_id: requestId.optional(),
});

/** Zod schema per message type (internal to core: the surface is parse/encode/JSON Schema). */
export const WIRE_SCHEMAS = {
  hello,
  welcome,
  run_action: runAction,
  accepted,
  output,
  result,
  ack,
  cancel,
  ping,
  pong,
  error,
  pack_files_request: packFilesRequest,
  pack_files: packFiles,
  ...SANDBOX_WIRE_SCHEMAS,
} as const satisfies Record<WireMessageType, z.ZodType>;

// Compile-time check that every value of the hand-written types is accepted by its schema.
type Writable<T> = T extends readonly (infer U)[]
  ? Writable<U>[]
  : T extends object
    ? { -readonly [K in keyof T]: Writable<T[K]> }
    : T;
type Accepts<S extends z.ZodType, T> = Writable<T> extends z.input<S> ? true : never;
const _typesMatchSchemas: {
  [K in WireMessageType]: Accepts<(typeof WIRE_SCHEMAS)[K], Extract<WireMessage, { type: K }>>;
} = {
  hello: true,
  welcome: true,
  run_action: true,
  accepted: true,
  output: true,
  result: true,
  ack: true,
  cancel: true,
  ping: true,
  pong: true,
  error: true,
  pack_files_request: true,
  pack_files: true,
  sandbox_host: true,
  sandbox_create: true,
  sandbox_exec: true,
  sandbox_write_file: true,
  sandbox_read_file: true,
  sandbox_destroy: true,
  sandbox_output: true,
  sandbox_reply: true,
  sandbox_egress: true,
  sandbox_egress_ack: true,
};
void _typesMatchSchemas;
