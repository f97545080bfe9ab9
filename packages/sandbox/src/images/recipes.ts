import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { SandboxError } from '../errors.js';

const PackRecipeSchema = z.strictObject({
  name: z.string().regex(/^[a-z][a-z0-9-]{0,31}$/),
  description: z.string(),
  debs: z.array(z.string().regex(/^[a-z0-9][a-z0-9+.-]*$/)).min(1),
  /** argv prefix the daemon puts before the code: `[...run, code]`. */
  run: z.array(z.string()).min(1),
  links: z.record(z.string().startsWith('/'), z.string()),
  /** Code that must print exactly `ok` in a fresh sandbox (`images build --verify`). */
  smoke: z.string(),
  /** Python version whose standard library is byte-compiled at build time (first run is then fast). */
  precompilePython: z
    .string()
    .regex(/^3\.\d+$/)
    .optional(),
});

const KernelRecipeSchema = z.strictObject({
  description: z.string(),
  metapackage: z.string(),
  packagePrefix: z.string(),
  modules: z.array(z.string().regex(/^kernel\/[\w/.-]+\.ko$/)).min(1),
});

/** A language pack recipe from `guest/packs/NAME.json`. */
export type PackRecipe = z.infer<typeof PackRecipeSchema>;
/** The guest kernel recipe from `guest/kernel.json`. */
export type KernelRecipe = z.infer<typeof KernelRecipeSchema>;

function load<T>(file: string, schema: z.ZodType<T>): T {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new SandboxError('image_build_failed', `${file}: ${(e as Error).message}`);
  }
  const r = schema.safeParse(raw);
  if (!r.success)
    throw new SandboxError(
      'image_build_failed',
      `${file}: ${r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
    );
  return r.data;
}

/** Every language pack recipe in `guestDir/packs`, sorted by name. */
export function loadPackRecipes(guestDir: string): PackRecipe[] {
  const dir = join(guestDir, 'packs');
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => load(join(dir, f), PackRecipeSchema));
}

/** The kernel recipe. */
export function loadKernelRecipe(guestDir: string): KernelRecipe {
  return load(join(guestDir, 'kernel.json'), KernelRecipeSchema);
}
