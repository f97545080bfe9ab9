import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { packHash } from '../hash/pack-hash.js';
import { parseActionSpec } from './action.js';
import { loadPackFromFiles } from './load.js';
import { parsePackManifest } from './manifest.js';
import { actionSpecJsonSchema, packManifestJsonSchema } from './schema.js';
import { formatSpecError } from './spec-error.js';

const HEAD = 'id: linux.x\ntitle: T\ndescription: D\nrisk: read\nkind: exec\n';

/** Parse an action (HEAD + body unless the body has its own id) and return formatted errors. */
function errorsOf(body: string, file = 'actions/x.yaml'): string[] {
  const text = body.startsWith('id:') ? body : HEAD + body;
  const r = parseActionSpec(text, file);
  return r.ok ? [] : r.errors.map(formatSpecError);
}

const JOURNAL = `# actions/journal.yaml
id: linux.journal
title: Journal of a systemd unit
description: Last lines of the journal for one unit.
risk: read
kind: exec
argv: ["journalctl", "--no-pager", "-u", "{{unit}}", "-n", "{{lines}}",
       { if: since, then: ["--since=-{{since}}s"] }]
args:
  unit: { type: string, required: true, pattern: '[A-Za-z0-9@._-]+', max_length: 128 }
  lines: { type: integer, min: 1, max: 5000, default: 200 }
  since: { type: duration, min: 1m, max: 7d }
limits: { timeout_s: 15, timeout_s_max: 60 }
set_env: { SYSTEMD_PAGER: cat }
examples:
  - { args: { unit: nginx, lines: 50 }, description: last 50 lines }
  - { args: { unit: sshd, since: 1h } }
`;

