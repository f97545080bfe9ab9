// Fuzzing argument validation and argv templating together, as the runner uses them
// (fast-check, fixed seed; `npm run fuzz` raises AIRLOCK_FUZZ_SCALE): random argument maps
// (declared and undeclared names, any JSON value, shell metacharacters, dashes, NUL, newlines,
// path tricks, huge numbers), as JSON and as command-line strings. The oracle: nothing throws;
// whatever validation accepts fits its declared type and bounds, and renders into an argv
// where each value is exactly one element (or one per list item), never split, never an option.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { renderArgv } from '../argv/render.js';
import { parseActionSpec } from '../pack/action.js';
import { formatSpecError } from '../pack/spec-error.js';
import { validateArgs } from './validate.js';

const scale = Number(process.env['AIRLOCK_FUZZ_SCALE'] ?? 1) || 1;
const fuzz = (runs: number) => ({
  numRuns: Math.max(1, Math.round(runs * scale)),
  seed: Number(process.env['AIRLOCK_FUZZ_SEED'] ?? 20260425),
});

const SPEC = `id: t.all
title: T
description: D
risk: read
kind: exec
argv: ["cmd", "{{unit}}", "-n", "{{lines}}", "--mode={{mode}}", "--since={{since}}", "--text={{text}}",
       { if: follow, then: ["-f"] }, "{{ids}}", { if: tags, then: ["{{tags}}"] }, "{{file}}"]
args:
  unit: { type: string, required: true, pattern: '[A-Za-z0-9@._-]+', max_length: 16 }
  lines: { type: integer, min: 1, max: 1000, default: 200 }
  follow: { type: boolean, default: false }
  since: { type: duration, min: 1m, max: 7d, default: 1h }
  mode: { type: string, enum: [fast, slow], default: fast }
  text: { type: string, min_length: 2, max_length: 8, allow_newline: true, default: ok }
  ids: { type: list, items: { type: integer, min: 0, max: 99 }, min_items: 1, max_items: 3, default: [1] }
  tags: { type: list, items: { type: string, pattern: '[a-z]+' }, max_items: 4 }
  file: { type: path, allow: [/var/log], deny: [/var/log/secret], default: /var/log/syslog }
`;

const parsed = parseActionSpec(SPEC, 'actions/all.yaml');
if (!parsed.ok) throw new Error(parsed.errors.map(formatSpecError).join('\n'));
const ACTION = parsed.value;
const NAMES = Object.keys(ACTION.args);

const nasty = fc.constantFrom(
  '$(touch /tmp/pwned)',
  '`id`',
  'a;b',
  'a b',
  '-rf',
  '--help',
  '-',
  'a\u0000b',
  'a\nb',
  '../../etc/passwd',
  '/var/log/../../etc/shadow',
  '/var/log/secret/key',
  '/var/log/./syslog',
  '/var/log//syslog',
  '/var/logs/x',
  'ＡＢＣ',
  '\u202e',
  '1e3',
  '0x10',
  '007',
  ' 5',
  '9007199254740993',
  'yes',
  'a,b',
  '1h',
  '7d',
  '8d',
  '',
);
const value = fc.oneof(
  nasty,
  fc.string({ maxLength: 20 }),
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.oneof(nasty, fc.integer({ min: -5, max: 120 }), fc.string({ maxLength: 6 })), { maxLength: 6 }),
  fc.jsonValue({ maxDepth: 2 }),
);
const input = fc.dictionary(fc.oneof(fc.constantFrom(...NAMES), fc.string({ maxLength: 8 })), value, {
  maxKeys: 12,
});

/** The fake filesystem the path argument resolves through (realpath). */
const resolvePath = (p: string): string => {
  if (p === '/var/log/link') return '/etc/shadow';
  if (p.startsWith('/var/log/') || p === '/var/log') return p;
  throw new Error('ENOENT');
};

