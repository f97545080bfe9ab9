import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { validateArgs } from '../args/validate.js';
import { parseActionSpec } from '../pack/action.js';
import { formatSpecError } from '../pack/spec-error.js';
import type { ActionSpec } from '../pack/types.js';
import { renderArgv } from './render.js';

function action(body: string, kind: 'exec' | 'script' = 'exec'): ActionSpec {
  const script = kind === 'script' ? 'script: { path: scripts/x.sh }\n' : '';
  const text = `id: t.a\ntitle: T\ndescription: D\nrisk: read\nkind: ${kind}\n${script}${body}`;
  const r = parseActionSpec(text, 'actions/a.yaml');
  if (!r.ok) throw new Error(r.errors.map(formatSpecError).join('\n'));
  return r.value;
}

/** Validate then render, as the runner does. */
function run(a: ActionSpec, input: Record<string, unknown>): readonly string[] | string[] {
  const v = validateArgs(a, input);
  if (!v.ok) return v.errors.map((e) => `refused ${e.field}: ${e.message}`);
  const r = renderArgv(a, v.values);
  if (!r.ok) return r.errors.map((e) => `refused ${e.field}: ${e.message}`);
  return r.argv;
}

const JOURNAL = action(
  'argv: ["journalctl", "--no-pager", "-u", "{{unit}}", "-n", "{{lines}}", { if: since, then: ["--since=-{{since}}s"] },\n' +
    '       { if: follow, then: ["-f"] }, "{{ids}}"]\n' +
    'args:\n' +
    '  unit: { type: string, required: true, pattern: "[A-Za-z0-9@._-]+", max_length: 128 }\n' +
    '  lines: { type: integer, min: 1, max: 5000, default: 200 }\n' +
    '  since: { type: duration, min: 1m, max: 7d }\n' +
    '  follow: { type: boolean, default: false }\n' +
    '  ids: { type: list, items: { type: integer, min: 0, max: 9 }, max_items: 3, default: [] }\n',
);

// A permissive string: anything but NUL, newlines and a leading dash (the always-on rules).
const FREE = action(
  'argv: [echo, "{{s}}", "--x={{s}}"]\nargs:\n  s: { type: string, required: true, max_length: 65536 }\n',
);
const FREE_DASH = action(
  'argv: [echo, "{{s}}"]\nargs:\n  s: { type: string, required: true, allow_dash: true, allow_newline: true, max_length: 65536 }\n',
);

