import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { type ActionSpec, formatSpecError, loadPackFromFiles, type Pack } from '@airlock/core';
import { readPackFiles } from './pack-dir.js';

/** A pack as loaded by a runner: the parsed pack and the folder it came from. */
export interface LoadedPack {
  readonly pack: Pack;
  readonly dir: string;
}

/** Why a folder could not be loaded as a pack. Loading goes on with the other packs. */
export interface PackLoadFailure {
  readonly dir: string;
  readonly errors: readonly string[];
}

/** The packs a runner serves, indexed by action id. Immutable: a reload builds a new one. */
export interface Catalog {
  readonly packs: readonly LoadedPack[];
  readonly failures: readonly PackLoadFailure[];
  readonly loadedAt: string;
  findAction(id: string): { readonly loaded: LoadedPack; readonly action: ActionSpec } | undefined;
  findPack(name: string): LoadedPack | undefined;
}

/** Load one pack folder. */
export function loadPackDir(dir: string): { ok: true; value: LoadedPack } | { ok: false; failure: PackLoadFailure } {
  let files: ReturnType<typeof readPackFiles>;
  try {
    files = readPackFiles(dir);
  } catch (e) {
    return { ok: false, failure: { dir, errors: [(e as Error).message] } };
  }
  const res = loadPackFromFiles(files);
  if (!res.ok) return { ok: false, failure: { dir, errors: res.errors.map(formatSpecError) } };
  return { ok: true, value: Object.freeze({ pack: res.value, dir }) };
}

/**
 * Each configured directory is either one pack (it holds `pack.yaml`) or a folder of packs.
 * A pack name or action id declared twice is a failure for the later pack, never a silent override.
 */
export function loadCatalog(dirs: readonly string[]): Catalog {
  const packDirs: string[] = [];
  const failures: PackLoadFailure[] = [];
  for (const d of dirs) {
    if (!existsSync(d) || !statSync(d).isDirectory()) {
      failures.push({ dir: d, errors: [`${d}: not a directory`] });
      continue;
    }
    if (existsSync(join(d, 'pack.yaml'))) packDirs.push(d);
    else {
      for (const name of readdirSync(d).sort()) {
        const sub = join(d, name);
        if (!name.startsWith('.') && existsSync(join(sub, 'pack.yaml'))) packDirs.push(sub);
      }
    }
  }
  const packs: LoadedPack[] = [];
  const byAction = new Map<string, { loaded: LoadedPack; action: ActionSpec }>();
  const byName = new Map<string, LoadedPack>();
  for (const dir of packDirs) {
    const r = loadPackDir(dir);
    if (!r.ok) {
      failures.push(r.failure);
      continue;
    }
    const loaded = r.value;
    const clash: string[] = [];
    if (byName.has(loaded.pack.name))
      clash.push(`pack name ${loaded.pack.name} already loaded from ${byName.get(loaded.pack.name)!.dir}`);
    for (const a of loaded.pack.actions) {
      const prev = byAction.get(a.id);
      if (prev !== undefined) clash.push(`action ${a.id} already declared by pack ${prev.loaded.pack.name}`);
    }
    if (clash.length > 0) {
      failures.push({ dir, errors: clash });
      continue;
    }
    packs.push(loaded);
    byName.set(loaded.pack.name, loaded);
    for (const a of loaded.pack.actions) byAction.set(a.id, { loaded, action: a });
  }
  return Object.freeze({
    packs: Object.freeze(packs),
    failures: Object.freeze(failures),
    loadedAt: new Date().toISOString(),
    findAction: (id: string) => byAction.get(id),
    findPack: (name: string) => byName.get(name),
  });
}
