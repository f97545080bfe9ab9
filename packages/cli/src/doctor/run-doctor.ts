import { AirlockError } from '@airlock/core';
import { loadRunnerConfig, type RunnerConfig } from '@airlock/runner';
import { type CheckResult, type DoctorContext, fail } from './check.js';
import { checkConfig } from './config.js';
import { checkApiKey, checkRunnerToken } from './credentials.js';
import { checkDatabase } from './database.js';
import { checkNode } from './node-version.js';
import { checkPacks } from './packs.js';
import { checkBackends, checkCgroups, checkImages, checkKvm } from './sandbox-host.js';
import { checkServer } from './server.js';

/** Which groups of checks to run; a host runs some of the services, rarely all. */
export interface DoctorScope {
  readonly server: boolean;
  readonly runner: boolean;
  readonly sandbox: boolean;
  /** `--database`: check this target instead of DATABASE_URL. */
  readonly database?: string | undefined;
}

/** Run the checks in order; each is independent, and a crash in one is reported as its failure. */
export async function runDoctor(ctx: DoctorContext, scope: DoctorScope): Promise<CheckResult[]> {
  const results: CheckResult[] = [checkNode()];
  const guard = async (name: string, f: () => Promise<CheckResult[]>): Promise<void> => {
    try {
      results.push(...(await f()));
    } catch (e) {
      results.push(
        fail(
          name,
          e instanceof AirlockError ? e.message : String((e as Error)?.message ?? e),
          'this check itself failed; see the message',
        ),
      );
    }
  };
  await guard('config', () => checkConfig(ctx));
  if (scope.server) await guard('database', async () => [await checkDatabase(ctx, scope.database)]);
  const reached = await checkServer(ctx);
  results.push(...reached.results);
  let serverPacks: { name: string; hash: string; status: string }[] | undefined;
  await guard('api key', async () => {
    const k = await checkApiKey(ctx, reached.reach);
    serverPacks = k.packs;
    return k.result === undefined ? [] : [k.result];
  });
  if (scope.runner) {
    let config: RunnerConfig | undefined;
    try {
      const file = ctx.env['AIRLOCK_RUNNER_CONFIG'];
      config = loadRunnerConfig(file === '' ? undefined : file, ctx.env);
    } catch {
      // Reported by the config check.
    }
    if (config !== undefined) {
      const c = config;
      await guard('runner token', async () => [await checkRunnerToken(ctx, c, reached.reach)]);
      await guard('packs', async () => checkPacks(c, serverPacks));
    }
  }
  if (scope.sandbox) {
    results.push(...checkBackends());
    let images: { kernel: string; initramfs: string } | undefined;
    await guard('images', async () => {
      const r = await checkImages(ctx.env);
      images = r.images;
      return [r.result];
    });
    await guard('kvm', async () => [await checkKvm(ctx, images)]);
    await guard('cgroups', async () => [await checkCgroups()]);
  }
  return results;
}
