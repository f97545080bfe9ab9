import { join, resolve } from 'node:path';
import { AirlockError } from '@airlock/core';
import { airlockHome } from '@airlock/runner';
import type { BackupOutcome } from '@airlock/server';
import type { Command } from 'commander';
import { ExitCode } from '../exit-codes.js';

/** Wait for SIGINT/SIGTERM, then run `close`. */
export function untilSignal(close: () => Promise<void>): Promise<void> {
  return new Promise((resolve) => {
    let closing = false;
    const onSignal = (sig: string): void => {
      if (closing) return;
      closing = true;
      process.stderr.write(`\n${sig}: shutting down…\n`);
      void close().finally(resolve);
    };
    process.once('SIGINT', () => onSignal('SIGINT'));
    process.once('SIGTERM', () => onSignal('SIGTERM'));
  });
}

/** The SQLite file a backup or restore works on: `--database`, else DATABASE_URL, else the default. */
function sqliteTarget(database: string | undefined): string {
  const fromEnv = process.env['DATABASE_URL'];
  const target = database ?? (fromEnv === undefined || fromEnv === '' ? join(airlockHome(), 'airlock.db') : fromEnv);
  if (/^postgres(ql)?:\/\//.test(target)) {
    throw new AirlockError(
      'invalid_config',
      `${database === undefined ? 'DATABASE_URL' : '--database'}: backup and restore work on SQLite files; for PostgreSQL use pg_dump/pg_restore (docs/operations.md, "Backups")`,
    );
  }
  return resolve(target);
}

/** Print a backup/restore outcome; a refusal sets exit code 1. */
function report(json: boolean, verb: string, r: BackupOutcome): void {
  if (json) process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
  if (!r.ok) {
    if (!json) process.stderr.write(`airlock: ${verb} refused (${r.reason}): ${r.message}\n`);
    process.exitCode = ExitCode.failure;
    return;
  }
  if (!json) {
    process.stdout.write(
      `${verb} ok: ${r.file} (${(r.bytes / 2 ** 20).toFixed(1)} MiB, integrity ok, audit chain verified: ${r.auditEvents} events, head ${r.auditHead ?? '(empty)'})\n`,
    );
    if (r.previous !== undefined) process.stdout.write(`previous database kept as ${r.previous}\n`);
  }
}

/** `airlock server backup FILE` and `airlock server restore FILE` (SQLite). */
function registerBackupCommands(server: Command): void {
  server
    .command('backup')
    .description('copy the SQLite database online (safe while the server runs), then check the copy')
    .argument('<file>', 'where to write the backup')
    .option('--database <file>', 'the SQLite file (env DATABASE_URL; default $AIRLOCK_HOME/airlock.db)')
    .option('--force', 'overwrite FILE if it exists')
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      `
Uses SQLite's online backup API, then runs integrity_check and verifies the audit hash chain
of the copy. For PostgreSQL use pg_dump (docs/operations.md, "Backups").

Example:
  airlock server backup /var/backups/airlock/airlock-$(date +%F).db`,
    )
    .action(async (file: string, opts: { database?: string; force?: boolean; json?: boolean }) => {
      const { backupSqlite } = await import('@airlock/server');
      report(opts.json === true, 'backup', await backupSqlite(sqliteTarget(opts.database), resolve(file), opts));
    });
  server
    .command('restore')
    .description('replace the SQLite database with a backup, after checking its integrity and audit chain')
    .argument('<file>', 'the backup to restore')
    .option('--database <file>', 'the SQLite file to replace (env DATABASE_URL; default $AIRLOCK_HOME/airlock.db)')
    .option('--force', 'restore even though a process (a running server) has the database open')
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      `
Refuses a backup that fails integrity_check or whose audit chain does not verify, and refuses
while a process holds the database open (stop the server first). The replaced database is
kept beside it as <file>.pre-restore-<time>; the restored file is verified again in place.`,
    )
    .action(async (file: string, opts: { database?: string; force?: boolean; json?: boolean }) => {
      const { restoreSqlite } = await import('@airlock/server');
      report(opts.json === true, 'restore', await restoreSqlite(resolve(file), sqliteTarget(opts.database), opts));
    });
}

