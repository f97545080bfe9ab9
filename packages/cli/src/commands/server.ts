import { AirlockError } from '@airlock/core';
import { airlockHome } from '@airlock/runner';
import type { Command } from 'commander';

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

/** `airlock server`: the control plane. */
export function registerServerCommand(program: Command): void {
  program
    .command('server')
    .description('run the control plane: HTTP API, runner hub (WebSocket), OpenAPI at /api/v1/openapi.json')
    .option('--listen <host:port>', 'address to listen on (env AIRLOCK_LISTEN; default 127.0.0.1:7700)')
    .option('--database <url>', 'SQLite file or postgres:// URL (env DATABASE_URL; default $AIRLOCK_HOME/airlock.db)')
    .option('--public-url <url>', 'URL people and runners use to reach this server (env AIRLOCK_PUBLIC_URL)')
    .option('--log-level <level>', 'fatal, error, warn, info, debug or trace (env AIRLOCK_LOG_LEVEL)', undefined)
    .addHelpText(
      'after',
      `
On first start the server creates the organisation "default" and the owner "admin", and
prints a one-time password (also kept 0600 in $AIRLOCK_HOME/server/initial-admin-password
until it is changed). Logs are JSON lines on standard output.

Examples:
  airlock server
  DATABASE_URL=postgres://airlock@db/airlock airlock server --listen 0.0.0.0:7700 --public-url https://airlock.example.com`,
    )
    .action(async (opts: { listen?: string; database?: string; publicUrl?: string; logLevel?: string }) => {
      const levels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
      if (opts.logLevel !== undefined && !levels.includes(opts.logLevel)) {
        throw new AirlockError(
          'invalid_config',
          `--log-level: expected one of ${levels.join(', ')}, got ${JSON.stringify(opts.logLevel)}`,
        );
      }
      // Loaded on use: the server stack is the heaviest import and most verbs never need it.
      const { createServer, serverConfig } = await import('@airlock/server');
      const config = serverConfig({
        home: airlockHome(),
        ...(opts.listen === undefined ? {} : { listen: opts.listen }),
        ...(opts.database === undefined ? {} : { database: opts.database }),
        ...(opts.publicUrl === undefined ? {} : { publicUrl: opts.publicUrl }),
        ...(opts.logLevel === undefined ? {} : { logLevel: opts.logLevel }),
      });
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
    });
}
