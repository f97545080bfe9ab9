import { loadCatalog, type RunnerConfig } from '@airlock/runner';
import { type CheckResult, fail, ok, warn } from './check.js';

/**
 * The packs this host would load, against what is trusted: the runner config's pinned hashes
 * and, when an API key could read them, the control plane's decisions.
 */
export function checkPacks(
  config: RunnerConfig,
  serverPacks: readonly { name: string; hash: string; status: string }[] | undefined,
): CheckResult[] {
  const catalog = loadCatalog(config.packDirs);
  const out: CheckResult[] = [];
  for (const f of catalog.failures) {
    out.push(
      fail(`pack ${f.dir}`, f.errors.slice(0, 3).join('; '), `"airlock pack validate ${f.dir}" shows every error`),
    );
  }
  const problems: string[] = [];
  const pending: string[] = [];
  for (const { pack } of catalog.packs) {
    const pin = config.trusted[pack.name];
    if (pin !== undefined && pin !== pack.hash) problems.push(`${pack.name}: loaded ${pack.hash}, config pins ${pin}`);
    const decided = serverPacks?.find((p) => p.name === pack.name && p.hash === pack.hash);
    if (serverPacks !== undefined) {
      if (decided?.status === 'rejected')
        problems.push(`${pack.name}: hash ${pack.hash} was rejected on the control plane`);
      else if (decided?.status !== 'trusted') pending.push(`${pack.name} (${decided?.status ?? 'not seen yet'})`);
    }
  }
  const n = catalog.packs.length;
  if (problems.length > 0) {
    out.push(
      fail(
        'packs',
        problems.join('; '),
        'a changed pack is not dispatched until its new hash is reviewed: restore the reviewed files, or review and trust the new hash (dashboard, Packs)',
      ),
    );
  } else if (pending.length > 0) {
    out.push(
      warn(
        'packs',
        `${n} loaded; waiting for trust on the control plane: ${pending.join(', ')}`,
        'review and trust them in the dashboard (Packs) or with POST /api/v1/packs/:id/trust',
      ),
    );
  } else {
    const where =
      serverPacks !== undefined
        ? 'all trusted on the control plane'
        : 'trust on the control plane not checked (set AIRLOCK_API_KEY)';
    out.push(ok('packs', `${n} loaded from ${config.packDirs.join(', ')}; ${where}`));
  }
  return out;
}
