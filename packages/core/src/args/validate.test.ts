import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { parseActionSpec } from '../pack/action.js';
import { formatSpecError } from '../pack/spec-error.js';
import type { ActionSpec } from '../pack/types.js';
import { formatDuration, parseDuration } from './duration.js';
import { checkAbsolutePath, isUnderPrefix } from './path.js';
import { formatArgErrors, type ValidateArgsOptions, validateArgs } from './validate.js';

/** Build an action whose argv uses every declared argument. */
function action(args: string, argv = ''): ActionSpec {
  // Scalars go into prefixed elements (no dash rule), lists into whole elements as required.
  const names = [...args.matchAll(/^ {2}([a-z][a-z0-9_]*):(.*)$/gm)].map((m) => [m[1], m[2]?.includes('type: list')]);
  const elements = argv || names.map(([n, list]) => (list ? `"{{${n}}}"` : `"--${n}={{${n}}}"`)).join(', ');
  const text = `id: t.a\ntitle: T\ndescription: D\nrisk: read\nkind: exec\nargv: [cmd, ${elements}]\nargs:\n${args}`;
  const r = parseActionSpec(text, 'actions/a.yaml');
  if (!r.ok) throw new Error(r.errors.map(formatSpecError).join('\n'));
  return r.value;
}

function errs(a: ActionSpec, input: Record<string, unknown>, opts?: ValidateArgsOptions): string[] {
  const r = validateArgs(a, input, opts);
  return r.ok ? [] : r.errors.map((e) => `${e.field}: ${e.message}`);
}

function vals(a: ActionSpec, input: Record<string, unknown>, opts?: ValidateArgsOptions): Record<string, unknown> {
  const r = validateArgs(a, input, opts);
  if (!r.ok) throw new Error(formatArgErrors(r.errors));
  return { ...r.values };
}

const ALL = action(
  '  unit: { type: string, required: true, pattern: "[A-Za-z0-9@._-]+", max_length: 16 }\n' +
    '  lines: { type: integer, min: 1, max: 1000, default: 200 }\n' +
    '  follow: { type: boolean, default: false }\n' +
    '  since: { type: duration, min: 1m, max: 7d, default: 1h }\n' +
    '  mode: { type: string, enum: [fast, slow], default: fast }\n' +
    '  text: { type: string, min_length: 2, max_length: 8, allow_newline: true, default: ok }\n' +
    '  ids: { type: list, items: { type: integer, min: 0, max: 99 }, min_items: 1, max_items: 3, default: [1] }\n' +
    '  tags: { type: list, items: { type: string, pattern: "[a-z]+" }, max_items: 4, default: [] }\n',
);

