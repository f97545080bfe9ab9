import assert from 'node:assert/strict';
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { tempDir } from '../testing/fixture.js';
import { DedupRing } from './dedup-ring.js';
import { Outbox } from './outbox.js';

test('outbox keeps request, output and result until removed, across re-opening', () => {
  const t = tempDir();
  try {
    const a = new Outbox(join(t.dir, 'outbox'));
    a.accept('r1', { type: 'run_action', request_id: 'r1' });
    a.appendOutput('r1', { type: 'output', request_id: 'r1', seq: 0, line: 'x' });
    a.accept('r2', { type: 'run_action', request_id: 'r2' });
    a.complete('r1', { type: 'result', request_id: 'r1', status: 'success' });
    const b = new Outbox(join(t.dir, 'outbox'));
    const entries = b.entries();
    assert.deepEqual(
      entries.map((e) => [e.requestId, e.outputs.length, e.result?.['status']]),
      [
        ['r1', 1, 'success'],
        ['r2', 0, undefined],
      ],
    );
    b.remove('r1');
    assert.equal(b.has('r1'), false);
    assert.equal(b.has('r2'), true);
  } finally {
    t.cleanup();
  }
});

test('outbox tolerates a torn last output line and refuses unsafe ids', () => {
  const t = tempDir();
  try {
    const o = new Outbox(join(t.dir, 'outbox'));
    o.accept('r1', { request_id: 'r1' });
    o.appendOutput('r1', { seq: 0 });
    appendFileSync(join(t.dir, 'outbox', 'r1', 'output.jsonl'), '{"seq":1,"li');
    assert.deepEqual(o.entries()[0]?.outputs, [{ seq: 0 }]);
    assert.throws(() => o.accept('../etc', {}), /unsafe request id/);
    assert.equal(o.has('../etc'), false);
  } finally {
    t.cleanup();
  }
});

test('dedup ring remembers ids across restarts and stays bounded', () => {
  const t = tempDir();
  try {
    const path = join(t.dir, 'acked');
    const ring = new DedupRing(path, 3);
    for (const id of ['a', 'b', 'c', 'd']) ring.add(id);
    assert.equal(ring.has('a'), false, 'oldest id evicted');
    assert.equal(ring.has('d'), true);
    const again = new DedupRing(path, 3);
    assert.deepEqual(
      ['a', 'b', 'c', 'd'].map((id) => again.has(id)),
      [false, true, true, true],
    );
    writeFileSync(path, readFileSync(path, 'utf8'));
  } finally {
    t.cleanup();
  }
});
