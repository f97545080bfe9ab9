// A small client for the control-plane JSON API, used by every page.

export interface FieldError {
  readonly field: string;
  readonly message: string;
}

/** An error the API returned (or a network failure), in words. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly fields: readonly FieldError[] = [],
  ) {
    super(message);
  }
  /** The route does not exist on this server: the feature is not in this build. */
  get notAvailable(): boolean {
    return this.status === 404 && this.message.startsWith('no route ');
  }
  /** The message for one form field (`body.reason` → "say why you run it"). */
  fieldMessage(name: string): string | undefined {
    return this.fields.find(
      (f) => f.field === name || f.field === `body.${name}` || f.field.startsWith(`body.${name}.`),
    )?.message;
  }
}

let csrfToken: string | undefined;
export function setCsrfToken(t: string | undefined): void {
  csrfToken = t;
}

/** Called when any request comes back 401 (session ended). */
let onUnauthorized: () => void = () => {};
export function setUnauthorizedHandler(fn: () => void): void {
  onUnauthorized = fn;
}

export async function api<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && method !== 'HEAD' && csrfToken !== undefined) headers['x-csrf-token'] = csrfToken;
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers,
      credentials: 'same-origin',
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  } catch {
    throw new ApiError(0, 'network', 'cannot reach the airlock server; check that it is running');
  }
  const text = await res.text();
  let json: unknown;
  try {
    json = text === '' ? undefined : JSON.parse(text);
  } catch {
    json = undefined;
  }
  if (!res.ok) {
    const e = (json as { error?: { code?: string; message?: string; fields?: FieldError[] } } | undefined)?.error;
    const err = new ApiError(
      res.status,
      e?.code ?? `http_${res.status}`,
      e?.message ?? `the server answered ${res.status} ${res.statusText}`,
      e?.fields ?? [],
    );
    if (res.status === 401 && !path.endsWith('/auth/login')) onUnauthorized();
    throw err;
  }
  return json as T;
}

/** Download a URL's body (same-origin, with the session cookie) as a file. */
export function saveBlob(blob: Blob, filename: string): void {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 5000);
}

// ---- API shapes (as the control plane returns them) ----

export type Permission =
  | 'runs:read'
  | 'runs:write'
  | 'runners:read'
  | 'runners:write'
  | 'packs:read'
  | 'packs:trust'
  | 'audit:read'
  | 'users:read'
  | 'users:write'
  | 'keys:write';

export interface Me {
  user: { id: string; username: string; role: string; org: { id: string; name: string } };
  kind: 'user' | 'api_key';
  permissions: Permission[];
  must_change_password: boolean;
  csrf_token?: string;
}

/** An action as a runner advertises it: an id today; richer objects once the API offers them. */
export type AdvertisedAction =
  | string
  | { id: string; title?: string; description?: string; risk?: Risk; args?: Record<string, ArgSpec> };
export type Risk = 'read' | 'change' | 'destructive';
export interface ArgSpec {
  type?: string;
  description?: string;
  default?: unknown;
  enum?: string[];
  min?: number;
  max?: number;
  pattern?: string;
  max_length?: number;
  required?: boolean;
}

export interface Runner {
  id: string;
  name: string;
  labels: Record<string, string>;
  status: 'online' | 'offline' | 'pending' | 'revoked';
  online: boolean;
  version: string | null;
  created_at: string;
  last_seen_at: string | null;
  capabilities: string[];
  packs: {
    name: string;
    version: string;
    hash: string;
    actions: AdvertisedAction[];
    action_risks?: Record<string, Risk>;
  }[];
}

export interface Pack {
  id: string;
  name: string;
  version: string;
  hash: string;
  status: 'pending' | 'trusted' | 'rejected';
  first_seen_at: string;
  first_seen_runner: string | null;
  decided_by: string | null;
  decided_at: string | null;
  comment: string | null;
}
export interface PackDetail extends Pack {
  base: Pack | null;
  files: {
    path: string;
    change: 'added' | 'removed' | 'changed' | 'unchanged';
    old_sha256: string | null;
    new_sha256: string | null;
    diff: string | null;
  }[];
}

export interface Run {
  id: string;
  runner_id: string;
  action: string;
  pack: string;
  pack_hash: string;
  args: Record<string, unknown>;
  limits: Record<string, number>;
  reason: string;
  requested_by: { type: string; id: string; name?: string };
  approved_by?: { type: string; id: string; name?: string } | null;
  decided_by_rule?: string | null;
  status: string;
  exit_code: number | null;
  created_at: string;
  dispatched_at: string | null;
  started_at: string | null;
  finished_at: string | null;
  duration_ms: number | null;
  truncated: boolean;
  output_bytes: number | null;
  clamped: unknown[];
  audit_hash: string | null;
  error: { code: string; message: string } | null;
  cancel_requested: boolean;
}
export interface OutputLine {
  seq: number;
  stream: string;
  line: string;
  partial: boolean;
}

