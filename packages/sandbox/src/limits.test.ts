import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SandboxError } from './errors.js';
import { daemonLimitsFromEnv, execCeilings, resolveLimits } from './limits.js';

const refusal = (fn: () => unknown, field: RegExp) =>
  assert.throws(fn, (e: unknown) => e instanceof SandboxError && e.code === 'invalid_request' && field.test(e.message));

describe('sandbox limits', () => {
  it('fills defaults: built-in, then daemon, then the request', () => {
    const none = resolveLimits({}, { defaults: {}, max: {} });
    assert.deepEqual(none, {
      memory_mb: 256,
      vcpus: 1,
      rw_mb: 64,
      lifetime_s: null,
      exec_timeout_ms: 30_000,
      max_output_bytes: 1 << 20,
      max_procs: 512,
    });
    const d = resolveLimits({ vcpus: 2 }, { defaults: { memory_mb: 128, max_procs: 64 }, max: {} });
    assert.equal(d.memory_mb, 128);
    assert.equal(d.rw_mb, 32);
    assert.equal(d.max_procs, 64);
    assert.equal(d.vcpus, 2);
  });

  it('refuses a value above the daemon maximum, naming the field and the maximum', () => {
    const daemon = { defaults: {}, max: { memory_mb: 512, max_procs: 100, lifetime_s: 600 } };
    refusal(() => resolveLimits({ memory_mb: 1024 }, daemon), /^memory_mb: 1024 is above this daemon's maximum of 512/);
    refusal(() => resolveLimits({ max_procs: 101 }, daemon), /^max_procs: /);
    refusal(() => resolveLimits({ lifetime_s: 601 }, daemon), /^lifetime_s: /);
    // A daemon maximum lowers the built-in defaults rather than refusing a request that named nothing.
    const r = resolveLimits({}, daemon);
    assert.equal(r.max_procs, 100);
    assert.equal(r.lifetime_s, 600, 'a maximum lifetime gives every sandbox one');
  });

  it('bounds what an exec may ask for by what the create named, else the daemon maximum', () => {
    assert.deepEqual(execCeilings({ exec_timeout_ms: 5000 }, { defaults: {}, max: {} }), {
      max_exec_timeout_ms: 5000,
      max_exec_output_bytes: 16 << 20,
    });
    assert.equal(execCeilings({}, { defaults: {}, max: { max_output_bytes: 4096 } }).max_exec_output_bytes, 4096);
  });

  it('reads $AIRLOCK_SANDBOX_LIMITS strictly', () => {
    assert.equal(daemonLimitsFromEnv({}), undefined);
    assert.deepEqual(
      daemonLimitsFromEnv({ AIRLOCK_SANDBOX_LIMITS: '{"defaults":{"memory_mb":128},"max":{"vcpus":2}}' }),
      { defaults: { memory_mb: 128 }, max: { vcpus: 2 } },
    );
    assert.throws(
      () => daemonLimitsFromEnv({ AIRLOCK_SANDBOX_LIMITS: '{"max":{"vcpu":2}}' }),
      (e: unknown) => e instanceof SandboxError && /AIRLOCK_SANDBOX_LIMITS: max: /.test(e.message),
    );
    assert.throws(() => daemonLimitsFromEnv({ AIRLOCK_SANDBOX_LIMITS: '{"max":{"memory_mb":1}}' }), /memory_mb/);
  });
});
