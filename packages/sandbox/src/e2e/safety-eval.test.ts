/**
 * The short version of the safety harness (`npm run eval` runs all cases and
 * writes docs/safety-eval.md): the quick escape and denial-of-service cases
 * against a real daemon, each of which must be contained.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ensureImages, testImageDir } from '../testing/harness.js';

const repo = resolve(fileURLToPath(import.meta.url), '../../../../..');

describe('safety harness, short version (eval/run.mjs --short)', { timeout: 900_000 }, () => {
  it('contains every quick case', async () => {
    await ensureImages();
    const child = spawn(process.execPath, [join(repo, 'eval', 'run.mjs'), '--short', '--json'], {
      env: { ...process.env, AIRLOCK_IMAGE_CACHE: testImageDir(), AIRLOCK_EVAL_ACCEL: 'tcg' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
    });
    const code = await new Promise<number | null>((r) => child.on('exit', r));
    const report = JSON.parse(out) as { results: { name: string; contained: boolean; observed: string }[] };
    const failed = report.results.filter((r) => !r.contained);
    assert.deepEqual(
      failed.map((r) => `${r.name}: ${r.observed}`),
      [],
    );
    assert.ok(report.results.length >= 10, `${report.results.length} cases ran`);
    assert.equal(code, 0);
  });
});
