import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { tempDir } from '../testing/fixture.js';
import { DedupRing } from './dedup-ring.js';

test('dedup ring file is compacted by count: it never holds more than twice the capacity', () => {
  const t = tempDir();
  try {
    const path = join(t.dir, 'acked');
    const ring = new DedupRing(path, 4);
    for (let i = 0; i < 50; i++) {
      ring.add(`id-${i}`);
      const lines = readFileSync(path, 'utf8').trim().split('\n').length;
      assert.ok(lines <= 8, `${lines} lines after ${i + 1} adds`);
    }
    const again = new DedupRing(path, 4);
    assert.deepEqual(
      ['id-45', 'id-46', 'id-49'].map((id) => again.has(id)),
      [false, true, true],
    );
    // Counting resumes from the file after a restart.
    for (let i = 50; i < 60; i++) again.add(`id-${i}`);
    assert.ok(readFileSync(path, 'utf8').trim().split('\n').length <= 8);
    assert.equal(again.has('id-59'), true);
  } finally {
    t.cleanup();
  }
});
