import type { Generated } from 'kysely';

// Portable column conventions (SQLite and Postgres alike): ids are text, times are ISO-8601
// UTC text (sortable), booleans are integers 0/1, structured values are JSON text.

export interface OrgsTable {
  id: string;
  name: string;
  created_at: string;
}

export type Role = 'owner' | 'admin' | 'operator' | 'viewer';

export interface UsersTable {
  id: string;
  org_id: string;
  username: string;
  password_hash: string;
  role: Role;
  disabled: number;
  must_change_password: number;
  created_at: string;
}

export interface SessionsTable {
  /** sha256 of the session token; the token itself lives only in the cookie. */
  id: string;
  user_id: string;
  csrf_token: string;
  created_at: string;
  expires_at: string;
  last_seen_at: string;
}

export interface ApiKeysTable {
  id: string;
  org_id: string;
  user_id: string;
  name: string;
  /** Public, unique prefix shown in listings (`alk_ab12cd34`). */
  prefix: string;
  key_hash: string;
  /** JSON array of scopes. */
  scopes: string;
  expires_at: string | null;
  revoked_at: string | null;
  created_at: string;
  last_used_at: string | null;
}

export type RunnerStatus = 'pending' | 'online' | 'offline' | 'revoked';

export interface RunnersTable {
  id: string;
  org_id: string;
  name: string;
  /** JSON object of labels. */
  labels: string;
  status: RunnerStatus;
  version: string | null;
  bootstrap_hash: string | null;
  bootstrap_expires_at: string | null;
  token_hash: string | null;
  token_prefix: string | null;
  /** JSON of the last `hello` (packs, capabilities). */
  state: string | null;
  created_at: string;
  last_seen_at: string | null;
  revoked_at: string | null;
  /** Latest runner security-log head the server has seen. */
  chain_seq: number | null;
  chain_hash: string | null;
  /** Session holding the runner's WebSocket, and on which instance (null when offline). */
  session_id?: string | null | undefined;
  instance_id?: string | null | undefined;
}

/** One control-plane instance sharing the database, with its liveness heartbeat. */
export interface ClusterInstancesTable {
  id: string;
  started_at: string;
  heartbeat_at: string;
}

export type PackTrust = 'pending' | 'trusted' | 'rejected';

export interface PacksTable {
  id: string;
  org_id: string;
  name: string;
  hash: string;
  version: string;
  status: PackTrust;
  /** JSON listing [{path, sha256}] as advertised. */
  files: string | null;
  first_seen_at: string;
  first_seen_runner: string | null;
  decided_by: string | null;
  decided_at: string | null;
  comment: string | null;
}

export type RunStatus =
  | 'pending_approval'
  | 'queued'
  | 'dispatched'
  | 'running'
  | 'success'
  | 'failure'
  | 'validation_failed'
  | 'error'
  | 'timeout'
  | 'cancelled';

export interface RunsTable {
  id: string;
  org_id: string;
  runner_id: string;
  action: string;
  pack_name: string;
  pack_hash: string;
  /** JSON of the arguments as requested (shown redacted). */
  args: string;
  limits: string;
  reason: string;
  /** JSON principal {type, id, name}. */
  requested_by: string;
  status: RunStatus;
  exit_code: number | null;
  created_at: string;
  dispatched_at: string | null;
  started_at: string | null;
  finished_at: string | null;
  duration_ms: number | null;
  truncated: number;
  output_bytes: number;
  clamped: string | null;
  audit_hash: string | null;
  error_code: string | null;
  error_message: string | null;
  cancel_requested: number;
}

export interface RunOutputTable {
  run_id: string;
  seq: number;
  stream: 'stdout' | 'stderr';
  line: string;
  partial: number;
}

export interface AuditEventsTable {
  seq: number;
  org_id: string | null;
  id: string;
  time: string;
  kind: string;
  actor: string;
  runner: string;
  action: string;
  status: string;
  /** The full canonical event JSON (what the hash covers, plus the hash). */
  body: string;
  prev: string;
  hash: string;
}

