import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The data directory: `$AIRLOCK_HOME`, else `~/.airlock`. */
export function airlockHome(env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env['AIRLOCK_HOME'];
  return fromEnv !== undefined && fromEnv !== '' ? resolve(fromEnv) : join(homedir(), '.airlock');
}

/** The pack catalog shipped with airlock (`packs/` at the repository or release root). */
export function bundledPacksDir(): string {
  // dist/paths.js → packages/runner/dist → repository root
  return resolve(fileURLToPath(import.meta.url), '../../../../packs');
}

/** Default location of the runner's hash-chained security log. */
export function defaultSecurityLogPath(env: NodeJS.ProcessEnv = process.env): string {
  return join(airlockHome(env), 'runner', 'events.jsonl');
}

/** The PATH a runner gives to actions unless its config says otherwise. */
export const DEFAULT_ACTION_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
