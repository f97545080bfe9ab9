import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { AirlockError } from '../errors.js';
import {
  type AuditEvent,
  type AuditEventFields,
  appendEvent,
  auditHashInput,
  digestArgs,
  GENESIS_HASH,
  hashEvent,
} from './event.js';
import { parseJsonl, type TamperReason, type VerifyOptions, verifyChain } from './verify.js';

type Mutable = Record<string, unknown>;

function fields(i: number, extra: Partial<AuditEventFields> = {}): AuditEventFields {
  const args = { unit: `svc-${i}`, lines: i };
  return {
    id: `req-${i}`,
    time: new Date(Date.UTC(2025, 0, 1, 0, 0, i)).toISOString(),
    kind: 'action.attempt',
    principal: { type: 'user', id: 'u1', name: 'Ada' },
    runner: 'web-1',
    action: 'linux.journal',
    pack_hash: `sha256:${'a'.repeat(64)}`,
    args_digest: digestArgs(args),
    args,
    reason: 'investigate',
    status: i % 3 === 0 ? 'success' : 'failure',
    exit_code: i % 3 === 0 ? 0 : 1,
    duration_ms: 10 + i,
    output_digest: null,
    output_bytes: 100 * i,
    truncated: false,
    clamped: [],
    error: null,
    ...extra,
  };
}

function chain(n: number): AuditEvent[] {
  const out: AuditEvent[] = [];
  for (let i = 0; i < n; i++) {
    const last = out[out.length - 1];
    out.push(appendEvent(last === undefined ? null : { seq: last.seq, hash: last.hash }, fields(i)));
  }
  return out;
}

/** Plain mutable copies, as a tamperer editing the file would have. */
function copy(events: readonly unknown[]): Mutable[] {
  return JSON.parse(JSON.stringify(events)) as Mutable[];
}

function rehash(e: Mutable): Mutable {
  e['hash'] = hashEvent(e as unknown as AuditEvent);
  return e;
}

/** Tamper with one field of event `i` (undefined deletes it), optionally recomputing its hash. */
function setField(events: Mutable[], i: number, key: string, value: unknown, recompute = false): Mutable[] {
  const e = events[i] as Mutable;
  if (value === undefined) delete e[key];
  else e[key] = value;
  if (recompute) rehash(e);
  return events;
}

function headOf(events: readonly AuditEvent[]): { seq: number; hash: string } {
  const last = events[events.length - 1];
  assert.ok(last);
  return { seq: last.seq, hash: last.hash };
}

describe('appendEvent', () => {
  it('chains from genesis and from a head, and freezes deeply', () => {
    const [a, b] = chain(2);
    assert.ok(a && b);
    assert.equal(a.seq, 0);
    assert.equal(a.prev, GENESIS_HASH);
    assert.equal(b.seq, 1);
    assert.equal(b.prev, a.hash);
    assert.equal(b.hash, hashEvent(b));
    assert.ok(Object.isFrozen(b) && Object.isFrozen(b.args) && Object.isFrozen(b.principal));
    assert.deepEqual(Object.keys(a).slice(0, 3), ['v', 'seq', 'id']);
  });

  it('copies the caller objects instead of freezing them', () => {
    const f = fields(1);
    appendEvent(null, f);
    assert.equal(Object.isFrozen(f.args), false);
  });

  it('ignores chain fields smuggled into the fields at runtime', () => {
    const f = { ...fields(1), seq: 99, prev: 'x', hash: 'y', v: 2 } as unknown as AuditEventFields;
    const e = appendEvent(null, f);
    assert.equal(e.seq, 0);
    assert.equal(verifyChain([e]).ok, true);
  });

  it('refuses invalid fields and heads with AirlockError internal', () => {
    const isInternal = (e: unknown) => e instanceof AirlockError && e.code === 'internal';
    assert.throws(() => appendEvent(null, { ...fields(0), status: 'bogus' as 'success' }), isInternal);
    assert.throws(() => appendEvent(null, { ...fields(0), extra: 1 } as AuditEventFields), isInternal);
    assert.throws(() => appendEvent(null, { ...fields(0), args: { n: Number.NaN } }), isInternal);
    assert.throws(() => appendEvent({ seq: -1, hash: GENESIS_HASH }, fields(0)), isInternal);
    assert.throws(() => appendEvent({ seq: 0, hash: 'nope' }, fields(0)), isInternal);
  });

  it('carries extra data for other kinds', () => {
    const e = appendEvent(null, { ...fields(0), kind: 'sandbox.exec', data: { sandbox: 'sb-1', language: 'python' } });
    assert.equal(e.data?.['sandbox'], 'sb-1');
    assert.equal(verifyChain([e]).ok, true);
  });
});

