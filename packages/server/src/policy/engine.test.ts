// The decision table: tiers × selectors × overrides × grants × approvals × revocations, each
// row asserting the decision and the rule that made it; then properties over random policies.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import type { Role } from '../db/schema.js';
import {
  approverProblem,
  type Decision,
  type DecisionInput,
  decide,
  type Grant,
  type PolicyRule,
  type RunnerScope,
  scopeCovers,
  type Tier,
} from './engine.js';

const NOW = Date.parse('2025-06-01T12:00:00Z');
const PROD = { id: 'r-prod', name: 'web-prod', labels: { env: 'prod', team: 'web' } };
const STAGE = { id: 'r-stage', name: 'web-stage', labels: { env: 'staging', team: 'web' } };
const DB = { id: 'r-db', name: 'db-1', labels: { env: 'prod', team: 'db' } };

const tierRule = (
  id: string,
  tier: PolicyRule['tier'],
  decision: PolicyRule['decision'],
  selector: Record<string, string> = {},
  extra: Partial<PolicyRule> = {},
): PolicyRule => ({
  id,
  kind: 'tier',
  priority: 100,
  tier,
  selector,
  decision,
  ...extra,
});
const override = (
  id: string,
  action: string,
  decision: PolicyRule['decision'],
  selector: Record<string, string> = {},
  extra: Partial<PolicyRule> = {},
): PolicyRule => ({
  id,
  kind: 'override',
  priority: 100,
  action,
  selector,
  decision,
  ...extra,
});
const grant = (id: string, extra: Partial<Grant> = {}): Grant => ({
  id,
  subjectType: 'user',
  subjectId: 'u-agent',
  action: '*',
  selector: {},
  argConstraints: {},
  maxUses: null,
  uses: 0,
  expiresAt: null,
  revokedAt: null,
  ...extra,
});

interface Row {
  readonly name: string;
  readonly risk?: Tier;
  readonly action?: string;
  readonly runner?: DecisionInput['runner'];
  readonly rules?: PolicyRule[];
  readonly grants?: Grant[];
  readonly userScope?: RunnerScope | null;
  readonly keyScope?: RunnerScope | null;
  readonly key?: boolean;
  readonly role?: Role;
  readonly args?: Record<string, unknown>;
  readonly limits?: Record<string, number>;
  readonly signed?: DecisionInput['signedTiers'];
  readonly want: Decision['kind'];
  readonly rule: string;
  readonly check?: (d: Decision) => void;
}

function input(r: Row): DecisionInput {
  return {
    subject: { userId: 'u-agent', role: r.role ?? 'operator', ...(r.key === true ? { keyId: 'k-agent' } : {}) },
    userScope: r.userScope ?? null,
    keyScope: r.keyScope ?? null,
    runner: r.runner ?? PROD,
    action: r.action ?? 'docker.restart',
    risk: r.risk ?? 'change',
    args: r.args ?? { container: 'web-1' },
    limits: r.limits ?? {},
    rules: r.rules ?? [],
    grants: r.grants ?? [],
    signedTiers: r.signed ?? [],
    approvalTtlS: 900,
    now: NOW,
  };
}

const denyProd = tierRule('deny-prod-destr', 'destructive', 'deny', { env: 'prod' });
const approveProdChange = tierRule(
  'approve-prod-change',
  'change',
  'require_approval',
  { env: 'prod' },
  { approvers: 2, approverRole: 'admin' },
);
const allowAll = tierRule('allow-all', '*', 'allow');

