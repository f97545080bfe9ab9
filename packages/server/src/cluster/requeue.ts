import type { ServerContext } from '../context.js';
import { leaderJob } from './cluster.js';

/** How old a queued run must be before the sweep routes it again. */
const STALE_MS = 5000;
const SWEEP_MS = 5000;

/**
 * The safety net for a lost dispatch note: an instance that queued a run and died before its
 * NOTIFY went out, or a note sent while the receiver's listen connection was down and the
 * runner was not connected yet. The leader routes runs queued for a while to runners that are
 * online; the instance holding the session sends them (a duplicate is harmless: the runner's
 * outbox and dedup ring make execution exactly once). Only with several instances (Postgres).
 */
export function startRequeueSweep(ctx: ServerContext): () => void {
  if (!ctx.cluster.shared) return () => undefined;
  return leaderJob(
    ctx.cluster,
    SWEEP_MS,
    async () => {
      const cutoff = new Date(Date.now() - STALE_MS).toISOString();
      const rows = await ctx.db.kysely
        .selectFrom('runs')
        .innerJoin('runners', 'runners.id', 'runs.runner_id')
        .select(['runs.id as id', 'runs.runner_id as runner_id'])
        .where('runs.status', '=', 'queued')
        .where('runs.created_at', '<', cutoff)
        .where('runners.status', '=', 'online')
        .orderBy('runs.created_at')
        .limit(500)
        .execute();
      for (const r of rows) await ctx.cluster.publish({ t: 'dispatch', r: r.runner_id, id: r.id });
    },
    (err: unknown) => ctx.log.warn({ err }, 'cluster: requeue sweep failed'),
  );
}
