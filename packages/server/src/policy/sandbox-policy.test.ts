import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  DEFAULT_SANDBOX_POLICY,
  decideSandboxCreate,
  execQuotaProblem,
  type SandboxDecisionInput,
  type SandboxPolicy,
  sandboxPolicySchema,
} from './sandbox-policy.js';

const idle = { userConcurrent: 0, orgConcurrent: 0, userCpuMsToday: 0, orgCpuMsToday: 0 };

function input(over: Partial<SandboxDecisionInput> = {}, policy: Partial<SandboxPolicy> = {}): SandboxDecisionInput {
  return {
    subject: { username: 'alice', role: 'operator' },
    ask: { language_pack: 'python' },
    policy: { ...DEFAULT_SANDBOX_POLICY, ...policy },
    usage: idle,
    defaultMemoryMb: 256,
    ...over,
  };
}

describe('sandbox policy', () => {
  it('egress_allow entries are validated and default to empty', () => {
    const { egress_allow: _e, ...old } = DEFAULT_SANDBOX_POLICY;
    const parsed = sandboxPolicySchema.safeParse(old);
    assert.ok(parsed.success, 'a policy stored before egress_allow existed still parses');
    assert.deepEqual(parsed.data.egress_allow, []);
    const bad = sandboxPolicySchema.safeParse({ ...DEFAULT_SANDBOX_POLICY, egress_allow: ['ok.example:443', 'nope'] });
    assert.equal(bad.success, false);
    assert.deepEqual(bad.error?.issues[0]?.path, ['egress_allow', 1]);
    assert.match(bad.error?.issues[0]?.message ?? '', /host:port/);
  });

  it('pins the default policy', () => {
    assert.deepEqual(DEFAULT_SANDBOX_POLICY, {
      enabled: true,
      min_role: 'operator',
      packs: ['*'],
      max_memory_mb: 512,
      max_vcpus: 2,
      max_lifetime_s: 3600,
      default_lifetime_s: 900,
      max_exec_timeout_ms: 300_000,
      allow_egress: false,
      egress_allow: [],
      quotas: {
        user: { concurrent: 5, cpu_seconds_per_day: 3600 },
        org: { concurrent: 50, cpu_seconds_per_day: 36_000 },
      },
    });
    assert.ok(sandboxPolicySchema.safeParse(DEFAULT_SANDBOX_POLICY).success);
  });

  const table: { name: string; in: SandboxDecisionInput; rule: string; code?: string; message?: RegExp }[] = [
    { name: 'allowed by default', in: input(), rule: 'sandbox:allow' },
    { name: 'disabled', in: input({}, { enabled: false }), rule: 'sandbox:disabled', code: 'policy_denied' },
    { name: 'viewer may not create', in: input({ subject: { username: 'v', role: 'viewer' } }), rule: 'sandbox:role' },
    { name: 'admin-only policy refuses an operator', in: input({}, { min_role: 'admin' }), rule: 'sandbox:role' },
    {
      name: 'pack not allowed',
      in: input({}, { packs: ['shell'] }),
      rule: 'sandbox:packs',
      message: /python is not allowed/,
    },
    { name: 'pack glob allows', in: input({}, { packs: ['py*'] }), rule: 'sandbox:allow' },
    {
      name: 'egress refused',
      in: input({ ask: { language_pack: 'python', egress: { allow: ['a.example:443'] } } }),
      rule: 'sandbox:egress',
    },
    {
      name: 'egress allowed, no cap',
      in: input({ ask: { language_pack: 'python', egress: { allow: ['a.example:443'] } } }, { allow_egress: true }),
      rule: 'sandbox:allow',
    },
    {
      name: 'egress inside the cap (wildcard)',
      in: input(
        { ask: { language_pack: 'python', egress: { allow: ['api.a.example:443', 'b.example:80'] } } },
        { allow_egress: true, egress_allow: ['*.a.example:443', 'b.example:80'] },
      ),
      rule: 'sandbox:allow',
    },
    {
      name: 'egress outside the cap names the entry',
      in: input(
        { ask: { language_pack: 'python', egress: { allow: ['api.a.example:443', 'b.example:8080'] } } },
        { allow_egress: true, egress_allow: ['*.a.example:443', 'b.example:80'] },
      ),
      rule: 'sandbox:egress_allow',
      code: 'policy_denied',
      message:
        /egress to b\.example:8080 is not allowed in this organisation \(allowed: \*\.a\.example:443, b\.example:80\)/,
    },
    {
      name: 'a wildcard ask is not covered by an exact cap entry',
      in: input(
        { ask: { language_pack: 'python', egress: { allow: ['*.a.example:443'] } } },
        { allow_egress: true, egress_allow: ['api.a.example:443'] },
      ),
      rule: 'sandbox:egress_allow',
    },
    {
      name: 'user concurrent quota',
      in: input({ usage: { ...idle, userConcurrent: 5 } }),
      rule: 'sandbox:quota:user.concurrent',
      code: 'quota_exceeded',
      message: /quota reached: user alice has 5 of 5 concurrent sandboxes/,
    },
    {
      name: 'org concurrent quota',
      in: input({ usage: { ...idle, orgConcurrent: 50 } }),
      rule: 'sandbox:quota:org.concurrent',
      code: 'quota_exceeded',
    },
    {
      name: 'user CPU quota',
      in: input({ usage: { ...idle, userCpuMsToday: 3_600_000 } }),
      rule: 'sandbox:quota:user.cpu_seconds_per_day',
      code: 'quota_exceeded',
      message: /3600 of 3600 sandbox CPU-seconds today/,
    },
    {
      name: 'no quota when null',
      in: input(
        { usage: { ...idle, userConcurrent: 1000 } },
        {
          quotas: {
            user: { concurrent: null, cpu_seconds_per_day: null },
            org: { concurrent: null, cpu_seconds_per_day: null },
          },
        },
      ),
      rule: 'sandbox:allow',
    },
  ];
  for (const c of table) {
    it(c.name, () => {
      const d = decideSandboxCreate(c.in);
      assert.equal(d.rule, c.rule, JSON.stringify(d));
      if (d.kind === 'deny') {
        if (c.code !== undefined) assert.equal(d.code, c.code);
        if (c.message !== undefined) assert.match(d.message, c.message);
      }
    });
  }

  it('lowers limits into the caps and says so in the trace', () => {
    const d = decideSandboxCreate(
      input({ ask: { language_pack: 'python', memory_mb: 4096, vcpus: 4, lifetime_s: 86_400 } }),
    );
    assert.equal(d.kind, 'allow');
    if (d.kind !== 'allow') return;
    assert.deepEqual(d.limits, { memory_mb: 512, vcpus: 2, lifetime_s: 3600 });
    assert.ok(d.trace.some((l) => l.includes('bounds memory_mb to 512 (asked 4096)')));
  });

  it('defaults: memory within the cap, lifetime the default', () => {
    const d = decideSandboxCreate(input({}, { max_memory_mb: 128 }));
    assert.ok(d.kind === 'allow' && d.limits.memory_mb === 128 && d.limits.lifetime_s === 900);
  });

  it('property: an allowed create never exceeds any cap, and never passes a reached quota', () => {
    fc.assert(
      fc.property(
        fc.record({
          memory_mb: fc.option(fc.integer({ min: 64, max: 4096 }), { nil: undefined }),
          vcpus: fc.option(fc.integer({ min: 1, max: 4 }), { nil: undefined }),
          lifetime_s: fc.option(fc.integer({ min: 1, max: 604_800 }), { nil: undefined }),
        }),
        fc.integer({ min: 64, max: 4096 }),
        fc.integer({ min: 0, max: 10 }),
        fc.integer({ min: 0, max: 10 }),
        (ask, cap, used, quota) => {
          const d = decideSandboxCreate(
            input(
              { ask: { language_pack: 'python', ...ask }, usage: { ...idle, userConcurrent: used } },
              {
                max_memory_mb: cap,
                quotas: { ...DEFAULT_SANDBOX_POLICY.quotas, user: { concurrent: quota, cpu_seconds_per_day: null } },
              },
            ),
          );
          if (used >= quota) assert.equal(d.kind, 'deny');
          if (d.kind === 'allow') {
            assert.ok(d.limits.memory_mb <= cap && d.limits.vcpus <= 2 && d.limits.lifetime_s <= 3600);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('checks CPU quotas again before each exec', () => {
    assert.equal(execQuotaProblem(DEFAULT_SANDBOX_POLICY, idle, 'alice'), undefined);
    assert.match(
      execQuotaProblem(DEFAULT_SANDBOX_POLICY, { ...idle, orgCpuMsToday: 36_000_000 }, 'alice') ?? '',
      /the organisation used 36000 of 36000/,
    );
  });
});
