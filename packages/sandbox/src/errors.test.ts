import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SANDBOX_ERROR_CODES, SandboxError, toSandboxError } from './errors.js';

describe('sandbox errors', () => {
  it('pins the stable code table (change deliberately)', () => {
    assert.deepEqual(Object.fromEntries(Object.entries(SANDBOX_ERROR_CODES).map(([k, v]) => [k, v.status])), {
      invalid_request: 400,
      not_found: 404,
      method_not_allowed: 405,
      payload_too_large: 413,
      unknown_language_pack: 400,
      sandbox_not_running: 409,
      sandbox_expired: 410,
      capacity_exceeded: 429,
      boot_timeout: 504,
      boot_failed: 502,
      guest_protocol: 502,
      guest_error: 502,
      guest_lost: 502,
      file_not_found: 404,
      backend_unavailable: 503,
      image_missing: 503,
      image_corrupt: 503,
      image_build_failed: 500,
      internal: 500,
    });
  });

  it('maps unknown failures to internal, never to a client fault', () => {
    const e = toSandboxError(new TypeError('boom'));
    assert.equal(e.code, 'internal');
    assert.equal(e.status, 500);
    assert.deepEqual(new SandboxError('not_found', 'no sandbox x').toBody(), {
      error: { code: 'not_found', message: 'no sandbox x' },
    });
  });
});
