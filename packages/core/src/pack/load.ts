/**
 * Loading a whole pack from its files (already read by the caller: core does no I/O).
 * All files are checked and every error is reported, so `airlock pack validate` shows an
 * author the complete list in one run.
 */

import { packHash } from '../hash/pack-hash.js';
import { sha256Hex } from '../hash/sha256.js';
import { parseActionSpec, type SpecResult } from './action.js';
import { deepFreeze, FrozenMap } from './freeze.js';
import { parsePackManifest } from './manifest.js';
import type { SpecError } from './spec-error.js';
import type { ActionSpec, Pack, PackFileDigest } from './types.js';

/** One file handed to {@link loadPackFromFiles}: pack-relative `/`-separated path and bytes. */
export interface PackInputFile {
  readonly path: string;
  readonly bytes: Uint8Array;
}

const ACTION_FILE = /^actions\/[^/]+\.yaml$/;

/**
 * Validate a pack: `pack.yaml`, every `actions/*.yaml`, namespaces, unique ids, script
 * files, then compute the pack hash over all files. Hidden files must already be excluded
 * by the caller (they are refused here, since they would change the hash).
 */
export function loadPackFromFiles(files: readonly PackInputFile[]): SpecResult<Pack> {
  const errors: SpecError[] = [];
  const byPath = new Map<string, Uint8Array>();
  for (const f of files) {
    const bad = checkPackPath(f.path);
    if (bad !== undefined) errors.push({ file: f.path, path: '', message: bad });
    else if (byPath.has(f.path)) errors.push({ file: f.path, path: '', message: 'listed twice' });
    else byPath.set(f.path, f.bytes);
  }

  const decode = (path: string, bytes: Uint8Array): string | undefined => {
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch {
      errors.push({ file: path, path: '', message: 'not valid UTF-8' });
      return undefined;
    }
  };

  let namespace: string | undefined;
  let manifest: Pack['manifest'] | undefined;
  const manifestBytes = byPath.get('pack.yaml');
  if (manifestBytes === undefined) {
    errors.push({ file: 'pack.yaml', path: '', message: 'missing: a pack has a pack.yaml at its root' });
  } else {
    const text = decode('pack.yaml', manifestBytes);
    if (text !== undefined) {
      const r = parsePackManifest(text, 'pack.yaml');
      if (r.ok) {
        manifest = r.value;
        namespace = r.value.namespace;
      } else errors.push(...r.errors);
    }
  }

  const actions: ActionSpec[] = [];
  const idFile = new Map<string, string>();
  let actionFiles = 0;
  const paths = [...byPath.keys()].sort(byteOrder);
  for (const path of paths) {
    if (!path.startsWith('actions/')) continue;
    if (!ACTION_FILE.test(path)) {
      errors.push({
        file: path,
        path: '',
        message: 'not an action file: actions/ holds only *.yaml files, one action each',
      });
      continue;
    }
    actionFiles++;
    const text = decode(path, byPath.get(path) ?? new Uint8Array());
    if (text === undefined) continue;
    const r: SpecResult<ActionSpec> = parseActionSpec(text, path, {
      ...(namespace === undefined ? {} : { namespace }),
      fileExists: (p) => byPath.has(p),
    });
    if (!r.ok) {
      errors.push(...r.errors);
      continue;
    }
    const other = idFile.get(r.value.id);
    if (other !== undefined) {
      errors.push({ file: path, path: 'id', message: `duplicate id ${r.value.id} (also in ${other})` });
      continue;
    }
    idFile.set(r.value.id, path);
    actions.push(r.value);
  }
  if (actionFiles === 0) {
    errors.push({ file: 'actions/', path: '', message: 'the pack declares no actions (actions/*.yaml)' });
  }

  if (errors.length > 0 || manifest === undefined) return { ok: false, errors };

  const digests: PackFileDigest[] = paths.map((path) => ({
    path,
    sha256: sha256Hex(byPath.get(path) ?? new Uint8Array()),
  }));
  let hash: string;
  try {
    hash = packHash(files);
  } catch (e) {
    return { ok: false, errors: [{ file: '', path: '', message: (e as Error).message }] };
  }
  actions.sort((a, b) => byteOrder(a.id, b.id));
  const scripts = new FrozenMap(digests.filter((d) => d.path.startsWith('scripts/')).map((d) => [d.path, d.sha256]));
  const pack: Pack = {
    manifest,
    name: manifest.name,
    version: manifest.version,
    namespace: manifest.namespace,
    hash,
    actions: deepFreeze(actions),
    files: deepFreeze(digests),
    scripts,
  };
  return { ok: true, value: Object.freeze(pack) };
}

function byteOrder(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Why a file path cannot be part of a pack, or undefined. */
function checkPackPath(p: string): string | undefined {
  if (p.length === 0 || p.startsWith('/') || p.includes('\\') || p.includes('\0')) {
    return 'not a normalised relative path';
  }
  const segments = p.split('/');
  if (segments.some((s) => s === '' || s === '.' || s === '..')) return 'not a normalised relative path';
  if (segments.some((s) => s.startsWith('.'))) return 'hidden files are not part of a pack';
  return undefined;
}
