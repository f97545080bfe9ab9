import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { AirlockError } from '../errors.js';
import {
  encodeMessage,
  MAX_FRAME_BYTES,
  PROTOCOL_VERSION,
  parseMessage,
  WIRE_MESSAGE_TYPES,
  type WireFrameError,
  type WireMessage,
  wireJsonSchemas,
} from './index.js';
import { SANDBOX_VALID } from './sandbox-fixtures.test-support.js';

const H = `sha256:${'ab'.repeat(32)}`;

const VALID: Record<string, Record<string, unknown>[]> = {
  hello: [
    {
      type: 'hello',
      protocol: 1,
      runner: { name: 'web-1' },
      version: '0.1.0',
      packs: [{ name: 'linux-core', version: '1.0.0', hash: H, actions: ['linux.uptime'] }],
      capabilities: ['actions'],
    },
    {
      type: 'hello',
      protocol: 1,
      runner: { name: 'web-1', id: 'rn_1' },
      version: '0.1.0',
      token: 'secret',
      packs: [],
      capabilities: [],
      labels: { env: 'prod' },
      outbox: { pending: 2 },
    },
  ],
  welcome: [
    { type: 'welcome', protocol: 1, runner_id: 'rn_1', session_id: 'ss_1', server_version: '0.1.0', heartbeat_s: 20 },
  ],
  run_action: [
    {
      type: 'run_action',
      request_id: 'req_01H-x',
      action: 'linux.journal',
      pack: 'linux-core',
      pack_hash: H,
      args: { unit: 'nginx', lines: 50 },
      reason: 'why is nginx down',
      principal: { type: 'user', id: 'u_1' },
    },
    {
      type: 'run_action',
      request_id: 'r',
      action: 'linux.restart',
      pack: 'linux-core',
      pack_hash: H,
      args: {},
      limits: { timeout_s: 10 },
      reason: 'x',
      principal: { type: 'oauth_client', id: 'c_1', name: 'Claude' },
      approval: { approvers: ['u_2'], signature: 'sig', key_id: 'k1' },
      deadline: '2025-01-01T00:00:30Z',
    },
  ],
  accepted: [{ type: 'accepted', request_id: 'r1' }],
  output: [
    { type: 'output', request_id: 'r1', seq: 0, stream: 'stdout', line: 'hello' },
    { type: 'output', request_id: 'r1', seq: 7, stream: 'stderr', line: '', partial: true },
  ],
  result: [
    {
      type: 'result',
      request_id: 'r1',
      status: 'success',
      exit_code: 0,
      duration_ms: 12.5,
      truncated: false,
      output_bytes: 5,
      clamped: [],
      audit_hash: H,
    },
    {
      type: 'result',
      request_id: 'r1',
      status: 'validation_failed',
      exit_code: null,
      duration_ms: 0,
      truncated: false,
      output_bytes: 0,
      clamped: [{ name: 'timeout_s', requested: 9000, applied: 3600, bound: 'max' }],
      audit_hash: H,
      error: { code: 'invalid_args', message: 'lines: must be <= 1000' },
      started_at: '2025-01-01T00:00:00.000Z',
      finished_at: '2025-01-01T00:00:00.010+02:00',
    },
  ],
  ack: [{ type: 'ack', request_id: 'r1' }],
  cancel: [
    { type: 'cancel', request_id: 'r1' },
    { type: 'cancel', request_id: 'r1', reason: 'user pressed stop' },
  ],
  ping: [{ type: 'ping', ts: 1735689600000 }],
  pong: [{ type: 'pong', ts: 1735689600000 }],
  error: [
    { type: 'error', code: 'invalid_message', message: 'run_action.args: expected object' },
    { type: 'error', code: 'unknown_action', message: 'no such action', request_id: 'r1' },
  ],
  pack_files_request: [
    {
      type: 'pack_files_request',
      request_id: 'f1',
      pack: 'linux-core',
      hash: `sha256:${'a'.repeat(64)}`,
      paths: ['pack.yaml'],
    },
  ],
  pack_files: [
    {
      type: 'pack_files',
      request_id: 'f1',
      pack: 'linux-core',
      hash: `sha256:${'a'.repeat(64)}`,
      files: [
        { path: 'pack.yaml', sha256: 'b'.repeat(64), content: 'name: linux-core\n' },
        { path: 'scripts/blob.bin', sha256: 'c'.repeat(64), content: null },
      ],
    },
  ],
  ...SANDBOX_VALID,
};

