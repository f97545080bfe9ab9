import { readFileSync, writeFileSync } from 'node:fs';
import { z } from 'zod';
import type { AdoptRecord } from './backends/types.js';

/**
 * The per-sandbox record a daemon leaves on disk so that its successor can
 * find the VM after a crash. Treated as untrusted input on the way back in.
 */

const LimitsSchema = z.object({
  memory_mb: z.number().int().positive(),
  vcpus: z.number().int().positive(),
  rw_mb: z.number().int().positive(),
  lifetime_s: z.number().int().positive().nullable(),
  exec_timeout_ms: z.number().int().positive(),
  max_output_bytes: z.number().int().nonnegative(),
  max_procs: z.number().int().positive().optional(),
  max_exec_timeout_ms: z.number().int().positive().optional(),
  max_exec_output_bytes: z.number().int().nonnegative().optional(),
});

/** What is written to `$AIRLOCK_HOME/sandboxes/ID/record.json`; validated before a restart acts on it. */
const SavedRecordSchema = z.object({
  record: z.looseObject({
    backend: z.enum(['qemu', 'gvisor', 'firecracker']),
    id: z.string().regex(/^sb_[0-9a-f]{12}$/),
    pid: z.number().int().positive(),
    startTime: z.number().int().nonnegative(),
  }),
  pack: z.string(),
  limits: LimitsSchema,
  env: z.record(z.string(), z.string()),
  createdAt: z.string(),
  warm: z.boolean().optional(),
});

/** A validated record. */
export type SavedRecord = z.infer<typeof SavedRecordSchema> & { record: AdoptRecord };

/** Read and validate a record; undefined when missing or malformed (the caller reaps the dir). */
export function readSavedRecord(file: string): SavedRecord | undefined {
  try {
    const r = SavedRecordSchema.safeParse(JSON.parse(readFileSync(file, 'utf8')));
    return r.success ? (r.data as SavedRecord) : undefined;
  } catch {
    return undefined;
  }
}

/** Write a record (small; written whole). */
export function writeSavedRecord(file: string, r: SavedRecord): void {
  writeFileSync(file, JSON.stringify(r));
}