export interface RunnerEventsTable {
  runner_id: string;
  seq: number;
  time: string;
  action: string;
  status: string;
  body: string;
  prev: string;
  hash: string;
}

export interface AuditCheckpointsTable {
  id: Generated<number>;
  seq: number;
  hash: string;
  time: string;
  key_id: string;
  signature: string;
}

export interface PackFilesTable {
  pack_id: string;
  path: string;
  sha256: string;
  /** UTF-8 text, or null for binary or oversized files. */
  content: string | null;
}

export interface PolicyRulesTable {
  id: string;
  org_id: string;
  kind: 'tier' | 'override';
  priority: number;
  tier: string | null;
  action: string | null;
  /** JSON label selector. */
  selector: string;
  decision: 'allow' | 'require_approval' | 'deny' | null;
  approvers: number | null;
  approver_role: Role | null;
  /** Approvers must also be members of this approver group (id), when set. */
  approver_group?: string | null | undefined;
  /** JSON {limit: upper bound}. */
  limits: string | null;
  /** JSON {arg: regex}. */
  pin_args: string | null;
  comment: string | null;
  created_by: string;
  created_at: string;
  updated_at: string;
}

export interface PolicyScopesTable {
  subject_type: 'user' | 'api_key';
  subject_id: string;
  org_id: string;
  /** JSON label selector, or null. */
  selector: string | null;
  /** JSON array of runner ids or names, or null. */
  runners: string | null;
  updated_at: string;
}

export interface PolicyGrantsTable {
  id: string;
  org_id: string;
  subject_type: 'user' | 'api_key';
  subject_id: string;
  action: string;
  selector: string;
  arg_constraints: string;
  max_uses: number | null;
  uses: number;
  expires_at: string | null;
  revoked_at: string | null;
  comment: string | null;
  created_by: string;
  created_at: string;
}

export interface PolicySettingsTable {
  org_id: string;
  /** JSON array of tiers that need an approver signature. */
  signed_tiers: string;
  root_public_key: string | null;
  webhook_url: string | null;
  webhook_secret: string | null;
  approval_ttl_s: number;
  updated_at: string;
}

export interface RunApprovalsTable {
  run_id: string;
  org_id: string;
  state: 'pending' | 'approved' | 'denied' | 'expired';
  rule: string;
  risk: string;
  requester_user_id: string;
  approvers_required: number;
  approver_role: Role;
  /** Approvers must be members of this approver group (id), when set. */
  approver_group?: string | null | undefined;
  signature_required: number;
  runner_name: string;
  nonce: string;
  envelope_expires_at: string;
  expires_at: string;
  created_at: string;
  decided_at: string | null;
}

export interface ApprovalVotesTable {
  run_id: string;
  approver_id: string;
  org_id: string;
  approver_name: string;
  vote: 'approve' | 'deny';
  comment: string;
  signature: string | null;
  /** JSON signed approver certificate. */
  cert: string | null;
  created_at: string;
}

/** Every table, for Kysely. */
export interface Database {
  orgs: OrgsTable;
  users: UsersTable;
  sessions: SessionsTable;
  api_keys: ApiKeysTable;
  runners: RunnersTable;
  cluster_instances: ClusterInstancesTable;
  packs: PacksTable;
  runs: RunsTable;
  run_output: RunOutputTable;
  audit_events: AuditEventsTable;
  runner_events: RunnerEventsTable;
  audit_checkpoints: AuditCheckpointsTable;
  pack_files: PackFilesTable;
  policy_rules: PolicyRulesTable;
  policy_scopes: PolicyScopesTable;
  policy_grants: PolicyGrantsTable;
  policy_settings: PolicySettingsTable;
  run_approvals: RunApprovalsTable;
  approval_votes: ApprovalVotesTable;
}