function base(type: string): Record<string, unknown> {
  const v = VALID[type]?.[0];
  assert.ok(v, type);
  return structuredClone(v);
}

function with_(type: string, patch: Record<string, unknown>, drop: string[] = []): string {
  const m = { ...base(type), ...patch };
  for (const k of drop) delete m[k];
  return JSON.stringify(m);
}

const INVALID: {
  name: string;
  frame: string | Uint8Array;
  code: WireFrameError['code'];
  field?: string;
  message?: RegExp;
}[] = [
  { name: 'not JSON', frame: '{"type":', code: 'not_json' },
  { name: 'empty frame', frame: '', code: 'not_json' },
  { name: 'invalid UTF-8 bytes', frame: new Uint8Array([0x7b, 0xff, 0x7d]), code: 'not_json' },
  { name: 'array', frame: '[]', code: 'not_object' },
  { name: 'string', frame: '"hello"', code: 'not_object' },
  { name: 'null', frame: 'null', code: 'not_object' },
  { name: 'unknown type', frame: '{"type":"exec_shell"}', code: 'unknown_type', field: 'type' },
  { name: 'prototype key as type', frame: '{"type":"__proto__"}', code: 'unknown_type' },
  { name: 'missing type', frame: '{"request_id":"r"}', code: 'invalid_field', field: 'type' },
  { name: 'numeric type', frame: '{"type":3}', code: 'invalid_field', field: 'type' },
  { name: 'hello: wrong protocol', frame: with_('hello', { protocol: 2 }), code: 'invalid_field', field: 'protocol' },
  {
    name: 'hello: bad pack hash',
    frame: with_('hello', { packs: [{ name: 'p', version: '1', hash: 'md5:x', actions: [] }] }),
    code: 'invalid_field',
    field: 'packs[0].hash',
  },
  {
    name: 'hello: runner without name',
    frame: with_('hello', { runner: {} }),
    code: 'invalid_field',
    field: 'runner.name',
    message: /required/,
  },
  {
    name: 'hello: negative outbox',
    frame: with_('hello', { outbox: { pending: -1 } }),
    code: 'invalid_field',
    field: 'outbox.pending',
  },
  {
    name: 'hello: label not string',
    frame: with_('hello', { labels: { a: 1 } }),
    code: 'invalid_field',
    field: 'labels.a',
  },
  {
    name: 'welcome: heartbeat 0',
    frame: with_('welcome', { heartbeat_s: 0 }),
    code: 'invalid_field',
    field: 'heartbeat_s',
  },
  {
    name: 'welcome: missing session',
    frame: with_('welcome', {}, ['session_id']),
    code: 'invalid_field',
    field: 'session_id',
  },
  {
    name: 'run_action: args array',
    frame: with_('run_action', { args: [] }),
    code: 'invalid_field',
    field: 'args',
    message: /^run_action\.args: expected object/,
  },
  {
    name: 'run_action: bad request id',
    frame: with_('run_action', { request_id: 'a b' }),
    code: 'invalid_field',
    field: 'request_id',
  },
  {
    name: 'run_action: long request id',
    frame: with_('run_action', { request_id: 'a'.repeat(129) }),
    code: 'invalid_field',
    field: 'request_id',
  },
  {
    name: 'run_action: empty reason',
    frame: with_('run_action', { reason: '' }),
    code: 'invalid_field',
    field: 'reason',
    message: /empty/,
  },
  {
    name: 'run_action: long reason',
    frame: with_('run_action', { reason: 'x'.repeat(2001) }),
    code: 'invalid_field',
    field: 'reason',
  },
  {
    name: 'run_action: principal type',
    frame: with_('run_action', { principal: { type: 'root', id: 'x' } }),
    code: 'invalid_field',
    field: 'principal.type',
  },
  {
    name: 'run_action: limit not number',
    frame: with_('run_action', { limits: { timeout_s: '10' } }),
    code: 'invalid_field',
    field: 'limits.timeout_s',
  },
  {
    name: 'run_action: bad deadline',
    frame: with_('run_action', { deadline: 'tomorrow' }),
    code: 'invalid_field',
    field: 'deadline',
  },
  {
    name: 'run_action: no approvers',
    frame: with_('run_action', { approval: { approvers: [] } }),
    code: 'invalid_field',
    field: 'approval.approvers',
  },
  {
    name: 'run_action: unknown field',
    frame: with_('run_action', { shell: true }),
    code: 'invalid_field',
    field: 'shell',
    message: /unknown field/,
  },
  {
    name: 'run_action: args nested too deep',
    frame: with_('run_action', { args: { a: JSON.parse(`${'['.repeat(100)}${']'.repeat(100)}`) } }),
    code: 'invalid_field',
    message: /nested deeper/,
  },
  { name: 'accepted: missing request id', frame: '{"type":"accepted"}', code: 'invalid_field', field: 'request_id' },
  { name: 'output: negative seq', frame: with_('output', { seq: -1 }), code: 'invalid_field', field: 'seq' },
  { name: 'output: fractional seq', frame: with_('output', { seq: 1.5 }), code: 'invalid_field', field: 'seq' },
  { name: 'output: bad stream', frame: with_('output', { stream: 'stdin' }), code: 'invalid_field', field: 'stream' },
  { name: 'output: line not string', frame: with_('output', { line: 5 }), code: 'invalid_field', field: 'line' },
  { name: 'result: bad status', frame: with_('result', { status: 'ok' }), code: 'invalid_field', field: 'status' },
  {
    name: 'result: exit code float',
    frame: with_('result', { exit_code: 1.5 }),
    code: 'invalid_field',
    field: 'exit_code',
  },
  {
    name: 'result: missing audit hash',
    frame: with_('result', {}, ['audit_hash']),
    code: 'invalid_field',
    field: 'audit_hash',
  },
  {
    name: 'result: clamp bound',
    frame: with_('result', { clamped: [{ name: 't', requested: 1, applied: 2, bound: 'x' }] }),
    code: 'invalid_field',
    field: 'clamped[0].bound',
  },
  {
    name: 'result: negative duration',
    frame: with_('result', { duration_ms: -1 }),
    code: 'invalid_field',
    field: 'duration_ms',
  },
  { name: 'ack: extra field', frame: '{"type":"ack","request_id":"r","x":1}', code: 'invalid_field', field: 'x' },
  { name: 'cancel: reason number', frame: with_('cancel', { reason: 3 }), code: 'invalid_field', field: 'reason' },
  { name: 'ping: ts string', frame: '{"type":"ping","ts":"now"}', code: 'invalid_field', field: 'ts' },
  { name: 'pong: missing ts', frame: '{"type":"pong"}', code: 'invalid_field', field: 'ts' },
  { name: 'error: missing message', frame: '{"type":"error","code":"x"}', code: 'invalid_field', field: 'message' },
  {
    name: 'oversize frame',
    frame: `{"type":"ping","ts":1,"pad":"${'x'.repeat(MAX_FRAME_BYTES)}"}`,
    code: 'frame_too_large',
  },
  { name: 'oversize multibyte frame', frame: `"${'é'.repeat(MAX_FRAME_BYTES / 2)}"`, code: 'frame_too_large' },
  { name: 'oversize binary frame', frame: new Uint8Array(MAX_FRAME_BYTES + 1), code: 'frame_too_large' },
];

