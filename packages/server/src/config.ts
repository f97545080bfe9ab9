import { join } from 'node:path';
import { AirlockError } from '@airlock/core';
import type { ServerConfig } from './context.js';
import { parseCidr } from './policy/webhook.js';

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

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** An option given on the command line wins over the environment; errors name whichever was used. */
function pick(
  optValue: string | undefined,
  option: string,
  envName: string,
  env: NodeJS.ProcessEnv,
): { value: string; key: string } | undefined {
  if (optValue !== undefined) return { value: optValue, key: option };
  const v = env[envName];
  return v === undefined || v === '' ? undefined : { value: v, key: envName };
}

function invalid(key: string, message: string): never {
  throw new AirlockError('invalid_config', `${key}: ${message}`, { key });
}

/**
 * Server config from options and the environment (AIRLOCK_HOME, AIRLOCK_LISTEN, DATABASE_URL,
 * AIRLOCK_PUBLIC_URL, AIRLOCK_LOG_LEVEL, AIRLOCK_METRICS_TOKEN). Every value is validated here,
 * at start, and an error names the option or variable at fault without echoing secret values.
 */
export function serverConfig(
  opts: {
    listen?: string;
    home: string;
    database?: string;
    publicUrl?: string;
    logLevel?: string;
    metricsToken?: string;
  },
  env: NodeJS.ProcessEnv = process.env,
): ServerConfig {
  const listenIn = pick(opts.listen, '--listen', 'AIRLOCK_LISTEN', env);
  const listen = parseListen(listenIn?.value ?? '127.0.0.1:7700', listenIn?.key ?? '--listen');

  const databaseIn = pick(opts.database, '--database', 'DATABASE_URL', env);
  const database = databaseIn?.value ?? join(opts.home, 'airlock.db');
  if (databaseIn !== undefined) {
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(database) && !/^postgres(ql)?:\/\//.test(database)) {
      invalid(databaseIn.key, 'expected a SQLite file path or a postgres:// URL');
    }
    if (/^postgres(ql)?:\/\//.test(database)) {
      try {
        const u = new URL(database);
        if (u.hostname === '' && !u.searchParams.has('host'))
          invalid(databaseIn.key, 'the postgres:// URL names no host');
      } catch (e) {
        if (e instanceof AirlockError) throw e;
        // The URL may hold a password: say what is wrong, never echo it.
        invalid(databaseIn.key, 'not a valid postgres:// URL');
      }
    }
  }

  const hostForUrl = listen.host.includes(':') ? `[${listen.host}]` : listen.host;
  const publicIn = pick(opts.publicUrl, '--public-url', 'AIRLOCK_PUBLIC_URL', env);
  const publicUrl = publicIn?.value ?? `http://${hostForUrl}:${listen.port}`;
  if (publicIn !== undefined) {
    let u: URL | undefined;
    try {
      u = new URL(publicUrl);
    } catch {
      u = undefined;
    }
    if (u === undefined || !['http:', 'https:'].includes(u.protocol)) {
      invalid(publicIn.key, `expected an http:// or https:// URL, got ${JSON.stringify(publicUrl)}`);
    }
  }

  const levelIn = pick(opts.logLevel, '--log-level', 'AIRLOCK_LOG_LEVEL', env);
  const logLevel = levelIn?.value ?? 'info';
  if (levelIn !== undefined && !LOG_LEVELS.includes(logLevel)) {
    invalid(levelIn.key, `expected one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(logLevel)}`);
  }

  const tokenIn = pick(opts.metricsToken, '--metrics-token', 'AIRLOCK_METRICS_TOKEN', env);
  if (tokenIn !== undefined && !/^[\x21-\x7e]{16,256}$/.test(tokenIn.value)) {
    invalid(tokenIn.key, 'must be 16 to 256 printable characters without spaces (value not shown)');
  }

  // Operator opt-in for webhooks to private or loopback addresses (SSRF guard, policy/webhook.ts).
  const webhookAllow = (env['AIRLOCK_WEBHOOK_ALLOW'] ?? '')
    .split(',')
    .map((c) => c.trim())
    .filter((c) => c !== '');
  for (const c of webhookAllow) {
    if (parseCidr(c) === undefined)
      invalid('AIRLOCK_WEBHOOK_ALLOW', `${JSON.stringify(c)} is not an IP address or CIDR`);
  }

  return Object.freeze({
    host: listen.host,
    port: listen.port,
    home: opts.home,
    database,
    publicUrl,
    logLevel,
    heartbeatSeconds: 15,
    ...(tokenIn === undefined ? {} : { metricsToken: tokenIn.value }),
    ...(webhookAllow.length === 0 ? {} : { webhookAllow }),
  });
}

/** A database target with any password replaced by `***` (for logs, `--print-config`, doctor). */
export function redactDatabaseUrl(target: string): string {
  if (!/^postgres(ql)?:\/\//.test(target)) return target;
  try {
    const u = new URL(target);
    if (u.password !== '') u.password = '***';
    for (const k of ['password', 'sslkey', 'sslpassword']) if (u.searchParams.has(k)) u.searchParams.set(k, '***');
    return u.toString();
  } catch {
    return 'postgres://(unparseable URL, not shown)';
  }
}

/** The effective configuration by its environment names, secrets redacted. */
export function describeServerConfig(c: ServerConfig): Record<string, string> {
  return {
    AIRLOCK_HOME: c.home,
    AIRLOCK_LISTEN: `${c.host.includes(':') ? `[${c.host}]` : c.host}:${c.port}`,
    DATABASE_URL: redactDatabaseUrl(c.database),
    AIRLOCK_PUBLIC_URL: c.publicUrl,
    AIRLOCK_LOG_LEVEL: c.logLevel,
    AIRLOCK_METRICS_TOKEN: c.metricsToken === undefined ? '(not set: /metrics is loopback-only)' : '***',
  };
}
