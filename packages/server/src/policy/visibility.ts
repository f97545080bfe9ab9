// Which runners a caller may see: the same scope the policy engine decides with (the user's
// current scope, narrowed by the API key's), so lists and run history never show runners the
// caller could not act on. Re-read per request, like every policy input.
import type { Principal } from '../auth/principal.js';
import type { ServerContext } from '../context.js';
import { scopeCovers } from './engine.js';
import { loadScope } from './store.js';

/** A predicate over runner rows; `all` is true when the caller has no scope restriction. */
export interface RunnerVisibility {
  readonly all: boolean;
  (runner: { readonly id: string; readonly name: string; readonly labels: string }): boolean;
}

export async function runnerVisibility(ctx: ServerContext, p: Principal): Promise<RunnerVisibility> {
  const [userScope, keyScope] = await Promise.all([
    loadScope(ctx.db, 'user', p.userId),
    p.kind === 'api_key' && p.keyId !== undefined ? loadScope(ctx.db, 'api_key', p.keyId) : Promise.resolve(null),
  ]);
  const all = userScope === null && keyScope === null;
  const visible = (r: { id: string; name: string; labels: string }): boolean => {
    if (all) return true;
    const runner = { id: r.id, name: r.name, labels: JSON.parse(r.labels) as Record<string, string> };
    return scopeCovers(userScope, runner) && scopeCovers(keyScope, runner);
  };
  return Object.assign(visible, { all });
}

/** Ids of the organisation's runners the caller may see, or undefined when they may see every runner. */
export async function visibleRunnerIds(ctx: ServerContext, p: Principal): Promise<string[] | undefined> {
  const visible = await runnerVisibility(ctx, p);
  if (visible.all) return undefined;
  const rows = await ctx.db.kysely
    .selectFrom('runners')
    .select(['id', 'name', 'labels'])
    .where('org_id', '=', p.orgId)
    .execute();
  return rows.filter(visible).map((r) => r.id);
}
