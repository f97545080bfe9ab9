import type { FastifyBaseLogger } from 'fastify';
import type { ServerAuditLog } from './audit/audit-log.js';
import type { Db } from './db/database.js';
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
}

/** What every server module gets: the database, the audit log, the logger, the config. */
export interface ServerContext {
  readonly config: ServerConfig;
  readonly db: Db;
  readonly audit: ServerAuditLog;
  readonly log: FastifyBaseLogger;
  readonly routes: RouteRegistry;
}
