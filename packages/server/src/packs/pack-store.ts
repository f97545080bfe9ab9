import { randomUUID } from 'node:crypto';
import type { ServerAuditLog } from '../audit/audit-log.js';
import type { Db } from '../db/database.js';
import { packStatus } from '../db/hot-queries.js';
import type { PacksTable } from '../db/schema.js';

/** A pack version as advertised in a runner's `hello`. */
export interface AdvertisedPack {
  readonly name: string;
  readonly version: string;
  readonly hash: string;
  readonly files?: readonly { readonly path: string; readonly sha256: string }[];
}

/**
 * Record the pack versions a runner advertises. A hash the organisation has never seen is
 * stored as `pending` (trust-on-hash: its actions cannot be dispatched until an admin
 * trusts it). Returns the rows that are new, so their files can be fetched for review.
 */
export async function recordAdvertisedPacks(
  db: Db,
  audit: ServerAuditLog,
  orgId: string,
  runnerId: string,
  packs: readonly AdvertisedPack[],
): Promise<PacksTable[]> {
  const fresh: PacksTable[] = [];
  for (const p of packs) {
    const existing = await db.kysely
      .selectFrom('packs')
      .selectAll()
      .where('org_id', '=', orgId)
      .where('name', '=', p.name)
      .where('hash', '=', p.hash)
      .executeTakeFirst();
    if (existing !== undefined) {
      if (existing.status === 'pending' && existing.files === null && p.files !== undefined) {
        await db.kysely
          .updateTable('packs')
          .set({ files: JSON.stringify(p.files) })
          .where('id', '=', existing.id)
          .execute();
        fresh.push({ ...existing, files: JSON.stringify(p.files) });
      }
      continue;
    }
    const row: PacksTable = {
      id: randomUUID(),
      org_id: orgId,
      name: p.name,
      hash: p.hash,
      version: p.version,
      status: 'pending',
      files: p.files === undefined ? null : JSON.stringify(p.files),
      first_seen_at: new Date().toISOString(),
      first_seen_runner: runnerId,
      decided_by: null,
      decided_at: null,
      comment: null,
    };
    const ins = await db.kysely
      .insertInto('packs')
      .values(row)
      .onConflict((oc) => oc.columns(['org_id', 'name', 'hash']).doNothing())
      .executeTakeFirst();
    if (Number(ins.numInsertedOrUpdatedRows ?? 0n) === 0) continue; // another instance recorded it first
    fresh.push(row);
    await audit.record({
      orgId,
      kind: 'pack.seen',
      actor: { type: 'runner', id: runnerId },
      runner: runnerId,
      packHash: p.hash,
      status: 'success',
      data: { pack: p.name, version: p.version, trust: 'pending' },
    });
  }
  return fresh;
}

/** True when the organisation trusts exactly this pack hash. */
export async function isPackTrusted(db: Db, orgId: string, name: string, hash: string): Promise<boolean> {
  const row = await packStatus.first(db.kysely, { org_id: orgId, name, hash });
  return row?.status === 'trusted';
}

/** Trust or reject a pack version; audited. */
export async function decidePack(
  db: Db,
  audit: ServerAuditLog,
  pack: PacksTable,
  decision: 'trusted' | 'rejected',
  actor: { type: string; id: string; name?: string },
  comment: string | null,
): Promise<PacksTable> {
  const now = new Date().toISOString();
  await db.kysely
    .updateTable('packs')
    .set({ status: decision, decided_by: actor.name ?? actor.id, decided_at: now, comment })
    .where('id', '=', pack.id)
    .execute();
  await audit.record({
    orgId: pack.org_id,
    kind: decision === 'trusted' ? 'pack.trusted' : 'pack.rejected',
    actor,
    packHash: pack.hash,
    reason: comment,
    status: 'success',
    data: { pack: pack.name, version: pack.version, previous: pack.status },
  });
  return { ...pack, status: decision, decided_by: actor.name ?? actor.id, decided_at: now, comment };
}

