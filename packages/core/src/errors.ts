/**
 * Typed errors. Every error that airlock raises carries a stable, documented
 * `code` (snake_case, never renamed once shipped) and a message for a person.
 *
 * Two families:
 * - {@link AirlockError}: raised and handled inside a process (code + data).
 * - {@link WireError}: crosses a boundary (HTTP, WebSocket, MCP); adds the
 *   HTTP status a server answers with. A catch-all maps to `internal`, never
 *   to a client-fault code.
 */

/** Stable error codes with their meaning. Pinned by a test: change deliberately. */
export const ERROR_CODES = {
  internal: 'An unexpected failure inside airlock; a bug or an environment fault.',
  invalid_yaml: 'A YAML document could not be parsed.',
  invalid_spec: 'A pack or action file does not match the pack format.',
  invalid_args: 'Action arguments failed validation.',
  invalid_limits: 'Requested limits are malformed (not numbers, unknown names).',
  invalid_template: 'An argv template is malformed or refers to an undeclared argument.',
  invalid_message: 'A wire-protocol frame is malformed or of an unknown type.',
  invalid_config: 'A configuration file or value is invalid.',
  unknown_action: 'The requested action is not declared by any loaded pack.',
  unknown_pack: 'The requested pack is not loaded.',
  pack_hash_mismatch: 'The pack hash differs from the trusted hash.',
  script_tampered: 'A script changed on disk since its pack was loaded.',
  binary_not_found: 'A required binary was not found on the configured PATH.',
  spawn_failed: 'The operating system refused to start the process.',
  audit_chain_broken: 'The audit hash chain failed verification.',
  not_available: 'This feature is not available in this build yet.',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/** An error raised and handled inside one process. */
export class AirlockError extends Error {
  override readonly name: string = 'AirlockError';
  readonly code: ErrorCode;
  readonly data: Readonly<Record<string, unknown>> | undefined;

  constructor(code: ErrorCode, message: string, data?: Record<string, unknown>) {
    super(message);
    this.code = code;
    this.data = data === undefined ? undefined : Object.freeze({ ...data });
  }

  toJSON(): { code: ErrorCode; message: string; data?: Readonly<Record<string, unknown>> } {
    return this.data === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, data: this.data };
  }
}

/** An error that crosses a process boundary, with the HTTP status to use. */
export class WireError extends AirlockError {
  override readonly name: string = 'WireError';
  readonly status: number;

  constructor(code: ErrorCode, status: number, message: string, data?: Record<string, unknown>) {
    super(code, message, data);
    this.status = status;
  }
}

/** Turn anything thrown into an AirlockError; unknown failures become `internal`. */
export function toAirlockError(err: unknown): AirlockError {
  if (err instanceof AirlockError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new AirlockError('internal', message);
}

/** A result for operations that report partial progress or expected refusals. */
export type Result<T, E> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: E };

export function ok<T>(value: T): { readonly ok: true; readonly value: T } {
  return { ok: true, value };
}

export function err<E>(error: E): { readonly ok: false; readonly error: E } {
  return { ok: false, error };
}
