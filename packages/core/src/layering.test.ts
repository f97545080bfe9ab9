// The core package is pure logic: no Node I/O, so it can run anywhere (browser dashboard,
// other runtimes) and so side effects provably live at the edges. This test enforces it.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const src = resolve(fileURLToPath(import.meta.url), '../../src');

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const full = join(dir, n);
    if (statSync(full).isDirectory()) return sources(full);
    return n.endsWith('.ts') && !n.endsWith('.test.ts') ? [full] : [];
  });
}

const FORBIDDEN =
  /(?:from\s+|import\s*\(\s*|require\s*\(\s*)['"](node:[a-z_/]+|fs|child_process|net|http|https|dgram|dns|os|tls|worker_threads|cluster|process|path|crypto|stream|readline|vm|v8|inspector)['"]/g;

test('packages/core imports no Node module outside tests', () => {
  const files = sources(src);
  assert.ok(files.length > 5, 'expected core sources');
  const hits: string[] = [];
  for (const f of files) {
    const text = readFileSync(f, 'utf8');
    for (const m of text.matchAll(FORBIDDEN)) hits.push(`${f.slice(src.length + 1)}: ${m[1]}`);
    if (/\bprocess\.(env|exit|argv|stdout|stderr)\b/.test(text))
      hits.push(`${f.slice(src.length + 1)}: uses process globals`);
  }
  assert.deepEqual(hits, []);
});

test('the layering check itself catches an import', () => {
  const sample = "import { readFileSync } from 'node:fs';\nconst x = await import('child_process');";
  assert.equal([...sample.matchAll(FORBIDDEN)].length, 2);
});