describe('parseActionSpec', () => {
  it('parses and normalises the documented example', () => {
    const r = parseActionSpec(JOURNAL, 'actions/journal.yaml');
    assert.ok(r.ok, r.ok ? '' : r.errors.map(formatSpecError).join('\n'));
    const a = r.value;
    assert.equal(a.id, 'linux.journal');
    assert.equal(a.file, 'actions/journal.yaml');
    assert.deepEqual(a.args['unit'], {
      type: 'string',
      pattern: '[A-Za-z0-9@._-]+',
      min_length: 0,
      max_length: 128,
      allow_newline: false,
      allow_dash: false,
      required: true,
    });
    assert.deepEqual(a.args['lines'], { type: 'integer', min: 1, max: 5000, required: false, default: 200 });
    assert.deepEqual(a.args['since'], { type: 'duration', min: 60, max: 604800, required: false });
    assert.deepEqual(a.limits.timeout_s, { default: 15, min: 1, max: 60 });
    assert.deepEqual(a.limits.output_bytes, { default: 1048576, min: 1024, max: 67108864 });
    assert.deepEqual(a.limits.cpu_s, { min: 1, max: 3600 });
    assert.deepEqual(a.requires, ['journalctl']);
    assert.deepEqual(a.set_env, { SYSTEMD_PAGER: 'cat' });
    assert.equal(a.template.length, 7);
    assert.deepEqual(a.template[6], {
      kind: 'if',
      arg: 'since',
      // biome-ignore lint/suspicious/noThenProperty: the parsed conditional group has a `then` list.
      then: [{ kind: 'placeholder', arg: 'since', prefix: '--since=-', suffix: 's' }],
    });
  });

  it('returns deeply frozen specs', () => {
    const r = parseActionSpec(JOURNAL, 'actions/journal.yaml');
    assert.ok(r.ok);
    const a = r.value;
    assert.ok(Object.isFrozen(a));
    assert.ok(Object.isFrozen(a.args));
    assert.ok(Object.isFrozen(a.args['lines']));
    assert.ok(Object.isFrozen(a.limits.timeout_s));
    assert.ok(Object.isFrozen(a.template));
    assert.ok(Object.isFrozen(a.argv));
    assert.ok(Object.isFrozen(a.examples[0]?.args));
    assert.throws(() => {
      (a.limits.timeout_s as { max: number }).max = 1e9;
    }, TypeError);
    assert.throws(() => {
      (a.requires as string[]).push('sh');
    }, TypeError);
  });

  it('adds the script interpreter to requires and accepts an empty argv for scripts', () => {
    const r = parseActionSpec(
      'id: linux.top\ntitle: T\ndescription: D\nrisk: read\nkind: script\nargv: []\n' +
        'script: { path: scripts/top.py, interpreter: python3 }\nrequires: [ps]\n',
      'actions/top.yaml',
    );
    assert.ok(r.ok, r.ok ? '' : r.errors.map(formatSpecError).join('\n'));
    assert.deepEqual(r.value.requires, ['python3', 'ps']);
    assert.deepEqual(r.value.script, { path: 'scripts/top.py', interpreter: 'python3' });
  });

  it('fills defaults of every argument type', () => {
    const r = parseActionSpec(
      HEAD +
        'argv: [ls, "{{s}}", "{{p}}", "{{l}}", {if: b, then: ["-b"]}, "--d={{d}}"]\n' +
        'args:\n' +
        '  s: { type: string, enum: [a, b], default: a }\n' +
        '  p: { type: path, allow: [/var/log], default: /var/log/syslog }\n' +
        '  l: { type: list, items: { type: integer, min: 0, max: 9 }, max_items: 3, default: [1, 2] }\n' +
        '  b: { type: boolean }\n' +
        '  d: { type: duration, min: 0, max: 1h, default: 90s }\n',
      'actions/x.yaml',
    );
    assert.ok(r.ok, r.ok ? '' : r.errors.map(formatSpecError).join('\n'));
    const { args } = r.value;
    assert.deepEqual(args['p'], {
      type: 'path',
      allow: ['/var/log'],
      deny: [],
      must_exist: true,
      required: false,
      default: '/var/log/syslog',
    });
    assert.deepEqual(args['l'], {
      type: 'list',
      items: { type: 'integer', min: 0, max: 9 },
      min_items: 0,
      max_items: 3,
      required: false,
      default: [1, 2],
    });
    assert.deepEqual(args['d'], { type: 'duration', min: 0, max: 3600, required: false, default: 90 });
    assert.deepEqual(args['b'], { type: 'boolean', required: false });
  });

  // Each row: a bad document (appended to a valid head unless it has its own id) → formatted errors.
  const table: { name: string; body: string; errors: string[] }[] = [
    {
      name: 'YAML syntax error carries line and column',
      body: 'argv: [ls\nargs: {}\n',
      errors: [
        'actions/x.yaml: invalid YAML at line 7, col 1: Flow sequence in block collection must be sufficiently indented and end with a ]',
      ],
    },
    {
      name: 'duplicate keys',
      body: 'argv: [ls]\nargv: [ls]\n',
      errors: ['actions/x.yaml: invalid YAML at line 7, col 1: Map keys must be unique'],
    },
    { name: 'not a mapping', body: 'id: x\n---\n- a\n', errors: [] },
    {
      name: 'integer bounds reversed',
      body: 'argv: [ls, "{{lines}}"]\nargs: { lines: { type: integer, min: 10, max: 5 } }\n',
      errors: ['actions/x.yaml: args.lines.max: must be >= min'],
    },
    {
      name: 'missing required fields and bad enums',
      body: 'id: linux.x\nkind: shell\n',
      errors: [
        'actions/x.yaml: title: required',
        'actions/x.yaml: description: required',
        'actions/x.yaml: risk: required',
        'actions/x.yaml: kind: must be one of: exec, script (got "shell")',
        'actions/x.yaml: argv: required',
      ],
    },
    {
      name: 'bad id',
      body: 'id: Linux\ntitle: T\ndescription: D\nrisk: read\nkind: exec\nargv: [ls]\n',
      errors: ['actions/x.yaml: id: must be namespace.action (lowercase letters, digits, _)'],
    },
    {
      name: 'unknown argument type and missing type',
      body: 'argv: [ls, "{{a}}", "{{b}}"]\nargs: { a: { type: strng }, b: { required: true } }\n',
      errors: [
        'actions/x.yaml: args.a.type: must be one of: string, integer, boolean, duration, path, list',
        'actions/x.yaml: args.b.type: required',
      ],
    },
    {
      name: 'bad argument name',
      body: 'argv: [ls, "{{Bad}}"]\nargs: { Bad: { type: boolean } }\n',
      errors: ['actions/x.yaml: args.Bad: argument names must match ^[a-z][a-z0-9_]{0,31}$'],
    },
    {
      name: 'undeclared placeholder',
      body: 'argv: [ls, "{{nope}}", {if: gone, then: ["-x"]}]\n',
      errors: [
        'actions/x.yaml: argv[1]: refers to undeclared argument "nope"',
        'actions/x.yaml: argv[2].if: refers to undeclared argument "gone"',
      ],
    },
    {
      name: 'two placeholders in one element',
      body: 'argv: [ls, "{{a}}{{b}}"]\nargs: { a: { type: boolean, default: true }, b: { type: boolean, default: true } }\n',
      errors: [
        'actions/x.yaml: argv[1]: at most one placeholder per element',
        'actions/x.yaml: args.a: declared but not used in argv',
        'actions/x.yaml: args.b: declared but not used in argv',
      ],
    },
    {
      name: 'malformed placeholders',
      body: 'argv: [ls, "{{ a }}", "{{a", "x}}"]\nargs: { a: { type: boolean, default: true } }\n',
      errors: [
        "actions/x.yaml: argv[1]: malformed placeholder '{{ a }}': use '{{name}}'",
        "actions/x.yaml: argv[2]: malformed placeholder: use '{{name}}'",
        "actions/x.yaml: argv[3]: malformed placeholder: use '{{name}}'",
        'actions/x.yaml: args.a: declared but not used in argv',
      ],
    },
    {
      name: 'placeholder as the binary',
      body: 'argv: ["{{bin}}"]\nargs: { bin: { type: string, default: ls } }\n',
      errors: ['actions/x.yaml: argv[0]: must be a literal binary name or absolute path, not a placeholder'],
    },
    {
      name: 'if group as the binary',
      body: 'argv: [{if: a, then: [ls]}]\nargs: { a: { type: boolean } }\n',
      errors: ['actions/x.yaml: argv[0]: must be the binary (a literal), not an if group'],
    },
    {
      name: 'empty exec argv and bad binary names',
      body: 'argv: []\n',
      errors: ['actions/x.yaml: argv: must not be empty for kind exec (element 0 is the binary)'],
    },
    {
      name: 'binary with a leading dash or a relative path',
      body: 'argv: ["-rf"]\nrequires: ["./x", "/usr//bin/x"]\n',
      errors: [
        'actions/x.yaml: argv[0]: must be a binary name (letters, digits, . _ + -, not starting with -) or an absolute path',
        'actions/x.yaml: requires[0]: must be a binary name (letters, digits, . _ + -, not starting with -) or an absolute path',
        "actions/x.yaml: requires[1]: must be a binary name or an absolute path: must not contain '//'",
      ],
    },
    {
      name: 'list used with a prefix',
      body: 'argv: [ls, "--f={{f}}"]\nargs: { f: { type: list, items: { type: string }, max_items: 3, required: true } }\n',
      errors: ['actions/x.yaml: argv[1]: list argument "f" may only be used as a whole element "{{f}}"'],
    },
    {
      name: 'optional argument without default outside its if group',
      body: 'argv: [ls, "{{a}}", {if: b, then: ["{{a}}"]}]\nargs: { a: { type: string }, b: { type: boolean } }\n',
      errors: [
        'actions/x.yaml: argv[1]: optional argument "a" has no default; use it only inside { if: a, then: [...] }',
        'actions/x.yaml: argv[2].then[0]: optional argument "a" has no default; use it only inside { if: a, then: [...] }',
      ],
    },
    {
      name: 'negative integer as a whole element',
      body: 'argv: [ls, "{{n}}"]\nargs: { n: { type: integer, min: -5, max: 5, required: true } }\n',
      errors: [
        'actions/x.yaml: argv[1]: integer argument "n" may be negative and would read as an option; use a prefix',
      ],
    },
    {
      name: 'default outside bounds and of the wrong type',
      body:
        'argv: [ls, "{{a}}", "{{b}}", "{{c}}", "{{d}}"]\nargs:\n' +
        '  a: { type: integer, min: 1, max: 10, default: 11 }\n' +
        '  b: { type: string, pattern: "[a-z]+", default: "ABC" }\n' +
        '  c: { type: duration, min: 1m, max: 1h, default: 2h }\n' +
        '  d: { type: boolean, default: "yes" }\n',
      errors: ['actions/x.yaml: args.d.default: must be a boolean (got "yes")'],
    },
    {
      name: 'default outside bounds (semantic)',
      body:
        'argv: [ls, "{{a}}", "{{b}}", "{{c}}", "{{p}}"]\nargs:\n' +
        '  a: { type: integer, min: 1, max: 10, default: 11 }\n' +
        '  b: { type: string, pattern: "[a-z]+", default: "ABC" }\n' +
        '  c: { type: duration, min: 1m, max: 1h, default: 2h }\n' +
        '  p: { type: path, allow: [/var/log], default: /etc/passwd }\n',
      errors: [
        'actions/x.yaml: args.a.default: must be <= 10 (got 11)',
        'actions/x.yaml: args.b.default: must match [a-z]+ (got "ABC")',
        'actions/x.yaml: args.c.default: must be <= 1h (got 2h)',
        'actions/x.yaml: args.p.default: /etc/passwd is not under an allowed prefix (/var/log)',
      ],
    },
    {
      name: 'enum values must match the pattern and the dash rule',
      body: 'argv: [ls, "{{m}}"]\nargs: { m: { type: string, pattern: "[a-z]+", enum: [abc, ABC, -r], required: true } }\n',
      errors: [
        'actions/x.yaml: args.m.enum[1]: must match [a-z]+ (got "ABC")',
        "actions/x.yaml: args.m.enum[2]: must not start with '-' (it could be read as an option)",
      ],
    },
    {
      name: 'patterns must compile',
      body: 'argv: [ls, "{{m}}"]\nargs: { m: { type: string, pattern: "a)|(b", required: true } }\nredact: [{ name: r, pattern: "(" }]\n',
      errors: [
        "actions/x.yaml: args.m.pattern: does not compile: Invalid regular expression: /a)|(b/u: Unmatched ')'",
        'actions/x.yaml: redact[0].pattern: does not compile: Invalid regular expression: /(/: Unterminated group',
      ],
    },
    {
      name: 'durations must parse and be ordered',
      body: 'argv: [ls, "--s={{s}}"]\nargs: { s: { type: duration, min: 1h, max: 5m, default: 1h } }\n',
      errors: ['actions/x.yaml: args.s.max: must be >= min'],
    },
    {
      name: 'bad duration text',
      body: 'argv: [ls, "--s={{s}}"]\nargs: { s: { type: duration, min: 5 minutes, max: 1h, default: 1h } }\n',
      errors: ['actions/x.yaml: args.s.min: must be a duration like 30s, 5m, 1h30m, 7d or plain seconds'],
    },
    {
      name: 'path prefixes must be absolute and normalised',
      body: 'argv: [ls, "{{p}}"]\nargs: { p: { type: path, allow: [var/log, /var/log/], deny: [/a/../b], required: true } }\n',
      errors: [
        'actions/x.yaml: args.p.allow[0]: must be an absolute path',
        "actions/x.yaml: args.p.allow[1]: must not end with '/'",
        "actions/x.yaml: args.p.deny[0]: must not contain '.' or '..' components",
      ],
    },
    {
      name: 'list bounds',
      body: 'argv: [ls, "{{l}}"]\nargs: { l: { type: list, items: { type: string }, min_items: 5, max_items: 2, required: true } }\n',
      errors: ['actions/x.yaml: args.l.max_items: must be >= min_items'],
    },
    {
      name: 'list without max_items and with a bad item type',
      body: 'argv: [ls, "{{l}}"]\nargs: { l: { type: list, items: { type: boolean } } }\n',
      errors: [
        'actions/x.yaml: args.l.items.type: must be one of: string, integer, path',
        'actions/x.yaml: args.l.max_items: required',
      ],
    },
    {
      name: 'limits outside built-in bounds and unordered',
      body: 'argv: [ls]\nlimits: { timeout_s: 5000, output_bytes: 2048, output_bytes_min: 4096, cpu_s_min: 10, cpu_s_max: 5, max_files: 8 }\n',
      errors: [
        'actions/x.yaml: limits.timeout_s: must be within the built-in bounds 1..3600 (got 5000)',
        'actions/x.yaml: limits.output_bytes_min: must be <= output_bytes (2048) (got 4096)',
        'actions/x.yaml: limits.cpu_s_max: must be >= cpu_s_min (10) (got 5)',
        'actions/x.yaml: limits.max_files: must be within the built-in bounds 16..65536 (got 8)',
      ],
    },
    {
      name: 'narrowing a max below the built-in default needs a default',
      body: 'argv: [ls]\nlimits: { timeout_s_max: 10 }\n',
      errors: ['actions/x.yaml: limits.timeout_s_max: must be >= the built-in default 30 (got 10); set timeout_s too'],
    },
    {
      name: 'script rules',
      body: 'argv: [ls]\nscript: { path: scripts/a.py }\n',
      errors: ['actions/x.yaml: script: only allowed for kind script'],
    },
    {
      name: 'script path outside scripts/',
      body: 'id: linux.x\ntitle: T\ndescription: D\nrisk: read\nkind: script\nargv: []\nscript: { path: ../etc/passwd }\n',
      errors: [
        'actions/x.yaml: script.path: must be a normalised relative path (no leading /, no . or .. or hidden components)',
      ],
    },
    {
      name: 'script kind without script',
      body: 'id: linux.x\ntitle: T\ndescription: D\nrisk: read\nkind: script\nargv: []\n',
      errors: ['actions/x.yaml: script: required for kind script'],
    },
    {
      name: 'reserved environment variables',
      body: 'argv: [ls]\nenv: [HOME, PATH, LD_PRELOAD, HOME]\nset_env: { PATH: /tmp, "1X": a }\n',
      errors: ['actions/x.yaml: set_env.1X: must be an environment variable name'],
    },
    {
      name: 'reserved environment variables (semantic)',
      body: 'argv: [ls]\nenv: [HOME, PATH, LD_PRELOAD, HOME]\nset_env: { PATH: /tmp }\n',
      errors: [
        'actions/x.yaml: env[1]: PATH is controlled by the runner and cannot be passed',
        'actions/x.yaml: env[2]: LD_PRELOAD is controlled by the runner and cannot be passed',
        'actions/x.yaml: env[3]: HOME is listed twice',
        'actions/x.yaml: set_env.PATH: PATH is controlled by the runner and cannot be set',
      ],
    },
    {
      name: 'examples are validated against args',
      body:
        'argv: [ls, "{{n}}"]\nargs: { n: { type: integer, min: 1, max: 5, required: true } }\n' +
        'examples: [{ args: { n: 9 } }, { args: { m: 1 } }]\n',
      errors: [
        'actions/x.yaml: examples[0].args.n: must be <= 5 (got 9)',
        'actions/x.yaml: examples[1].args.m: unknown argument',
        'actions/x.yaml: examples[1].args.n: required',
      ],
    },
    {
      name: '__proto__ keys',
      body: 'argv: [ls]\nexamples: [{ args: { __proto__: { x: 1 } } }]\n',
      errors: ['actions/x.yaml: examples[0].args.__proto__: the key __proto__ is not allowed'],
    },
    {
      name: 'wrong scalar types',
      body: 'title: [a]\nargv: "ls -l"\n',
      errors: [],
    },
  ];

  for (const row of table) {
    it(`reports: ${row.name}`, () => {
      const got = errorsOf(row.body);
      if (row.errors.length === 0) {
        // Rows without expectations only need to fail with errors that name the file.
        assert.ok(got.length > 0, 'expected errors');
        for (const e of got) assert.match(e, /^actions\/x\.yaml: /);
      } else {
        assert.deepEqual(got, row.errors);
      }
    });
  }

  it('reports the type mismatches precisely', () => {
    assert.deepEqual(errorsOf('id: linux.x\ntitle: [a]\ndescription: D\nrisk: read\nkind: exec\nargv: "ls -l"\n'), [
      'actions/x.yaml: title: must be a string (got a list)',
      'actions/x.yaml: argv: must be a list (got "ls -l")',
    ]);
    const whole = (text: string) => {
      const r = parseActionSpec(text, 'actions/x.yaml');
      return r.ok ? [] : r.errors.map(formatSpecError);
    };
    assert.deepEqual(whole('[1, 2]\n'), ['actions/x.yaml: must be a mapping (got a list)']);
    assert.deepEqual(whole(''), ['actions/x.yaml: must be a mapping (got null)']);
  });

  it('gives line and column of the offending field', () => {
    const r = parseActionSpec(`${HEAD}argv: [ls, "{{n}}"]\nargs:\n  n: { type: integer, min: 10, max: 5 }\n`, 'a.yaml');
    assert.ok(!r.ok);
    assert.deepEqual(r.errors[0], { file: 'a.yaml', path: 'args.n.max', message: 'must be >= min', line: 8, col: 37 });
  });

  // Unknown fields are errors at every level of the format.
  const unknownAt: { body: string; path: string }[] = [
    { body: 'argv: [ls]\nbogus: 1\n', path: 'bogus' },
    { body: 'argv: [ls, {if: a, then: ["-a"], else: ["-b"]}]\nargs: { a: { type: boolean } }\n', path: 'argv[1].else' },
    { body: 'argv: [ls, "{{a}}"]\nargs: { a: { type: string, required: true, bogus: 1 } }\n', path: 'args.a.bogus' },
    { body: 'argv: [ls, "{{a}}"]\nargs: { a: { type: boolean, min: 1 } }\n', path: 'args.a.min' },
    {
      body: 'argv: [ls, "{{a}}"]\nargs: { a: { type: list, max_items: 2, items: { type: string, required: true } } }\n',
      path: 'args.a.items.required',
    },
    { body: 'argv: [ls]\nlimits: { timeout: 5 }\n', path: 'limits.timeout' },
    { body: 'argv: [ls]\nredact: [{ name: a, pattern: b, flags: i }]\n', path: 'redact[0].flags' },
    { body: 'argv: [ls]\nexamples: [{ args: {}, note: x }]\n', path: 'examples[0].note' },
    {
      body: 'id: linux.x\ntitle: T\ndescription: D\nrisk: read\nkind: script\nargv: []\nscript: { path: scripts/a, shell: true }\n',
      path: 'script.shell',
    },
  ];
  for (const { body, path } of unknownAt) {
    it(`rejects unknown field ${path}`, () => {
      assert.ok(errorsOf(body).includes(`actions/x.yaml: ${path}: unknown field`), errorsOf(body).join('\n'));
    });
  }
});