describe('audit hash format (pin)', () => {
  // Changing any of these values changes every hash ever written: do it only deliberately,
  // with a new event version.
  const fixed = appendEvent(null, {
    id: 'req-1',
    time: '2025-01-01T00:00:00.000Z',
    kind: 'action.attempt',
    principal: { type: 'user', id: 'u1' },
    runner: 'web-1',
    action: 'linux.uptime',
    pack_hash: `sha256:${'1'.repeat(64)}`,
    args_digest: digestArgs({}),
    args: {},
    reason: 'check',
    status: 'success',
    exit_code: 0,
    duration_ms: 12,
    output_digest: null,
    output_bytes: 42,
    truncated: false,
    clamped: [],
    error: null,
  });

  it('hashes prev immediately followed by the canonical body without hash', () => {
    assert.equal(
      auditHashInput(fixed),
      `${GENESIS_HASH}{"action":"linux.uptime","args":{},"args_digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",` +
        `"clamped":[],"duration_ms":12,"error":null,"exit_code":0,"id":"req-1","kind":"action.attempt","output_bytes":42,` +
        `"output_digest":null,"pack_hash":"sha256:${'1'.repeat(64)}","prev":"${GENESIS_HASH}",` +
        `"principal":{"id":"u1","type":"user"},"reason":"check","runner":"web-1","seq":0,"status":"success",` +
        `"time":"2025-01-01T00:00:00.000Z","truncated":false,"v":1}`,
    );
  });

  it('pins the exact hash of a known event', () => {
    assert.equal(GENESIS_HASH, 'sha256:0000000000000000000000000000000000000000000000000000000000000000');
    assert.equal(fixed.hash, 'sha256:44a955f01d7d743f787460629ca42d7c1b9cc68e609a3a7608dd3d952379cffa');
  });
});