const ROWS: Row[] = [
  // --- defaults per tier
  { name: 'default read allows', risk: 'read', want: 'allow', rule: 'default:read' },
  { name: 'default change allows', risk: 'change', want: 'allow', rule: 'default:change' },
  {
    name: 'default destructive asks one admin',
    risk: 'destructive',
    want: 'require_approval',
    rule: 'default:destructive',
    check: (d) => d.kind === 'require_approval' && assert.equal(d.approverRole, 'admin'),
  },
  {
    name: 'unknown tier is treated as destructive',
    risk: 'unknown',
    want: 'require_approval',
    rule: 'default:unknown',
  },
  { name: 'default read on staging', risk: 'read', runner: STAGE, want: 'allow', rule: 'default:read' },
  {
    name: 'default destructive on staging',
    risk: 'destructive',
    runner: STAGE,
    want: 'require_approval',
    rule: 'default:destructive',
  },
  { name: 'read with a key', risk: 'read', key: true, want: 'allow', rule: 'default:read' },
  {
    name: 'destructive with a key',
    risk: 'destructive',
    key: true,
    want: 'require_approval',
    rule: 'default:destructive',
  },
  // --- tier rules with selectors
  {
    name: 'deny destructive on prod',
    risk: 'destructive',
    rules: [denyProd],
    want: 'deny',
    rule: 'tier:deny-prod-destr',
  },
  {
    name: 'deny prod does not touch staging',
    risk: 'destructive',
    runner: STAGE,
    rules: [denyProd],
    want: 'require_approval',
    rule: 'default:destructive',
  },
  {
    name: 'deny prod destructive does not touch change',
    risk: 'change',
    rules: [denyProd],
    want: 'allow',
    rule: 'default:change',
  },
  {
    name: 'deny prod applies to db runner too',
    risk: 'destructive',
    runner: DB,
    rules: [denyProd],
    want: 'deny',
    rule: 'tier:deny-prod-destr',
  },
  {
    name: 'approval for change on prod',
    risk: 'change',
    rules: [approveProdChange],
    want: 'require_approval',
    rule: 'tier:approve-prod-change',
    check: (d) => d.kind === 'require_approval' && assert.equal(d.approvers, 2),
  },
  {
    name: 'approval for change only on prod',
    risk: 'change',
    runner: STAGE,
    rules: [approveProdChange],
    want: 'allow',
    rule: 'default:change',
  },
  {
    name: 'approval for change not for read',
    risk: 'read',
    rules: [approveProdChange],
    want: 'allow',
    rule: 'default:read',
  },
  {
    name: 'allow-all tier rule allows destructive',
    risk: 'destructive',
    rules: [allowAll],
    want: 'allow',
    rule: 'tier:allow-all',
  },
  {
    name: 'allow-all loses to deny',
    risk: 'destructive',
    rules: [allowAll, denyProd],
    want: 'deny',
    rule: 'tier:deny-prod-destr',
  },
  {
    name: 'allow-all on staging',
    risk: 'destructive',
    runner: STAGE,
    rules: [allowAll, denyProd],
    want: 'allow',
    rule: 'tier:allow-all',
  },
  {
    name: 'glob selector team=w*',
    risk: 'read',
    rules: [tierRule('t-w', 'read', 'deny', { team: 'w*' })],
    want: 'deny',
    rule: 'tier:t-w',
  },
  {
    name: 'glob selector does not match db',
    risk: 'read',
    runner: DB,
    rules: [tierRule('t-w', 'read', 'deny', { team: 'w*' })],
    want: 'allow',
    rule: 'default:read',
  },
  {
    name: 'selector on a missing label never matches',
    risk: 'read',
    rules: [tierRule('t-zone', 'read', 'deny', { zone: '*' })],
    want: 'allow',
    rule: 'default:read',
  },
  {
    name: 'two-label selector matches',
    risk: 'change',
    rules: [tierRule('t-2', 'change', 'deny', { env: 'prod', team: 'web' })],
    want: 'deny',
    rule: 'tier:t-2',
  },
  {
    name: 'two-label selector misses db',
    risk: 'change',
    runner: DB,
    rules: [tierRule('t-2', 'change', 'deny', { env: 'prod', team: 'web' })],
    want: 'allow',
    rule: 'default:change',
  },
  {
    name: 'priority picks the first tier rule',
    risk: 'change',
    rules: [
      tierRule('b', 'change', 'allow', {}, { priority: 20 }),
      tierRule('a', 'change', 'require_approval', {}, { priority: 10 }),
    ],
    want: 'require_approval',
    rule: 'tier:a',
  },
  {
    name: 'priority ties broken by id',
    risk: 'change',
    rules: [tierRule('b', 'change', 'require_approval'), tierRule('a', 'change', 'allow')],
    want: 'allow',
    rule: 'tier:a',
  },
  {
    name: 'deny wins regardless of priority',
    risk: 'change',
    rules: [tierRule('a', 'change', 'allow', {}, { priority: 1 }), tierRule('z', '*', 'deny', {}, { priority: 999 })],
    want: 'deny',
    rule: 'tier:z',
  },
  {
    name: 'tier rule for unknown uses destructive rules',
    risk: 'unknown',
    rules: [denyProd],
    want: 'deny',
    rule: 'tier:deny-prod-destr',
  },
  {
    name: 'approver role from tier rule',
    risk: 'change',
    rules: [tierRule('own', 'change', 'require_approval', {}, { approverRole: 'owner' })],
    want: 'require_approval',
    rule: 'tier:own',
    check: (d) => d.kind === 'require_approval' && assert.equal(d.approverRole, 'owner'),
  },
  {
    name: 'approvers floor at 1',
    risk: 'change',
    rules: [tierRule('z0', 'change', 'require_approval', {}, { approvers: 0 })],
    want: 'require_approval',
    rule: 'tier:z0',
    check: (d) => d.kind === 'require_approval' && assert.equal(d.approvers, 1),
  },
  // --- overrides
  {
    name: 'override loosens a tier approval',
    risk: 'change',
    rules: [approveProdChange, override('o-restart', 'docker.restart', 'allow')],
    want: 'allow',
    rule: 'override:o-restart',
  },
  {
    name: 'override tightens read to approval',
    risk: 'read',
    action: 'docker.logs',
    rules: [override('o-logs', 'docker.logs', 'require_approval')],
    want: 'require_approval',
    rule: 'override:o-logs',
  },
  {
    name: 'override denies one action',
    risk: 'read',
    action: 'docker.inspect',
    rules: [override('o-insp', 'docker.inspect', 'deny')],
    want: 'deny',
    rule: 'override:o-insp',
  },
  {
    name: 'override pattern docker.*',
    risk: 'read',
    action: 'docker.ps',
    rules: [override('o-docker', 'docker.*', 'deny')],
    want: 'deny',
    rule: 'override:o-docker',
  },
  {
    name: 'override pattern misses other namespace',
    risk: 'read',
    action: 'linux.uptime',
    rules: [override('o-docker', 'docker.*', 'deny')],
    want: 'allow',
    rule: 'default:read',
  },
  {
    name: 'override with selector only on prod',
    risk: 'change',
    runner: STAGE,
    rules: [override('o-p', 'docker.restart', 'deny', { env: 'prod' })],
    want: 'allow',
    rule: 'default:change',
  },
  {
    name: 'override with selector hits prod',
    risk: 'change',
    rules: [override('o-p', 'docker.restart', 'deny', { env: 'prod' })],
    want: 'deny',
    rule: 'override:o-p',
  },
  {
    name: 'override cannot lift a tier deny',
    risk: 'destructive',
    action: 'docker.image_prune',
    rules: [denyProd, override('o-prune', 'docker.image_prune', 'allow')],
    want: 'deny',
    rule: 'tier:deny-prod-destr',
  },
  {
    name: 'override allow on staging beats default approval',
    risk: 'destructive',
    action: 'docker.image_prune',
    runner: STAGE,
    rules: [denyProd, override('o-prune', 'docker.image_prune', 'allow')],
    want: 'allow',
    rule: 'override:o-prune',
  },
  {
    name: 'bounds-only override keeps tier decision',
    risk: 'change',
    rules: [approveProdChange, override('o-b', 'docker.restart', null, {}, { limits: { timeout_s: 30 } })],
    want: 'require_approval',
    rule: 'tier:approve-prod-change',
  },
  {
    name: 'bounds-only override lowers limits',
    risk: 'change',
    limits: { timeout_s: 120 },
    rules: [override('o-b', 'docker.restart', null, {}, { limits: { timeout_s: 30 } })],
    want: 'allow',
    rule: 'default:change',
    check: (d) => d.kind === 'allow' && assert.equal(d.limits['timeout_s'], 30),
  },
  {
    name: 'bound applied when limit not asked',
    risk: 'change',
    rules: [override('o-b', 'docker.restart', null, {}, { limits: { output_bytes: 1000 } })],
    want: 'allow',
    rule: 'default:change',
    check: (d) => d.kind === 'allow' && assert.equal(d.limits['output_bytes'], 1000),
  },
  {
    name: 'lower ask kept under a bound',
    risk: 'change',
    limits: { timeout_s: 5 },
    rules: [override('o-b', 'docker.restart', null, {}, { limits: { timeout_s: 30 } })],
    want: 'allow',
    rule: 'default:change',
    check: (d) => d.kind === 'allow' && assert.equal(d.limits['timeout_s'], 5),
  },
  {
    name: 'two bounds: tightest wins',
    risk: 'change',
    limits: { timeout_s: 100 },
    rules: [
      override('o1', 'docker.*', null, {}, { limits: { timeout_s: 50 } }),
      override('o2', 'docker.restart', null, {}, { limits: { timeout_s: 20 } }),
    ],
    want: 'allow',
    rule: 'default:change',
    check: (d) => d.kind === 'allow' && assert.equal(d.limits['timeout_s'], 20),
  },
  {
    name: 'pinned args accept a matching value',
    risk: 'change',
    args: { container: 'web-3' },
    rules: [override('o-pin', 'docker.restart', 'allow', {}, { pinArgs: { container: 'web-[0-9]+' } })],
    want: 'allow',
    rule: 'override:o-pin',
  },
  {
    name: 'pinned args refuse other values',
    risk: 'change',
    args: { container: 'db-1' },
    rules: [override('o-pin', 'docker.restart', 'allow', {}, { pinArgs: { container: 'web-[0-9]+' } })],
    want: 'deny',
    rule: 'override:o-pin',
  },
  {
    name: 'pinned args refuse a missing arg',
    risk: 'change',
    args: {},
    rules: [override('o-pin', 'docker.restart', null, {}, { pinArgs: { container: 'web-.*' } })],
    want: 'deny',
    rule: 'override:o-pin',
  },
  {
    name: 'pinned args full match only',
    risk: 'change',
    args: { container: 'web-1; rm' },
    rules: [override('o-pin', 'docker.restart', null, {}, { pinArgs: { container: 'web-[0-9]+' } })],
    want: 'deny',
    rule: 'override:o-pin',
  },
  {
    name: 'pinned args refuse objects',
    risk: 'change',
    args: { container: { a: 1 } },
    rules: [override('o-pin', 'docker.restart', null, {}, { pinArgs: { container: '.*' } })],
    want: 'deny',
    rule: 'override:o-pin',
  },
  {
    name: 'pinned number as string',
    risk: 'change',
    args: { container: 'web-1', lines: 50 },
    rules: [override('o-pin', 'docker.restart', null, {}, { pinArgs: { lines: '[0-9]{1,2}' } })],
    want: 'allow',
    rule: 'default:change',
  },
  {
    name: 'bad pin regex fails closed',
    risk: 'change',
    rules: [override('o-badre', 'docker.restart', null, {}, { pinArgs: { container: '(' } })],
    want: 'deny',
    rule: 'override:o-badre',
  },
  {
    name: 'override priority order',
    risk: 'change',
    rules: [
      override('o-b', 'docker.*', 'require_approval', {}, { priority: 5 }),
      override('o-a', 'docker.restart', 'allow', {}, { priority: 50 }),
    ],
    want: 'require_approval',
    rule: 'override:o-b',
  },
  {
    name: 'override beats tier even when later',
    risk: 'change',
    rules: [
      tierRule('t', 'change', 'allow', {}, { priority: 1 }),
      override('o', 'docker.restart', 'require_approval', {}, { priority: 999 }),
    ],
    want: 'require_approval',
    rule: 'override:o',
  },
  {
    name: 'override approvers count',
    risk: 'change',
    rules: [override('o3', 'docker.restart', 'require_approval', {}, { approvers: 3, approverRole: 'operator' })],
    want: 'require_approval',
    rule: 'override:o3',
    check: (d) =>
      d.kind === 'require_approval' && assert.equal(d.approvers, 3) && assert.equal(d.approverRole, 'operator'),
  },
  {
    name: 'override deny on staging only',
    risk: 'read',
    runner: STAGE,
    action: 'docker.ps',
    rules: [override('o-st', 'docker.ps', 'deny', { env: 'staging' })],
    want: 'deny',
    rule: 'override:o-st',
  },
  // --- grants
  {
    name: 'grant lifts a default approval',
    risk: 'destructive',
    grants: [grant('g1')],
    want: 'allow',
    rule: 'grant:g1',
    check: (d) => d.kind === 'allow' && assert.equal(d.grantId, 'g1'),
  },
  {
    name: 'grant lifts a tier approval',
    risk: 'change',
    rules: [approveProdChange],
    grants: [grant('g1')],
    want: 'allow',
    rule: 'grant:g1',
  },
  {
    name: 'grant never lifts a deny',
    risk: 'destructive',
    rules: [denyProd],
    grants: [grant('g1')],
    want: 'deny',
    rule: 'tier:deny-prod-destr',
  },
  {
    name: 'grant never lifts an override deny',
    risk: 'read',
    action: 'docker.ps',
    rules: [override('o', 'docker.ps', 'deny')],
    grants: [grant('g1')],
    want: 'deny',
    rule: 'override:o',
  },
  {
    name: 'grant never lifts pinned args',
    risk: 'change',
    args: { container: 'db' },
    rules: [override('o-pin', 'docker.restart', 'require_approval', {}, { pinArgs: { container: 'web-.*' } })],
    grants: [grant('g1')],
    want: 'deny',
    rule: 'override:o-pin',
  },
  {
    name: 'grant not consumed when already allowed',
    risk: 'read',
    grants: [grant('g1')],
    want: 'allow',
    rule: 'default:read',
    check: (d) => d.kind === 'allow' && assert.equal(d.grantId, undefined),
  },
  {
    name: 'grant for another action does not apply',
    risk: 'destructive',
    grants: [grant('g1', { action: 'linux.*' })],
    want: 'require_approval',
    rule: 'default:destructive',
  },
  {
    name: 'grant action pattern applies',
    risk: 'destructive',
    grants: [grant('g1', { action: 'docker.*' })],
    want: 'allow',
    rule: 'grant:g1',
  },
  {
    name: 'grant selector matches prod',
    risk: 'destructive',
    grants: [grant('g1', { selector: { env: 'prod' } })],
    want: 'allow',
    rule: 'grant:g1',
  },
  {
    name: 'grant selector misses staging',
    risk: 'destructive',
    runner: STAGE,
    grants: [grant('g1', { selector: { env: 'prod' } })],
    want: 'require_approval',
    rule: 'default:destructive',
  },
  {
    name: 'revoked grant does not apply',
    risk: 'destructive',
    grants: [grant('g1', { revokedAt: '2025-06-01T11:00:00Z' })],
    want: 'require_approval',
    rule: 'default:destructive',
  },
  {
    name: 'expired grant does not apply',
    risk: 'destructive',
    grants: [grant('g1', { expiresAt: '2025-06-01T11:59:59Z' })],
    want: 'require_approval',
    rule: 'default:destructive',
  },
  {
    name: 'grant valid until later applies',
    risk: 'destructive',
    grants: [grant('g1', { expiresAt: '2025-06-01T13:00:00Z' })],
    want: 'allow',
    rule: 'grant:g1',
  },
  {
    name: 'used-up grant does not apply',
    risk: 'destructive',
    grants: [grant('g1', { maxUses: 3, uses: 3 })],
    want: 'require_approval',
    rule: 'default:destructive',
  },
  {
    name: 'grant with uses left applies',
    risk: 'destructive',
    grants: [grant('g1', { maxUses: 3, uses: 2 })],
    want: 'allow',
    rule: 'grant:g1',
  },
  {
    name: 'grant arg constraint satisfied',
    risk: 'destructive',
    args: { container: 'web-2' },
    grants: [grant('g1', { argConstraints: { container: 'web-[0-9]' } })],
    want: 'allow',
    rule: 'grant:g1',
  },
  {
    name: 'grant arg constraint violated',
    risk: 'destructive',
    args: { container: 'db-2' },
    grants: [grant('g1', { argConstraints: { container: 'web-[0-9]' } })],
    want: 'require_approval',
    rule: 'default:destructive',
  },
  {
    name: 'grant arg constraint on missing arg',
    risk: 'destructive',
    args: {},
    grants: [grant('g1', { argConstraints: { container: '.*' } })],
    want: 'require_approval',
    rule: 'default:destructive',
  },
  {
    name: 'grant to another user does not apply',
    risk: 'destructive',
    grants: [grant('g1', { subjectId: 'u-other' })],
    want: 'require_approval',
    rule: 'default:destructive',
  },
  {
    name: 'user grant applies to the user key',
    risk: 'destructive',
    key: true,
    grants: [grant('g1')],
    want: 'allow',
    rule: 'grant:g1',
  },
  {
    name: 'key grant applies to that key',
    risk: 'destructive',
    key: true,
    grants: [grant('gk', { subjectType: 'api_key', subjectId: 'k-agent' })],
    want: 'allow',
    rule: 'grant:gk',
  },
  {
    name: 'key grant does not apply to the user session',
    risk: 'destructive',
    grants: [grant('gk', { subjectType: 'api_key', subjectId: 'k-agent' })],
    want: 'require_approval',
    rule: 'default:destructive',
  },
  {
    name: 'key grant for another key',
    risk: 'destructive',
    key: true,
    grants: [grant('gk', { subjectType: 'api_key', subjectId: 'k-other' })],
    want: 'require_approval',
    rule: 'default:destructive',
  },
  {
    name: 'first usable grant is named',
    risk: 'destructive',
    grants: [grant('g-old', { revokedAt: '2025-01-01T00:00:00Z' }), grant('g-new')],
    want: 'allow',
    rule: 'grant:g-new',
  },
  {
    name: 'grant keeps override bounds',
    risk: 'destructive',
    limits: { timeout_s: 90 },
    rules: [override('o-b', 'docker.restart', null, {}, { limits: { timeout_s: 10 } })],
    grants: [grant('g1')],
    want: 'allow',
    rule: 'grant:g1',
    check: (d) => d.kind === 'allow' && assert.equal(d.limits['timeout_s'], 10),
  },
  // --- scopes
  {
    name: 'user scope by selector covers prod',
    risk: 'read',
    userScope: { selector: { env: 'prod' } },
    want: 'allow',
    rule: 'default:read',
  },
  {
    name: 'user scope by selector excludes staging',
    risk: 'read',
    runner: STAGE,
    userScope: { selector: { env: 'prod' } },
    want: 'deny',
    rule: 'scope:user',
  },
  {
    name: 'user scope by runner id',
    risk: 'read',
    userScope: { runners: ['r-prod'] },
    want: 'allow',
    rule: 'default:read',
  },
  {
    name: 'user scope by runner name',
    risk: 'read',
    userScope: { runners: ['web-prod'] },
    want: 'allow',
    rule: 'default:read',
  },
  {
    name: 'user scope by runners excludes others',
    risk: 'read',
    runner: DB,
    userScope: { runners: ['r-prod'] },
    want: 'deny',
    rule: 'scope:user',
  },
  {
    name: 'user scope selector or runners',
    risk: 'read',
    runner: DB,
    userScope: { selector: { team: 'db' }, runners: ['r-prod'] },
    want: 'allow',
    rule: 'default:read',
  },
  { name: 'empty user scope covers nothing', risk: 'read', userScope: {}, want: 'deny', rule: 'scope:user' },
  {
    name: 'scope deny beats a grant',
    risk: 'destructive',
    runner: STAGE,
    userScope: { selector: { env: 'prod' } },
    grants: [grant('g1')],
    want: 'deny',
    rule: 'scope:user',
  },
  {
    name: 'scope deny beats allow-all',
    risk: 'read',
    runner: STAGE,
    userScope: { runners: ['r-prod'] },
    rules: [allowAll],
    want: 'deny',
    rule: 'scope:user',
  },
  {
    name: 'key scope narrows',
    risk: 'read',
    key: true,
    runner: DB,
    keyScope: { selector: { team: 'web' } },
    want: 'deny',
    rule: 'scope:key',
  },
  {
    name: 'key scope within user scope',
    risk: 'read',
    key: true,
    userScope: { selector: { env: 'prod' } },
    keyScope: { selector: { team: 'web' } },
    want: 'allow',
    rule: 'default:read',
  },
  {
    name: 'key scope cannot widen the user scope',
    risk: 'read',
    key: true,
    runner: STAGE,
    userScope: { selector: { env: 'prod' } },
    keyScope: { selector: { env: 'staging' } },
    want: 'deny',
    rule: 'scope:user',
  },
  {
    name: 'key scope ignored for sessions',
    risk: 'read',
    runner: DB,
    keyScope: { selector: { team: 'web' } },
    want: 'allow',
    rule: 'default:read',
  },
  {
    name: 'revoked user scope (empty) shrinks the key at once',
    risk: 'read',
    key: true,
    userScope: { runners: [] },
    want: 'deny',
    rule: 'scope:user',
  },
  { name: 'viewer role cannot run', risk: 'read', role: 'viewer', want: 'deny', rule: 'role' },
  { name: 'demoted key owner cannot run', risk: 'read', key: true, role: 'viewer', want: 'deny', rule: 'role' },
  { name: 'admin may run read', risk: 'read', role: 'admin', want: 'allow', rule: 'default:read' },
  // --- signed tiers
  {
    name: 'signed tier turns allow into approval',
    risk: 'destructive',
    rules: [allowAll],
    signed: ['destructive'],
    want: 'require_approval',
    rule: 'signed-dispatch:destructive',
    check: (d) => d.kind === 'require_approval' && assert.equal(d.signatureRequired, true),
  },
  {
    name: 'signed tier keeps approval rule name',
    risk: 'destructive',
    signed: ['destructive'],
    want: 'require_approval',
    rule: 'default:destructive',
    check: (d) => d.kind === 'require_approval' && assert.equal(d.signatureRequired, true),
  },
  {
    name: 'signed tier: grant cannot replace a signature',
    risk: 'destructive',
    signed: ['destructive'],
    grants: [grant('g1')],
    want: 'require_approval',
    rule: 'default:destructive',
  },
  {
    name: 'signed tier does not touch other tiers',
    risk: 'read',
    signed: ['destructive'],
    want: 'allow',
    rule: 'default:read',
  },
  {
    name: 'signed tier cannot lift a deny',
    risk: 'destructive',
    rules: [denyProd],
    signed: ['destructive'],
    want: 'deny',
    rule: 'tier:deny-prod-destr',
  },
  {
    name: 'signed unknown tier',
    risk: 'unknown',
    rules: [allowAll],
    signed: ['destructive'],
    want: 'require_approval',
    rule: 'signed-dispatch:destructive',
  },
  {
    name: 'signed change tier',
    risk: 'change',
    signed: ['change'],
    want: 'require_approval',
    rule: 'signed-dispatch:change',
  },
];