describe('validateArgs', () => {
  it('applies defaults and normalises values', () => {
    assert.deepEqual(vals(ALL, { unit: 'nginx' }), {
      unit: 'nginx',
      lines: 200,
      follow: false,
      since: 3600,
      mode: 'fast',
      text: 'ok',
      ids: [1],
      tags: [],
    });
  });

  it('returns frozen values', () => {
    const r = validateArgs(ALL, { unit: 'nginx', ids: [1, 2] });
    assert.ok(r.ok);
    assert.ok(Object.isFrozen(r.values));
    assert.ok(Object.isFrozen(r.values['ids']));
  });

  const table: { name: string; input: Record<string, unknown>; errors: string[]; opts?: ValidateArgsOptions }[] = [
    { name: 'missing required', input: {}, errors: ['args.unit: required'] },
    { name: 'unknown argument', input: { unit: 'a', bogus: 1 }, errors: ['args.bogus: unknown argument'] },
    {
      name: 'prototype key',
      input: JSON.parse('{"unit":"a","__proto__":1}'),
      errors: ['args.__proto__: unknown argument'],
    },
    { name: 'integer too big', input: { unit: 'a', lines: 5000 }, errors: ['args.lines: must be <= 1000 (got 5000)'] },
    { name: 'integer too small', input: { unit: 'a', lines: 0 }, errors: ['args.lines: must be >= 1 (got 0)'] },
    {
      name: 'fractional integer',
      input: { unit: 'a', lines: 1.5 },
      errors: ['args.lines: must be an integer (got 1.5)'],
    },
    {
      name: 'integer as string without coercion',
      input: { unit: 'a', lines: '5' },
      errors: ['args.lines: must be an integer (got "5")'],
    },
    {
      name: 'unsafe integer',
      input: { unit: 'a', lines: 2 ** 60 },
      errors: [`args.lines: must be an integer (got ${2 ** 60})`],
    },
    { name: 'pattern', input: { unit: 'a b' }, errors: ['args.unit: must match [A-Za-z0-9@._-]+ (got "a b")'] },
    {
      name: 'pattern is anchored',
      input: { unit: 'ok;rm' },
      errors: ['args.unit: must match [A-Za-z0-9@._-]+ (got "ok;rm")'],
    },
    {
      name: 'max_length',
      input: { unit: 'a'.repeat(17) },
      errors: ['args.unit: must be at most 16 characters (got 17)'],
    },
    {
      name: 'min_length',
      input: { unit: 'a', text: 'x' },
      errors: ['args.text: must be at least 2 characters (got 1)'],
    },
    { name: 'NUL always refused', input: { unit: 'a', text: 'a\0b' }, errors: ['args.text: must not contain NUL'] },
    { name: 'newline refused', input: { unit: 'a\nb' }, errors: ['args.unit: must not contain line breaks'] },
    { name: 'CR refused', input: { unit: 'a\rb' }, errors: ['args.unit: must not contain line breaks'] },
    {
      name: 'leading dash',
      input: { unit: '-rf' },
      errors: ["args.unit: must not start with '-' (it could be read as an option)"],
    },
    {
      name: 'enum',
      input: { unit: 'a', mode: 'FAST' },
      errors: ['args.mode: must be one of: fast, slow (got "FAST")'],
    },
    {
      name: 'boolean type',
      input: { unit: 'a', follow: 'yes' },
      errors: ['args.follow: must be true or false (got "yes")'],
    },
    { name: 'null is not absent', input: { unit: null }, errors: ['args.unit: must be a string (got null)'] },
    { name: 'duration too long', input: { unit: 'a', since: '8d' }, errors: ['args.since: must be <= 7d (got 8d)'] },
    { name: 'duration too short', input: { unit: 'a', since: 30 }, errors: ['args.since: must be >= 1m (got 30s)'] },
    {
      name: 'duration garbage',
      input: { unit: 'a', since: '5 minutes' },
      errors: ['args.since: must be a duration like 30s, 5m, 1h30m or whole seconds (got "5 minutes")'],
    },
    {
      name: 'list too long',
      input: { unit: 'a', ids: [1, 2, 3, 4] },
      errors: ['args.ids: must have at most 3 items (got 4)'],
    },
    { name: 'list too short', input: { unit: 'a', ids: [] }, errors: ['args.ids: must have at least 1 items (got 0)'] },
    {
      name: 'list item',
      input: { unit: 'a', ids: [1, 100, 'x'] },
      errors: ['args.ids[1]: must be <= 99 (got 100)', 'args.ids[2]: must be an integer (got "x")'],
    },
    {
      name: 'list string item',
      input: { unit: 'a', tags: ['ok', 'NO'] },
      errors: ['args.tags[1]: must match [a-z]+ (got "NO")'],
    },
    { name: 'list not a list', input: { unit: 'a', tags: 'a,b' }, errors: ['args.tags: must be a list (got "a,b")'] },
    {
      name: 'every error is reported',
      input: { lines: 0, follow: 1, extra: true },
      errors: [
        'args.extra: unknown argument',
        'args.unit: required',
        'args.lines: must be >= 1 (got 0)',
        'args.follow: must be true or false (got 1)',
      ],
    },
  ];
  for (const row of table) {
    it(`refuses: ${row.name}`, () => assert.deepEqual(errs(ALL, row.input, row.opts), row.errors));
  }

  it('accepts allowed newlines and code point lengths', () => {
    assert.equal(vals(ALL, { unit: 'a', text: 'a\nb' })['text'], 'a\nb');
    assert.equal(vals(ALL, { unit: 'a', text: '😀😀😀😀😀😀😀😀' })['text'], '😀😀😀😀😀😀😀😀');
  });

  it('coerces command-line strings only when asked', () => {
    const cli = { coerceStrings: true };
    assert.deepEqual(
      vals(ALL, { unit: 'a', lines: '42', follow: 'yes', since: '1h30m', ids: '1,2', tags: 'x,y' }, cli),
      {
        unit: 'a',
        lines: 42,
        follow: true,
        since: 5400,
        mode: 'fast',
        text: 'ok',
        ids: [1, 2],
        tags: ['x', 'y'],
      },
    );
    for (const [text, want] of [
      ['true', true],
      ['1', true],
      ['YES', true],
      ['false', false],
      ['0', false],
      ['no', false],
    ] as const) {
      assert.equal(vals(ALL, { unit: 'a', follow: text }, cli)['follow'], want);
    }
    assert.deepEqual(errs(ALL, { unit: 'a', lines: '4x' }, cli), ['args.lines: must be an integer (got "4x")']);
    assert.deepEqual(errs(ALL, { unit: 'a', lines: '+4' }, cli), ['args.lines: must be an integer (got "+4")']);
    assert.deepEqual(errs(ALL, { unit: 'a', lines: '1e3' }, cli), ['args.lines: must be an integer (got "1e3")']);
    assert.deepEqual(errs(ALL, { unit: 'a', follow: 'maybe' }, cli), [
      'args.follow: must be true or false (got "maybe")',
    ]);
    assert.deepEqual(vals(ALL, { unit: 'a', tags: '' }, cli)['tags'], []);
    assert.deepEqual(errs(ALL, { unit: 'a', ids: '1,,2' }, cli), ['args.ids[1]: must be an integer (got "")']);
  });

  it('allows a leading dash only with allow_dash', () => {
    const a = action('  pat: { type: string, required: true, allow_dash: true }\n');
    assert.equal(vals(a, { pat: '-v' })['pat'], '-v');
  });

  it('refuses a non-object input', () => {
    assert.deepEqual(errs(ALL, [] as unknown as Record<string, unknown>), [
      'args: must be a mapping of argument names to values',
    ]);
  });
});