describe('parseMessage', () => {
  it('covers every message type with valid examples', () => {
    assert.deepEqual(Object.keys(VALID).sort(), [...WIRE_MESSAGE_TYPES].sort());
    assert.equal(PROTOCOL_VERSION, 1);
    assert.equal(MAX_FRAME_BYTES, 1048576);
  });

  for (const [type, list] of Object.entries(VALID)) {
    list.forEach((msg, i) => {
      it(`accepts ${type} #${i}, as text and as bytes`, () => {
        const text = JSON.stringify(msg);
        for (const frame of [text, new TextEncoder().encode(text)]) {
          const r = parseMessage(frame);
          assert.ok(r.ok, r.ok ? '' : r.error.message);
          assert.deepEqual(r.value, msg);
        }
      });
    });
  }

  for (const c of INVALID) {
    it(`refuses ${c.name}`, () => {
      const r = parseMessage(c.frame);
      assert.equal(r.ok, false);
      if (r.ok) return;
      assert.equal(r.error.code, c.code, r.error.message);
      if (c.field !== undefined) assert.equal(r.error.field, c.field, r.error.message);
      if (c.message !== undefined) assert.match(r.error.message, c.message);
      if (c.field !== undefined && c.code === 'invalid_field')
        assert.ok(r.error.message.includes(c.field), r.error.message);
    });
  }

  it('accepts a frame of exactly MAX_FRAME_BYTES', () => {
    const head = '{"type":"ping","ts":1,"x":"';
    const frame = `${head}${'x'.repeat(MAX_FRAME_BYTES - head.length - 2)}"}`;
    assert.equal(frame.length, MAX_FRAME_BYTES);
    const r = parseMessage(frame);
    assert.equal(r.ok ? 'ok' : r.error.code, 'invalid_field'); // size passed; `x` is the unknown field
  });

  it('does not let __proto__ keys through or pollute prototypes', () => {
    const r = parseMessage('{"type":"ack","request_id":"r","__proto__":{"polluted":1}}');
    assert.equal(r.ok ? 'ok' : r.error.code, 'invalid_field');
    const args = parseMessage(with_('run_action', { args: JSON.parse('{"__proto__":{"polluted":1}}') }));
    assert.ok(args.ok);
    assert.equal(({} as Record<string, unknown>)['polluted'], undefined);
  });
});

