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

  it('egress is off by default; `true` without an allowlist is refused naming the field', () => {
    assert.equal(parse(CreateBody, {}, 'body').egress, undefined);
    assert.equal(parse(CreateBody, { egress: false }, 'body').egress, false);
    assert.match(
      refusal(() => parse(CreateBody, { egress: true }, 'body')),
      /^egress: egress needs an allowlist/,
    );
  });

  it('validates egress allow entries and secrets, naming the field', () => {
    const ok = parse(
      CreateBody,
      {
        egress: {
          allow: ['api.example.com:443', '*.pypi.org:443', '203.0.113.2:80', '[2001:db8::1]:8443'],
          secrets: [{ name: 'API_TOKEN', value: 's3cret', hosts: ['api.example.com'] }],
        },
      },
      'body',
    );
    assert.equal(typeof ok.egress, 'object');
    assert.match(
      refusal(() => parse(CreateBody, { egress: { allow: ['example.com'] } }, 'body')),
      /^egress\.allow\.0: must be "host:port"/,
    );
    assert.match(
      refusal(() => parse(CreateBody, { egress: { allow: ['ex ample.com:80'] } }, 'body')),
      /^egress\.allow\.0: /,
    );
    assert.match(
      refusal(() => parse(CreateBody, { egress: { allow: ['a.com:0'] } }, 'body')),
      /^egress\.allow\.0: port/,
    );
    assert.match(
      refusal(() => parse(CreateBody, { egress: { allow: ['foo.*.com:80'] } }, 'body')),
      /^egress\.allow\.0: /,
    );
    assert.match(
      refusal(() => parse(CreateBody, { egress: { allow: [] } }, 'body')),
      /^egress\.allow: /,
    );
    assert.match(
      refusal(() => parse(CreateBody, { egress: { allow: ['169.254.169.254:80'] } }, 'body')),
      /^egress\.allow\.0: 169\.254\.169\.254 is cloud metadata .*: egress never reaches internal ranges/,
    );
    assert.match(
      refusal(() =>
        parse(
          CreateBody,
          { egress: { allow: ['a.com:443'], secrets: [{ name: 'T', value: 'v', hosts: ['b.com'] }] } },
          'body',
        ),
      ),
      /^egress\.secrets\.0\.hosts\.0: "b\.com" is not the host of any egress\.allow entry/,
    );
    assert.match(
      refusal(() =>
        parse(
          CreateBody,
          { egress: { allow: ['a.com:443'], secrets: [{ name: 'BAD-NAME', value: 'v', hosts: ['a.com'] }] } },
          'body',
        ),
      ),
      /^egress\.secrets\.0\.name: /,
    );
    assert.match(
      refusal(() =>
        parse(
          CreateBody,
          { egress: { allow: ['a.com:443'], secrets: [{ name: 'T', value: 'v\r\nX: y', hosts: ['a.com'] }] } },
          'body',
        ),
      ),
      /^egress\.secrets\.0\.value: must not contain NUL, CR or LF/,
    );
    assert.match(
      refusal(() =>
        parse(
          CreateBody,
          { env: { T: 'x' }, egress: { allow: ['a.com:443'], secrets: [{ name: 'T', value: 'v', hosts: ['a.com'] }] } },
          'body',
        ),
      ),
      /^egress\.secrets\.0\.name: T is also set in env/,
    );
  });
});