/** Store file contents a runner sent for review (only files whose digest matches the listing). */
export async function storePackFiles(
  db: Db,
  pack: PacksTable,
  files: readonly { path: string; sha256: string; content: string | null }[],
): Promise<number> {
  const listing = new Map(
    (pack.files === null ? [] : (JSON.parse(pack.files) as { path: string; sha256: string }[])).map((f) => [
      f.path,
      f.sha256,
    ]),
  );
  // One transaction: a reviewer sees all of a pack's files or none, and it costs one commit.
  return db.kysely.transaction().execute(async (trx) => {
    let stored = 0;
    for (const f of files) {
      if (listing.get(f.path) !== f.sha256) continue;
      await trx
        .insertInto('pack_files')
        .values({ pack_id: pack.id, path: f.path, sha256: f.sha256, content: f.content })
        .onConflict((oc) => oc.columns(['pack_id', 'path']).doNothing())
        .execute();
      stored++;
    }
    return stored;
  });
}

/** One file's change between two pack versions. */
export interface FileChange {
  readonly path: string;
  readonly change: 'added' | 'removed' | 'changed' | 'unchanged';
  readonly old_sha256: string | null;
  readonly new_sha256: string | null;
  readonly diff: string | null;
}

/**
 * Per-file diff of a pack version against the newest trusted version of the same pack
 * (or against nothing, for a pack never trusted before).
 */
export async function packDiff(db: Db, pack: PacksTable): Promise<{ base: PacksTable | null; files: FileChange[] }> {
  const base =
    (await db.kysely
      .selectFrom('packs')
      .selectAll()
      .where('org_id', '=', pack.org_id)
      .where('name', '=', pack.name)
      .where('status', '=', 'trusted')
      .where('id', '!=', pack.id)
      .orderBy('decided_at', 'desc')
      .limit(1)
      .executeTakeFirst()) ?? null;
  const listing = (p: PacksTable | null): Map<string, string> =>
    new Map(
      p === null || p.files === null
        ? []
        : (JSON.parse(p.files) as { path: string; sha256: string }[]).map((f) => [f.path, f.sha256]),
    );
  const contents = async (p: PacksTable | null): Promise<Map<string, string | null>> => {
    if (p === null) return new Map();
    const rows = await db.kysely
      .selectFrom('pack_files')
      .select(['path', 'content'])
      .where('pack_id', '=', p.id)
      .execute();
    return new Map(rows.map((r) => [r.path, r.content]));
  };
  const [oldL, newL, oldC, newC] = [listing(base), listing(pack), await contents(base), await contents(pack)];
  const paths = [...new Set([...oldL.keys(), ...newL.keys()])].sort();
  const files = paths.map((path): FileChange => {
    const o = oldL.get(path) ?? null;
    const n = newL.get(path) ?? null;
    const change = o === null ? 'added' : n === null ? 'removed' : o === n ? 'unchanged' : 'changed';
    const oc = oldC.get(path);
    const nc = newC.get(path);
    const diff =
      change === 'unchanged'
        ? null
        : lineDiff(oc ?? (o === null ? '' : undefined), nc ?? (n === null ? '' : undefined));
    return { path, change, old_sha256: o, new_sha256: n, diff };
  });
  return { base, files };
}

/** A compact unified-style line diff (LCS); null when either side's text is unknown. */
export function lineDiff(a: string | null | undefined, b: string | null | undefined): string | null {
  if (a === null || a === undefined || b === null || b === undefined) return null;
  const x = a.split('\n');
  const y = b.split('\n');
  if (x.length * y.length > 4_000_000) return '(file too large to diff)';
  const n = x.length;
  const m = y.length;
  const lcs: number[][] = Array.from({ length: n + 1 }, () => new Array<number>(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i]![j] = x[i] === y[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
    }
  }
  const out: string[] = [];
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (x[i] === y[j]) {
      out.push(`  ${x[i]}`);
      i++;
      j++;
    } else if (lcs[i + 1]![j]! >= lcs[i]![j + 1]!) out.push(`- ${x[i++]}`);
    else out.push(`+ ${y[j++]}`);
  }
  while (i < n) out.push(`- ${x[i++]}`);
  while (j < m) out.push(`+ ${y[j++]}`);
  return out.join('\n');
}
