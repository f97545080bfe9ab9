// Test support for policy tests: a pack with change and destructive actions, users, keys.
import { randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Db } from '../../db/database.js';
import type { Role } from '../../db/schema.js';
import { mintTestKey } from '../../testing/keys.js';

/** Write the `ops` test pack (ops.wipe destructive, ops.touch change, ops.look read) into dir. */
export function writeOpsPack(dir: string): string {
  const root = join(dir, 'ops');
  mkdirSync(join(root, 'actions'), { recursive: true });
  writeFileSync(
    join(root, 'pack.yaml'),
    'name: ops\nversion: 1.0.0\nnamespace: ops\ndescription: Test actions at every risk tier; they only echo.\n',
  );
  const action = (id: string, risk: string) =>
    `id: ops.${id}\ntitle: ${id}\ndescription: Echo for tests.\nrisk: ${risk}\nkind: exec\nargv: ["echo", "${id}", "{{target}}"]\nargs:\n  target: { type: string, required: true, pattern: '[a-z0-9-]{1,40}', max_length: 40 }\nlimits: { timeout_s: 5, timeout_s_max: 30, output_bytes: 4096, output_bytes_max: 8192 }\n`;
  writeFileSync(join(root, 'actions', 'wipe.yaml'), action('wipe', 'destructive'));
  writeFileSync(join(root, 'actions', 'touch.yaml'), action('touch', 'change'));
  writeFileSync(join(root, 'actions', 'look.yaml'), action('look', 'read'));
  return root;
}

export const ALL_SCOPES = [
  'runs:read',
  'runs:write',
  'runners:read',
  'runners:write',
  'packs:read',
  'packs:trust',
  'audit:read',
  'users:read',
  'users:write',
  'keys:write',
];

/** Insert a user (no usable password) and mint a key for them. */
export async function addUser(
  db: Db,
  orgId: string,
  username: string,
  role: Role,
  scopes: readonly string[] = ALL_SCOPES,
): Promise<{ id: string; key: string }> {
  const id = randomUUID();
  await db.kysely
    .insertInto('users')
    .values({
      id,
      org_id: orgId,
      username,
      password_hash: 'x',
      role,
      disabled: 0,
      must_change_password: 0,
      created_at: new Date().toISOString(),
    })
    .execute();
  return { id, key: await mintTestKey(db, orgId, id, scopes) };
}

/** Id of the API key with this token's prefix. */
export async function keyIdOf(db: Db, token: string): Promise<string> {
  const prefix = token.split('_').slice(0, 2).join('_');
  const rows = await db.kysely.selectFrom('api_keys').select(['id', 'prefix']).execute();
  const row = rows.find((r) => token.startsWith(r.prefix)) ?? rows.find((r) => r.prefix === prefix);
  if (row === undefined) throw new Error('no such key');
  return row.id;
}
