import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The airlock data directory: `$AIRLOCK_HOME`, else `~/.airlock`. */
export function airlockHome(env: NodeJS.ProcessEnv = process.env): string {
  return env['AIRLOCK_HOME'] ?? join(homedir(), '.airlock');
}

/**
 * Where built guest images live: `$AIRLOCK_IMAGE_CACHE` when set (tests and CI
 * share one cache so images are built once per run), else `$AIRLOCK_HOME/images`.
 */
export function imageCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return env['AIRLOCK_IMAGE_CACHE'] ?? join(airlockHome(env), 'images');
}

/** Per-sandbox runtime state (sockets, pid files): `$AIRLOCK_HOME/sandboxes`. */
export function sandboxStateDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(airlockHome(env), 'sandboxes');
}

/** The repository's `guest/` folder (agent sources and pack recipes); `$AIRLOCK_GUEST_DIR` overrides. */
export function guestSourceDir(env: NodeJS.ProcessEnv = process.env): string {
  // dist/paths.js → packages/sandbox/dist → repository root is three levels up.
  return env['AIRLOCK_GUEST_DIR'] ?? resolve(fileURLToPath(import.meta.url), '../../../../guest');
}
