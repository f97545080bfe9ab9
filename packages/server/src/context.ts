import type { FastifyBaseLogger } from 'fastify';
import type { ServerAuditLog } from './audit/audit-log.js';
import type { ThrottleSettings } from './auth/throttle.js';
import type { Cluster } from './cluster/cluster.js';
import type { Db } from './db/database.js';
import type { HttpLimits } from './http/limits.js';
import type { RouteRegistry } from './http/routes.js';

/** Settings of one control-plane instance. */
export interface ServerConfig {
  readonly host: string;
  readonly port: number;
  /** Data directory ($AIRLOCK_HOME). */
  readonly home: string;
  /** SQLite file path or postgres:// URL. */
  readonly database: string;
  /** URL people and runners use to reach this server (for printed commands and links). */
  readonly publicUrl: string;
  readonly logLevel: string;
  /** Seconds between heartbeats asked of runners. */
  readonly heartbeatSeconds: number;
  /** Bearer token for /metrics (AIRLOCK_METRICS_TOKEN); without one, /metrics answers loopback callers only. */
  readonly metricsToken?: string | undefined;
  /** Overrides of the HTTP limits (body size, JSON depth, slow-client timeouts); see http/limits.ts. */
  readonly httpLimits?: Partial<HttpLimits>;
  /** Overrides of the login and token endpoint budgets; see auth/throttle.ts. */
  readonly throttle?: Partial<ThrottleSettings>;
  /** CIDRs webhooks may reach although private or loopback (operator opt-in, AIRLOCK_WEBHOOK_ALLOW). */
  readonly webhookAllow?: readonly string[];
}

/** What every server module gets: the database, the audit log, the logger, the config. */
export interface ServerContext {
  readonly config: ServerConfig;
  readonly db: Db;
  readonly audit: ServerAuditLog;
  readonly log: FastifyBaseLogger;
  readonly routes: RouteRegistry;
  /** How this instance reaches the others sharing the database (in process on SQLite). */
  readonly cluster: Cluster;
}