// ---- generated messages ----

const requestId = fc.stringMatching(/^[A-Za-z0-9_-]{1,128}$/);
const digest = fc.stringMatching(/^[0-9a-f]{64}$/).map((h) => `sha256:${h}`);
const nameArb = fc.string({ minLength: 1, maxLength: 40 });
const iso = fc
  .date({ min: new Date(Date.UTC(1970, 0, 1)), max: new Date(Date.UTC(9999, 11, 31)), noInvalidDate: true })
  .map((d) => d.toISOString());
const finite = fc.double({ noNaN: true, noDefaultInfinity: true });
const status = fc.constantFrom('success', 'failure', 'validation_failed', 'error', 'timeout', 'cancelled');

const messageArb: fc.Arbitrary<WireMessage> = fc.oneof(
  fc.record(
    {
      type: fc.constant('hello' as const),
      protocol: fc.constant(1 as const),
      runner: fc.record({ name: nameArb, id: nameArb }, { requiredKeys: ['name'] }),
      version: fc.string({ minLength: 1, maxLength: 64 }),
      token: fc.string({ minLength: 1, maxLength: 100 }),
      packs: fc.array(
        fc.record({ name: nameArb, version: nameArb, hash: digest, actions: fc.array(nameArb, { maxLength: 5 }) }),
        {
          maxLength: 4,
        },
      ),
      capabilities: fc.array(fc.string({ minLength: 1, maxLength: 64 }), { maxLength: 4 }),
      labels: fc.dictionary(fc.string({ minLength: 1, maxLength: 64 }), fc.string({ maxLength: 256 })),
      outbox: fc.record({ pending: fc.nat() }),
    },
    { requiredKeys: ['type', 'protocol', 'runner', 'version', 'packs', 'capabilities'] },
  ),
  fc.record({
    type: fc.constant('welcome' as const),
    protocol: fc.constant(1 as const),
    runner_id: nameArb,
    session_id: nameArb,
    server_version: fc.string({ minLength: 1, maxLength: 64 }),
    heartbeat_s: fc.integer({ min: 1, max: 3600 }),
  }),
  fc.record(
    {
      type: fc.constant('run_action' as const),
      request_id: requestId,
      action: nameArb,
      pack: nameArb,
      pack_hash: digest,
      args: fc.dictionary(fc.string(), fc.jsonValue({ maxDepth: 4 })),
      limits: fc.dictionary(fc.string({ minLength: 1, maxLength: 64 }), finite),
      reason: fc.string({ minLength: 1, maxLength: 2000 }),
      principal: fc.record(
        {
          type: fc.constantFrom('user', 'api_key', 'oauth_client', 'local'),
          id: nameArb,
          name: fc.string({ maxLength: 256 }),
        },
        { requiredKeys: ['type', 'id'] },
      ),
      approval: fc.record(
        { approvers: fc.array(nameArb, { minLength: 1, maxLength: 3 }), signature: nameArb, key_id: nameArb },
        { requiredKeys: ['approvers'] },
      ),
      deadline: iso,
    },
    { requiredKeys: ['type', 'request_id', 'action', 'pack', 'pack_hash', 'args', 'reason', 'principal'] },
  ),
  fc.record({ type: fc.constant('accepted' as const), request_id: requestId }),
  fc.record(
    {
      type: fc.constant('output' as const),
      request_id: requestId,
      seq: fc.nat(),
      stream: fc.constantFrom('stdout', 'stderr'),
      line: fc.string({ unit: 'grapheme' }),
      partial: fc.boolean(),
    },
    { requiredKeys: ['type', 'request_id', 'seq', 'stream', 'line'] },
  ),
  fc.record(
    {
      type: fc.constant('result' as const),
      request_id: requestId,
      status,
      exit_code: fc.option(fc.integer({ min: -255, max: 255 }), { nil: null }),
      duration_ms: fc.double({ min: 0, noNaN: true, noDefaultInfinity: true }),
      truncated: fc.boolean(),
      output_bytes: fc.nat(),
      clamped: fc.array(
        fc.record({ name: nameArb, requested: finite, applied: finite, bound: fc.constantFrom('min', 'max') }),
        {
          maxLength: 3,
        },
      ),
      audit_hash: digest,
      error: fc.record({ code: fc.string({ minLength: 1, maxLength: 64 }), message: fc.string() }),
      started_at: iso,
      finished_at: iso,
    },
    {
      requiredKeys: [
        'type',
        'request_id',
        'status',
        'exit_code',
        'duration_ms',
        'truncated',
        'output_bytes',
        'clamped',
        'audit_hash',
      ],
    },
  ),
  fc.record({ type: fc.constant('ack' as const), request_id: requestId }),
  fc.record(
    { type: fc.constant('cancel' as const), request_id: requestId, reason: fc.string() },
    { requiredKeys: ['type', 'request_id'] },
  ),
  fc.record({ type: fc.constant('ping' as const), ts: finite }),
  fc.record({ type: fc.constant('pong' as const), ts: finite }),
  fc.record(
    {
      type: fc.constant('error' as const),
      code: fc.string({ minLength: 1, maxLength: 64 }),
      message: fc.string(),
      request_id: requestId,
    },
    { requiredKeys: ['type', 'code', 'message'] },
  ),
);

