// Fuzzing pack YAML parsing (fast-check, fixed seed; `npm run fuzz` raises AIRLOCK_FUZZ_SCALE):
// random text, mutations of a valid action (flipped, cut, dropped, duplicated and replaced
// lines), YAML alias bombs and deep nesting, and random pack file sets. The oracle: the parsers
// never throw and never hang; a refusal is a non-empty list of typed errors naming the file; an
// accepted action is frozen and satisfies what the rest of airlock relies on.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { parseActionSpec } from './action.js';
import { loadPackFromFiles } from './load.js';
import { parsePackManifest } from './manifest.js';
import { ACTION_ID_RE } from './schema.js';
import { formatSpecError } from './spec-error.js';

const scale = Number(process.env['AIRLOCK_FUZZ_SCALE'] ?? 1) || 1;
const fuzz = (runs: number) => ({
  numRuns: Math.max(1, Math.round(runs * scale)),
  seed: Number(process.env['AIRLOCK_FUZZ_SEED'] ?? 20260425),
});

const VALID = `id: linux.journal
title: Journal of a systemd unit
description: Last lines of the journal for one unit.
risk: read
kind: exec
argv: ["journalctl", "--no-pager", "-u", "{{unit}}", "-n", "{{lines}}",
       { if: since, then: ["--since=-{{since}}s"] }, { if: paths, then: ["{{paths}}"] }]
args:
  unit: { type: string, required: true, pattern: '[A-Za-z0-9@._-]+', max_length: 128 }
  lines: { type: integer, min: 1, max: 5000, default: 200 }
  since: { type: duration, min: 1m, max: 7d }
  paths: { type: list, items: { type: path, allow: [/var/log] }, max_items: 3 }
limits: { timeout_s: 15, timeout_s_max: 60 }
set_env: { SYSTEMD_PAGER: cat }
env: [TZ]
redact: [{ name: token, pattern: 'tok_[a-z0-9]+' }]
requires: [journalctl]
examples:
  - { args: { unit: nginx, lines: 50 } }
`;

/** A parse result is either a frozen action or a non-empty list of well-formed errors. */
function checkResult(r: ReturnType<typeof parseActionSpec>, file: string): void {
  if (r.ok) {
    assert.ok(Object.isFrozen(r.value), 'an accepted action is frozen');
    assert.match(r.value.id, ACTION_ID_RE);
    assert.ok(['read', 'change', 'destructive'].includes(r.value.risk));
    assert.ok(['exec', 'script'].includes(r.value.kind), 'no other kind (never a shell)');
    return;
  }
  assert.ok(r.errors.length > 0);
  for (const e of r.errors) {
    assert.equal(e.file, file);
    assert.equal(typeof e.message, 'string');
    assert.ok(e.message.length > 0);
    assert.equal(typeof formatSpecError(e), 'string');
  }
}

const yamlScalar = fc.oneof(
  fc.constantFrom(
    '~',
    'null',
    'true',
    '-1',
    '1e309',
    '0x10',
    '.nan',
    '""',
    "''",
    '[]',
    '{}',
    '*a',
    '&a x',
    '!!binary AA',
    '? x',
    '|',
    '>',
  ),
  fc.string({ maxLength: 30 }),
  fc.string({ unit: 'binary', maxLength: 20 }),
);

