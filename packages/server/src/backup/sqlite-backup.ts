import { closeSync, existsSync, fsyncSync, openSync, renameSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import SQLite from 'better-sqlite3';
import { verifyServerChain } from '../audit/verify.js';
import { processesHolding } from './file-holders.js';
import { openSqliteReadonly } from './open-readonly.js';

/** What a check of a SQLite database file found. */
export type CheckResult =
  | { ok: true; auditEvents: number; auditHead: string | null; bytes: number }
  | { ok: false; reason: 'not_found' | 'not_sqlite' | 'integrity' | 'audit_chain'; message: string };

/** Outcome of backup or restore; a refusal says why, by a stable reason. */
export type BackupOutcome =
  | { ok: true; file: string; auditEvents: number; auditHead: string | null; bytes: number; previous?: string }
  | {
      ok: false;
      reason: 'not_found' | 'not_sqlite' | 'integrity' | 'audit_chain' | 'exists' | 'in_use';
      message: string;
    };

/**
 * Check a SQLite database file: SQLite's own `integrity_check`, then the server audit chain
 * (every event linked, hashed and consistent with the signed checkpoints). Read-only.
 */
export async function checkSqliteFile(file: string): Promise<CheckResult> {
  if (!existsSync(file)) return { ok: false, reason: 'not_found', message: `${file} does not exist` };
  let opened: ReturnType<typeof openSqliteReadonly>;
  try {
    opened = openSqliteReadonly(file);
    opened.raw.pragma('schema_version');
  } catch (e) {
    return { ok: false, reason: 'not_sqlite', message: `${file} is not a SQLite database: ${(e as Error).message}` };
  }
  try {
    const rows = opened.raw.pragma('integrity_check') as { integrity_check: string }[];
    const problems = rows.map((r) => r.integrity_check).filter((r) => r !== 'ok');
    if (problems.length > 0) {
      return {
        ok: false,
        reason: 'integrity',
        message: `${file}: integrity_check: ${problems.slice(0, 5).join('; ')}`,
      };
    }
    let verified: Awaited<ReturnType<typeof verifyServerChain>>;
    try {
      verified = await verifyServerChain(opened.db);
    } catch (e) {
      return {
        ok: false,
        reason: 'not_sqlite',
        message: `${file} is not an airlock database (${(e as Error).message})`,
      };
    }
    if (!verified.result.ok) {
      return { ok: false, reason: 'audit_chain', message: `${file}: audit chain broken: ${verified.result.message}` };
    }
    return {
      ok: true,
      auditEvents: verified.result.count,
      auditHead: verified.result.head?.hash ?? null,
      bytes: statSync(file).size,
    };
  } finally {
    await opened.db.close();
  }
}

function fsyncPath(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Copy a live SQLite database to `dest` with SQLite's online backup API (consistent even while
 * the server writes), then check the copy. Written to a temporary name and renamed, so `dest`
 * is either the complete, checked backup or absent.
 */
export async function backupSqlite(
  source: string,
  dest: string,
  opts: { force?: boolean } = {},
): Promise<BackupOutcome> {
  if (!existsSync(source)) return { ok: false, reason: 'not_found', message: `database ${source} does not exist` };
  if (existsSync(dest) && opts.force !== true) {
    return { ok: false, reason: 'exists', message: `${dest} exists; choose another name or pass --force` };
  }
  const tmp = join(dirname(dest), `.${basename(dest)}.partial-${process.pid}`);
  const src = new SQLite(source, { readonly: true, fileMustExist: true });
  try {
    await src.backup(tmp);
  } catch (e) {
    rmSync(tmp, { force: true });
    return { ok: false, reason: 'not_sqlite', message: `cannot back up ${source}: ${(e as Error).message}` };
  } finally {
    src.close();
  }
  const check = await checkSqliteFile(tmp);
  if (!check.ok) {
    rmSync(tmp, { force: true });
    return check;
  }
  fsyncPath(tmp);
  renameSync(tmp, dest);
  fsyncPath(dirname(dest));
  return { ok: true, file: dest, auditEvents: check.auditEvents, auditHead: check.auditHead, bytes: check.bytes };
}

/**
 * Replace the database at `target` with a backup. Refuses a backup that fails the integrity or
 * audit-chain check, and refuses while any process (a running server) holds `target` open,
 * unless `force`. The previous database (with its WAL) is kept beside it as
 * `<target>.pre-restore-<time>`; the restored file is checked again in place.
 */
export async function restoreSqlite(
  backup: string,
  target: string,
  opts: { force?: boolean; now?: Date } = {},
): Promise<BackupOutcome> {
  const check = await checkSqliteFile(backup);
  if (!check.ok) return check;
  const holders = processesHolding(target);
  if (holders.length > 0 && opts.force !== true) {
    return {
      ok: false,
      reason: 'in_use',
      message: `${target} is open in process ${holders.join(', ')} (a running airlock server?); stop it first, or pass --force`,
    };
  }
  const stamp = (opts.now ?? new Date()).toISOString().replace(/[:.]/g, '-');
  let previous: string | undefined;
  if (existsSync(target)) {
    previous = `${target}.pre-restore-${stamp}`;
    // The WAL and shared-memory files belong to the old database: left in place, SQLite would
    // replay the old WAL over the restored file.
    for (const suffix of ['-wal', '-shm']) {
      if (existsSync(`${target}${suffix}`)) renameSync(`${target}${suffix}`, `${previous}${suffix}`);
    }
    renameSync(target, previous);
  }
  const tmp = join(dirname(target), `.${basename(target)}.restoring-${process.pid}`);
  const src = new SQLite(backup, { readonly: true, fileMustExist: true });
  try {
    await src.backup(tmp);
  } finally {
    src.close();
  }
  fsyncPath(tmp);
  renameSync(tmp, target);
  fsyncPath(dirname(target));
  const after = await checkSqliteFile(target);
  if (!after.ok) return after;
  return {
    ok: true,
    file: target,
    auditEvents: after.auditEvents,
    auditHead: after.auditHead,
    bytes: after.bytes,
    ...(previous === undefined ? {} : { previous }),
  };
}