describe('parsePackManifest', () => {
  it('parses a manifest and fills redact', () => {
    const r = parsePackManifest('name: linux-core\nversion: 1.2.3-rc.1\nnamespace: linux\ndescription: Linux basics\n');
    assert.ok(r.ok);
    assert.deepEqual(r.value, {
      name: 'linux-core',
      version: '1.2.3-rc.1',
      namespace: 'linux',
      description: 'Linux basics',
      redact: [],
    });
    assert.ok(Object.isFrozen(r.value.redact));
  });

  it('reports every problem with the default file name', () => {
    const r = parsePackManifest(
      'name: Linux Core\nversion: "1.2"\nnamespace: linux-x\ndescription: ""\nowner: me\nredact: [{ name: T, pattern: x }]\n',
    );
    assert.ok(!r.ok);
    assert.deepEqual(r.errors.map(formatSpecError), [
      'pack.yaml: name: must match ^[a-z][a-z0-9-]{0,62}$',
      'pack.yaml: version: must be a semantic version MAJOR.MINOR.PATCH[-pre]',
      'pack.yaml: namespace: must match ^[a-z][a-z0-9_]{0,31}$',
      'pack.yaml: description: must not be empty',
      'pack.yaml: redact[0].name: must match ^[a-z][a-z0-9_]{0,47}$',
      'pack.yaml: owner: unknown field',
    ]);
  });
});

