/** Parsing of `pack.yaml`. */
import { checkRedactRules, type SpecResult } from './action.js';
import { deepFreeze } from './freeze.js';
import { PackManifestSchema } from './schema.js';
import { addZodIssues, parseYamlText } from './spec-error.js';
import type { PackManifest } from './types.js';

/** Parse and check `pack.yaml`; `file` names it in error messages. */
export function parsePackManifest(text: string, file = 'pack.yaml'): SpecResult<PackManifest> {
  const parsed = parseYamlText(text, file);
  if (!parsed.ok) return { ok: false, errors: parsed.errors };
  const { sink } = parsed;
  const res = PackManifestSchema.safeParse(parsed.data, { reportInput: true });
  if (!res.success) {
    addZodIssues(sink, res.error.issues);
    return { ok: false, errors: sink.errors };
  }
  const redact = checkRedactRules(res.data.redact ?? [], ['redact'], sink);
  if (!sink.ok) return { ok: false, errors: sink.errors };
  const manifest: PackManifest = {
    name: res.data.name,
    version: res.data.version,
    namespace: res.data.namespace,
    description: res.data.description,
    redact,
  };
  return { ok: true, value: deepFreeze(manifest) };
}