describe('policy decision table', () => {
  test(`has at least 80 cases (${ROWS.length})`, () => assert.ok(ROWS.length >= 80));
  for (const row of ROWS) {
    test(row.name, () => {
      const d = decide(input(row));
      assert.equal(d.kind, row.want, `${row.name}: ${JSON.stringify(d)}`);
      assert.equal(d.rule, row.rule, `${row.name}: ${JSON.stringify(d)}`);
      row.check?.(d);
    });
  }
});

describe('approvers', () => {
  const run = { requesterUserId: 'u-agent', approverRole: 'admin' as Role };
  const cases: [string, { userId: string; role: Role }, string | undefined][] = [
    [
      'requester cannot self-approve even as owner',
      { userId: 'u-agent', role: 'owner' },
      'the requester cannot approve their own run',
    ],
    [
      'operator cannot approve an admin-gated run',
      { userId: 'u-2', role: 'operator' },
      'approving this run needs the admin role',
    ],
    ['admin approves', { userId: 'u-2', role: 'admin' }, undefined],
    ['owner approves', { userId: 'u-3', role: 'owner' }, undefined],
    ['viewer cannot', { userId: 'u-4', role: 'viewer' }, 'approving this run needs the admin role'],
  ];
  for (const [name, who, want] of cases) test(name, () => assert.equal(approverProblem(who, run), want));
});

