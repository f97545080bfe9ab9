import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { AuditEventFields } from '@airlock/core';
import { SecurityLog, verifyLogFile } from './security-log.js';
import { tempDir } from './testing/fixture.js';

const fields = (i: number): AuditEventFields => ({
  id: `req-${i}`,
  time: new Date().toISOString(),
  kind: 'action.attempt',
  principal: { type: 'local', id: 't' },
  runner: 'r',
  action: 'fx.echo',
  pack_hash: null,
  args_digest: `sha256:${'0'.repeat(64)}`,
  args: { i },
  reason: null,
  status: 'success',
  exit_code: 0,
  duration_ms: 1,
  output_digest: null,
  output_bytes: 0,
  truncated: false,
  clamped: [],
  error: null,
});

test('group commit: concurrent appends share fsyncs, keep one chain, and each is on disk when it resolves', async () => {
  const t = tempDir();
  try {
    const path = join(t.dir, 'events.jsonl');
    const log = new SecurityLog(path);
    const other = new SecurityLog(path); // a second writer (as `airlock action run` next to a runner)
    const seen: number[] = [];
    const all = Array.from({ length: 50 }, (_, i) =>
      log.appendDurable(fields(i)).then((e) => {
        // Resolved means written: the line is in the file by now.
        assert.ok(readFileSync(path, 'utf8').includes(`"hash":"${e.hash}"`));
        seen.push(e.seq);
        return e;
      }),
    );
    other.append(fields(1000));
    const events = await Promise.all(all);
    other.append(fields(1001));
    const more = await Promise.all([log.appendDurable(fields(51)), log.appendDurable(fields(52))]);
    assert.ok(log.batches < 50, `expected batching, got ${log.batches} batches for 52 events`);
    assert.equal(new Set([...events, ...more].map((e) => e.seq)).size, 52);
    const v = verifyLogFile(path);
    assert.equal(v.ok, true, JSON.stringify(v));
    assert.equal(readFileSync(path, 'utf8').trim().split('\n').length, 54);
  } finally {
    t.cleanup();
  }
});

test('a busy writer keeps the lock between batches, gives it up when idle, and never starves another process', async () => {
  const t = tempDir();
  try {
    const path = join(t.dir, 'events.jsonl');
    const log = new SecurityLog(path);
    // Another process (as `airlock action run` on the same host) appending 20 events one by one
    // while this one appends continuously for longer than the lock is ever held at a stretch.
    const other = spawn(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `const { SecurityLog } = await import(${JSON.stringify(new URL('./security-log.js', import.meta.url).href)});
         const log = new SecurityLog(${JSON.stringify(path)});
         for (let i = 0; i < 20; i++) {
           log.append({ ...${JSON.stringify(fields(0))}, id: 'other-' + i });
           await new Promise((r) => setTimeout(r, 20));
         }`,
      ],
      { stdio: ['ignore', 'inherit', 'inherit'] },
    );
    const exited = new Promise<number | null>((res) => other.on('exit', res));
    let done = false;
    let mine = 0;
    void exited.then(() => {
      done = true;
    });
    while (!done) {
      await Promise.all(Array.from({ length: 5 }, (_, i) => log.appendDurable(fields(mine + i))));
      mine += 5;
    }
    assert.equal(await exited, 0, 'the other writer finished within its lock timeout');
    // Idle again: the lock file is gone, so the next writer takes it at once.
    await new Promise((r) => setTimeout(r, 10));
    assert.equal(existsSync(`${path}.lock`), false);
    const v = verifyLogFile(path);
    assert.equal(v.ok, true, JSON.stringify(v));
    const lines = readFileSync(path, 'utf8').trim().split('\n');
    assert.equal(lines.length, mine + 20);
    assert.equal(lines.filter((l) => l.includes('"other-')).length, 20);
    assert.ok(log.batches < mine, `expected batching, got ${log.batches} batches for ${mine} events`);
  } finally {
    t.cleanup();
  }
});
