// Messages between a sandbox host (`airlock sandbox serve --server URL`) and the control
// plane. They ride on the same runner connection as the action messages; a host says it
// offers sandboxes with the `sandbox` capability in `hello`, then `sandbox_host`.
import { z } from 'zod';
import {
  type SandboxEgressEvent,
  type SandboxEgressSpec,
  sandboxEgressEventSchema,
  sandboxEgressSchema,
} from './sandbox-egress.js';

/** Largest file carried in one frame (raw bytes; base64 makes it about 683 KiB). */
export const MAX_SANDBOX_FILE_BYTES = 512 * 1024;

/** Largest code carried in one `sandbox_exec` frame. */
export const MAX_SANDBOX_CODE_BYTES = 256 * 1024;

/** Largest output an exec through the control plane may keep (each stream). */
export const MAX_SANDBOX_OUTPUT_BYTES = 256 * 1024;

/** Host → server: what the host offers now. Sent after `welcome` and whenever it changes. */
export interface SandboxHostMessage {
  readonly type: 'sandbox_host';
  readonly backend: string;
  readonly isolation: string;
  readonly kvm: boolean;
  /** Built language packs and the hash of the whole guest image each boots (kernel, initramfs, pack). */
  readonly images: readonly { readonly pack: string; readonly hash: string }[];
  readonly capacity: {
    readonly slots_total: number;
    readonly slots_free: number;
    readonly memory_free_mb: number;
  };
  /** Host-local ids of the sandboxes alive on the host, so the server can reconcile. */
  readonly sandboxes: readonly string[];
  /** Whether the host can give a sandbox egress (absent: no, as from hosts of older builds). */
  readonly egress?: boolean;
}

/** Server → host: boot a sandbox. Limits are already decided by policy. */
export interface SandboxCreateMessage {
  readonly type: 'sandbox_create';
  readonly request_id: string;
  readonly language_pack: string;
  /** The trusted image hash; the host refuses if the image it would boot differs. */
  readonly image_hash: string;
  readonly memory_mb: number;
  readonly vcpus: number;
  readonly lifetime_s: number;
  readonly env?: Readonly<Record<string, string>>;
  /** Opt-in egress: the allowlist and the secrets (values travel only here, to the host's proxy). */
  readonly egress?: SandboxEgressSpec;
}

/** Server → host: run code (or an argv) in a sandbox, streaming output. */
export interface SandboxExecMessage {
  readonly type: 'sandbox_exec';
  readonly request_id: string;
  readonly sandbox: string;
  readonly code?: string;
  readonly argv?: readonly string[];
  readonly timeout_ms: number;
  readonly stdin?: string;
  readonly env?: Readonly<Record<string, string>>;
  readonly max_output_bytes: number;
}

/** Server → host: write a file (base64) into a sandbox. */
export interface SandboxWriteFileMessage {
  readonly type: 'sandbox_write_file';
  readonly request_id: string;
  readonly sandbox: string;
  readonly path: string;
  readonly content_b64: string;
  readonly mode?: number;
}

/** Server → host: read a file from a sandbox, at most `max_bytes`. */
export interface SandboxReadFileMessage {
  readonly type: 'sandbox_read_file';
  readonly request_id: string;
  readonly sandbox: string;
  readonly path: string;
  readonly max_bytes: number;
}

/** Server → host: destroy a sandbox (idempotent). */
export interface SandboxDestroyMessage {
  readonly type: 'sandbox_destroy';
  readonly request_id: string;
  readonly sandbox: string;
}

/** Host → server: a chunk of exec output, already redacted on the host. */
export interface SandboxOutputMessage {
  readonly type: 'sandbox_output';
  readonly request_id: string;
  readonly seq: number;
  readonly stream: 'stdout' | 'stderr';
  readonly data: string;
}

