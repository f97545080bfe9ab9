/**
 * Sandbox errors. Every failure the daemon reports carries a stable `code`
 * (snake_case, never renamed once shipped) and the HTTP status it maps to, so
 * the HTTP layer, the CLI and the guest channel share one table. These codes
 * are sandbox-local on purpose: `@airlock/core`'s table is for the action path.
 */

/** Stable sandbox error codes: HTTP status and meaning. Pinned by a test: change deliberately. */
export const SANDBOX_ERROR_CODES = {
  invalid_request: {
    status: 400,
    meaning: 'A request body, query or path parameter failed validation; the message names the field.',
  },
  not_found: { status: 404, meaning: 'No sandbox, process or route with that name.' },
  method_not_allowed: { status: 405, meaning: 'The route exists but not with this HTTP method.' },
  payload_too_large: { status: 413, meaning: 'A request body or uploaded file exceeds its limit.' },
  unknown_language_pack: { status: 400, meaning: 'The requested language pack is not built or not known.' },
  sandbox_not_running: {
    status: 409,
    meaning: 'The sandbox is not in the running state (failed, stopping or deleted).',
  },
  sandbox_expired: {
    status: 410,
    meaning: 'The sandbox reached its lifetime (lifetime_s) and was destroyed.',
  },
  capacity_exceeded: {
    status: 429,
    meaning: 'Creating another sandbox would exceed the daemon memory or count limit.',
  },
  boot_timeout: { status: 504, meaning: 'The guest did not answer on its control channel within the boot deadline.' },
  boot_failed: { status: 502, meaning: 'The VM monitor exited or the guest failed before it became ready.' },
  guest_protocol: {
    status: 502,
    meaning: 'The guest sent a malformed, oversized or unexpected frame; the channel was reset.',
  },
  guest_error: {
    status: 502,
    meaning: 'The guest agent reported a failure (a system call, a limit); the message says which.',
  },
  guest_lost: { status: 502, meaning: 'The guest stopped answering or its VM exited while a request was in flight.' },
  file_not_found: {
    status: 404,
    meaning: 'The file to download does not exist in the sandbox or is not a regular file.',
  },
  backend_unavailable: {
    status: 503,
    meaning: 'The selected backend cannot run on this host (binary, KVM or image missing).',
  },
  image_missing: {
    status: 503,
    meaning: 'A kernel, initramfs or language-pack image is missing; run `airlock sandbox images build`.',
  },
  image_corrupt: { status: 503, meaning: 'An image does not match the checksum recorded when it was built.' },
  image_build_failed: { status: 500, meaning: 'Building the guest images failed; the message names the step.' },
  internal: { status: 500, meaning: 'An unexpected failure in the daemon; a bug or an environment fault.' },
} as const;

/** One of the stable sandbox error codes. */
export type SandboxErrorCode = keyof typeof SANDBOX_ERROR_CODES;

/** An error raised by the sandbox daemon; crosses the HTTP boundary as `{error: {code, message}}`. */
export class SandboxError extends Error {
  override readonly name: string = 'SandboxError';
  readonly code: SandboxErrorCode;
  readonly status: number;
  readonly data: Readonly<Record<string, unknown>> | undefined;

  constructor(code: SandboxErrorCode, message: string, data?: Record<string, unknown>) {
    super(message);
    this.code = code;
    this.status = SANDBOX_ERROR_CODES[code].status;
    this.data = data === undefined ? undefined : Object.freeze({ ...data });
  }

  /** The JSON body the HTTP API answers with. */
  toBody(): { error: { code: SandboxErrorCode; message: string } } {
    return { error: { code: this.code, message: this.message } };
  }
}

/** Turn anything thrown into a SandboxError; unknown failures become `internal`, never a client fault. */
export function toSandboxError(err: unknown): SandboxError {
  if (err instanceof SandboxError) return err;
  return new SandboxError('internal', err instanceof Error ? err.message : String(err));
}
