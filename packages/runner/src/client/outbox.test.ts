import assert from 'node:assert/strict';
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
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

test('outbox tolerates a torn last record (a crash mid-write) and refuses unsafe ids', () => {
  const t = tempDir();
  try {
    const dir = join(t.dir, 'outbox');
    const o = new Outbox(dir);
    o.accept('r1', { request_id: 'r1' });
    o.appendOutput('r1', { seq: 0 });
    o.complete('r1', { status: 'success' }); // flushes the output line before it
    appendFileSync(join(dir, 'journal.jsonl'), '{"op":"output","id":"r1","output":{"seq":1,"li');
    const again = new Outbox(dir);
    assert.deepEqual(again.entries()[0]?.outputs, [{ seq: 0 }]);
    assert.equal(again.result('r1')?.['status'], 'success');
    // The torn tail is gone, so the next record is not glued to it.
    again.accept('r2', { request_id: 'r2' });
    assert.deepEqual(
      new Outbox(dir).entries().map((e) => e.requestId),
      ['r1', 'r2'],
    );
    assert.throws(() => o.accept('../etc', {}), /unsafe request id/);
    assert.equal(o.has('../etc'), false);
  } finally {
    t.cleanup();
  }
});

test('outbox: durable appends are on disk when they resolve; many share one fsync; removal survives a restart', async () => {
  const t = tempDir();
  try {
    const dir = join(t.dir, 'outbox');
    const o = new Outbox(dir);
    await Promise.all(Array.from({ length: 50 }, (_, i) => o.acceptDurable(`q${i}`, { request_id: `q${i}` })));
    const onDisk = readFileSync(join(dir, 'journal.jsonl'), 'utf8');
    for (let i = 0; i < 50; i++) assert.ok(onDisk.includes(`"id":"q${i}"`), `q${i} written before resolving`);
    await Promise.all(Array.from({ length: 50 }, (_, i) => o.completeDurable(`q${i}`, { status: 'success', i })));
    for (let i = 0; i < 49; i++) o.remove(`q${i}`);
    await o.completeDurable('q49', { status: 'success', i: 49 }); // flushes the removals with it
    const b = new Outbox(dir);
    assert.deepEqual(
      b.entries().map((e) => [e.requestId, e.result?.['i']]),
      [['q49', 49]],
    );
    // Reopening rewrote the journal with only the live entry.
    assert.equal(readFileSync(join(dir, 'journal.jsonl'), 'utf8').trim().split('\n').length, 2);
  } finally {
    t.cleanup();
  }
});

test('outbox: folders written by the earlier one-folder-per-request layout are imported, then removed', () => {
  const t = tempDir();
  try {
    const dir = join(t.dir, 'outbox');
    mkdirSync(join(dir, 'old1'), { recursive: true });
    writeFileSync(join(dir, 'old1', 'request.json'), JSON.stringify({ request_id: 'old1' }));
    writeFileSync(join(dir, 'old1', 'output.jsonl'), '{"seq":0}\n{"seq":1,"li');
    writeFileSync(join(dir, 'old1', 'result.json'), JSON.stringify({ status: 'failure' }));
    const o = new Outbox(dir);
    assert.deepEqual(o.entries(), [
      { requestId: 'old1', request: { request_id: 'old1' }, outputs: [{ seq: 0 }], result: { status: 'failure' } },
    ]);
    assert.equal(existsSync(join(dir, 'old1')), false);
    assert.equal(new Outbox(dir).has('old1'), true, 'kept in the journal');
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