/** Host → server: the answer to one sandbox request; exactly one of `error` or a result field. */
export interface SandboxReplyMessage {
  readonly type: 'sandbox_reply';
  readonly request_id: string;
  readonly error?: { readonly code: string; readonly message: string };
  readonly sandbox?: {
    readonly id: string;
    readonly language_pack: string;
    readonly state: string;
    readonly memory_mb: number;
    readonly vcpus: number;
    readonly lifetime_s: number | null;
    readonly boot_ms: number | null;
  };
  readonly exec?: {
    readonly stdout: string;
    readonly stderr: string;
    readonly exit_code: number;
    readonly signal: number | null;
    readonly duration_ms: number;
    readonly timed_out: boolean;
    readonly truncated: boolean;
    /** Names of the redaction rules that fired on the output. */
    readonly redactions: readonly string[];
  };
  readonly file?: { readonly path: string; readonly size: number; readonly content_b64?: string };
}

/** Host → server: one egress attempt (allowed or refused) of a sandbox, for the audit trail. */
export interface SandboxEgressMessage {
  readonly type: 'sandbox_egress';
  /**
   * The event's id, unique per host: the server records an id once and acknowledges it with
   * `sandbox_egress_ack`; the host re-sends what is unacknowledged after a reconnect.
   */
  readonly id?: string;
  /** Host-local sandbox id. */
  readonly sandbox: string;
  readonly event: SandboxEgressEvent;
}

/** Server → host: these egress events are recorded (or were already); the host forgets them. */
export interface SandboxEgressAckMessage {
  readonly type: 'sandbox_egress_ack';
  readonly ids: readonly string[];
}

/** Most ids one `sandbox_egress_ack` carries. */
export const MAX_EGRESS_ACK_IDS = 1000;

/** Every sandbox message. */
export type SandboxWireMessage =
  | SandboxHostMessage
  | SandboxCreateMessage
  | SandboxExecMessage
  | SandboxWriteFileMessage
  | SandboxReadFileMessage
  | SandboxDestroyMessage
  | SandboxOutputMessage
  | SandboxReplyMessage
  | SandboxEgressMessage
  | SandboxEgressAckMessage;

const requestId = z.string().regex(/^[A-Za-z0-9_-]{1,128}$/, 'expected 1..128 characters of [A-Za-z0-9_-]');
const digest = z.string().regex(/^sha256:[0-9a-f]{64}$/, 'expected sha256:<64 lowercase hex>');
const sandboxId = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'expected 1..64 characters of [A-Za-z0-9_-]');
const egressId = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'expected 1..64 characters of [A-Za-z0-9_-]');
const packName = z.string().regex(/^[a-z][a-z0-9_-]{0,31}$/, 'expected a language pack name');
const guestPath = z
  .string()
  .min(2)
  .max(1024)
  .regex(/^\/[^\0]*$/, 'expected an absolute path without NUL');
const env = z.record(
  z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/, 'expected an environment name'),
  z.string().max(8192),
);
const base64 = z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/, 'expected base64');
const errorBody = z.strictObject({ code: z.string().min(1).max(64), message: z.string().max(4096) });