export const FINAL_STATUSES = ['success', 'failure', 'validation_failed', 'error', 'timeout', 'cancelled'];
export const isFinal = (s: string): boolean => FINAL_STATUSES.includes(s);

export interface AuditEvent {
  seq: number;
  id: string;
  time: string;
  kind: string;
  principal: { id: string; type: string; name?: string } | null;
  runner: string | null;
  action: string | null;
  status: string;
  reason: string | null;
  hash: string;
  prev: string;
  [k: string]: unknown;
}

export interface ApiKey {
  id: string;
  name: string;
  prefix: string;
  scopes: Permission[];
  user: { id: string; username: string };
  expires_at: string | null;
  revoked_at: string | null;
  created_at: string;
  last_used_at: string | null;
}
export interface User {
  id: string;
  username: string;
  role: 'owner' | 'admin' | 'operator' | 'viewer';
  disabled: boolean;
  must_change_password: boolean;
  created_at: string;
}

/** The routes this server offers ("GET /api/v1/runs/{id}"), from its OpenAPI document. */
export async function loadRouteSet(): Promise<Set<string>> {
  const doc = await api<{ paths: Record<string, Record<string, unknown>> }>('GET', '/api/v1/openapi.json');
  const set = new Set<string>();
  for (const [p, ops] of Object.entries(doc.paths))
    for (const m of Object.keys(ops)) set.add(`${m.toUpperCase()} ${p}`);
  return set;
}

/** A run held for approval, as approvers see it (arguments and reason redacted). */
export interface Approval {
  run_id: string;
  state: 'pending' | 'approved' | 'denied' | 'expired';
  rule: string;
  risk: string;
  action: string;
  runner: { id: string; name: string };
  args: Record<string, unknown>;
  limits: Record<string, number>;
  reason: string;
  requested_by: Record<string, unknown>;
  requester_user_id: string;
  approvers_required: number;
  approver_role: string;
  approver_group: string | null;
  signature_required: boolean;
  expires_at: string;
  created_at: string;
  decided_at: string | null;
  votes: { approver: { id: string; name: string }; vote: string; comment: string; signed: boolean; at: string }[];
}

export type RuleDecision = 'allow' | 'require_approval' | 'deny';
export interface PolicyRule {
  id: string;
  kind: 'tier' | 'override';
  priority: number;
  tier: string | null;
  action: string | null;
  selector: Record<string, string>;
  decision: RuleDecision | null;
  approvers: number | null;
  approver_role: string | null;
  approver_group: string | null;
  limits: Record<string, number> | null;
  pin_args: Record<string, string> | null;
  comment: string | null;
  created_by: string;
  updated_at: string;
}
export interface PolicySettings {
  signed_tiers: Risk[];
  root_public_key: string | null;
  webhook_url: string | null;
  webhook_secret_set: boolean;
  approval_ttl_s: number;
}
export interface Grant {
  id: string;
  subject: { type: 'user' | 'api_key'; id: string };
  action: string;
  selector: Record<string, string>;
  arg_constraints: Record<string, string>;
  max_uses: number | null;
  uses: number;
  expires_at: string | null;
  revoked_at: string | null;
  comment: string | null;
  created_by: string;
  created_at: string;
}
export interface Explanation {
  decision: RuleDecision;
  rule: string;
  risk: string;
  offered: boolean;
  message?: string;
  approvers?: number;
  approver_role?: string;
  signature_required?: boolean;
  limits?: Record<string, number>;
  grant?: string;
  trace?: string[];
}
export interface ApproverKey {
  key_id: string;
  user: { id: string; username: string | null };
  subject: string;
  public_key: string;
  not_after: string;
  enrolled_at: string;
  revoked_at: string | null;
  state: 'active' | 'expired' | 'revoked';
}
export interface ApproverGroup {
  id: string;
  name: string;
  members: { id: string; username: string | null }[];
}
export interface OAuthAuthorization {
  id: string;
  client: { id: string; name: string };
  user: { id: string; username: string | null };
  scopes: string[];
  created_at: string;
  last_refreshed_at: string;
  state: 'active' | 'expired' | 'revoked';
}
export interface OAuthRequest {
  id: string;
  client: { id: string; name: string; redirect_uri: string; redirect_host: string };
  scopes: string[];
  resource: string;
  expires_at: string;
  decided: boolean;
}
