// Signed dispatch on the runner: each failure has its own refusal code; the good one passes once.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { type ApproverCert, certBytes, dispatchBytes, type RunActionMessage } from '@airlock/core';
import { generateSigningKey, signRaw } from './ed25519.js';
import { NonceStore } from './nonce-store.js';
import { DispatchVerifier, type SignatureRefusalCode } from './verify.js';

const dir = mkdtempSync(join(tmpdir(), 'airlock-sign-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const root = generateSigningKey();
const approver = generateSigningKey();
const now = Date.now();
const iso = (ms: number) => new Date(ms).toISOString();

function certify(cert: Partial<ApproverCert> = {}, key = root) {
  const c: ApproverCert = {
    v: 1,
    key_id: 'k1',
    public_key: approver.publicKey,
    subject: 'alice',
    not_before: iso(now - 60_000),
    not_after: iso(now + 3_600_000),
    ...cert,
  };
  return { cert: c, signature: signRaw(key.privateKey, key.publicKey, certBytes(c)) };
}

function signed(
  over: {
    runner?: string;
    expires?: number;
    nonce?: string;
    cert?: ReturnType<typeof certify>;
    signer?: typeof approver;
  } = {},
): RunActionMessage {
  const base = {
    type: 'run_action' as const,
    request_id: `req-${Math.random().toString(36).slice(2)}`,
    action: 'ops.wipe',
    pack: 'ops',
    pack_hash: `sha256:${'a'.repeat(64)}`,
    args: { target: 'box-1' },
    limits: { timeout_s: 5 },
    reason: 'test',
    principal: { type: 'api_key' as const, id: 'k' },
  };
  const expires = iso(over.expires ?? now + 600_000);
  const nonce = over.nonce ?? `nonce-${Math.random().toString(36).slice(2)}-padpadpad`;
  const signer = over.signer ?? approver;
  const sig = signRaw(
    signer.privateKey,
    signer.publicKey,
    dispatchBytes({
      v: 1,
      runner: over.runner ?? 'web-1',
      request_id: base.request_id,
      action: base.action,
      pack_hash: base.pack_hash,
      args: base.args,
      limits: base.limits,
      expires_at: expires,
      nonce,
    }),
  );
  return {
    ...base,
    approval: {
      approvers: ['alice'],
      signature: sig,
      key_id: 'k1',
      expires_at: expires,
      nonce,
      cert: over.cert ?? certify(),
    },
  };
}

describe('DispatchVerifier', () => {
  const v = new DispatchVerifier(
    { rootPublicKey: root.publicKey, requireTiers: ['destructive'] },
    'web-1',
    new NonceStore(join(dir, 'nonces')),
  );
  const code = (m: RunActionMessage, risk = 'destructive'): SignatureRefusalCode | undefined =>
    v.check(m, risk, now)?.code;

  test('a valid signed envelope passes, once', () => {
    const m = signed();
    assert.equal(code(m), undefined);
    assert.equal(code(m), 'nonce_replayed');
  });
  test('tiers that need no signature pass untouched', () => {
    const { approval: _a, ...bare } = signed();
    assert.equal(code(bare, 'read'), undefined);
    assert.equal(code(bare, 'change'), undefined);
  });
  const cases: [string, () => RunActionMessage, SignatureRefusalCode][] = [
    [
      'unsigned',
      () => {
        const { approval: _a, ...m } = signed();
        return m;
      },
      'signature_missing',
    ],
    ['approvers but no signature', () => ({ ...signed(), approval: { approvers: ['alice'] } }), 'signature_missing'],
    [
      'no certificate',
      () => {
        const m = signed();
        const { cert: _c, ...a } = m.approval!;
        return { ...m, approval: a };
      },
      'cert_missing',
    ],
    ['certificate signed by another root', () => signed({ cert: certify({}, generateSigningKey()) }), 'cert_untrusted'],
    [
      'certificate for more than 24 h',
      () => signed({ cert: certify({ not_after: iso(now + 25 * 3_600_000) }) }),
      'cert_invalid',
    ],
    [
      'certificate expired',
      () => signed({ cert: certify({ not_before: iso(now - 7_200_000), not_after: iso(now - 3_600_000) }) }),
      'cert_expired',
    ],
    [
      'certificate not yet valid',
      () => signed({ cert: certify({ not_before: iso(now + 60_000), not_after: iso(now + 120_000) }) }),
      'cert_expired',
    ],
    [
      'signed by a key the certificate does not name',
      () => signed({ signer: generateSigningKey() }),
      'signature_invalid',
    ],
    ['signed for another runner', () => signed({ runner: 'db-1' }), 'signature_invalid'],
    [
      'args changed after signing',
      () => {
        const m = signed();
        return { ...m, args: { target: 'box-2' } };
      },
      'signature_invalid',
    ],
    [
      'limits changed after signing',
      () => {
        const m = signed();
        return { ...m, limits: { timeout_s: 30 } };
      },
      'signature_invalid',
    ],
    [
      'limits removed after signing',
      () => {
        const { limits: _l, ...m } = signed();
        return m;
      },
      'signature_invalid',
    ],
    [
      'request id changed (replay as a new request)',
      () => ({ ...signed(), request_id: 'other-id' }),
      'signature_invalid',
    ],
    ['action changed', () => ({ ...signed(), action: 'ops.touch' }), 'signature_invalid'],
    [
      'expiry changed after signing',
      () => {
        const m = signed();
        return { ...m, approval: { ...m.approval!, expires_at: iso(now + 900_000) } };
      },
      'signature_invalid',
    ],
    [
      'key id differs from the certificate',
      () => {
        const m = signed();
        return { ...m, approval: { ...m.approval!, key_id: 'k2' } };
      },
      'signature_invalid',
    ],
    [
      'no nonce',
      () => {
        const m = signed();
        const { nonce: _n, ...a } = m.approval!;
        return { ...m, approval: a };
      },
      'envelope_invalid',
    ],
    ['expired envelope', () => signed({ expires: now - 1000 }), 'envelope_expired'],
    ['envelope valid for more than 24 h', () => signed({ expires: now + 25 * 3_600_000 }), 'envelope_invalid'],
  ];
  for (const [name, make, want] of cases) test(`refuses: ${name} → ${want}`, () => assert.equal(code(make()), want));

  test('nonces survive a restart', () => {
    const store = join(dir, 'restart-nonces');
    const m = signed();
    const v1 = new DispatchVerifier(
      { rootPublicKey: root.publicKey, requireTiers: ['destructive'] },
      'web-1',
      new NonceStore(store),
    );
    assert.equal(v1.check(m, 'destructive', now), undefined);
    const v2 = new DispatchVerifier(
      { rootPublicKey: root.publicKey, requireTiers: ['destructive'] },
      'web-1',
      new NonceStore(store),
    );
    assert.equal(v2.check(m, 'destructive', now)?.code, 'nonce_replayed');
  });
});
