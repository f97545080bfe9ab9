// The pieces that keep a runner honest across crashes and under pressure: the outbox's cap on
// replayable output, finding an attempt already logged for a request, and the log-space check.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { SecurityLog } from '../security-log.js';
import { tempDir } from '../testing/fixture.js';
import { isNoSpace, logSpaceProblem } from './log-space.js';
import { findLoggedAttempt } from './logged-attempt.js';
import { OUTBOX_OUTPUT_MAX, Outbox } from './outbox.js';

test('the outbox keeps at most OUTBOX_OUTPUT_MAX bytes of output per request for replay', () => {
  const t = tempDir();
  try {
    const o = new Outbox(join(t.dir, 'outbox'));
    o.accept('r1', { type: 'run_action', request_id: 'r1' });
    const line = 'x'.repeat(1000);
    for (let seq = 0; seq < 3000; seq++) o.appendOutput('r1', { type: 'output', request_id: 'r1', seq, line });
    const kept = o.entries()[0]!.outputs;
    const bytes = kept.reduce((n, f) => n + JSON.stringify(f).length + 1, 0);
    assert.ok(bytes <= OUTBOX_OUTPUT_MAX, `${bytes} bytes kept`);
    assert.ok(kept.length > 900 && kept.length < 3000, `${kept.length} lines kept`);
    assert.deepEqual(
      kept.slice(0, 3).map((f) => f['seq']),
      [0, 1, 2],
      'the first lines are the ones kept',
    );
  } finally {
    t.cleanup();
  }
});

test('an attempt already in the security log is found by request id (the last one wins)', () => {
  const t = tempDir();
  try {
    const path = join(t.dir, 'events.jsonl');
    const log = new SecurityLog(path);
    const base = {
      time: '2025-01-01T00:00:00.000Z',
      kind: 'action.attempt',
      principal: { type: 'user', id: 'u1' },
      runner: 'r',
      action: 'a.b',
      pack_hash: null,
      args_digest: `sha256:${'0'.repeat(64)}`,
      args: {},
      reason: null,
      exit_code: 0,
      duration_ms: 1,
      output_digest: null,
      output_bytes: 0,
      truncated: false,
      clamped: [],
      error: null,
    } as const;
    log.append({ ...base, id: 'req-1', status: 'success' });
    const second = log.append({ ...base, id: 'req-2', status: 'failure' });
    assert.equal(findLoggedAttempt(path, 'req-2')?.hash, second.hash);
    assert.equal(findLoggedAttempt(path, 'req-3'), undefined);
    assert.equal(findLoggedAttempt(join(t.dir, 'missing.jsonl'), 'req-1'), undefined);
  } finally {
    t.cleanup();
  }
});

test('log space: refused below the minimum, with the folder and numbers; ENOSPC-like errors recognised', () => {
  const t = tempDir();
  try {
    assert.equal(logSpaceProblem(t.dir, 1), undefined);
    assert.match(logSpaceProblem(t.dir, Number.MAX_SAFE_INTEGER) ?? '', /bytes free, below the \d+ bytes needed/);
    assert.match(logSpaceProblem(join(t.dir, 'nope')) ?? '', /cannot be checked/);
    assert.equal(isNoSpace(Object.assign(new Error('x'), { code: 'ENOSPC' })), true);
    assert.equal(isNoSpace(Object.assign(new Error('x'), { code: 'EACCES' })), false);
  } finally {
    t.cleanup();
  }
});
