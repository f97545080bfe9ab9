import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { LineSplitter } from './line-splitter.js';

test('property: whatever the chunking, joined pieces reproduce the text and no piece exceeds the bound', () => {
  fc.assert(
    fc.property(
      fc.string({ maxLength: 400 }),
      fc.array(fc.integer({ min: 1, max: 50 }), { maxLength: 40 }),
      fc.integer({ min: 1, max: 30 }),
      (text, cuts, max) => {
        const pieces: { line: string; partial: boolean }[] = [];
        const s = new LineSplitter(max, (line, partial) => pieces.push({ line, partial }));
        const bytes = Buffer.from(text, 'utf8');
        let at = 0;
        for (const c of cuts) {
          if (at >= bytes.length) break;
          s.push(bytes.subarray(at, at + c));
          at += c;
        }
        s.push(bytes.subarray(at));
        s.end();
        assert.ok(pieces.every((p) => p.line.length <= max));
        // Rebuild: partial pieces continue the same line; a non-partial piece ends it.
        let rebuilt = '';
        for (const p of pieces) rebuilt += p.line + (p.partial ? '' : '\n');
        const expected = text
          .split('\n')
          .map((l) => l.replace(/\r$/, ''))
          .join('\n');
        const normalised = expected.endsWith('\n') || expected === '' ? expected : `${expected}\n`;
        assert.equal(rebuilt, normalised);
      },
    ),
    { numRuns: 300 },
  );
});

test('multi-byte characters split across chunks stay whole', () => {
  const pieces: string[] = [];
  const s = new LineSplitter(100, (l) => pieces.push(l));
  const b = Buffer.from('héllo wörld €\n', 'utf8');
  for (let i = 0; i < b.length; i++) s.push(b.subarray(i, i + 1));
  s.end();
  assert.deepEqual(pieces, ['héllo wörld €']);
});
