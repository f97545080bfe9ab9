import { join } from 'node:path';
import { type CheckResult, type DoctorContext, fail, ok, warn } from './check.js';

/** The database the server would use answers, and its migrations are known. */
export async function checkDatabase(ctx: DoctorContext, database?: string): Promise<CheckResult> {
  const target = database ?? (ctx.env['DATABASE_URL'] || undefined) ?? join(ctx.home, 'airlock.db');
  const { probeDatabase } = await import('@airlock/server');
  const p = await probeDatabase(target, ctx.timeoutMs);
  if (!p.ok) {
    return fail(
      'database',
      `${p.dialect} ${p.location}: ${p.message}`,
      p.dialect === 'postgres'
        ? 'check the host, port, user and password in DATABASE_URL, that PostgreSQL runs and accepts this host (pg_hba.conf)'
        : 'check the file permissions of the SQLite database and its folder (the service user must own them)',
    );
  }
  if (!p.exists) {
    return warn(
      'database',
      `SQLite ${p.location} does not exist yet`,
      'it is created on the first "airlock server" start; set DATABASE_URL if the data lives elsewhere',
    );
  }
  if (p.pending.length > 0) {
    return warn(
      'database',
      `${p.dialect} ${p.location}: reachable; ${p.pending.length} migration(s) pending (${p.pending.join(', ')})`,
      'they run at the next server start; take a backup first (docs/operations.md, "Backups")',
    );
  }
  return ok('database', `${p.dialect} ${p.location}: reachable, migrations current`);
}
