import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { RunnerConfig } from '@airlock/runner';
import { type CheckResult, type DoctorContext, fail, ok, warn } from './check.js';
import { probeGet } from './http-probe.js';
import type { ServerReach } from './server.js';

/** Where the runner token comes from, as `airlock runner connect` looks for it. */
function runnerToken(ctx: DoctorContext, config: RunnerConfig): { token?: string; source: string; file: string } {
  const file = config.tokenFile ?? join(dirname(config.logPath), 'token');
  const fromEnv = ctx.env['AIRLOCK_RUNNER_KEY'];
  if (fromEnv !== undefined && fromEnv !== '') return { token: fromEnv, source: 'AIRLOCK_RUNNER_KEY', file };
  if (existsSync(file)) {
    try {
      return { token: readFileSync(file, 'utf8').trim(), source: file, file };
    } catch (e) {
      return { source: `${file} (unreadable: ${(e as Error).message})`, file };
    }
  }
  return { source: 'none', file };
}

/**
 * The runner token is present, private, and accepted by the control plane. Acceptance is
 * asked of the runner WebSocket endpoint *without* upgrading: a refused token gets 401
 * before any socket exists, an accepted one does not, and a live runner session of the same
 * token is left alone.
 */
export async function checkRunnerToken(
  ctx: DoctorContext,
  config: RunnerConfig,
  reach: ServerReach,
): Promise<CheckResult> {
  const t = runnerToken(ctx, config);
  if (t.token === undefined || t.token === '') {
    return warn(
      'runner token',
      `none (looked at AIRLOCK_RUNNER_KEY and ${t.file})`,
      'only needed on a runner host: create the runner on the control plane and run "airlock runner connect --server URL --bootstrap-key alb_…"',
    );
  }
  if (t.source === t.file) {
    const mode = statSync(t.file).mode & 0o777;
    if ((mode & 0o077) !== 0) {
      return fail(
        'runner token',
        `${t.file} is readable by others (mode ${mode.toString(8)})`,
        `chmod 600 ${t.file} and consider revoking the token: anyone who read it can act as this runner`,
      );
    }
  }
  if (!reach.reachable)
    return warn('runner token', `present (${t.source}); not checked: server unreachable`, 'see the server check');
  let status: number;
  try {
    status = (
      await probeGet(`${reach.base}/api/v1/runners/connect`, { authorization: `Bearer ${t.token}` }, ctx.timeoutMs)
    ).status;
  } catch (e) {
    return warn('runner token', `present (${t.source}); check failed: ${(e as Error).message}`, 'retry');
  }
  if (status === 401) {
    return fail(
      'runner token',
      `refused by ${reach.base} (revoked, or issued by another control plane)`,
      'create a new bootstrap key for this runner (POST /api/v1/runners or the dashboard) and run "airlock runner connect --bootstrap-key …"',
    );
  }
  return ok('runner token', `present (${t.source}) and accepted by ${reach.base}`);
}

/** The API key used by `airlock mcp`, `policy` and `audit` (AIRLOCK_API_KEY) is accepted. */
export async function checkApiKey(
  ctx: DoctorContext,
  reach: ServerReach,
): Promise<{ result: CheckResult | undefined; packs?: { name: string; hash: string; status: string }[] }> {
  const key = ctx.env['AIRLOCK_API_KEY'];
  if (key === undefined || key === '') return { result: undefined };
  if (!reach.reachable)
    return { result: warn('api key', 'AIRLOCK_API_KEY set; not checked: server unreachable', 'see the server check') };
  try {
    const r = await probeGet(`${reach.base}/api/v1/packs`, { authorization: `Bearer ${key}` }, ctx.timeoutMs);
    if (r.status === 401) {
      return {
        result: fail(
          'api key',
          `AIRLOCK_API_KEY refused by ${reach.base}`,
          'create a new API key (dashboard or POST /api/v1/keys)',
        ),
      };
    }
    if (r.status === 403) {
      return {
        result: warn(
          'api key',
          'AIRLOCK_API_KEY accepted but may not read packs',
          'give the key the packs:read scope to check trust here',
        ),
      };
    }
    const packs = (JSON.parse(r.body) as { packs: { name: string; hash: string; status: string }[] }).packs;
    return { result: ok('api key', `AIRLOCK_API_KEY accepted by ${reach.base}`), packs };
  } catch (e) {
    return { result: warn('api key', `check failed: ${(e as Error).message}`, 'retry') };
  }
}
