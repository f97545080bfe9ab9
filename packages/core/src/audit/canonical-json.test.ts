import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { AirlockError } from '../errors.js';
import { canonicalJson } from './canonical-json.js';

describe('canonicalJson', () => {
  it('sorts keys by UTF-16 code units and writes no whitespace', () => {
    assert.equal(
      canonicalJson({ b: 1, a: [true, null, 'x'], A: { z: 0, y: -0 } }),
      '{"A":{"y":0,"z":0},"a":[true,null,"x"],"b":1}',
    );
    // U+E000 (one unit 0xE000) sorts after U+1F600 (surrogates 0xD83D…): code units, not code points.
    assert.equal(canonicalJson({ '\u{e000}': 1, '\u{1f600}': 2 }), '{"\u{1f600}":2,"\u{e000}":1}');
  });

  it('escapes strings exactly as JSON.stringify does', () => {
    for (const s of ['', 'a"b\\c', '\n\t\u0000\u001f', '\u2028', '\ud800', 'é😀']) {
      assert.equal(canonicalJson(s), JSON.stringify(s));
    }
  });

  it('omits undefined object properties like JSON.stringify', () => {
    assert.equal(canonicalJson({ a: undefined, b: 1 }), '{"b":1}');
  });

  const refused: [string, unknown][] = [
    ['NaN', { a: Number.NaN }],
    ['Infinity', [Number.POSITIVE_INFINITY]],
    ['undefined top level', undefined],
    ['undefined in array', [1, undefined]],
    // biome-ignore lint/suspicious/noSparseArray: a hole on purpose
    ['array hole', [1, , 2]],
    ['function', { f: () => 1 }],
    ['symbol', Symbol('s')],
    ['bigint', 1n],
    ['Date', new Date(0)],
    ['Map', new Map()],
  ];
  for (const [name, value] of refused) {
    it(`refuses ${name}`, () => {
      assert.throws(
        () => canonicalJson(value),
        (e: unknown) => e instanceof AirlockError && e.code === 'internal',
      );
    });
  }

  it('refuses cycles but accepts shared references', () => {
    const a: Record<string, unknown> = { x: 1 };
    a['self'] = a;
    assert.throws(() => canonicalJson(a), /cycle/);
    const shared = { k: 1 };
    assert.equal(canonicalJson({ p: shared, q: [shared] }), '{"p":{"k":1},"q":[{"k":1}]}');
  });

  it('refuses nesting beyond its depth limit instead of overflowing the stack', () => {
    let deep: unknown = 1;
    for (let i = 0; i < 5000; i++) deep = [deep];
    assert.throws(() => canonicalJson(deep), /nesting deeper/);
  });

  it('property: independent of key insertion order', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.jsonValue()), (obj) => {
        const reversed = Object.fromEntries(Object.entries(obj).reverse());
        assert.equal(canonicalJson(reversed), canonicalJson(obj));
      }),
    );
  });

  it('property: round trip through JSON.parse is equal and canonical again', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        const text = canonicalJson(v);
        const back: unknown = JSON.parse(text);
        // jsonValue may contain -0, which JSON cannot represent; compare with JSON's own view.
        assert.deepStrictEqual(back, JSON.parse(JSON.stringify(v)));
        assert.equal(canonicalJson(back), text);
      }),
    );
  });
});