describe('formatSpecError', () => {
  it('formats with and without a path', () => {
    assert.equal(formatSpecError({ file: 'a.yaml', path: 'args.x', message: 'bad' }), 'a.yaml: args.x: bad');
    assert.equal(formatSpecError({ file: 'a.yaml', path: '', message: 'bad' }), 'a.yaml: bad');
  });
});

describe('JSON Schema export', () => {
  it('describes every field of pack.yaml', () => {
    const s = packManifestJsonSchema();
    assert.equal(s['type'], 'object');
    assert.equal(s['additionalProperties'], false);
    const props = s['properties'] as Record<string, unknown>;
    assert.deepEqual(Object.keys(props).sort(), ['description', 'name', 'namespace', 'redact', 'version']);
    assert.deepEqual(s['required'], ['name', 'version', 'namespace', 'description']);
  });

  it('describes every field of an action', () => {
    const s = actionSpecJsonSchema();
    assert.equal(s['type'], 'object');
    assert.equal(s['additionalProperties'], false);
    const props = s['properties'] as Record<string, Record<string, unknown>>;
    assert.deepEqual(
      Object.keys(props).sort(),
      [
        'args',
        'argv',
        'description',
        'env',
        'examples',
        'id',
        'kind',
        'limits',
        'redact',
        'requires',
        'risk',
        'script',
        'set_env',
        'title',
      ].sort(),
    );
    const limits = props['limits']?.['properties'] as Record<string, unknown>;
    assert.equal(Object.keys(limits).length, 18);
    // The schema is plain JSON (no functions, no cycles).
    assert.deepEqual(JSON.parse(JSON.stringify(s)), s);
  });
});

