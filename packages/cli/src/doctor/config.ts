import { AirlockError } from '@airlock/core';
import { loadRunnerConfig } from '@airlock/runner';
import { type CheckResult, type DoctorContext, fail, ok } from './check.js';

/**
 * The configuration the services would start with: the server's settings from the
 * environment (validated the same way `airlock server` does) and the runner config file.
 */
export async function checkConfig(ctx: DoctorContext): Promise<CheckResult[]> {
  const out: CheckResult[] = [];
  const { describeServerConfig, serverConfig } = await import('@airlock/server');
  try {
    const c = serverConfig({ home: ctx.home }, ctx.env);
    const d = describeServerConfig(c);
    out.push(ok('server config', `listen ${d['AIRLOCK_LISTEN']}, database ${d['DATABASE_URL']}`));
  } catch (e) {
    out.push(
      fail(
        'server config',
        (e as Error).message,
        'correct the named variable (environment, or /etc/airlock/server.env for the service)',
      ),
    );
  }
  const file = ctx.env['AIRLOCK_RUNNER_CONFIG'];
  if (file !== undefined && file !== '') {
    try {
      const rc = loadRunnerConfig(file, ctx.env);
      out.push(ok('runner config', `${file}: runner "${rc.name}", ${rc.packDirs.length} pack folder(s)`));
    } catch (e) {
      out.push(
        fail(
          'runner config',
          e instanceof AirlockError ? e.message : String(e),
          `fix ${file} (AIRLOCK_RUNNER_CONFIG); keys are described in docs/operations.md`,
        ),
      );
    }
  }
  return out;
}