describe('path arguments', () => {
  const LOGS = action(
    '  file: { type: path, required: true, allow: [/var/log, /srv/app], deny: [/var/log/secret] }\n' +
      '  out: { type: path, allow: [/tmp/out], must_exist: false, default: /tmp/out/report.txt }\n',
  );
  // A fake filesystem: realpath of known paths; anything else does not exist.
  const fs = new Map<string, string>([
    ['/', '/'],
    ['/var', '/var'],
    ['/var/log', '/var/log'],
    ['/var/log/syslog', '/var/log/syslog'],
    ['/var/log/link', '/etc/shadow'],
    ['/var/log/dirlink', '/etc'],
    ['/var/log/dirlink/passwd', '/etc/passwd'],
    ['/var/log/ok-link', '/srv/app/current.log'],
    ['/var/log/secret', '/var/log/secret'],
    ['/var/log/alias', '/var/log/secret/key'],
    ['/var/logs', '/var/logs'],
    ['/var/logs/x', '/var/logs/x'],
    ['/tmp', '/tmp'],
    ['/tmp/out', '/tmp/out'],
    ['/tmp/evil', '/etc'],
  ]);
  const resolvePath = (p: string): string => {
    const r = fs.get(p);
    if (r === undefined) throw new Error(`ENOENT: ${p}`);
    return r;
  };
  const opts = { resolvePath };

  it('resolves and accepts paths under an allowed prefix', () => {
    assert.deepEqual(vals(LOGS, { file: '/var/log/syslog' }, opts), {
      file: '/var/log/syslog',
      out: '/tmp/out/report.txt',
    });
    // A symlink whose target is allowed resolves to the target, which is what reaches argv.
    assert.equal(vals(LOGS, { file: '/var/log/ok-link' }, opts)['file'], '/srv/app/current.log');
  });

  const refused: [string, string][] = [
    ['/var/log/../../etc/shadow', "must not contain '.' or '..' components"],
    ['/var/log/./syslog', "must not contain '.' or '..' components"],
    ['/var/log//syslog', "must not contain '//'"],
    ['/var/log/', "must not end with '/'"],
    ['var/log/syslog', 'must be an absolute path'],
    ['', 'must not be empty'],
    ['-rf', 'must be an absolute path'],
    ['/var/log\uFF0Fsyslog', 'must contain only ASCII characters (lookalike characters are refused)'],
    ['/var/log/\u2024\u2024/etc', 'must contain only ASCII characters (lookalike characters are refused)'],
    ['/var/log/\uFF0E\uFF0E/etc', 'must contain only ASCII characters (lookalike characters are refused)'],
    ['/var/log/sys\u00ADlog', 'must contain only ASCII characters (lookalike characters are refused)'],
    ['/var/log/a\0b', 'must not contain NUL'],
    ['/var/log/a\nb', 'must not contain control characters'],
    ['/var/log/a\x1bb', 'must not contain control characters'],
    ['/var/log/link', '/var/log/link (resolves to /etc/shadow) is not under an allowed prefix (/var/log, /srv/app)'],
    [
      '/var/log/dirlink/passwd',
      '/var/log/dirlink/passwd (resolves to /etc/passwd) is not under an allowed prefix (/var/log, /srv/app)',
    ],
    ['/var/logs/x', '/var/logs/x is not under an allowed prefix (/var/log, /srv/app)'],
    ['/var/log/secret', '/var/log/secret is denied'],
    ['/var/log/alias', '/var/log/alias (resolves to /var/log/secret/key) is denied'],
    ['/var/log/missing', '/var/log/missing does not exist or cannot be resolved'],
    ['/etc/shadow', '/etc/shadow does not exist or cannot be resolved'],
  ];
  for (const [input, message] of refused) {
    it(`refuses ${JSON.stringify(input)}`, () => {
      assert.deepEqual(errs(LOGS, { file: input }, opts), [`args.file: ${message}`]);
    });
  }

  it('resolves the parent of a path that need not exist', () => {
    assert.equal(
      vals(LOGS, { file: '/var/log/syslog', out: '/tmp/out/new/file.txt' }, opts)['out'],
      '/tmp/out/new/file.txt',
    );
    // /tmp/evil → /etc: creating /tmp/evil/x would write into /etc.
    assert.deepEqual(errs(LOGS, { file: '/var/log/syslog', out: '/tmp/evil/x' }, opts), [
      'args.out: /tmp/evil/x (resolves to /etc/x) is not under an allowed prefix (/tmp/out)',
    ]);
  });

  it('refuses a resolver answer that is not a clean absolute path', () => {
    const bad = { resolvePath: (p: string) => (p === '/var/log/syslog' ? 'relative' : p) };
    assert.deepEqual(errs(LOGS, { file: '/var/log/syslog' }, bad), [
      'args.file: /var/log/syslog resolves to an unacceptable path (must be an absolute path)',
    ]);
  });

  it('property: an accepted path is always under an allowed prefix and never under a denied one', () => {
    const seg = fc.constantFrom('var', 'log', 'logs', 'secret', 'srv', 'app', '..', '.', '', 'x', 'link', '\uFF0F');
    fc.assert(
      fc.property(fc.array(seg, { maxLength: 5 }), (segs) => {
        const p = `/${segs.join('/')}`;
        const r = validateArgs(LOGS, { file: p, out: '/tmp/out/a' }, { resolvePath: (q) => fs.get(q) ?? q });
        if (!r.ok) return true;
        const got = r.values['file'] as string;
        return (
          checkAbsolutePath(got) === undefined &&
          (isUnderPrefix(got, '/var/log') || isUnderPrefix(got, '/srv/app')) &&
          !isUnderPrefix(got, '/var/log/secret')
        );
      }),
    );
  });
});

