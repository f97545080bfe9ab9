import { randomUUID } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import { sql } from 'kysely';
import pg from 'pg';
import type { Db } from '../db/database.js';
import type { Cluster } from './cluster.js';
import { type ClusterNote, type ClusterNoteBody, parseClusterNote } from './notes.js';

/** The NOTIFY channel every instance listens on. */
export const CLUSTER_CHANNEL = 'airlock_cluster';

/**
 * Session-level advisory lock key held by the leader for as long as its listen connection
 * lives (distinct from the audit append lock, 7_700_001).
 */
export const LEADER_LOCK_KEY = 7_700_002;

/** `application_name` of each instance's listen connection. */
export const CLUSTER_APPLICATION_NAME = 'airlock-cluster';

/** How often a follower tries to become leader, and the listen connection is checked. */
const TICK_MS = 2000;

/**
 * The Postgres bus: one dedicated connection per instance that LISTENs for notes and, on
 * the leader, holds the leader advisory lock. Notes are sent with `pg_notify` through the
 * ordinary pool. When the dedicated connection drops (Postgres restart, network), this
 * instance stops leading at once, reconnects with backoff and then asks its receivers to
 * resync, because notes sent meanwhile are gone.
 */
export class PgCluster implements Cluster {
  readonly instanceId = `in_${randomUUID()}`;
  readonly shared = true;
  private client: pg.Client | undefined;
  private leader = false;
  private closed = false;
  private attempt = 0;
  private retry: NodeJS.Timeout | undefined;
  private readonly tick: NodeJS.Timeout;
  private ticking = false;
  private readonly noteHandlers: ((note: ClusterNote) => void)[] = [];
  private readonly resyncHandlers: (() => void)[] = [];

  private constructor(
    private readonly url: string,
    private readonly db: Db,
    private readonly log: FastifyBaseLogger,
  ) {
    this.tick = setInterval(() => void this.onTick(), TICK_MS);
    this.tick.unref();
  }

  /** Connect the listen connection (the first attempt must succeed: the database was just opened). */
  static async open(url: string, db: Db, log: FastifyBaseLogger): Promise<PgCluster> {
    const c = new PgCluster(url, db, log);
    try {
      await c.connect();
    } catch (e) {
      await c.close();
      throw e;
    }
    return c;
  }

  async publish(note: ClusterNoteBody): Promise<void> {
    const payload = JSON.stringify({ ...note, i: this.instanceId });
    await sql`select pg_notify(${CLUSTER_CHANNEL}, ${payload})`.execute(this.db.kysely);
  }

  onNote(handler: (note: ClusterNote) => void): void {
    this.noteHandlers.push(handler);
  }

  onResync(handler: () => void): void {
    this.resyncHandlers.push(handler);
  }

  isLeader(): boolean {
    return this.leader && this.client !== undefined;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.tick);
    clearTimeout(this.retry);
    const c = this.client;
    this.client = undefined;
    this.leader = false;
    // Ending the session releases the leader lock.
    await c?.end().catch(() => undefined);
  }

  private async connect(): Promise<void> {
    const c = new pg.Client({
      connectionString: this.url,
      keepAlive: true,
      query_timeout: 5000,
      // Operators (and tests) find the listen connections by this name in pg_stat_activity.
      application_name: CLUSTER_APPLICATION_NAME,
    });
    c.on('notification', (msg) => {
      if (msg.channel !== CLUSTER_CHANNEL || msg.payload === undefined) return;
      const note = parseClusterNote(msg.payload);
      if (note === undefined) {
        this.log.warn({ payload: msg.payload.slice(0, 200) }, 'cluster: ignored a malformed note');
        return;
      }
      for (const h of this.noteHandlers) h(note);
    });
    c.on('error', (e) => this.lost(c, e));
    c.on('end', () => this.lost(c));
    await c.connect();
    await c.query(`LISTEN ${CLUSTER_CHANNEL}`);
    if (this.closed) {
      await c.end();
      return;
    }
    const reconnected = this.attempt > 0;
    this.client = c;
    this.attempt = 0;
    await this.tryLead(c);
    if (reconnected) {
      this.log.info({ instance: this.instanceId }, 'cluster: listen connection restored; resyncing');
      for (const h of this.resyncHandlers) h();
    }
  }

  private lost(c: pg.Client, err?: Error): void {
    if (this.client !== c) return;
    this.client = undefined;
    if (this.leader)
      this.log.warn({ instance: this.instanceId }, 'cluster: leadership lost with the listen connection');
    this.leader = false;
    this.log.warn({ err, instance: this.instanceId }, 'cluster: listen connection lost; reconnecting');
    void c.end().catch(() => undefined);
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.closed) return;
    const delay = Math.min(5000, 250 * 2 ** this.attempt) * (0.8 + Math.random() * 0.4);
    this.attempt++;
    this.retry = setTimeout(() => {
      this.connect().catch((e: unknown) => {
        this.log.warn({ err: e }, 'cluster: reconnect failed');
        this.scheduleReconnect();
      });
    }, delay);
    this.retry.unref();
  }

  private async tryLead(c: pg.Client): Promise<void> {
    if (this.leader) return;
    const r = await c.query<{ ok: boolean }>('select pg_try_advisory_lock($1) as ok', [LEADER_LOCK_KEY]);
    if (r.rows[0]?.ok === true && this.client === c) {
      this.leader = true;
      this.log.info({ instance: this.instanceId }, 'cluster: this instance is now the leader');
    }
  }

  /** Check the listen connection (a silent half-open one would never deliver a note) and try to lead. */
  private async onTick(): Promise<void> {
    const c = this.client;
    if (c === undefined || this.ticking) return;
    this.ticking = true;
    try {
      await c.query('select 1');
      await this.tryLead(c);
    } catch (e) {
      this.lost(c, e as Error);
    } finally {
      this.ticking = false;
    }
  }
}
