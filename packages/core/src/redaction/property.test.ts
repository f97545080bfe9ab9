// Property tests: idempotence, no secret survives in any context, keyword-free lines are untouched,
// and the prefilter is sound (every match of every rule contains one of its keywords).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import fc from 'fast-check';

import { BUILTIN_RULES, createRedactor } from './index.js';

const redactor = createRedactor();
const KEYWORDS = [...new Set(BUILTIN_RULES.flatMap((r) => r.keywords))];
const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

const chars = (alphabet: string, min: number, max = min): fc.Arbitrary<string> =>
  fc.array(fc.constantFrom(...alphabet), { minLength: min, maxLength: max }).map((a) => a.join(''));
const upperB32 = chars('ABCDEFGHIJKLMNOPQRSTUVWXYZ234567', 16);
const alnum = (n: number, m = n): fc.Arbitrary<string> => chars(ALNUM, n, m);
/** A password that is not a mask, a reference or a literal (it always carries a digit and a letter). */
const password = fc
  .tuple(chars(`${ALNUM}!#^_+-=@,;`, 6, 24), chars('0123456789', 1), chars('abcdefghijklmnopqrstuvwxyz', 1))
  .map(([a, d, l]) => `${l}${a}${d}`);

/** [secret, line] pairs across formats and placements. */
const secretLine: fc.Arbitrary<[string, string]> = fc.oneof(
  upperB32.map((s): [string, string] => [`AKIA${s}`, `AWS_ACCESS_KEY_ID=AKIA${s}`]),
  alnum(36).map((s): [string, string] => [`ghp_${s}`, `remote: https://ghp_${s}@github.com/org/repo.git`]),
  chars(`${ALNUM}_-`, 20, 40).map((s): [string, string] => [`glpat-${s}`, `PRIVATE-TOKEN: glpat-${s}`]),
  fc
    .tuple(chars('0123456789', 11), alnum(24))
    .map(([n, s]): [string, string] => [`xoxb-${n}-${s}`, `token xoxb-${n}-${s} used`]),
  alnum(24, 60).map((s): [string, string] => [`sk_live_${s}`, `{"stripe":"sk_live_${s}"}`]),
  fc.tuple(alnum(10, 30), alnum(10, 30), chars(`${ALNUM}_-`, 20, 50)).map(([h, p, sig]): [string, string] => {
    const jwt = `eyJ${h}.eyJ${p}.${sig}`;
    return [jwt, `> Authorization: Bearer ${jwt}`];
  }),
  password.map((p): [string, string] => [p, `DB_PASSWORD=${p}`]),
  password.map((p): [string, string] => [p, `  password: "${p}"`]),
  password.map((p): [string, string] => [p, `{"password":"${p}","user":"app"}`]),
  password.map((p): [string, string] => [p, `postgres://app:${p}@db.internal:5432/app`]),
  alnum(16, 40).map((s): [string, string] => [s, `X-API-Key: ${s}`]),
  alnum(16, 40).map((s): [string, string] => [s, `level=info msg=ok access_token=${s} took=3ms`]),
);

/** Text around a secret that cannot itself complete a secret pattern. */
const filler = fc.constantFrom('', 'INFO ', '2024-03-12T10:15:32Z ', '[web-1] ', 'msg="x" ');
const trailer = fc.constantFrom('', ' ok', ' (fetch)', ' took=3ms', ' # note');

test('no generated secret survives, in any of the usual placements', () => {
  fc.assert(
    fc.property(secretLine, filler, trailer, ([secret, line], pre, post) => {
      const out = redactor.redactLine(`${pre}${line}${post}`);
      assert.ok(!out.text.includes(secret), out.text);
      assert.ok(out.hits.length > 0);
    }),
    { numRuns: 3000 },
  );
});

/** Lines mixing secrets, keywords, markers and noise: the hard cases for idempotence. */
const fragment = fc.oneof(
  secretLine.map(([, l]) => l),
  fc.constantFrom(...KEYWORDS),
  fc.constantFrom(
    '[REDACTED:jwt]',
    '=',
    ':',
    ' ',
    '"',
    "'",
    '@',
    '://',
    ';',
    '&',
    '-----BEGIN PRIVATE KEY-----',
    '\\n',
  ),
  fc.string({ maxLength: 12 }),
);
const mixedLine = fc.array(fragment, { maxLength: 8 }).map((parts) => parts.join(''));

test('redaction is idempotent', () => {
  fc.assert(
    fc.property(mixedLine, (line) => {
      const once = redactor.redactLine(line).text;
      assert.equal(redactor.redactLine(once).text, once);
    }),
    { numRuns: 5000 },
  );
});

test('lines without any keyword come back identical', () => {
  const noKeyword = fc.string({ maxLength: 200 }).filter((s) => {
    const lower = s.toLowerCase();
    return !KEYWORDS.some((k) => lower.includes(k));
  });
  fc.assert(
    fc.property(noKeyword, (line) => {
      const out = redactor.redactLine(line);
      assert.equal(out.text, line);
      assert.deepEqual(out.hits, []);
    }),
    { numRuns: 3000 },
  );
});

test('the prefilter is sound: every match of every rule contains one of its keywords', () => {
  const dir = new URL('../../test/redaction/', import.meta.url);
  const corpus = ['positives.tsv', 'negatives.tsv'].flatMap((f) =>
    readFileSync(fileURLToPath(new URL(f, dir)), 'utf8').split('\n'),
  );
  const lines = [...corpus, ...fc.sample(mixedLine, 3000)];
  const compiled = BUILTIN_RULES.map((r) => ({ r, re: new RegExp(r.pattern, `${r.flags ?? ''}g`) }));
  const failures: string[] = [];
  for (const line of lines) {
    for (const { r, re } of compiled) {
      for (const m of line.matchAll(re)) {
        const text = m[0].toLowerCase();
        if (!r.keywords.some((k) => text.includes(k))) failures.push(`${r.name}: ${m[0]}`);
      }
    }
  }
  assert.deepEqual(failures, []);
});