/** `airlock server`: the control plane. */
export function registerServerCommand(program: Command): void {
  const server = program
    .command('server')
    .description('run the control plane: HTTP API, runner hub (WebSocket), OpenAPI at /api/v1/openapi.json')
    .option('--listen <host:port>', 'address to listen on (env AIRLOCK_LISTEN; default 127.0.0.1:7700)')
    .option('--database <url>', 'SQLite file or postgres:// URL (env DATABASE_URL; default $AIRLOCK_HOME/airlock.db)')
    .option('--public-url <url>', 'URL people and runners use to reach this server (env AIRLOCK_PUBLIC_URL)')
    .option('--log-level <level>', 'fatal, error, warn, info, debug or trace (env AIRLOCK_LOG_LEVEL)', undefined)
    .option('--print-config', 'print the effective configuration (secrets redacted) and exit')
    .addHelpText(
      'after',
      `
On first start the server creates the organisation "default" and the owner "admin", and
prints a one-time password (also kept 0600 in $AIRLOCK_HOME/server/initial-admin-password
until it is changed). Logs are JSON lines on standard output, each with the request id.

Environment (also the names used in /etc/airlock/server.env):
  AIRLOCK_HOME           data directory (default ~/.airlock)
  AIRLOCK_LISTEN         address, HOST:PORT (default 127.0.0.1:7700)
  DATABASE_URL           SQLite file or postgres:// URL (default $AIRLOCK_HOME/airlock.db)
  AIRLOCK_PUBLIC_URL     URL people and runners use to reach this server
  AIRLOCK_LOG_LEVEL      log level (default info)
  AIRLOCK_METRICS_TOKEN  bearer token for /metrics; unset = loopback callers only
  AIRLOCK_WEBHOOK_ALLOW  CIDRs approval webhooks may reach although private or loopback
                         (comma-separated; unset = such targets are refused)

Health: GET /healthz (alive), GET /readyz (database reachable, migrations done), GET /metrics.

Examples:
  airlock server
  DATABASE_URL=postgres://airlock@db/airlock airlock server --listen 0.0.0.0:7700 --public-url https://airlock.example.com`,
    )
    .action(
      async (opts: {
        listen?: string;
        database?: string;
        publicUrl?: string;
        logLevel?: string;
        printConfig?: boolean;
      }) => {
        // Loaded on use: the server stack is the heaviest import and most verbs never need it.
        const { createServer, describeServerConfig, serverConfig } = await import('@airlock/server');
        const config = serverConfig({
          home: airlockHome(),
          ...(opts.listen === undefined ? {} : { listen: opts.listen }),
          ...(opts.database === undefined ? {} : { database: opts.database }),
          ...(opts.publicUrl === undefined ? {} : { publicUrl: opts.publicUrl }),
          ...(opts.logLevel === undefined ? {} : { logLevel: opts.logLevel }),
        });
        if (opts.printConfig === true) {
          for (const [k, v] of Object.entries(describeServerConfig(config))) process.stdout.write(`${k}=${v}\n`);
          return;
        }
        const server = await createServer(config);
        let url: string;
        try {
          url = await server.listen();
        } catch (e) {
          await server.close();
          throw new AirlockError(
            'invalid_config',
            `cannot listen on ${config.host}:${config.port}: ${(e as Error).message}`,
          );
        }
        process.stderr.write(`airlock control plane listening on ${url} (database ${server.ctx.db.location})\n`);
        if (server.bootstrap.password !== undefined) {
          process.stderr.write(
            `first-run owner: ${server.bootstrap.username} / ${server.bootstrap.password} (one-time password; change it after signing in)\n`,
          );
        }
        await untilSignal(() => server.close());
      },
    );
  registerBackupCommands(server);
}