describe('loadPackFromFiles', () => {
  const enc = new TextEncoder();
  const file = (path: string, text: string) => ({ path, bytes: enc.encode(text) });
  const manifest = file('pack.yaml', 'name: linux-core\nversion: 1.0.0\nnamespace: linux\ndescription: Basics\n');
  const uptime = file(
    'actions/uptime.yaml',
    'id: linux.uptime\ntitle: Uptime\ndescription: D\nrisk: read\nkind: exec\nargv: [uptime]\n',
  );
  const top = file(
    'actions/top.yaml',
    'id: linux.top\ntitle: Top\ndescription: D\nrisk: read\nkind: script\nargv: []\nscript: { path: scripts/top.py, interpreter: python3 }\n',
  );
  const script = file('scripts/top.py', 'print(1)\n');

  it('loads a pack, hashes all files and lists scripts', () => {
    const files = [uptime, manifest, top, script, file('tests/readme.txt', 'x')];
    const r = loadPackFromFiles(files);
    assert.ok(r.ok, r.ok ? '' : r.errors.map(formatSpecError).join('\n'));
    const p = r.value;
    assert.equal(p.name, 'linux-core');
    assert.equal(p.version, '1.0.0');
    assert.equal(p.namespace, 'linux');
    assert.equal(p.hash, packHash(files));
    assert.deepEqual(
      p.actions.map((a) => a.id),
      ['linux.top', 'linux.uptime'],
    );
    assert.deepEqual(
      p.files.map((f) => f.path),
      ['actions/top.yaml', 'actions/uptime.yaml', 'pack.yaml', 'scripts/top.py', 'tests/readme.txt'],
    );
    assert.equal(p.scripts.size, 1);
    assert.match(p.scripts.get('scripts/top.py') ?? '', /^[0-9a-f]{64}$/);
    assert.ok(Object.isFrozen(p) && Object.isFrozen(p.actions) && Object.isFrozen(p.files));
    assert.equal((p.scripts as unknown as { set?: unknown }).set, undefined);
  });

  it('collects every error of every file', () => {
    const r = loadPackFromFiles([
      manifest,
      file('actions/a.yaml', 'id: other.a\ntitle: A\ndescription: D\nrisk: read\nkind: exec\nargv: [ls]\n'),
      file('actions/b.yaml', 'id: linux.b\ntitle: B\ndescription: D\nrisk: read\nkind: exec\nargv: [ls]\n'),
      file('actions/c.yaml', 'id: linux.b\ntitle: C\ndescription: D\nrisk: read\nkind: exec\nargv: [ls]\n'),
      file(
        'actions/d.yaml',
        'id: linux.d\ntitle: D\ndescription: D\nrisk: read\nkind: script\nargv: []\nscript: { path: scripts/missing.sh }\n',
      ),
      { path: 'actions/e.yaml', bytes: new Uint8Array([0x69, 0x64, 0x3a, 0xff, 0xfe]) },
      file('actions/f.yml', 'x'),
      file('actions/sub/g.yaml', 'x'),
      file('.hidden', 'x'),
    ]);
    assert.ok(!r.ok);
    assert.deepEqual(r.errors.map(formatSpecError), [
      '.hidden: hidden files are not part of a pack',
      'actions/a.yaml: id: must start with the pack namespace "linux."',
      'actions/c.yaml: id: duplicate id linux.b (also in actions/b.yaml)',
      'actions/d.yaml: script.path: scripts/missing.sh: no such file in the pack',
      'actions/e.yaml: not valid UTF-8',
      'actions/f.yml: not an action file: actions/ holds only *.yaml files, one action each',
      'actions/sub/g.yaml: not an action file: actions/ holds only *.yaml files, one action each',
    ]);
  });

  it('requires pack.yaml and at least one action', () => {
    const r = loadPackFromFiles([file('README.md', 'x')]);
    assert.ok(!r.ok);
    assert.deepEqual(r.errors.map(formatSpecError), [
      'pack.yaml: missing: a pack has a pack.yaml at its root',
      'actions/: the pack declares no actions (actions/*.yaml)',
    ]);
  });

  it('hash does not depend on file order and changes with any byte', () => {
    const a = loadPackFromFiles([manifest, uptime]);
    const b = loadPackFromFiles([uptime, manifest]);
    const c = loadPackFromFiles([manifest, file('actions/uptime.yaml', `${new TextDecoder().decode(uptime.bytes)}\n`)]);
    assert.ok(a.ok && b.ok && c.ok);
    assert.equal(a.value.hash, b.value.hash);
    assert.notEqual(a.value.hash, c.value.hash);
  });
});