function checkAccepted(values: Readonly<Record<string, unknown>>): void {
  for (const k of Object.keys(values)) assert.ok(NAMES.includes(k), `unknown argument ${k} accepted`);
  const unit = values['unit'] as string;
  assert.match(unit, /^[A-Za-z0-9@._-]{1,16}$/);
  assert.ok(!unit.startsWith('-'), 'a whole-element value never starts with a dash');
  const lines = values['lines'] as number;
  assert.ok(Number.isSafeInteger(lines) && lines >= 1 && lines <= 1000);
  assert.equal(typeof values['follow'], 'boolean');
  const since = values['since'] as number;
  assert.ok(Number.isSafeInteger(since) && since >= 60 && since <= 7 * 86400);
  assert.ok(['fast', 'slow'].includes(values['mode'] as string));
  const text = values['text'] as string;
  assert.ok(text.length >= 2 && text.length <= 8 && !text.includes('\u0000'));
  const ids = values['ids'] as number[];
  assert.ok(ids.length >= 1 && ids.length <= 3 && ids.every((i) => Number.isSafeInteger(i) && i >= 0 && i <= 99));
  const tags = (values['tags'] ?? []) as string[];
  assert.ok(tags.length <= 4 && tags.every((t) => /^[a-z]+$/.test(t)));
  const file = values['file'] as string;
  assert.ok(file === '/var/log' || file.startsWith('/var/log/'), `path ${file} outside the allowed prefix`);
  assert.ok(!file.startsWith('/var/log/secret'), 'denied prefix');
  assert.ok(!file.split('/').includes('..') && !file.includes('//'));
}

function checkArgv(values: Readonly<Record<string, unknown>>): void {
  const r = renderArgv(ACTION, values as never);
  assert.ok(r.ok, r.ok ? '' : JSON.stringify(r.errors));
  const argv = r.argv;
  const ids = values['ids'] as number[];
  const tags = (values['tags'] ?? []) as string[];
  const expected = 8 + (values['follow'] === true ? 1 : 0) + ids.length + tags.length;
  assert.equal(argv.length, expected, `argv ${JSON.stringify(argv)}`);
  assert.equal(argv[0], 'cmd');
  assert.equal(argv[1], values['unit'], 'the value is one whole element');
  assert.equal(argv[4], `--mode=${values['mode']}`);
  assert.equal(argv[6], `--text=${values['text']}`);
  assert.equal(argv[argv.length - 1], values['file']);
  for (const el of argv) assert.ok(!el.includes('\u0000'));
}

describe('argument validation and argv templating fuzzing', () => {
  it('random JSON argument maps: accepted values fit the declaration and render one element each', () => {
    fc.assert(
      fc.property(input, (args) => {
        const r = validateArgs(ACTION, args, { resolvePath });
        if (!r.ok) {
          assert.ok(r.errors.length > 0);
          for (const e of r.errors) assert.match(e.field, /^args(\.|$)/);
          return;
        }
        checkAccepted(r.values);
        checkArgv(r.values);
      }),
      fuzz(1500),
    );
  });

  it('mostly-valid maps with one hostile value: refusal or a safe accept, never a throw', () => {
    const base = { unit: 'nginx', lines: 10, file: '/var/log/syslog' };
    let accepted = 0;
    fc.assert(
      fc.property(fc.constantFrom(...NAMES), value, (name, v) => {
        const r = validateArgs(ACTION, { ...base, [name]: v }, { resolvePath });
        if (r.ok) {
          accepted++;
          checkAccepted(r.values);
          checkArgv(r.values);
        }
      }),
      fuzz(1500),
    );
    assert.ok(accepted > 0, 'some hostile-looking values are legitimately accepted (and rendered safely)');
  });

  it('command-line strings (coerceStrings): the same guarantees', () => {
    fc.assert(
      fc.property(
        fc.dictionary(fc.constantFrom(...NAMES), fc.oneof(nasty, fc.string({ maxLength: 12 })), { maxKeys: 9 }),
        (args) => {
          const r = validateArgs(ACTION, { unit: 'u', ...args }, { resolvePath, coerceStrings: true });
          if (r.ok) {
            checkAccepted(r.values);
            checkArgv(r.values);
          }
        },
      ),
      fuzz(800),
    );
  });

  it('renderArgv on unvalidated values never throws and never lets a dash or NUL through', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.constantFrom(...NAMES), value, { maxKeys: 9 }), (values) => {
        const r = renderArgv(ACTION, values as never);
        if (r.ok) {
          for (const el of r.argv) assert.ok(!el.includes('\u0000'));
          assert.ok(!String(r.argv[1]).startsWith('-'));
          assert.ok(!String(r.argv[r.argv.length - 1]).startsWith('-'));
        }
      }),
      fuzz(800),
    );
  });
});
