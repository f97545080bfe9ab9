import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { csrfMatches, isUnsafeMethod } from './csrf.js';
import { FailureLimiter } from './rate-limit.js';

describe('FailureLimiter', () => {
  test('blocks after the limit within the window and frees as failures age out', () => {
    let now = 1_000_000;
    const l = new FailureLimiter(3, 1000, 100, () => now);
    assert.equal(l.retryAfterMs('k'), 0);
    assert.equal(l.fail('k'), false);
    now += 100;
    assert.equal(l.fail('k'), false);
    assert.equal(l.fail('k'), true, 'the third failure reaches the limit');
    assert.equal(l.retryAfterMs('k'), 900);
    assert.equal(l.retryAfterMs('other'), 0, 'keys are independent');
    now += 901;
    assert.equal(l.retryAfterMs('k'), 0, 'the oldest failure aged out');
    l.reset('k');
    assert.equal(l.retryAfterMs('k'), 0);
  });

  test('the map is bounded and prunes expired keys', () => {
    let now = 0;
    const l = new FailureLimiter(2, 10, 5, () => now);
    for (let i = 0; i < 20; i++) l.fail(`k${i}`);
    assert.equal(l.size, 5);
    now += 11;
    l.prune();
    assert.equal(l.size, 0);
  });
});

describe('csrf', () => {
  test('unsafe methods and constant-time match', () => {
    for (const m of ['POST', 'put', 'PATCH', 'DELETE']) assert.equal(isUnsafeMethod(m), true);
    for (const m of ['GET', 'HEAD', 'OPTIONS']) assert.equal(isUnsafeMethod(m), false);
    assert.equal(csrfMatches('abc', 'abc'), true);
    assert.equal(csrfMatches('abd', 'abc'), false);
    assert.equal(csrfMatches('ab', 'abc'), false);
    assert.equal(csrfMatches(undefined, 'abc'), false);
    assert.equal(csrfMatches(['abc'], 'abc'), false);
    assert.equal(csrfMatches('', ''), false);
  });
});
