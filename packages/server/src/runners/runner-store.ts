import { randomUUID } from 'node:crypto';
import { hashToken, newToken, tokenMatches, tokenPrefix } from '../auth/tokens.js';
import type { Db } from '../db/database.js';
import type { RunnersTable } from '../db/schema.js';

/** How long a bootstrap key stays valid. */
export const BOOTSTRAP_TTL_MS = 24 * 60 * 60 * 1000;

/** A runner as the API shows it. */
export interface RunnerView {
  readonly id: string;
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly status: RunnersTable['status'];
  readonly online: boolean;
  readonly version: string | null;
  readonly created_at: string;
  readonly last_seen_at: string | null;
  readonly capabilities: string[];
  readonly packs: {
    name: string;
    version: string;
    hash: string;
    actions: string[];
    action_risks?: Record<string, 'read' | 'change' | 'destructive'>;
    action_specs?: {
      id: string;
      title: string;
      description?: string;
      risk: 'read' | 'change' | 'destructive';
      args_schema: Record<string, unknown>;
    }[];
  }[];
}

/** The `hello` a runner last sent, as stored. */
export interface RunnerState {
  packs: {
    name: string;
    version: string;
    hash: string;
    actions: string[];
    files?: { path: string; sha256: string }[];
    action_risks?: Record<string, 'read' | 'change' | 'destructive'>;
    action_specs?: {
      id: string;
      title: string;
      description?: string;
      risk: 'read' | 'change' | 'destructive';
      args_schema: Record<string, unknown>;
    }[];
  }[];
  capabilities: string[];
  labels?: Record<string, string>;
}

export function parseState(row: Pick<RunnersTable, 'state'>): RunnerState {
  if (row.state === null) return { packs: [], capabilities: [] };
  return JSON.parse(row.state) as RunnerState;
}

export function runnerView(row: RunnersTable, online: boolean): RunnerView {
  const state = parseState(row);
  return {
    id: row.id,
    name: row.name,
    labels: JSON.parse(row.labels) as Record<string, string>,
    status: row.status === 'revoked' ? 'revoked' : online ? 'online' : row.status === 'pending' ? 'pending' : 'offline',
    online,
    version: row.version,
    created_at: row.created_at,
    last_seen_at: row.last_seen_at,
    capabilities: state.capabilities,
    // Risk and argument schemas, when the runner advertises them, feed the dashboard's
    // catalog (risk badges, typed forms) and MCP's list_actions.
    packs: state.packs.map((p) => ({
      name: p.name,
      version: p.version,
      hash: p.hash,
      actions: p.actions,
      ...(p.action_risks === undefined ? {} : { action_risks: p.action_risks }),
      ...(p.action_specs === undefined ? {} : { action_specs: p.action_specs }),
    })),
  };
}

/** Create a runner and its one-time bootstrap key. */
export async function createRunner(
  db: Db,
  orgId: string,
  name: string,
  labels: Record<string, string>,
): Promise<{ row: RunnersTable; bootstrapKey: string }> {
  const key = newToken('alb');
  const now = new Date();
  const row: RunnersTable = {
    id: randomUUID(),
    org_id: orgId,
    name,
    labels: JSON.stringify(labels),
    status: 'pending',
    version: null,
    bootstrap_hash: key.hash,
    bootstrap_expires_at: new Date(now.getTime() + BOOTSTRAP_TTL_MS).toISOString(),
    token_hash: null,
    token_prefix: null,
    state: null,
    created_at: now.toISOString(),
    last_seen_at: null,
    revoked_at: null,
    chain_seq: null,
    chain_hash: null,
  };
  await db.kysely.insertInto('runners').values(row).execute();
  return { row, bootstrapKey: key.token };
}

/**
 * Exchange a bootstrap key for a long-lived runner token. The key works once: its hash is
 * cleared in the same update that sets the token, guarded on the old hash.
 */
export async function redeemBootstrapKey(
  db: Db,
  bootstrapKey: string,
): Promise<{ row: RunnersTable; token: string } | undefined> {
  if (tokenPrefix(bootstrapKey, 'alb') === undefined) return undefined;
  const hash = hashToken(bootstrapKey);
  const row = await db.kysely.selectFrom('runners').selectAll().where('bootstrap_hash', '=', hash).executeTakeFirst();
  if (row === undefined || row.revoked_at !== null) return undefined;
  if (row.bootstrap_expires_at === null || row.bootstrap_expires_at <= new Date().toISOString()) return undefined;
  const token = newToken('alr');
  const res = await db.kysely
    .updateTable('runners')
    .set({ token_hash: token.hash, token_prefix: token.prefix, bootstrap_hash: null, bootstrap_expires_at: null })
    .where('id', '=', row.id)
    .where('bootstrap_hash', '=', hash)
    .executeTakeFirst();
  if (Number(res.numUpdatedRows) !== 1) return undefined;
  return { row: { ...row, token_hash: token.hash, token_prefix: token.prefix }, token: token.token };
}

/** Resolve a runner token to its (non-revoked) runner. */
export async function runnerForToken(db: Db, token: string): Promise<RunnersTable | undefined> {
  const prefix = tokenPrefix(token, 'alr');
  if (prefix === undefined) return undefined;
  const row = await db.kysely.selectFrom('runners').selectAll().where('token_prefix', '=', prefix).executeTakeFirst();
  if (row === undefined || row.token_hash === null || row.revoked_at !== null) return undefined;
  return tokenMatches(token, row.token_hash) ? row : undefined;
}
