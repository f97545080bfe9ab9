// The offline examples stay runnable: each is executed as a user would.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { repoRoot } from './testing/processes.js';

test('examples/mcp-agent-loop runs offline and the scripted model recovers from a field error', () => {
  const r = spawnSync(process.execPath, [join(repoRoot, 'examples', 'mcp-agent-loop', 'run.mjs')], {
    cwd: repoRoot,
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, AIRLOCK_HOME: '' },
  });
  assert.equal(r.status, 0, r.stderr + r.stdout);
  assert.match(r.stdout, /tool ERROR: validation_failed: args\.message: must not start with '-'/);
  assert.match(r.stdout, /hello from an agent/);
  assert.match(r.stdout, /model: Done\. The host said: /);
});
