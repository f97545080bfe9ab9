// Row types of the sandbox tables (migration 0600). Kept here rather than in db/schema.ts:
// the module reaches them through `kysely.withTables<SandboxTables>()`.

/** A sandbox's lifecycle on the control plane. `lost`: its host went away or no longer has it. */
export type SandboxRowState = 'creating' | 'running' | 'destroyed' | 'failed' | 'lost';

export type SandboxesTable = {
  id: string;
  org_id: string;
  /** Runner id of the sandbox host. */
  host_id: string;
  /** The host's own id for it (`sb_…`), once created. */
  host_sandbox_id: string | null;
  owner_user_id: string;
  /** Principal record (JSON) of who created it. */
  created_by: string;
  language_pack: string;
  image_hash: string;
  memory_mb: number;
  vcpus: number;
  lifetime_s: number;
  state: SandboxRowState;
  created_at: string;
  expires_at: string;
  ended_at: string | null;
  end_reason: string | null;
  exec_count: number;
  cpu_ms: number;
  /**
   * Egress summary (migration 1000), JSON `{allow, secrets: [{name, hosts}]}`: secret NAMES
   * and bound hosts, never values. Null: no egress, or a row created before the column.
   */
  egress: string | null;
};

export type SandboxExecsTable = {
  id: string;
  sandbox_id: string;
  org_id: string;
  user_id: string;
  started_at: string;
  duration_ms: number;
  /** Charged CPU time: wall time of the exec × the sandbox's vCPUs (an upper bound of real CPU use). */
  cpu_ms: number;
  exit_code: number | null;
  status: string;
};

export type SandboxPoliciesTable = {
  org_id: string;
  body: string;
  updated_by: string;
  updated_at: string;
};

/** Egress event ids a host reported and the server recorded (migration 1100). */
export type EgressSeenTable = {
  host_id: string;
  event_id: string;
  recorded_at: string;
};

// A type alias (not an interface) so it satisfies Kysely's `Record<string, …>` constraint.
export type SandboxTables = {
  sandboxes: SandboxesTable;
  sandbox_execs: SandboxExecsTable;
  sandbox_policies: SandboxPoliciesTable;
  egress_seen: EgressSeenTable;
};