function assertTyped(r: ReturnType<typeof parseMessage>): void {
  if (r.ok) {
    assert.ok(WIRE_MESSAGE_TYPES.includes(r.value.type));
  } else {
    assert.ok(['frame_too_large', 'not_json', 'not_object', 'unknown_type', 'invalid_field'].includes(r.error.code));
    assert.equal(typeof r.error.message, 'string');
    assert.ok(r.error.message.length > 0);
  }
}

describe('wire properties', () => {
  it('encode → parse round trips generated valid messages', () => {
    fc.assert(
      fc.property(messageArb, (msg) => {
        const text = encodeMessage(msg);
        const r = parseMessage(text);
        assert.ok(r.ok, r.ok ? '' : r.error.message);
        // Through JSON, as the peer sees it (-0 becomes 0).
        assert.deepStrictEqual(r.value, JSON.parse(JSON.stringify(msg)));
      }),
      { numRuns: 300 },
    );
  });

  it('never throws on random strings and bytes', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.uint8Array()), (frame) => {
        assertTyped(parseMessage(frame));
      }),
      { numRuns: 500 },
    );
  });

  it('never throws on random JSON values, with or without a known type', () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.option(fc.constantFrom(...WIRE_MESSAGE_TYPES)), (v, type) => {
        const value = type !== null && typeof v === 'object' && v !== null && !Array.isArray(v) ? { ...v, type } : v;
        assertTyped(parseMessage(JSON.stringify(value)));
      }),
      { numRuns: 500 },
    );
  });

  it('never throws on mutated valid frames', () => {
    const mutation = fc.oneof(
      fc.record({ kind: fc.constant('drop' as const), key: fc.nat() }),
      fc.record({ kind: fc.constant('set' as const), key: fc.nat(), value: fc.jsonValue() }),
      fc.record({ kind: fc.constant('add' as const), key: fc.string(), value: fc.jsonValue() }),
      fc.record({ kind: fc.constant('cut' as const), at: fc.nat() }),
      fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), ch: fc.string({ minLength: 1, maxLength: 1 }) }),
    );
    fc.assert(
      fc.property(messageArb, mutation, (msg, m) => {
        const obj: Record<string, unknown> = JSON.parse(JSON.stringify(msg));
        const keys = Object.keys(obj);
        let frame: string;
        if (m.kind === 'drop' || m.kind === 'set') {
          const key = keys[m.key % keys.length] ?? 'type';
          if (m.kind === 'drop') delete obj[key];
          else obj[key] = m.value;
          frame = JSON.stringify(obj);
        } else if (m.kind === 'add') {
          obj[m.key] = m.value;
          frame = JSON.stringify(obj);
        } else {
          const text = JSON.stringify(obj);
          const at = m.at % text.length;
          frame = m.kind === 'cut' ? text.slice(0, at) : text.slice(0, at) + m.ch + text.slice(at + 1);
        }
        assertTyped(parseMessage(frame));
      }),
      { numRuns: 500 },
    );
  });
});