describe('verifyChain', () => {
  it('accepts untampered chains, empty included', () => {
    assert.deepEqual(verifyChain([]), { ok: true, count: 0, head: null });
    const c = chain(5);
    assert.deepEqual(verifyChain(c), { ok: true, count: 5, head: headOf(c) });
    assert.deepEqual(verifyChain(c, { expectedCount: 5, expectedHead: headOf(c) }).ok, true);
    assert.equal(verifyChain(c, { expectedHead: { seq: 2, hash: c[2]?.hash ?? '' } }).ok, true);
  });

  it('verifies a segment after an anchor', () => {
    const c = chain(6);
    const anchor = { seq: 2, hash: c[2]?.hash ?? '' };
    assert.equal(verifyChain(c.slice(3), { after: anchor }).ok, true);
    const r = verifyChain(c.slice(4), { after: anchor });
    assert.equal(r.ok ? null : r.reason, 'deleted');
  });

  const N = 6;
  const cases: {
    name: string;
    tamper: (e: Mutable[]) => unknown[];
    opts?: (orig: AuditEvent[]) => VerifyOptions;
    index: number;
    reason: TamperReason;
  }[] = [
    {
      name: 'edit one field',
      tamper: (e) => setField(e, 2, 'action', 'linux.reboot'),
      index: 2,
      reason: 'edited',
    },
    { name: 'edit redacted args', tamper: (e) => setField(e, 3, 'args', {}), index: 3, reason: 'edited' },
    {
      name: 'edit the hash',
      tamper: (e) => setField(e, 1, 'hash', `sha256:${'b'.repeat(64)}`),
      index: 1,
      reason: 'edited',
    },
    {
      name: 'edit a field and recompute its hash',
      tamper: (e) => setField(e, 2, 'status', 'success', true),
      index: 2,
      reason: 'edited',
    },
    {
      name: 'edit seq and recompute its hash',
      tamper: (e) => setField(e, 2, 'seq', 7, true),
      index: 2,
      reason: 'edited',
    },
    {
      name: 'edit the last event and recompute (caught by expected head)',
      tamper: (e) => setField(e, 5, 'status', 'success', true),
      opts: (o) => ({ expectedHead: headOf(o) }),
      index: 5,
      reason: 'edited',
    },
    { name: 'delete first', tamper: (e) => e.slice(1), index: 0, reason: 'deleted' },
    { name: 'delete middle', tamper: (e) => [...e.slice(0, 2), ...e.slice(3)], index: 2, reason: 'deleted' },
    { name: 'delete two in the middle', tamper: (e) => [...e.slice(0, 2), ...e.slice(4)], index: 2, reason: 'deleted' },
    {
      name: 'delete last (caught by expected head)',
      tamper: (e) => e.slice(0, -1),
      opts: (o) => ({ expectedHead: headOf(o) }),
      index: 5,
      reason: 'truncated',
    },
    {
      name: 'delete last (caught by expected count)',
      tamper: (e) => e.slice(0, -1),
      opts: () => ({ expectedCount: N }),
      index: 5,
      reason: 'truncated',
    },
    {
      name: 'truncate tail with expected count',
      tamper: (e) => e.slice(0, 2),
      opts: () => ({ expectedCount: N }),
      index: 2,
      reason: 'truncated',
    },
    { name: 'swap adjacent', tamper: (e) => [e[0], e[2], e[1], ...e.slice(3)], index: 1, reason: 'reordered' },
    { name: 'swap distant', tamper: (e) => [e[0], e[4], e[2], e[3], e[1], e[5]], index: 1, reason: 'reordered' },
    { name: 'swap first two', tamper: (e) => [e[1], e[0], ...e.slice(2)], index: 0, reason: 'reordered' },
    {
      name: 'duplicate one in place',
      tamper: (e) => [...e.slice(0, 3), e[2], ...e.slice(3)],
      index: 3,
      reason: 'inserted',
    },
    { name: 'duplicate one later', tamper: (e) => [...e.slice(0, 5), e[1], e[5]], index: 5, reason: 'inserted' },
    { name: 'duplicate one earlier', tamper: (e) => [e[0], e[4], ...e.slice(1)], index: 1, reason: 'inserted' },
    { name: 'duplicate at the end', tamper: (e) => [...e, e[5]], index: 6, reason: 'inserted' },
    {
      name: 'more events than expected count',
      tamper: (e) => e,
      opts: () => ({ expectedCount: N - 1 }),
      index: N - 1,
      reason: 'inserted',
    },
    {
      name: 'fork: a second chain continued from event 2',
      tamper: (e) => {
        const alt = appendEvent({ seq: 2, hash: String(e[2]?.['hash']) }, fields(42));
        return [...e, alt];
      },
      index: 6,
      reason: 'forked',
    },
    {
      name: 'foreign event with a repeated seq',
      tamper: (e) => [
        ...e.slice(0, 4),
        appendEvent({ seq: 0, hash: `sha256:${'c'.repeat(64)}` }, fields(9)),
        ...e.slice(4),
      ],
      index: 4,
      reason: 'inserted',
    },
    { name: 'malformed: wrong v', tamper: (e) => setField(e, 3, 'v', 2), index: 3, reason: 'malformed' },
    { name: 'malformed: not an object', tamper: (e) => [e[0], 'hello', ...e.slice(2)], index: 1, reason: 'malformed' },
    {
      name: 'malformed: missing field',
      tamper: (e) => setField(e, 0, 'status', undefined),
      index: 0,
      reason: 'malformed',
    },
    {
      name: 'malformed: unknown field',
      tamper: (e) => setField(e, 4, 'x', 1),
      index: 4,
      reason: 'malformed',
    },
    {
      name: 'malformed: null (unparsable line)',
      tamper: (e) => [...e.slice(0, 2), null, ...e.slice(3)],
      index: 2,
      reason: 'malformed',
    },
  ];

  for (const c of cases) {
    it(`detects: ${c.name}`, () => {
      const orig = chain(N);
      const tampered = c.tamper(copy(orig));
      const r = verifyChain(tampered, c.opts?.(orig));
      assert.equal(r.ok, false, 'tampering went unnoticed');
      if (r.ok) return;
      assert.deepEqual({ index: r.index, reason: r.reason }, { index: c.index, reason: c.reason }, r.message);
      assert.ok(r.message.length > 0);
    });
  }
});

describe('parseJsonl', () => {
  const c = chain(3);
  const text = c.map((e) => JSON.stringify(e)).join('\n');

  it('tolerates one trailing newline', () => {
    const p = parseJsonl(`${text}\n`);
    assert.deepEqual(p.errors, []);
    assert.equal(verifyChain(p.events).ok, true);
    assert.deepEqual(parseJsonl(''), { events: [], errors: [] });
  });

  it('reports a malformed line at its index', () => {
    const lines = text.split('\n');
    lines[1] = '{"v":1,"seq":';
    const p = parseJsonl(lines.join('\n'));
    assert.equal(p.errors[0]?.line, 2);
    const r = verifyChain(p.events);
    assert.deepEqual(r.ok ? null : [r.index, r.reason], [1, 'malformed']);
  });

  it('reports a final partial line and an empty middle line', () => {
    const partial = parseJsonl(`${text}\n{"v":1,"se`);
    assert.deepEqual(
      partial.errors.map((e) => e.line),
      [4],
    );
    assert.equal(partial.events.length, 4);
    const blank = parseJsonl(text.replace('\n', '\n\n'));
    assert.deepEqual(
      blank.errors.map((e) => e.line),
      [2],
    );
  });
});