describe('renderArgv', () => {
  it('renders the documented example', () => {
    assert.deepEqual(run(JOURNAL, { unit: 'nginx' }), ['journalctl', '--no-pager', '-u', 'nginx', '-n', '200']);
    assert.deepEqual(run(JOURNAL, { unit: 'nginx', lines: 5, since: '1h', follow: true, ids: [3, 4] }), [
      'journalctl',
      '--no-pager',
      '-u',
      'nginx',
      '-n',
      '5',
      '--since=-3600s',
      '-f',
      '3',
      '4',
    ]);
  });

  it('renders a script action without the script path', () => {
    const a = action('argv: ["--top", "{{n}}"]\nargs:\n  n: { type: integer, min: 1, max: 9, default: 3 }\n', 'script');
    assert.deepEqual(run(a, {}), ['--top', '3']);
    const empty = action('argv: []\n', 'script');
    assert.deepEqual(run(empty, {}), []);
  });

  it('renders booleans and paths', () => {
    const a = action(
      'argv: [x, "--flag={{b}}", "{{p}}"]\nargs:\n  b: { type: boolean, default: true }\n  p: { type: path, allow: [/var/log], required: true }\n',
    );
    assert.deepEqual(run(a, { b: false, p: '/var/log/x' }), ['x', '--flag=false', '/var/log/x']);
  });

  const attempts = [
    '; rm -rf /',
    '$(id)',
    '`id`',
    'a b',
    '$HOME',
    '*',
    '~',
    '\'quoted\' "double"',
    '| cat /etc/shadow',
    '&& reboot',
    '> /etc/passwd',
    '\\',
    '%s%n',
    '\t\v\f',
    '..',
  ];
  for (const s of attempts) {
    it(`keeps ${JSON.stringify(s)} as one literal element`, () => {
      assert.deepEqual(run(FREE, { s }), ['echo', s, `--x=${s}`]);
    });
  }

  const refusals: [string, string][] = [
    ['a\nb', 'refused args.s: must not contain line breaks'],
    ['a\r\nb', 'refused args.s: must not contain line breaks'],
    ['a\0b', 'refused args.s: must not contain NUL'],
    ['-rf', "refused args.s: must not start with '-' (it could be read as an option)"],
    ['--foo=bar', "refused args.s: must not start with '-' (it could be read as an option)"],
    ['-', "refused args.s: must not start with '-' (it could be read as an option)"],
  ];
  for (const [s, message] of refusals) {
    it(`refuses ${JSON.stringify(s)}`, () => assert.deepEqual(run(FREE, { s }), [message]));
  }

  it('keeps dash values literal when allow_dash is set', () => {
    assert.deepEqual(run(FREE_DASH, { s: '--foo=bar' }), ['echo', '--foo=bar']);
    assert.deepEqual(run(FREE_DASH, { s: 'a\nb; c' }), ['echo', 'a\nb; c']);
  });

  it('re-checks values that bypass validation', () => {
    const r1 = renderArgv(FREE, { s: '-rf' });
    assert.ok(!r1.ok);
    assert.deepEqual(r1.errors, [
      { field: 'args.s', message: "must not start with '-' in a whole-placeholder element (allow_dash is not set)" },
    ]);
    const r2 = renderArgv(FREE_DASH, { s: 'a\0b' });
    assert.ok(!r2.ok);
    assert.deepEqual(r2.errors, [{ field: 'args.s', message: 'must not contain NUL' }]);
    const r3 = renderArgv(JOURNAL, { unit: 'x', lines: -1 });
    assert.ok(!r3.ok);
    const r4 = renderArgv(JOURNAL, { lines: 1, ids: [] });
    assert.deepEqual(r4, { ok: false, errors: [{ field: 'args.unit', message: 'no value to render' }] });
    const r5 = renderArgv(JOURNAL, { unit: 'x', lines: 1, ids: ['-1'] });
    assert.ok(!r5.ok);
    const r6 = renderArgv(JOURNAL, { unit: ['a', 'b'], lines: 1 });
    assert.ok(!r6.ok);
    // A prefixed element cannot become an option, so a leading dash there is fine.
    const r7 = renderArgv(FREE, { s: 'x' });
    assert.ok(r7.ok);
  });

  it('returns a frozen argv', () => {
    const r = renderArgv(FREE, { s: 'x' });
    assert.ok(r.ok && Object.isFrozen(r.argv));
  });

  it('property: an accepted value renders as exactly one verbatim element per placeholder', () => {
    const one = action('argv: [echo, "{{s}}"]\nargs:\n  s: { type: string, required: true, max_length: 65536 }\n');
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 200 }), (s) => {
        const v = validateArgs(one, { s });
        if (!v.ok) return !(!s.includes('\0') && !/[\r\n]/.test(s) && !s.startsWith('-'));
        const r = renderArgv(one, v.values);
        assert.ok(r.ok);
        assert.equal(r.argv.length, one.template.length);
        assert.deepEqual(r.argv, ['echo', s]);
        return true;
      }),
      { numRuns: 500 },
    );
  });

  it('property: with allow_dash and allow_newline, every string without NUL renders verbatim', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 200 }), (s) => {
        const v = validateArgs(FREE_DASH, { s });
        if (s.includes('\0')) return !v.ok;
        assert.ok(v.ok);
        const r = renderArgv(FREE_DASH, v.values);
        assert.ok(r.ok);
        assert.deepEqual(r.argv, ['echo', s]);
        return true;
      }),
      { numRuns: 500 },
    );
  });

  it('property: a list renders one element per item, in order', () => {
    const a = action(
      'argv: [ls, "{{files}}", end]\nargs:\n  files: { type: list, items: { type: string, max_length: 64 }, max_items: 16, required: true }\n',
    );
    const item = fc.string({ maxLength: 20 }).filter((s) => !s.startsWith('-') && !/[\0\r\n]/.test(s));
    fc.assert(
      fc.property(fc.array(item, { maxLength: 16 }), (items) => {
        const v = validateArgs(a, { files: items });
        assert.ok(v.ok);
        const r = renderArgv(a, v.values);
        assert.ok(r.ok);
        assert.deepEqual(r.argv, ['ls', ...items, 'end']);
        return true;
      }),
    );
  });
});
