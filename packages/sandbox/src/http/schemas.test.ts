import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SandboxError } from '../errors.js';
import { CreateBody, ExecBody, GuestPath, parse } from './schemas.js';

function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof SandboxError);
    assert.equal(e.code, 'invalid_request');
    return e.message;
  }
  assert.fail('expected a refusal');
}

describe('HTTP request schemas', () => {
  it('accepts the emberd bodies unchanged, with python as the default pack', () => {
    assert.deepEqual(parse(CreateBody, {}, 'body'), { language_pack: 'python' });
    assert.deepEqual(parse(ExecBody, { code: 'print(6*7)' }, 'body'), { code: 'print(6*7)' });
  });

  it('names the field that failed', () => {
    assert.match(
      refusal(() => parse(CreateBody, { language_pack: 'python', memory_mb: 1 }, 'body')),
      /^memory_mb: /,
    );
    assert.match(
      refusal(() => parse(CreateBody, { colour: 'red' }, 'body')),
      /colour/,
    );
    assert.match(
      refusal(() => parse(ExecBody, { code: 'x', timeout_ms: -5 }, 'body')),
      /^timeout_ms: /,
    );
    assert.match(
      refusal(() => parse(ExecBody, { code: 'x', env: { 'BAD-NAME': '1' } }, 'body')),
      /^env\.BAD-NAME: /,
    );
    assert.match(
      refusal(() => parse(ExecBody, {}, 'body')),
      /exactly one of "code" or "argv"/,
    );
    assert.match(
      refusal(() => parse(ExecBody, { argv: ['a\0b'] }, 'body')),
      /^argv\.0: /,
    );
    assert.match(
      refusal(() => parse(GuestPath, 'relative/path', 'path')),
      /^path: must be an absolute path/,
    );
    assert.match(
      refusal(() => parse(GuestPath, undefined, 'path')),
      /^path: /,
    );
  });

  it('refuses egress: sandboxes have no network device in this build', () => {
    assert.match(
      refusal(() => parse(CreateBody, { egress: true }, 'body')),
      /^egress: /,
    );
  });
});
