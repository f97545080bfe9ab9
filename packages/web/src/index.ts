import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Where the built dashboard lives (`dist/app`, made by `build.mjs`). */
export const WEB_ASSETS_DIR: string = resolve(fileURLToPath(import.meta.url), '..', 'app');

/** True when the dashboard bundle has been built. */
export function webAssetsBuilt(dir: string = WEB_ASSETS_DIR): boolean {
  return existsSync(join(dir, 'index.html'));
}
