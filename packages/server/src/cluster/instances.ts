import type { ServerContext } from '../context.js';
import { leaderJob } from './cluster.js';

/** How often an instance records that it is alive. */
const HEARTBEAT_MS = 5000;
/** An instance silent this long is dead: the leader marks its runners offline. */
const DEAD_AFTER_MS = 30_000;

/**
 * Liveness of the instances sharing a Postgres database. Each instance writes a heartbeat;
 * the leader marks offline the runners whose session was on an instance that stopped
 * heartbeating (killed with SIGKILL, or cut off), since no close handler ran for them. A
 * runner that reconnected elsewhere has another `instance_id` and is left alone.
 * On SQLite there is one instance and nothing to do. Returns the stop function.
 */
export function startInstanceLiveness(ctx: ServerContext): () => Promise<void> {
  const { cluster, db } = ctx;
  if (!cluster.shared) return async () => undefined;
  const id = cluster.instanceId;
  const beat = async (): Promise<void> => {
    const now = new Date().toISOString();
    await db.kysely
      .insertInto('cluster_instances')
      .values({ id, started_at: now, heartbeat_at: now })
      .onConflict((oc) => oc.column('id').doUpdateSet({ heartbeat_at: now }))
      .execute();
  };
  const onError = (err: unknown): void => ctx.log.warn({ err }, 'cluster: instance heartbeat failed');
  void beat().catch(onError);
  const timer = setInterval(() => void beat().catch(onError), HEARTBEAT_MS);
  timer.unref();
  const stopReaper = leaderJob(cluster, HEARTBEAT_MS, () => reapDeadInstances(ctx), onError);
  return async () => {
    clearInterval(timer);
    stopReaper();
    // A clean stop removes the row at once; its sessions' close handlers already ran.
    await db.kysely
      .deleteFrom('cluster_instances')
      .where('id', '=', id)
      .execute()
      .catch(() => undefined);
  };
}

/** Mark offline the runners held by instances that stopped heartbeating; forget those instances. */
export async function reapDeadInstances(ctx: ServerContext): Promise<number> {
  const cutoff = new Date(Date.now() - DEAD_AFTER_MS).toISOString();
  const dead = await ctx.db.kysely
    .selectFrom('cluster_instances')
    .select('id')
    .where('heartbeat_at', '<', cutoff)
    .execute();
  let n = 0;
  for (const { id } of dead) {
    const res = await ctx.db.kysely
      .updateTable('runners')
      .set({ status: 'offline', session_id: null, instance_id: null })
      .where('instance_id', '=', id)
      .where('status', '=', 'online')
      .executeTakeFirst();
    n += Number(res.numUpdatedRows);
    await ctx.db.kysely.deleteFrom('cluster_instances').where('id', '=', id).execute();
    ctx.log.info({ instance: id, runners: Number(res.numUpdatedRows) }, 'cluster: reaped a dead instance');
  }
  return n;
}
