// Tests build the spawn helper themselves (scripts/ensure.mjs normally does), so the helper
// path is what they exercise even right after a plain `tsc -b`.
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_SPAWNER_PATH, SpawnHelper } from '../spawner/helper.js';

const buildScript = resolve(fileURLToPath(import.meta.url), '../../../native/build.mjs');

/** Build the helper if it is missing or stale; throws when it cannot be built. */
export function ensureSpawnerBuilt(): string {
  const r = spawnSync(process.execPath, [buildScript], { encoding: 'utf8' });
  if (r.status !== 0 || !SpawnHelper.available(DEFAULT_SPAWNER_PATH))
    throw new Error(`cannot build the spawn helper: ${r.stderr}${r.stdout}`);
  return DEFAULT_SPAWNER_PATH;
}
