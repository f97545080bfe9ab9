import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { egressEntryCovers, encodeMessage, MAX_SANDBOX_FILE_BYTES, parseMessage, type WireMessage } from './index.js';
import { SANDBOX_VALID } from './sandbox-fixtures.test-support.js';

const H = `sha256:${'cd'.repeat(32)}`;

function first(type: string): Record<string, unknown> {
  const v = SANDBOX_VALID[type]?.[0];
  assert.ok(v, type);
  return structuredClone(v);
}

const INVALID: { name: string; msg: Record<string, unknown>; field: string }[] = [
  { name: 'create: memory too small', msg: { ...first('sandbox_create'), memory_mb: 8 }, field: 'memory_mb' },
  { name: 'create: bad image hash', msg: { ...first('sandbox_create'), image_hash: 'md5:x' }, field: 'image_hash' },
  {
    name: 'create: pack name with slash',
    msg: { ...first('sandbox_create'), language_pack: '../x' },
    field: 'language_pack',
  },
  { name: 'create: egress true (no allowlist)', msg: { ...first('sandbox_create'), egress: true }, field: 'egress' },
  {
    name: 'create: egress allow entry without a port',
    msg: { ...first('sandbox_create'), egress: { allow: ['api.example.com'] } },
    field: 'egress.allow[0]',
  },
  {
    name: 'create: egress empty allowlist',
    msg: { ...first('sandbox_create'), egress: { allow: [] } },
    field: 'egress.allow',
  },
  {
    name: 'create: egress wildcard in the middle',
    msg: { ...first('sandbox_create'), egress: { allow: ['a.*.com:443'] } },
    field: 'egress.allow[0]',
  },
  {
    name: 'create: egress secret bound to a host outside the allowlist',
    msg: {
      ...first('sandbox_create'),
      egress: { allow: ['a.example:443'], secrets: [{ name: 'T', value: 'v', hosts: ['b.example'] }] },
    },
    field: 'egress.secrets[0].hosts[0]',
  },
  {
    name: 'create: egress secret value with a newline',
    msg: {
      ...first('sandbox_create'),
      egress: { allow: ['a.example:443'], secrets: [{ name: 'T', value: 'v\r\nX-Evil: 1', hosts: ['a.example'] }] },
    },
    field: 'egress.secrets[0].value',
  },
  {
    name: 'create: egress duplicate secret names',
    msg: {
      ...first('sandbox_create'),
      egress: {
        allow: ['a.example:443'],
        secrets: [
          { name: 'T', value: 'v', hosts: ['a.example'] },
          { name: 'T', value: 'w', hosts: ['a.example'] },
        ],
      },
    },
    field: 'egress.secrets[1].name',
  },
  {
    name: 'create: egress unknown field',
    msg: { ...first('sandbox_create'), egress: { allow: ['a.example:443'], all: true } },
    field: 'egress.all',
  },
  {
    name: 'egress: bad decision',
    msg: { ...first('sandbox_egress'), event: { ...(first('sandbox_egress')['event'] as object), decision: 'maybe' } },
    field: 'event.decision',
  },
  {
    name: 'egress: host too long',
    msg: {
      ...first('sandbox_egress'),
      event: { ...(first('sandbox_egress')['event'] as object), host: 'h'.repeat(301) },
    },
    field: 'event.host',
  },
  {
    name: 'egress: a secret value where a name belongs',
    msg: {
      ...first('sandbox_egress'),
      event: { ...(first('sandbox_egress')['event'] as object), secrets_used: ['sk-live 123'] },
    },
    field: 'event.secrets_used[0]',
  },
  {
    name: 'egress: sandbox id with a slash',
    msg: { ...first('sandbox_egress'), sandbox: '../x' },
    field: 'sandbox',
  },
  { name: 'host: egress not a boolean', msg: { ...first('sandbox_host'), egress: 'yes' }, field: 'egress' },
  { name: 'exec: both code and argv', msg: { ...first('sandbox_exec'), argv: ['/bin/true'] }, field: 'code' },
  { name: 'exec: neither code nor argv', msg: (({ code: _c, ...m }) => m)(first('sandbox_exec')), field: 'code' },
  {
    name: 'exec: output cap above the maximum',
    msg: { ...first('sandbox_exec'), max_output_bytes: 1 << 24 },
    field: 'max_output_bytes',
  },
  { name: 'exec: sandbox id with a slash', msg: { ...first('sandbox_exec'), sandbox: '../sb' }, field: 'sandbox' },
  { name: 'write: relative path', msg: { ...first('sandbox_write_file'), path: 'etc/passwd' }, field: 'path' },
  { name: 'write: NUL in path', msg: { ...first('sandbox_write_file'), path: '/a\u0000b' }, field: 'path' },
  {
    name: 'write: not base64',
    msg: { ...first('sandbox_write_file'), content_b64: 'no spaces!' },
    field: 'content_b64',
  },
  {
    name: 'read: max_bytes above the frame budget',
    msg: { ...first('sandbox_read_file'), max_bytes: MAX_SANDBOX_FILE_BYTES + 1 },
    field: 'max_bytes',
  },
  {
    name: 'host: negative slots',
    msg: { ...first('sandbox_host'), capacity: { slots_total: 1, slots_free: -1, memory_free_mb: 1 } },
    field: 'capacity.slots_free',
  },
  { name: 'output: bad stream', msg: { ...first('sandbox_output'), stream: 'stdin' }, field: 'stream' },
  {
    name: 'reply: error and result together',
    msg: { type: 'sandbox_reply', request_id: 'r', error: { code: 'x', message: 'y' }, file: { path: '/a', size: 0 } },
    field: 'error',
  },
];