describe('verifyChain properties', () => {
  type Op =
    | { op: 'edit'; at: number; field: string; rehash: boolean }
    | { op: 'editHash'; at: number }
    | { op: 'delete'; at: number; count: number }
    | { op: 'swap'; at: number; with: number }
    | { op: 'duplicate'; from: number; to: number }
    | { op: 'truncate'; keep: number }
    | { op: 'malformed'; at: number; value: unknown };

  // Fields whose edit keeps the event well formed. `prev` is left out of rehashed edits: a
  // rewritten prev is indistinguishable from a rewritten predecessor (reported at i - 1).
  const EDITABLE = [
    'id',
    'action',
    'runner',
    'reason',
    'status',
    'duration_ms',
    'output_bytes',
    'truncated',
    'args',
    'seq',
  ];

  function editValue(e: Mutable, field: string): void {
    const v = e[field];
    if (field === 'status') e[field] = v === 'timeout' ? 'error' : 'timeout';
    else if (field === 'truncated') e[field] = !v;
    else if (field === 'args') e[field] = { ...(v as Mutable), injected: true };
    else if (typeof v === 'number') e[field] = v + 1;
    else e[field] = `${String(v)}x`;
  }

  function apply(events: Mutable[], op: Op): unknown[] {
    const n = events.length;
    switch (op.op) {
      case 'edit': {
        const e = events[op.at % n] as Mutable;
        editValue(e, op.field);
        if (op.rehash) rehash(e);
        return events;
      }
      case 'editHash': {
        const e = events[op.at % n] as Mutable;
        e['hash'] = hashEvent({ ...e, id: 'other' } as unknown as AuditEvent);
        return events;
      }
      case 'delete': {
        const at = op.at % n;
        return [...events.slice(0, at), ...events.slice(at + Math.max(1, Math.min(op.count, n - at)))];
      }
      case 'swap': {
        const a = op.at % n;
        const b = op.with % n;
        const out = [...events];
        [out[a], out[b]] = [out[b] as Mutable, out[a] as Mutable];
        return out;
      }
      case 'duplicate': {
        const out: unknown[] = [...events];
        out.splice(op.to % (n + 1), 0, structuredClone(events[op.from % n]));
        return out;
      }
      case 'truncate':
        return events.slice(0, op.keep % n);
      case 'malformed': {
        const out: unknown[] = [...events];
        out[op.at % n] = op.value;
        return out;
      }
    }
  }

  function firstDiff(a: readonly unknown[], b: readonly unknown[]): number {
    const len = Math.max(a.length, b.length);
    for (let i = 0; i < len; i++) {
      if (i >= a.length || i >= b.length || JSON.stringify(a[i]) !== JSON.stringify(b[i])) return i;
    }
    return -1;
  }

  const opArb: fc.Arbitrary<Op> = fc.oneof(
    fc.record({
      op: fc.constant('edit' as const),
      at: fc.nat(),
      field: fc.constantFrom(...EDITABLE),
      rehash: fc.boolean(),
    }),
    fc.record({ op: fc.constant('editHash' as const), at: fc.nat() }),
    fc.record({ op: fc.constant('delete' as const), at: fc.nat(), count: fc.integer({ min: 1, max: 3 }) }),
    fc.record({ op: fc.constant('swap' as const), at: fc.nat(), with: fc.nat() }),
    fc.record({ op: fc.constant('duplicate' as const), from: fc.nat(), to: fc.nat() }),
    fc.record({ op: fc.constant('truncate' as const), keep: fc.nat() }),
    fc.record({
      op: fc.constant('malformed' as const),
      at: fc.nat(),
      value: fc.oneof(fc.jsonValue(), fc.constant(null), fc.constant({ v: 1 })),
    }),
  );

  // Build chains once per length: hashing is the slow part and the chain content is not under test.
  const chains = Array.from({ length: 41 }, (_, n) => chain(n));

  it('untampered chains always verify', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 40 }), (n) => {
        const c = chains[n] ?? [];
        const r = verifyChain(copy(c), n === 0 ? {} : { expectedHead: headOf(c), expectedCount: n });
        assert.deepEqual(r, { ok: true, count: n, head: n === 0 ? null : headOf(c) });
      }),
    );
  });

  it('any single tampering is reported at the first affected index', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 40 }), opArb, (n, op) => {
        const orig = chains[n] ?? [];
        const tampered = apply(copy(orig), op);
        const at = firstDiff(orig, tampered);
        fc.pre(at >= 0); // e.g. swapping an event with itself changes nothing
        const r = verifyChain(tampered, { expectedHead: headOf(orig) });
        assert.equal(r.ok, false, `undetected ${JSON.stringify(op)}`);
        if (r.ok) return;
        assert.equal(r.index, at, `${JSON.stringify(op)} → ${r.reason}: ${r.message}`);
      }),
      { numRuns: 500 },
    );
  });
});
