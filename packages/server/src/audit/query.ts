import { type Expression, type ExpressionBuilder, type SqlBool, sql } from 'kysely';
import type { Principal } from '../auth/principal.js';
import type { Db } from '../db/database.js';
import type { Database } from '../db/schema.js';
import { ApiError } from '../http/api-error.js';

/** Cursor directions: search pages newest first, export pages oldest first. */
type CursorKind = 's' | 'e';

/** An opaque cursor: base64url of `<kind>:<seq>`. */
export function encodeCursor(kind: CursorKind, seq: number): string {
  return Buffer.from(`${kind}:${seq}`, 'utf8').toString('base64url');
}

/** Decode a cursor of the given kind; 400 when it is not one of ours. */
export function decodeCursor(kind: CursorKind, cursor: string): number {
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  const m = /^([se]):(-?\d{1,15})$/.exec(text);
  if (m === null || m[1] !== kind) {
    throw ApiError.badRequest('query.cursor: not a cursor returned by this endpoint', [
      { field: 'query.cursor', message: 'invalid cursor' },
    ]);
  }
  return Number(m[2]);
}

/** Which audit events a caller sees: its organisation's, plus instance-level ones for owners of the first org. */
export interface AuditScope {
  readonly orgId: string;
  readonly instance: boolean;
}

/** The first organisation (the one bootstrap created). */
export async function firstOrgId(db: Db): Promise<string | undefined> {
  const row = await db.kysely
    .selectFrom('orgs')
    .select('id')
    .orderBy('created_at')
    .orderBy('id')
    .limit(1)
    .executeTakeFirst();
  return row?.id;
}

export async function scopeOf(db: Db, p: Principal): Promise<AuditScope> {
  return { orgId: p.orgId, instance: p.role === 'owner' && (await firstOrgId(db)) === p.orgId };
}

/** WHERE clause for a scope, on `audit_events`. */
export function inScope(scope: AuditScope) {
  return (eb: ExpressionBuilder<Database, 'audit_events'>): Expression<SqlBool> =>
    scope.instance ? eb.or([eb('org_id', '=', scope.orgId), eb('org_id', 'is', null)]) : eb('org_id', '=', scope.orgId);
}

/** Is a row's org visible in a scope? */
export function visible(scope: AuditScope, orgId: string | null): boolean {
  return orgId === scope.orgId || (orgId === null && scope.instance);
}

/** Search filters (already validated). */
export interface SearchFilters {
  readonly from?: string | undefined;
  readonly to?: string | undefined;
  readonly actor?: string | undefined;
  readonly runner?: string | undefined;
  readonly action?: string | undefined;
  readonly status?: string | undefined;
  readonly kind?: string | undefined;
  readonly q?: string | undefined;
  readonly limit: number;
  readonly cursor?: string | undefined;
}

/** Normalise an ISO time to the stored form (UTC, milliseconds, `Z`) so text comparison orders correctly. */
function isoUtc(value: string, field: string): string {
  const t = Date.parse(value);
  if (Number.isNaN(t))
    throw ApiError.badRequest(`query.${field}: not a time`, [
      { field: `query.${field}`, message: 'expected an ISO 8601 time' },
    ]);
  return new Date(t).toISOString();
}

/** Search the caller's audit events, newest first. Returns parsed events and the next cursor. */
export async function searchEvents(
  db: Db,
  scope: AuditScope,
  f: SearchFilters,
): Promise<{ events: unknown[]; next_cursor: string | null }> {
  let query = db.kysely.selectFrom('audit_events').select(['seq', 'body']).where(inScope(scope));
  if (f.from !== undefined) query = query.where('time', '>=', isoUtc(f.from, 'from'));
  if (f.to !== undefined) query = query.where('time', '<', isoUtc(f.to, 'to'));
  if (f.action !== undefined) query = query.where('action', '=', f.action);
  if (f.status !== undefined) query = query.where('status', '=', f.status);
  if (f.kind !== undefined) {
    const prefix = f.kind;
    query = query.where(sql<string>`substr(kind, 1, ${prefix.length})`, '=', prefix);
  }
  if (f.runner !== undefined) {
    // Events name a runner by id or by name: match both for the runner the filter designates.
    const target = f.runner;
    const matches = await db.kysely
      .selectFrom('runners')
      .select(['id', 'name'])
      .where('org_id', '=', scope.orgId)
      .where((eb) => eb.or([eb('id', '=', target), eb('name', '=', target)]))
      .execute();
    const names = [...new Set([target, ...matches.flatMap((r) => [r.id, r.name])])];
    query = query.where('runner', 'in', names);
  }
  if (f.actor !== undefined) {
    const a = f.actor;
    query = query.where(
      db.dialect === 'postgres'
        ? sql<boolean>`((actor::jsonb ->> 'id') = ${a} or (actor::jsonb ->> 'name') = ${a})`
        : sql<boolean>`(json_extract(actor, '$.id') = ${a} or json_extract(actor, '$.name') = ${a})`,
    );
  }
  if (f.q !== undefined && f.q !== '') {
    // Match the text as it appears inside the stored JSON (quotes and backslashes escaped).
    const needle = JSON.stringify(f.q.toLowerCase()).slice(1, -1);
    query = query.where(
      db.dialect === 'postgres'
        ? sql<boolean>`strpos(lower(body), ${needle}) > 0`
        : sql<boolean>`instr(lower(body), ${needle}) > 0`,
    );
  }
  if (f.cursor !== undefined) query = query.where('seq', '<', decodeCursor('s', f.cursor));
  const rows = await query
    .orderBy('seq', 'desc')
    .limit(f.limit + 1)
    .execute();
  const page = rows.slice(0, f.limit);
  const last = page[page.length - 1];
  return {
    events: page.map((r) => parseBody(r.body)),
    next_cursor: rows.length > f.limit && last !== undefined ? encodeCursor('s', Number(last.seq)) : null,
  };
}

/** A stored body as an object; a body that is not JSON comes back as a marker (verify reports it). */
export function parseBody(body: string): unknown {
  try {
    return JSON.parse(body) as unknown;
  } catch {
    return { malformed: true, body };
  }
}
