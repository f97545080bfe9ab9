import { airlockHome } from '@airlock/runner';
import { type Command, Option } from 'commander';
import type { CheckResult, DoctorContext } from '../doctor/check.js';
import { runDoctor } from '../doctor/run-doctor.js';
import { ExitCode } from '../exit-codes.js';
import { positiveInt } from '../options.js';

const MARK = { ok: 'ok  ', warn: 'WARN', fail: 'FAIL' } as const;

function human(results: readonly CheckResult[]): string {
  const width = Math.max(...results.map((r) => r.check.length), 8);
  const lines = results.map((r) => {
    const head = `${MARK[r.status]}  ${r.check.padEnd(width)}  ${r.detail}`;
    return r.fix === undefined ? head : `${head}\n${' '.repeat(width + 8)}fix: ${r.fix}`;
  });
  const n = (s: CheckResult['status']) => results.filter((r) => r.status === s).length;
  lines.push('', `${n('ok')} ok, ${n('warn')} warnings, ${n('fail')} failures`);
  return `${lines.join('\n')}\n`;
}

/** `airlock doctor`: check what this host needs and say what to fix. */
export function registerDoctorCommand(program: Command): void {
  program
    .command('doctor')
    .description(
      'check what this host needs (Node, database, server, clock, credentials, packs, sandbox backend, KVM, cgroups, images) and print what to fix',
    )
    .option('--server <url>', 'control plane to check (env AIRLOCK_SERVER; default http://127.0.0.1:7700)')
    .option('--database <target>', 'SQLite file or postgres:// URL to check (env DATABASE_URL)')
    .addOption(
      new Option('--only <groups>', 'comma-separated groups to check: server, runner, sandbox').default(
        'server,runner,sandbox',
      ),
    )
    .option('--quick', 'skip the KVM probe boot')
    .option('--timeout <seconds>', 'per network check', positiveInt('--timeout', 120), 5)
    .option('--json', 'print the results as JSON')
    .addHelpText(
      'after',
      `
Each check prints ok, WARN or FAIL with what to fix. Exit status 1 when any check fails
(warnings do not fail: a runner host needs no sandbox backend, a new install no database yet).
Secrets are never printed: database passwords and tokens are redacted.

Reads the same configuration as the services: AIRLOCK_HOME, AIRLOCK_SERVER, DATABASE_URL,
AIRLOCK_RUNNER_CONFIG, AIRLOCK_RUNNER_KEY, AIRLOCK_API_KEY (see docs/operations.md).

Examples:
  airlock doctor
  airlock doctor --only runner --server https://airlock.example.com
  sudo -u airlock sh -c 'set -a; . /etc/airlock/server.env; airlock doctor --only server --json'`,
    )
    .action(
      async (opts: {
        server?: string;
        database?: string;
        only: string;
        quick?: boolean;
        timeout: number;
        json?: boolean;
      }) => {
        const env = process.env;
        const groups = new Set(opts.only.split(',').map((g) => g.trim()));
        for (const g of groups) {
          if (!['server', 'runner', 'sandbox'].includes(g)) {
            const { AirlockError } = await import('@airlock/core');
            throw new AirlockError(
              'invalid_args',
              `--only: unknown group ${JSON.stringify(g)} (server, runner, sandbox)`,
            );
          }
        }
        const fromEnv = env['AIRLOCK_SERVER'];
        const server =
          opts.server !== undefined
            ? { url: opts.server, configured: true, source: '--server' }
            : fromEnv !== undefined && fromEnv !== ''
              ? { url: fromEnv, configured: true, source: 'AIRLOCK_SERVER' }
              : { url: 'http://127.0.0.1:7700', configured: false, source: 'default' };
        const ctx: DoctorContext = {
          env,
          home: airlockHome(env),
          server,
          skew: { warnSeconds: 5, failSeconds: 60 },
          timeoutMs: opts.timeout * 1000,
          probeKvm: opts.quick !== true,
        };
        const results = await runDoctor(ctx, {
          server: groups.has('server'),
          runner: groups.has('runner'),
          sandbox: groups.has('sandbox'),
          database: opts.database,
        });
        const failed = results.some((r) => r.status === 'fail');
        process.stdout.write(
          opts.json === true ? `${JSON.stringify({ ok: !failed, checks: results }, null, 2)}\n` : human(results),
        );
        if (failed) process.exitCode = ExitCode.failure;
      },
    );
}
