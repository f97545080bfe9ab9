/**
 * What the MCP tools need from a control plane. Two implementations: the server's in-process
 * one (for `/mcp`) and `HttpBackend` over the REST API (for the `airlock mcp` stdio bridge).
 * Every call acts as one principal and is authorised by the control plane exactly like the
 * REST API; the tools add nothing to what the principal may do.
 */

/** Risk tier of an action; `unknown` when the runner did not advertise it (treated as destructive). */
export type ActionRisk = 'read' | 'change' | 'destructive' | 'unknown';

export interface RunnerInfo {
  readonly id: string;
  readonly name: string;
  readonly status: string;
  readonly online: boolean;
  readonly labels: Readonly<Record<string, string>>;
  readonly version: string | null;
  readonly capabilities: readonly string[];
  readonly packs: readonly {
    readonly name: string;
    readonly version: string;
    readonly hash: string;
    readonly actions: readonly string[];
  }[];
}

export interface ActionInfo {
  /** Runner name. */
  readonly runner: string;
  readonly runner_id: string;
  readonly runner_online: boolean;
  /** `namespace.action`. */
  readonly id: string;
  readonly title: string;
  readonly description: string;
  readonly risk: ActionRisk;
  readonly pack: string;
  readonly pack_version: string;
  readonly pack_hash: string;
  /** Whether the organisation trusts this pack hash (an untrusted pack is not dispatched). */
  readonly trusted: boolean;
  /** JSON Schema of the arguments (advisory; the runner validates authoritatively). */
  readonly args_schema: Readonly<Record<string, unknown>>;
}

/** A run as the REST API shows it (the fields the tools use). */
export interface RunInfo {
  readonly id: string;
  readonly runner_id: string;
  readonly action: string;
  readonly status: string;
  readonly exit_code: number | null;
  readonly created_at: string;
  readonly finished_at: string | null;
  readonly duration_ms: number | null;
  readonly truncated: boolean;
  readonly audit_hash: string | null;
  readonly error: { readonly code: string; readonly message: string } | null;
  readonly cancel_requested?: boolean;
  readonly reason?: string;
}

export interface OutputLine {
  readonly seq: number;
  readonly stream: string;
  readonly line: string;
  readonly partial: boolean;
}

export interface RunRequest {
  readonly runner: string;
  readonly action: string;
  readonly args: Record<string, unknown>;
  readonly limits: Record<string, number>;
  readonly reason: string;
}

/** A refusal from the control plane, with the fields at fault when there are any. */
export class BackendError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status = 400,
    readonly fields: readonly { readonly field: string; readonly message: string }[] = [],
  ) {
    super(message);
    this.name = 'BackendError';
  }
}

/** Statuses after which a run never changes again. Anything else (queued, running, pending_approval, …) is "pending". */
export const FINAL_RUN_STATUSES: readonly string[] = [
  'success',
  'failure',
  'validation_failed',
  'error',
  'timeout',
  'cancelled',
];

export function isFinalStatus(status: string): boolean {
  return FINAL_RUN_STATUSES.includes(status);
}

/** A sandbox as the control plane shows it (the fields the tools use). */
export interface SandboxInfo {
  readonly id: string;
  readonly state: string;
  readonly language_pack: string;
  readonly image_hash: string;
  readonly host: { readonly id: string; readonly name?: string };
  readonly limits: { readonly memory_mb: number; readonly vcpus: number; readonly lifetime_s: number };
  readonly created_at: string;
  readonly expires_at: string;
  readonly end_reason: string | null;
  readonly exec_count: number;
  readonly cpu_seconds: number;
}

/** The outcome of code run in a sandbox (output already redacted). */
export interface SandboxExecInfo {
  readonly stdout: string;
  readonly stderr: string;
  readonly exit_code: number;
  readonly signal: number | null;
  readonly duration_ms: number;
  readonly timed_out: boolean;
  readonly truncated: boolean;
  readonly redactions: readonly string[];
  readonly audit_hash: string;
}

/** Sandboxes under the control plane's policy and audit, as one principal. */
export interface SandboxApi {
  /** Whether the organisation has a sandbox host at all (the tools are offered only then). */
  available(): Promise<boolean>;
  create(req: {
    language_pack: string;
    memory_mb?: number;
    vcpus?: number;
    lifetime_s?: number;
    env?: Record<string, string>;
    /** Opt-in egress: allowlisted `host:port` pairs and secrets swapped in on the host (never seen by the guest). */
    egress?: {
      allow: string[];
      secrets?: { name: string; value: string; hosts: string[] }[];
    };
  }): Promise<SandboxInfo>;
  list(): Promise<SandboxInfo[]>;
  exec(
    id: string,
    req: { code: string; timeout_ms?: number; stdin?: string },
    onOutput: (stream: 'stdout' | 'stderr', data: string) => void,
    signal: AbortSignal,
  ): Promise<SandboxExecInfo>;
  writeFile(id: string, path: string, content: string): Promise<{ path: string; size: number }>;
  readFile(id: string, path: string): Promise<{ path: string; size: number; content_b64: string; text: string | null }>;
  destroy(id: string): Promise<SandboxInfo>;
}

export interface AirlockBackend {
  /** Sandboxes, when the control plane offers them. */
  readonly sandboxes?: SandboxApi;
  /** Effective permissions of the principal right now (role ∩ key or token scopes). */
  permissions(): Promise<ReadonlySet<string>>;
  listRunners(): Promise<RunnerInfo[]>;
  listActions(): Promise<ActionInfo[]>;
  createRun(req: RunRequest): Promise<RunInfo>;
  getRun(id: string): Promise<RunInfo>;
  /** Output lines with seq > after, in order. */
  getOutput(id: string, after: number, limit: number): Promise<{ lines: OutputLine[] }>;
  /**
   * Follow a run: call `onOutput` for each new line and `onStatus` for each status change, and
   * resolve with the run once it is final or when `signal` aborts (then with its current state).
   */
  watchRun(
    id: string,
    handlers: { onOutput(line: OutputLine): void; onStatus(run: RunInfo): void },
    signal: AbortSignal,
  ): Promise<RunInfo>;
  cancelRun(id: string, reason: string): Promise<RunInfo>;
  /** Where a person looks at (and approves) a run. */
  runUrl(id: string): string;
}