/** Zod schemas of the sandbox messages (internal to core). */
export const SANDBOX_WIRE_SCHEMAS = {
  sandbox_host: z.strictObject({
    type: z.literal('sandbox_host'),
    backend: z.string().min(1).max(64),
    isolation: z.string().min(1).max(64),
    kvm: z.boolean(),
    images: z.array(z.strictObject({ pack: packName, hash: digest })).max(64),
    capacity: z.strictObject({
      slots_total: z.int().min(0).max(100_000),
      slots_free: z.int().min(0).max(100_000),
      memory_free_mb: z.int().min(0),
    }),
    sandboxes: z.array(sandboxId).max(100_000),
    egress: z.boolean().optional(),
  }),
  sandbox_create: z.strictObject({
    type: z.literal('sandbox_create'),
    request_id: requestId,
    language_pack: packName,
    image_hash: digest,
    memory_mb: z.int().min(64).max(4096),
    vcpus: z.int().min(1).max(4),
    lifetime_s: z
      .int()
      .min(1)
      .max(7 * 24 * 3600),
    env: env.optional(),
    egress: sandboxEgressSchema.optional(),
  }),
  sandbox_exec: z
    .strictObject({
      type: z.literal('sandbox_exec'),
      request_id: requestId,
      sandbox: sandboxId,
      code: z.string().min(1).max(MAX_SANDBOX_CODE_BYTES).optional(),
      argv: z.array(z.string().max(65536)).min(1).max(4096).optional(),
      timeout_ms: z.int().min(1).max(3_600_000),
      stdin: z.string().max(MAX_SANDBOX_CODE_BYTES).optional(),
      env: env.optional(),
      max_output_bytes: z.int().min(1).max(MAX_SANDBOX_OUTPUT_BYTES),
    })
    .refine((m) => (m.code === undefined) !== (m.argv === undefined), {
      message: 'exactly one of code or argv',
      path: ['code'],
    }),
  sandbox_write_file: z.strictObject({
    type: z.literal('sandbox_write_file'),
    request_id: requestId,
    sandbox: sandboxId,
    path: guestPath,
    content_b64: base64.max(Math.ceil(MAX_SANDBOX_FILE_BYTES / 3) * 4),
    mode: z.int().min(0).max(0o7777).optional(),
  }),
  sandbox_read_file: z.strictObject({
    type: z.literal('sandbox_read_file'),
    request_id: requestId,
    sandbox: sandboxId,
    path: guestPath,
    max_bytes: z.int().min(1).max(MAX_SANDBOX_FILE_BYTES),
  }),
  sandbox_destroy: z.strictObject({ type: z.literal('sandbox_destroy'), request_id: requestId, sandbox: sandboxId }),
  sandbox_output: z.strictObject({
    type: z.literal('sandbox_output'),
    request_id: requestId,
    seq: z.int().min(0),
    stream: z.enum(['stdout', 'stderr']),
    data: z.string().max(MAX_SANDBOX_OUTPUT_BYTES),
  }),
  sandbox_egress: z.strictObject({
    type: z.literal('sandbox_egress'),
    id: egressId.optional(),
    sandbox: sandboxId,
    event: sandboxEgressEventSchema,
  }),
  sandbox_egress_ack: z.strictObject({
    type: z.literal('sandbox_egress_ack'),
    ids: z.array(egressId).min(1).max(MAX_EGRESS_ACK_IDS),
  }),
  sandbox_reply: z
    .strictObject({
      type: z.literal('sandbox_reply'),
      request_id: requestId,
      error: errorBody.optional(),
      sandbox: z
        .strictObject({
          id: sandboxId,
          language_pack: packName,
          state: z.string().min(1).max(32),
          memory_mb: z.int().min(0),
          vcpus: z.int().min(0),
          lifetime_s: z.int().min(0).nullable(),
          boot_ms: z.number().min(0).nullable(),
        })
        .optional(),
      exec: z
        .strictObject({
          stdout: z.string(),
          stderr: z.string(),
          exit_code: z.int(),
          signal: z.int().nullable(),
          duration_ms: z.number().min(0),
          timed_out: z.boolean(),
          truncated: z.boolean(),
          redactions: z.array(z.string().max(64)).max(256),
        })
        .optional(),
      file: z
        .strictObject({
          path: guestPath,
          size: z.int().min(0),
          content_b64: base64.max(Math.ceil(MAX_SANDBOX_FILE_BYTES / 3) * 4).optional(),
        })
        .optional(),
    })
    .refine(
      // An empty reply acknowledges a destroy; anything else carries one outcome.
      (m) => [m.error, m.sandbox, m.exec, m.file].filter((x) => x !== undefined).length <= 1,
      { message: 'at most one of error, sandbox, exec, file', path: ['error'] },
    ),
} as const;
