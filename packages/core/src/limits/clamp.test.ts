import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { parseActionSpec } from '../pack/action.js';
import { formatSpecError } from '../pack/spec-error.js';
import type { ActionSpec } from '../pack/types.js';
import { BUILTIN_LIMITS, LIMIT_NAMES } from './builtin.js';
import { clampLimits, type LimitClamp } from './clamp.js';
import { resolveLimits } from './resolve.js';

function action(limits: string): ActionSpec {
  const text = `id: t.a\ntitle: T\ndescription: D\nrisk: read\nkind: exec\nargv: [cmd]\nlimits: ${limits}\n`;
  const r = parseActionSpec(text, 'actions/a.yaml');
  if (!r.ok) throw new Error(r.errors.map(formatSpecError).join('\n'));
  return r.value;
}

const A = action(
  '{ timeout_s: 10, timeout_s_max: 60, output_bytes: 262144, memory_bytes_max: 1073741824, max_files: 256 }',
);

describe('built-in limits', () => {
  it('match the documented table', () => {
    assert.deepEqual(LIMIT_NAMES, ['timeout_s', 'output_bytes', 'cpu_s', 'memory_bytes', 'max_procs', 'max_files']);
    const table = Object.fromEntries(
      LIMIT_NAMES.map((n) => [n, [BUILTIN_LIMITS[n].default, BUILTIN_LIMITS[n].min, BUILTIN_LIMITS[n].max]]),
    );
    assert.deepEqual(table, {
      timeout_s: [30, 1, 3600],
      output_bytes: [1048576, 1024, 67108864],
      cpu_s: [undefined, 1, 3600],
      memory_bytes: [undefined, 16 * 2 ** 20, 64 * 2 ** 30],
      max_procs: [undefined, 1, 4096],
      max_files: [undefined, 16, 65536],
    });
    assert.ok(Object.isFrozen(BUILTIN_LIMITS) && Object.isFrozen(BUILTIN_LIMITS.timeout_s));
  });

  it('resolve to built-ins when the action sets nothing', () => {
    const r = resolveLimits(undefined);
    assert.ok(r.ok);
    assert.deepEqual(r.limits.timeout_s, { default: 30, min: 1, max: 3600 });
    assert.deepEqual(r.limits.max_procs, { min: 1, max: 4096 });
  });
});

