// Fuzzing wire-protocol frames beyond wire.test.ts's properties (fast-check, fixed seed;
// `npm run fuzz` raises AIRLOCK_FUZZ_SCALE): every known message type with random, hostile or
// missing fields, prototype keys, nesting around the depth limit, frames around the size limit,
// and invalid UTF-8. The oracle: parseMessage never throws, refuses with a typed code, and what
// it accepts re-encodes to a frame that parses to the same value.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { MAX_FRAME_BYTES, MAX_FRAME_DEPTH, WIRE_MESSAGE_TYPES } from './messages.js';
import { encodeMessage, parseMessage } from './parse.js';

const scale = Number(process.env['AIRLOCK_FUZZ_SCALE'] ?? 1) || 1;
const fuzz = (runs: number) => ({
  numRuns: Math.max(1, Math.round(runs * scale)),
  seed: Number(process.env['AIRLOCK_FUZZ_SEED'] ?? 20260425),
});

const CODES = ['frame_too_large', 'not_json', 'not_object', 'unknown_type', 'invalid_field'];

function check(frame: string | Uint8Array): void {
  const r = parseMessage(frame);
  if (!r.ok) {
    assert.ok(CODES.includes(r.error.code), r.error.code);
    assert.equal(typeof r.error.message, 'string');
    return;
  }
  assert.ok(WIRE_MESSAGE_TYPES.includes(r.value.type));
  const again = parseMessage(encodeMessage(r.value));
  assert.ok(again.ok, 'an accepted message re-encodes to a valid frame');
  assert.deepStrictEqual(again.value, r.value);
}

const FIELDS = [
  'request_id',
  'action',
  'args',
  'limits',
  'reason',
  'seq',
  'stream',
  'line',
  'status',
  'exit_code',
  'duration_ms',
  'runner',
  'version',
  'packs',
  'capabilities',
  'ts',
  'code',
  'message',
  'principal',
  'audit_hash',
  'sandbox',
  'egress',
  'event',
  '__proto__',
  'constructor',
  'prototype',
];
const hostile = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.constantFrom(-0, 1e308, -1e308, 2 ** 53 + 1, '', '\u0000', '\ud800', 'x'.repeat(70_000), [], {}),
);

describe('wire frame fuzzing', () => {
  it('every message type with random and hostile fields', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...WIRE_MESSAGE_TYPES),
        fc.dictionary(fc.constantFrom(...FIELDS), hostile, { maxKeys: 8 }),
        (type, fields) => {
          check(JSON.stringify({ ...fields, type }));
          // The same with the prototype keys written literally (JSON.stringify drops __proto__ set this way).
          check(`{"type":${JSON.stringify(type)},"__proto__":{"polluted":true},"request_id":"r"}`);
        },
      ),
      fuzz(800),
    );
    assert.equal(({} as Record<string, unknown>)['polluted'], undefined);
  });

  it('nesting around the depth limit and frames around the size limit', () => {
    for (const depth of [MAX_FRAME_DEPTH - 1, MAX_FRAME_DEPTH, MAX_FRAME_DEPTH + 1, 10_000]) {
      check(`{"type":"run_action","request_id":"r","args":{"a":${'['.repeat(depth)}${']'.repeat(depth)}}}`);
    }
    const pad = (n: number) => `{"type":"ping","ts":1,"pad":"${'x'.repeat(n)}"}`;
    const base = pad(0).length;
    for (const n of [MAX_FRAME_BYTES - base - 1, MAX_FRAME_BYTES - base, MAX_FRAME_BYTES - base + 1]) {
      check(pad(n));
      check(new TextEncoder().encode(pad(n)));
    }
    const big = parseMessage(pad(MAX_FRAME_BYTES));
    assert.ok(!big.ok && big.error.code === 'frame_too_large');
  });

  it('random bytes with a valid prefix and invalid UTF-8 are refused as typed errors', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), fc.constantFrom(...WIRE_MESSAGE_TYPES), (tail, type) => {
        const head = new TextEncoder().encode(`{"type":"${type}","x":"`);
        const frame = new Uint8Array(head.length + tail.length + 2);
        frame.set(head);
        frame.set(tail, head.length);
        frame.set([0x22, 0x7d], head.length + tail.length);
        check(frame);
      }),
      fuzz(800),
    );
  });
});