describe('sandbox wire messages', () => {
  for (const c of INVALID) {
    it(`refuses ${c.name}, naming the field`, () => {
      const r = parseMessage(JSON.stringify(c.msg));
      assert.equal(r.ok, false);
      if (r.ok) return;
      assert.equal(r.error.code, 'invalid_field', r.error.message);
      assert.equal(r.error.field, c.field, r.error.message);
    });
  }

  it('encode → parse round trips generated exec and reply messages', () => {
    const id = fc.stringMatching(/^[A-Za-z0-9_-]{1,32}$/);
    const exec = fc.record({
      type: fc.constant('sandbox_exec' as const),
      request_id: id,
      sandbox: id,
      code: fc.string({ minLength: 1, maxLength: 200 }),
      timeout_ms: fc.integer({ min: 1, max: 3_600_000 }),
      max_output_bytes: fc.integer({ min: 1, max: 262144 }),
    });
    const reply = fc.record({
      type: fc.constant('sandbox_reply' as const),
      request_id: id,
      exec: fc.record({
        stdout: fc.string(),
        stderr: fc.string(),
        exit_code: fc.integer({ min: -1, max: 255 }),
        signal: fc.option(fc.integer({ min: 1, max: 64 })),
        duration_ms: fc.nat(),
        timed_out: fc.boolean(),
        truncated: fc.boolean(),
        redactions: fc.array(fc.stringMatching(/^[a-z_]{2,20}$/), { maxLength: 3 }),
      }),
    });
    const write = fc.record({
      type: fc.constant('sandbox_write_file' as const),
      request_id: id,
      sandbox: id,
      path: fc.stringMatching(/^\/[a-z0-9/._-]{1,40}$/),
      content_b64: fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b).toString('base64')),
    });
    fc.assert(
      fc.property(fc.oneof(exec, reply, write), (msg) => {
        const r = parseMessage(encodeMessage(msg as WireMessage));
        assert.ok(r.ok, r.ok ? '' : r.error.message);
        assert.deepStrictEqual(r.value, JSON.parse(JSON.stringify(msg)));
      }),
      { numRuns: 300 },
    );
  });

  it('never throws on mutated sandbox frames', () => {
    const all = Object.values(SANDBOX_VALID).flat();
    fc.assert(
      fc.property(fc.constantFrom(...all), fc.string(), fc.jsonValue(), (msg, key, value) => {
        const obj: Record<string, unknown> = structuredClone(msg);
        const keys = Object.keys(obj);
        obj[keys[key.length % keys.length] ?? key] = value;
        const r = parseMessage(JSON.stringify(obj));
        if (!r.ok) assert.ok(r.error.message.length > 0);
      }),
      { numRuns: 500 },
    );
  });

  it('egress allow entries cover each other only by exact match or a wildcard of the same port', () => {
    assert.equal(egressEntryCovers('*.example.com:443', 'api.example.com:443'), true);
    assert.equal(egressEntryCovers('*.example.com:443', '*.api.example.com:443'), true);
    assert.equal(egressEntryCovers('*.example.com:443', 'example.com:443'), false);
    assert.equal(egressEntryCovers('*.example.com:443', 'api.example.com:80'), false);
    assert.equal(egressEntryCovers('API.Example.com.:443', 'api.example.com:443'), true);
    assert.equal(egressEntryCovers('api.example.com:443', '*.example.com:443'), false);
    assert.equal(egressEntryCovers('[2001:DB8::1]:80', '[2001:db8::1]:80'), true);
    assert.equal(egressEntryCovers('nonsense', 'a.b:1'), false);
  });

  it('a create frame for an image hash round-trips unchanged', () => {
    const msg = { ...first('sandbox_create'), image_hash: H };
    const r = parseMessage(encodeMessage(msg as unknown as WireMessage));
    assert.ok(r.ok);
  });
});