// ---- properties

const labelArb = fc.record({ env: fc.constantFrom('prod', 'staging', 'dev'), team: fc.constantFrom('web', 'db') });
const runnerArb = fc.record({
  id: fc.constantFrom('r1', 'r2', 'r3'),
  name: fc.constantFrom('a', 'b', 'c'),
  labels: labelArb,
});
const selectorArb = fc.oneof(
  fc.constant({}),
  fc.record({ env: fc.constantFrom('prod', 'staging', 'dev', '*') }),
  fc.record({ team: fc.constantFrom('web', 'db', 'w*') }),
);
const decisionArb = fc.constantFrom<PolicyRule['decision']>('allow', 'require_approval', 'deny', null);
const ruleArb: fc.Arbitrary<PolicyRule> = fc.record({
  id: fc.string({ minLength: 1, maxLength: 4 }),
  kind: fc.constantFrom<'tier' | 'override'>('tier', 'override'),
  priority: fc.integer({ min: 0, max: 5 }),
  tier: fc.constantFrom<PolicyRule['tier']>('read', 'change', 'destructive', '*'),
  action: fc.constantFrom('docker.*', 'docker.restart', 'linux.*', '*'),
  selector: selectorArb,
  decision: decisionArb,
  limits: fc.option(fc.record({ timeout_s: fc.integer({ min: 1, max: 100 }) }), { nil: undefined }),
  pinArgs: fc.option(fc.record({ container: fc.constantFrom('web-.*', '.*', 'db') }), { nil: undefined }),
});
const grantArb: fc.Arbitrary<Grant> = fc.record({
  id: fc.string({ minLength: 1, maxLength: 4 }),
  subjectType: fc.constantFrom<'user' | 'api_key'>('user', 'api_key'),
  subjectId: fc.constantFrom('u-agent', 'k-agent', 'u-x'),
  action: fc.constantFrom('docker.*', '*', 'linux.*'),
  selector: selectorArb,
  argConstraints: fc.constantFrom({}, { container: 'web-.*' }),
  maxUses: fc.option(fc.integer({ min: 0, max: 3 }), { nil: null }),
  uses: fc.integer({ min: 0, max: 3 }),
  expiresAt: fc.constantFrom(null, '2025-06-01T11:00:00Z', '2025-06-02T00:00:00Z'),
  revokedAt: fc.constantFrom(null, '2025-06-01T11:00:00Z'),
});
const scopeArb: fc.Arbitrary<RunnerScope | null> = fc.oneof(
  fc.constant(null),
  fc.record({
    selector: fc.option(selectorArb, { nil: undefined }),
    runners: fc.option(fc.subarray(['r1', 'r2', 'a']), { nil: undefined }),
  }),
);
const inputArb: fc.Arbitrary<DecisionInput> = fc.record({
  subject: fc.record({
    userId: fc.constant('u-agent'),
    role: fc.constantFrom<Role>('viewer', 'operator', 'admin', 'owner'),
    keyId: fc.option(fc.constant('k-agent'), { nil: undefined }),
  }),
  userScope: scopeArb,
  keyScope: scopeArb,
  runner: runnerArb,
  action: fc.constantFrom('docker.restart', 'docker.ps', 'linux.uptime'),
  risk: fc.constantFrom<Tier>('read', 'change', 'destructive', 'unknown'),
  args: fc.record({ container: fc.constantFrom('web-1', 'db-1') }),
  limits: fc.constantFrom({}, { timeout_s: 50 }),
  // Ids are unique in the database; the generator keeps them unique so traces name one rule.
  rules: fc.uniqueArray(ruleArb, { maxLength: 6, selector: (r) => r.id }),
  grants: fc.uniqueArray(grantArb, { maxLength: 4, selector: (g) => g.id }),
  signedTiers: fc.subarray<'read' | 'change' | 'destructive'>(['read', 'change', 'destructive']),
  approvalTtlS: fc.constant(600),
  now: fc.constant(NOW),
});

