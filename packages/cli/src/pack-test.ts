import { AirlockError } from '@airlock/core';
import { parseDocument } from 'yaml';
import { z } from 'zod';

const PackTestSchema = z
  .object({
    action: z.string().min(1),
    args: z.record(z.string(), z.unknown()).default({}),
    expect: z
      .object({
        status: z.enum(['success', 'failure', 'validation_failed', 'error', 'timeout', 'cancelled']).default('success'),
        stdout_contains: z.string().optional(),
      })
      .strict()
      .default({ status: 'success' }),
  })
  .strict();

/** A pack test (`tests/*.yaml`): run an action with args, expect a status and output. */
export type PackTest = z.infer<typeof PackTestSchema>;

/** Parse a pack test file; errors name the file and field. */
export function parsePackTest(text: string, file: string): PackTest {
  const doc = parseDocument(text, { uniqueKeys: true });
  if (doc.errors.length > 0) throw new AirlockError('invalid_yaml', `${file}: ${doc.errors[0]!.message}`);
  const r = PackTestSchema.safeParse(doc.toJS());
  if (!r.success) {
    throw new AirlockError(
      'invalid_spec',
      r.error.issues.map((i) => `${file}: ${i.path.join('.') || '(root)'}: ${i.message}`).join('\n'),
    );
  }
  return r.data;
}
