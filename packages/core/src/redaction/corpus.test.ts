// Recall and precision on realistic operational output. Both corpora live in packages/core/test/redaction/.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { BUILTIN_RULES, createRedactor } from './index.js';

const dir = new URL('../../test/redaction/', import.meta.url);
const read = (name: string): string[] =>
  readFileSync(fileURLToPath(new URL(name, dir)), 'utf8')
    .split('\n')
    .filter((l) => l !== '');

interface Positive {
  readonly rule: string;
  readonly secret: string;
  readonly line: string;
  readonly at: number;
}

const positives: Positive[] = read('positives.tsv').flatMap((raw, i) => {
  if (raw.startsWith('#')) return [];
  const [rule = '', secret = '', ...rest] = raw.split('\t');
  return [{ rule, secret, line: rest.join('\t'), at: i + 1 }];
});
const negatives = read('negatives.tsv');
const redactor = createRedactor();

test('corpora are large enough and well formed', () => {
  assert.ok(positives.length >= 170, `positives: ${positives.length}`);
  assert.ok(negatives.length >= 170, `negatives: ${negatives.length}`);
  const names = new Set(BUILTIN_RULES.map((r) => r.name));
  for (const p of positives) {
    assert.ok(p.rule === '*' || names.has(p.rule), `line ${p.at}: unknown rule ${p.rule}`);
    assert.ok(p.secret.length >= 4, `line ${p.at}: secret too short to check`);
    assert.ok(p.line.includes(p.secret), `line ${p.at}: secret not in line`);
  }
});

test('every built-in rule has at least one positive example', () => {
  const covered = new Set(positives.map((p) => p.rule));
  assert.deepEqual(
    BUILTIN_RULES.map((r) => r.name).filter((n) => !covered.has(n)),
    [],
  );
});

test('100% recall on positives.tsv: secret gone, labelled rule fired', () => {
  const failures: string[] = [];
  for (const p of positives) {
    const { text, hits } = redactor.redactLine(p.line);
    if (text.includes(p.secret)) failures.push(`line ${p.at} [${p.rule}] secret survives: ${text}`);
    else if (p.rule !== '*' && !text.includes(`[REDACTED:${p.rule}]`)) {
      failures.push(`line ${p.at} [${p.rule}] fired ${hits.join(',') || 'nothing'}: ${text}`);
    }
  }
  assert.deepEqual(failures, []);
});

test('zero false positives on negatives.tsv', () => {
  const failures = negatives.flatMap((line, i) => {
    const { text, hits } = redactor.redactLine(line);
    return text === line && hits.length === 0 ? [] : [`line ${i + 1} [${hits.join(',')}]: ${text}`];
  });
  assert.deepEqual(failures, []);
});

test('redacting the positives again changes nothing (idempotence on real lines)', () => {
  for (const p of positives) {
    const once = redactor.redactLine(p.line).text;
    assert.equal(redactor.redactLine(once).text, once, `line ${p.at}`);
  }
});