describe('policy properties', () => {
  test('a key never acts outside its owner\u2019s current scope (nor its own)', () => {
    fc.assert(
      fc.property(inputArb, (i) => {
        const d = decide(i);
        if (d.kind === 'deny') return;
        assert.ok(scopeCovers(i.userScope, i.runner), 'allowed outside the owner scope');
        if (i.subject.keyId !== undefined)
          assert.ok(scopeCovers(i.keyScope, i.runner), 'allowed outside the key scope');
      }),
      { numRuns: 3000 },
    );
  });

  test('deny always wins: a matching deny rule is never lifted by overrides, grants or signatures', () => {
    fc.assert(
      fc.property(inputArb, (i) => {
        const tier = i.risk === 'unknown' ? 'destructive' : i.risk;
        const matchesDeny = i.rules.some(
          (r) =>
            r.decision === 'deny' &&
            Object.entries(r.selector).every(([k, v]) => {
              const have = (i.runner.labels as Record<string, string>)[k];
              return have !== undefined && new RegExp(`^${v.replace('*', '.*')}$`).test(have);
            }) &&
            (r.kind === 'tier'
              ? r.tier === tier || r.tier === '*'
              : new RegExp(`^${(r.action ?? '').replace('.', '\\.').replace('*', '.*')}$`).test(i.action)),
        );
        if (matchesDeny) assert.equal(decide(i).kind, 'deny');
      }),
      { numRuns: 3000 },
    );
  });

  test('removing grants never makes a decision looser; adding a deny rule never does either', () => {
    const rank = { allow: 0, require_approval: 1, deny: 2 } as const;
    fc.assert(
      fc.property(inputArb, ruleArb, (i, extra) => {
        const base = rank[decide(i).kind];
        assert.ok(rank[decide({ ...i, grants: [] }).kind] >= base);
        assert.ok(rank[decide({ ...i, rules: [...i.rules, { ...extra, decision: 'deny' }] }).kind] >= base);
      }),
      { numRuns: 2000 },
    );
  });

  test('a grant is only ever used when it is live, for this subject, and no deny applies', () => {
    fc.assert(
      fc.property(inputArb, (i) => {
        const d = decide(i);
        if (d.kind !== 'allow' || d.grantId === undefined) return;
        const g = i.grants.find((x) => x.id === d.grantId)!;
        assert.equal(g.revokedAt, null);
        assert.ok(g.maxUses === null || g.uses < g.maxUses);
        assert.ok(g.expiresAt === null || Date.parse(g.expiresAt) > i.now);
        assert.ok(g.subjectType === 'user' ? g.subjectId === i.subject.userId : g.subjectId === i.subject.keyId);
        assert.ok(
          !i.signedTiers.includes(i.risk === 'unknown' ? 'destructive' : i.risk),
          'a grant never stands in for a signature',
        );
      }),
      { numRuns: 3000 },
    );
  });

  test('limits never exceed an applicable override bound', () => {
    fc.assert(
      fc.property(inputArb, (i) => {
        const d = decide(i);
        if (d.kind === 'deny') return;
        for (const r of i.rules) {
          if (
            r.kind !== 'override' ||
            r.limits === undefined ||
            d.trace.every((t) => !t.startsWith(`matches override:${r.id} `))
          )
            continue;
          for (const [k, v] of Object.entries(r.limits)) assert.ok((d.limits[k] ?? 0) <= v);
        }
      }),
      { numRuns: 2000 },
    );
  });
});
