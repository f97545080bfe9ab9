import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { pidAlive, tempDir, waitFor } from './testing/fixture.js';
import { writeFixturePack } from './testing/fixture-pack.js';

const childScript = resolve(fileURLToPath(import.meta.url), '../testing/run-child.js');

test('killing the runner with SIGKILL kills the running action', async () => {
  const t = tempDir();
  try {
    const allowed = join(t.dir, 'allowed');
    mkdirSync(allowed);
    const packDir = writeFixturePack(join(t.dir, 'pack'), allowed);
    const runner = spawn(
      process.execPath,
      [childScript, packDir, join(t.dir, 'events.jsonl'), 'fx.sleep', '{"seconds": 300}'],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    let out = '';
    runner.stdout.on('data', (c: Buffer) => {
      out += c.toString();
    });
    assert.ok(await waitFor(() => /^\d+\n/.test(out), 10_000), `action never started: ${out}`);
    const actionPid = Number.parseInt(out, 10);
    assert.ok(pidAlive(actionPid));
    runner.kill('SIGKILL');
    assert.ok(await waitFor(() => !pidAlive(actionPid), 5000), `action ${actionPid} survived the runner`);
  } finally {
    t.cleanup();
  }
});