describe('clampLimits', () => {
  it('uses action defaults when nothing is requested', () => {
    for (const req of [undefined, {}]) {
      const r = clampLimits(A, req);
      assert.ok(r.ok);
      assert.deepEqual(r.limits, { timeout_s: 10, output_bytes: 262144, max_files: 256 });
      assert.deepEqual(r.clamped, []);
    }
  });

  it('clamps and records each clamp', () => {
    const r = clampLimits(A, { timeout_s: 600, output_bytes: 10, cpu_s: 5, memory_bytes: 2 ** 40 });
    assert.ok(r.ok);
    assert.deepEqual(r.limits, {
      timeout_s: 60,
      output_bytes: 1024,
      cpu_s: 5,
      memory_bytes: 1073741824,
      max_files: 256,
    });
    assert.deepEqual(r.clamped, [
      { name: 'timeout_s', requested: 600, applied: 60, bound: 'max' },
      { name: 'output_bytes', requested: 10, applied: 1024, bound: 'min' },
      { name: 'memory_bytes', requested: 2 ** 40, applied: 1073741824, bound: 'max' },
    ]);
    assert.ok(Object.isFrozen(r.limits) && Object.isFrozen(r.clamped));
  });

  const bad: [string, Record<string, unknown>, string[]][] = [
    [
      'unknown name',
      { timeout: 5 },
      ['limits.timeout: unknown limit (known: timeout_s, output_bytes, cpu_s, memory_bytes, max_procs, max_files)'],
    ],
    [
      'bound names are not requestable',
      { timeout_s_max: 5 },
      [
        'limits.timeout_s_max: unknown limit (known: timeout_s, output_bytes, cpu_s, memory_bytes, max_procs, max_files)',
      ],
    ],
    ['string', { timeout_s: '5' }, ['limits.timeout_s: must be a finite number (got 5)']],
    ['NaN', { timeout_s: Number.NaN }, ['limits.timeout_s: must be a finite number (got NaN)']],
    ['Infinity', { timeout_s: Number.POSITIVE_INFINITY }, ['limits.timeout_s: must be a finite number (got Infinity)']],
    ['null', { cpu_s: null }, ['limits.cpu_s: must be a finite number (got null)']],
    ['fraction', { cpu_s: 1.5 }, ['limits.cpu_s: must be a whole number (got 1.5)']],
    [
      'several',
      { a: 1, timeout_s: 'x' },
      [
        'limits.a: unknown limit (known: timeout_s, output_bytes, cpu_s, memory_bytes, max_procs, max_files)',
        'limits.timeout_s: must be a finite number (got x)',
      ],
    ],
  ];
  for (const [name, req, errors] of bad) {
    it(`refuses ${name}`, () => {
      const r = clampLimits(A, req);
      assert.ok(!r.ok);
      assert.deepEqual(
        r.errors.map((e) => `${e.field}: ${e.message}`),
        errors,
      );
    });
  }

  it('property: results stay within bounds and a clamp is recorded iff the request was out of range', () => {
    const anyAction = fc
      .record({
        name: fc.constantFrom(...LIMIT_NAMES),
        lo: fc.double({ min: 0, max: 1, noNaN: true }),
        hi: fc.double({ min: 0, max: 1, noNaN: true }),
      })
      .map(({ name, lo, hi }) => {
        // Derive a valid narrowed [min, max] inside the built-in bounds.
        const b = BUILTIN_LIMITS[name];
        const span = b.max - b.min;
        const min = b.min + Math.floor(Math.min(lo, hi) * span);
        const max = b.min + Math.floor(Math.max(lo, hi) * span);
        const def = min + Math.floor((max - min) / 2);
        return action(`{ ${name}: ${def}, ${name}_min: ${min}, ${name}_max: ${max} }`);
      });
    const request = fc.dictionary(
      fc.constantFrom(...LIMIT_NAMES),
      fc.oneof(fc.integer(), fc.integer({ min: -(2 ** 40), max: 2 ** 40 }), fc.constantFrom(0, -1, 2 ** 53 - 1)),
    );
    fc.assert(
      fc.property(anyAction, request, (a, req) => {
        const r = clampLimits(a, req);
        if (!r.ok) return false;
        for (const name of LIMIT_NAMES) {
          const range = a.limits[name];
          const applied: number | undefined = r.limits[name];
          const requested = req[name];
          if (requested === undefined) {
            assert.equal(applied, range.default);
            assert.ok(!r.clamped.some((c) => c.name === name));
            continue;
          }
          assert.ok(applied !== undefined && applied >= range.min && applied <= range.max);
          const outOfRange = requested < range.min || requested > range.max;
          const clamp: LimitClamp | undefined = r.clamped.find((c) => c.name === name);
          assert.equal(clamp !== undefined, outOfRange);
          if (clamp !== undefined) {
            assert.equal(clamp.requested, requested);
            assert.equal(clamp.applied, clamp.bound === 'min' ? range.min : range.max);
            assert.equal(clamp.bound, requested < range.min ? 'min' : 'max');
          } else {
            assert.equal(applied, requested);
          }
        }
        return true;
      }),
      { numRuns: 300 },
    );
  });

  it('property: malformed values are always refused', () => {
    const malformed = fc.oneof(
      fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, null, true),
      fc.string(),
      fc.double({ noInteger: true, noNaN: true, noDefaultInfinity: true }),
    );
    fc.assert(fc.property(fc.constantFrom(...LIMIT_NAMES), malformed, (name, v) => !clampLimits(A, { [name]: v }).ok));
  });
});
