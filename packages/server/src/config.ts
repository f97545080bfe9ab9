import { join } from 'node:path';
import { AirlockError } from '@airlock/core';
import type { ServerConfig } from './context.js';

/** Parse `host:port` (`--listen`, AIRLOCK_LISTEN); errors name the option. */
export function parseListen(value: string, option = '--listen'): { host: string; port: number } {
  const m = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(value);
  const port = m === null ? Number.NaN : Number(m[2]);
  if (m === null || !(port >= 0 && port <= 65535)) {
    throw new AirlockError(
      'invalid_config',
      `${option}: expected HOST:PORT such as 127.0.0.1:7700, got ${JSON.stringify(value)}`,
    );
  }
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port };
}

/** Server config from options and the environment (AIRLOCK_HOME, AIRLOCK_LISTEN, DATABASE_URL). */
export function serverConfig(opts: {
  listen?: string;
  home: string;
  database?: string;
  publicUrl?: string;
  logLevel?: string;
}): ServerConfig {
  const listen = parseListen(
    opts.listen ?? process.env['AIRLOCK_LISTEN'] ?? '127.0.0.1:7700',
    opts.listen !== undefined ? '--listen' : 'AIRLOCK_LISTEN',
  );
  const database = opts.database ?? process.env['DATABASE_URL'] ?? join(opts.home, 'airlock.db');
  const hostForUrl = listen.host.includes(':') ? `[${listen.host}]` : listen.host;
  return Object.freeze({
    host: listen.host,
    port: listen.port,
    home: opts.home,
    database,
    publicUrl: opts.publicUrl ?? process.env['AIRLOCK_PUBLIC_URL'] ?? `http://${hostForUrl}:${listen.port}`,
    logLevel: opts.logLevel ?? process.env['AIRLOCK_LOG_LEVEL'] ?? 'info',
    heartbeatSeconds: 15,
  });
}
