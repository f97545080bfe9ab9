import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { sha256Hex, useSha256 } from './sha256.js';

const native = (d: Uint8Array | string): string => createHash('sha256').update(d).digest('hex');

test('sha256Hex: known vectors, portable and native agree', () => {
  const abc = 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad';
  assert.equal(sha256Hex('abc'), abc);
  useSha256(native);
  assert.equal(sha256Hex('abc'), abc);
  // Table: strings (UTF-8, a lone surrogate becomes U+FFFD in both) and bytes.
  for (const x of ['', 'é', '\u{1F600}', '\udc00', 'x'.repeat(1000), new Uint8Array(300).fill(7)]) {
    assert.equal(sha256Hex(x), native(x));
  }
});

test('useSha256: an implementation that is not SHA-256 is refused and not installed', () => {
  assert.throws(() => useSha256(() => '0'.repeat(64)), /disagrees with SHA-256/);
  assert.throws(
    // Right for ASCII, wrong for the rest: the string is hashed as Latin-1, not UTF-8.
    () =>
      useSha256((d) =>
        (typeof d === 'string' ? createHash('sha256').update(d, 'latin1') : createHash('sha256').update(d)).digest(
          'hex',
        ),
      ),
    /disagrees/,
  );
  assert.equal(sha256Hex('abc'), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
});