describe('isUnderPrefix', () => {
  it('matches whole components', () => {
    assert.equal(isUnderPrefix('/var/log', '/var/log'), true);
    assert.equal(isUnderPrefix('/var/log/x', '/var/log'), true);
    assert.equal(isUnderPrefix('/var/logs', '/var/log'), false);
    assert.equal(isUnderPrefix('/var', '/var/log'), false);
    assert.equal(isUnderPrefix('/anything', '/'), true);
  });
});

describe('parseDuration', () => {
  const table: [string, number | undefined][] = [
    ['0', 0],
    ['30', 30],
    ['30s', 30],
    ['5m', 300],
    ['2h', 7200],
    ['1d', 86400],
    ['7d', 604800],
    ['1h30m', 5400],
    ['1d2h3m4s', 93784],
    ['250ms', 1],
    ['1s500ms', 2],
    ['1000ms', 1],
    ['0s', 0],
    ['', undefined],
    [' 5m', undefined],
    ['5m ', undefined],
    ['5 m', undefined],
    ['-5s', undefined],
    ['1.5h', undefined],
    ['5M', undefined],
    ['30m1h', undefined],
    ['1h1h', undefined],
    ['5x', undefined],
    ['m', undefined],
    ['1e3', undefined],
    ['99999999999999999999', undefined],
    ['9999999999999999d', undefined],
  ];
  for (const [text, want] of table) {
    it(`${JSON.stringify(text)} → ${want}`, () => assert.equal(parseDuration(text), want));
  }

  it('round-trips with formatDuration', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 10 ** 9 }), (s) => parseDuration(formatDuration(s)) === s));
  });
});