const mutation = fc.oneof(
  fc.record({
    kind: fc.constant('flip' as const),
    at: fc.nat(),
    ch: fc.string({ unit: 'binary', minLength: 1, maxLength: 3 }),
  }),
  fc.record({ kind: fc.constant('cut' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('drop' as const), line: fc.nat() }),
  fc.record({ kind: fc.constant('dup' as const), line: fc.nat() }),
  fc.record({ kind: fc.constant('value' as const), line: fc.nat(), value: yamlScalar }),
  fc.record({ kind: fc.constant('indent' as const), line: fc.nat(), by: fc.integer({ min: -4, max: 4 }) }),
);

type Mutation = { kind: string; at?: number; ch?: string; line?: number; value?: string; by?: number };

function mutate(text: string, ms: readonly Mutation[]): string {
  let out = text;
  for (const m of ms) {
    const lines = out.split('\n');
    const li = (m.line ?? 0) % Math.max(1, lines.length);
    const at = (m.at ?? 0) % Math.max(1, out.length);
    if (m.kind === 'flip') out = out.slice(0, at) + m.ch + out.slice(at + 1);
    else if (m.kind === 'cut') out = out.slice(0, at);
    else if (m.kind === 'drop') out = lines.filter((_, i) => i !== li).join('\n');
    else if (m.kind === 'dup') out = [...lines.slice(0, li + 1), ...lines.slice(li)].join('\n');
    else if (m.kind === 'value') {
      const line = lines[li] ?? '';
      const colon = line.indexOf(':');
      lines[li] = colon < 0 ? `${line} ${m.value}` : `${line.slice(0, colon + 1)} ${m.value}`;
      out = lines.join('\n');
    } else if (m.kind === 'indent') {
      const line = lines[li] ?? '';
      lines[li] = (m.by ?? 0) >= 0 ? ' '.repeat(m.by ?? 0) + line : line.slice(-(m.by ?? 0));
      out = lines.join('\n');
    }
  }
  return out;
}

describe('pack YAML fuzzing', () => {
  it('the valid seed parses (so mutations start from a real action)', () => {
    const r = parseActionSpec(VALID, 'actions/journal.yaml');
    assert.ok(r.ok, r.ok ? '' : r.errors.map(formatSpecError).join('\n'));
  });

  it('random text never throws', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 400 }), fc.string({ unit: 'binary', maxLength: 400 })), (text) => {
        checkResult(parseActionSpec(text, 'actions/x.yaml'), 'actions/x.yaml');
        const m = parsePackManifest(text, 'pack.yaml');
        if (!m.ok) assert.ok(m.errors.length > 0);
      }),
      fuzz(200),
    );
  });

  it('mutated valid actions never throw; refusals name the file', () => {
    fc.assert(
      fc.property(fc.array(mutation, { minLength: 1, maxLength: 4 }), (ms) => {
        checkResult(parseActionSpec(mutate(VALID, ms), 'actions/journal.yaml'), 'actions/journal.yaml');
      }),
      fuzz(300),
    );
  });

  it('random JSON documents (YAML is a superset) never throw', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 5 }), (v) => {
        checkResult(parseActionSpec(JSON.stringify(v), 'actions/j.yaml'), 'actions/j.yaml');
      }),
      fuzz(300),
    );
  });

  it('alias bombs and deep nesting are refused, not expanded or overflowed', () => {
    const laughs = [
      'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
      ...Array.from({ length: 9 }, (_, i) => {
        const prev = String.fromCharCode(97 + i);
        const cur = String.fromCharCode(98 + i);
        return `${cur}: &${cur} [*${prev},*${prev},*${prev},*${prev},*${prev},*${prev},*${prev},*${prev},*${prev}]`;
      }),
    ].join('\n');
    for (const text of [
      `${VALID}x_bomb:\n  ${laughs.replace(/\n/g, '\n  ')}\n`,
      laughs,
      `${'['.repeat(10_000)}${']'.repeat(10_000)}`,
      `${'{a: '.repeat(5_000)}1${'}'.repeat(5_000)}`,
      `${'- '.repeat(2_000)}x`,
    ]) {
      const r = parseActionSpec(text, 'actions/bomb.yaml');
      assert.equal(r.ok, false);
      checkResult(r, 'actions/bomb.yaml');
    }
  });

  it('random pack file sets never throw; every error names a file', () => {
    const enc = new TextEncoder();
    const path = fc.oneof(
      fc.constantFrom(
        'pack.yaml',
        'actions/a.yaml',
        'actions/b.yaml',
        'scripts/s.sh',
        '.hidden',
        'actions/../x',
        '/abs',
        'a//b',
      ),
      fc.string({ maxLength: 30 }),
    );
    const content = fc.oneof(
      fc.constantFrom(
        'name: linux-core\nversion: 1.0.0\nnamespace: linux\ndescription: Basics\n',
        VALID,
        'id: linux.uptime\ntitle: U\ndescription: D\nrisk: read\nkind: exec\nargv: [uptime]\n',
      ),
      fc.string({ maxLength: 200 }),
    );
    fc.assert(
      fc.property(
        fc.array(fc.record({ path, text: content, raw: fc.option(fc.uint8Array({ maxLength: 40 })) }), {
          maxLength: 6,
        }),
        (files) => {
          const r = loadPackFromFiles(files.map((f) => ({ path: f.path, bytes: f.raw ?? enc.encode(f.text) })));
          if (r.ok) {
            assert.ok(r.value.actions.length >= 1);
            assert.match(r.value.hash, /^sha256:[0-9a-f]{64}$/);
          } else {
            assert.ok(r.errors.length > 0);
            for (const e of r.errors) assert.equal(typeof e.file, 'string');
          }
        },
      ),
      fuzz(300),
    );
  });
});