describe('encodeMessage', () => {
  it('refuses an invalid message with AirlockError invalid_message naming the field', () => {
    const bad = { ...base('run_action'), args: 'rm -rf /' } as unknown as WireMessage;
    assert.throws(
      () => encodeMessage(bad),
      (e: unknown) => e instanceof AirlockError && e.code === 'invalid_message' && e.data?.['field'] === 'args',
    );
    assert.throws(() => encodeMessage({ type: 'nope' } as unknown as WireMessage), AirlockError);
  });

  it('refuses a message that would exceed the frame limit', () => {
    const big: WireMessage = {
      type: 'output',
      request_id: 'r',
      seq: 0,
      stream: 'stdout',
      line: 'x'.repeat(MAX_FRAME_BYTES),
    };
    assert.throws(() => encodeMessage(big), /larger than/);
  });
});

describe('wireJsonSchemas', () => {
  it('gives a strict object schema for every type', () => {
    const schemas = wireJsonSchemas();
    assert.deepEqual(Object.keys(schemas), [...WIRE_MESSAGE_TYPES]);
    for (const [type, s] of Object.entries(schemas)) {
      assert.equal(s['type'], 'object', type);
      assert.equal(s['additionalProperties'], false, type);
      assert.deepEqual((s['properties'] as Record<string, unknown>)['type'], { type: 'string', const: type });
    }
  });
});

describe('docs/wire-protocol.md', () => {
  // The examples in the protocol document must be accepted by the validator.
  it('has a valid example for every message type', () => {
    const doc = readFileSync(new URL('../../../../docs/wire-protocol.md', import.meta.url), 'utf8');
    const examples = [...doc.matchAll(/```json\n([\s\S]*?)```/g)].map((m) => m[1] ?? '');
    const seen = new Set<string>();
    for (const text of examples) {
      const value: unknown = JSON.parse(text);
      if (typeof value !== 'object' || value === null || !('type' in value)) continue;
      const r = parseMessage(JSON.stringify(value));
      assert.ok(r.ok, r.ok ? '' : `${r.error.message} in\n${text}`);
      seen.add(r.value.type);
    }
    assert.deepEqual([...seen].sort(), [...WIRE_MESSAGE_TYPES].sort());
  });
});
