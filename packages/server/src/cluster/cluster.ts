import type { ClusterNote, ClusterNoteBody } from './notes.js';

/**
 * How control-plane instances that share one database reach each other. A runner's
 * WebSocket lives on one instance; a dispatch, cancel or revocation decided on another is
 * routed there with a note, and live output and status changes are fanned out so an SSE or
 * MCP client on any instance sees them. On SQLite there is one instance and the bus is in
 * process; on Postgres it is LISTEN/NOTIFY on a dedicated connection.
 */
export interface Cluster {
  /** This instance's id (random per process start). */
  readonly instanceId: string;
  /** True when other instances may share the database (Postgres). */
  readonly shared: boolean;
  /** Send a note to every instance, this one included. */
  publish(note: ClusterNoteBody): Promise<void>;
  /** Receive every note, from this instance too (check `note.i`). */
  onNote(handler: (note: ClusterNote) => void): void;
  /**
   * Called after the bus (re)connects: notes sent while it was down are lost, so receivers
   * look at the database again (runs waiting for runners connected here).
   */
  onResync(handler: () => void): void;
  /** Whether this instance runs the leader-only jobs now (always on SQLite). */
  isLeader(): boolean;
  close(): Promise<void>;
}

/**
 * Run a periodic job only on the leader, never twice at once on this instance. Returns the
 * timer's stop function. Jobs must be idempotent: leadership can move between two ticks.
 */
export function leaderJob(
  cluster: Cluster,
  everyMs: number,
  job: () => Promise<unknown>,
  onError: (err: unknown) => void,
): () => void {
  let running = false;
  const timer = setInterval(() => {
    if (running || !cluster.isLeader()) return;
    running = true;
    job()
      .catch(onError)
      .finally(() => {
        running = false;
      });
  }, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}
