import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ERROR_CODES } from './errors.js';
import { AIRLOCK_VERSION } from './version.js';

const root = resolve(fileURLToPath(import.meta.url), '../../../..');

test('AIRLOCK_VERSION matches package.json', () => {
  const pkg = JSON.parse(readFileSync(resolve(root, 'package.json'), 'utf8')) as { version: string };
  assert.equal(AIRLOCK_VERSION, pkg.version);
});

test('error codes are pinned', () => {
  // Codes are a public contract (HTTP bodies, CLI output, logs): change deliberately.
  assert.deepEqual(Object.keys(ERROR_CODES).sort(), [
    'audit_chain_broken',
    'binary_not_found',
    'internal',
    'invalid_args',
    'invalid_config',
    'invalid_limits',
    'invalid_message',
    'invalid_spec',
    'invalid_template',
    'invalid_yaml',
    'not_available',
    'pack_hash_mismatch',
    'script_tampered',
    'spawn_failed',
    'unknown_action',
    'unknown_pack',
  ]);
});
