import { useCallback, useEffect, useState } from 'react';
import { type ApproverKey, api } from '../api';
import { FormError, TextField, useAction } from '../forms';
import { Badge, CopyButton, DataTable, ErrorBox, RowButton, Time, usePoll, useSession } from '../lib';
import {
  attachCert,
  type BrowserKey,
  createBrowserKey,
  deleteBrowserKey,
  listBrowserKeys,
  parseCert,
  webCryptoEd25519,
} from '../signing';

/**
 * Approver keys: make an Ed25519 key in this browser (WebCrypto, private key never leaves
 * it), have it certified offline by the organisation root, enroll the certificate, and sign
 * approvals of signed tiers with it. Enrolled keys can be revoked at once.
 */
export function ApproverKeys() {
  const s = useSession();
  const enrolled = usePoll(() => api<{ keys: ApproverKey[] }>('GET', '/api/v1/policy/approver-keys'), [], 10000);
  const [supported, setSupported] = useState<boolean>();
  const [local, setLocal] = useState<BrowserKey[]>([]);
  const [certText, setCertText] = useState('');
  const user = s.me.user.username;
  const refresh = useCallback(() => {
    listBrowserKeys(user)
      .then(setLocal)
      .catch(() => setLocal([]));
  }, [user]);
  useEffect(() => {
    void webCryptoEd25519().then(setSupported);
    refresh();
  }, [refresh]);
  const make = useAction(async () => {
    await createBrowserKey(user);
    refresh();
  });
  const pending = local.find((k) => k.cert === undefined);
  const enroll = useAction(async () => {
    const cert = parseCert(certText);
    const key = local.find((k) => k.publicKey === cert.cert.public_key);
    if (key === undefined) throw new Error('no key in this browser has that public key; make one here first');
    await api('POST', '/api/v1/policy/approver-keys', { cert });
    await attachCert(key, cert);
    setCertText('');
    refresh();
    enrolled.reload();
  });
  const revoke = useAction(async (k: ApproverKey) => {
    await api('POST', `/api/v1/policy/approver-keys/${encodeURIComponent(k.key_id)}/revoke`, {
      reason: 'revoked in the dashboard',
    });
    const mineHere = local.find((b) => b.cert?.cert.key_id === k.key_id);
    if (mineHere !== undefined) await deleteBrowserKey(mineHere);
    refresh();
    enrolled.reload();
  });
  const keys = enrolled.data?.keys ?? [];
  return (
    <section className="panel" aria-labelledby="approver-keys" id="approver-keys-section">
      <h2 id="approver-keys">Approver keys</h2>
      <p className="muted">
        Tiers with signed dispatch run only with an approver's Ed25519 signature, which the runner checks itself. Your
        key is made in this browser and its private half never leaves it; the organisation root key (kept offline)
        certifies it for at most 24 hours.
      </p>
      {supported === false && (
        <p className="alert alert-warn" role="note">
          This browser cannot make Ed25519 keys (WebCrypto). Sign with the CLI instead:{' '}
          <code>airlock approve RUN --sign --key FILE --cert FILE</code>.
        </p>
      )}
      {supported === true && s.can('runs:write') && (
        <>
          {pending === undefined ? (
            <button type="button" className="btn" onClick={() => void make.run()} disabled={make.busy}>
              Make a signing key in this browser
            </button>
          ) : (
            <div className="panel panel-highlight">
              <p>
                <strong>1.</strong> Have an organisation root holder certify this public key (offline):
              </p>
              <div className="codeline">
                <code data-testid="browser-public-key">{pending.publicKey}</code>
                <CopyButton text={pending.publicKey} />
              </div>
              <pre className="json small">
                airlock policy certify --root-key root.json --public-key {pending.publicKey} --subject {user} --out
                cert.json
              </pre>
              <form onSubmit={enroll.submit} noValidate aria-label="Enroll the certificate">
                <p>
                  <strong>2.</strong> Paste the certificate (the contents of <code>cert.json</code>):
                </p>
                <TextField
                  id="approver-cert"
                  label="Certificate"
                  multiline
                  value={certText}
                  onChange={setCertText}
                  error={enroll.field('cert')}
                />
                <FormError error={enroll.error} title="Not enrolled" fields={['cert']} />
                <button type="submit" className="btn btn-primary" disabled={enroll.busy}>
                  Enroll key
                </button>
              </form>
            </div>
          )}
          <ErrorBox error={make.error} title="Could not make a key" />
        </>
      )}
      <ErrorBox error={enrolled.error ?? revoke.error} title="Approver keys" />
      {keys.length === 0 ? (
        <p className="muted">No approver keys enrolled.</p>
      ) : (
        <DataTable
          label="Enrolled approver keys"
          columns={['Key', 'Holder', 'Valid until', 'In this browser', 'State']}
          buttons="Revoke"
        >
          {keys.map((k) => (
            <tr key={k.key_id} data-approver-key={k.key_id}>
              <td>
                <code>{k.key_id}</code>
              </td>
              <td>
                {k.user.username ?? k.user.id} <span className="muted">({k.subject})</span>
              </td>
              <td>
                <Time iso={k.not_after} />
              </td>
              <td>{local.some((b) => b.cert?.cert.key_id === k.key_id) ? 'yes' : '—'}</td>
              <td>
                <Badge
                  value={k.state === 'active' ? 'success' : k.state === 'revoked' ? 'revoked' : 'cancelled'}
                  label={k.state}
                />
              </td>
              <td>
                {k.state !== 'revoked' && (k.user.id === s.me.user.id || s.can('users:write')) && (
                  <RowButton label="Revoke" what={`approver key ${k.key_id}`} onClick={() => void revoke.run(k)} />
                )}
              </td>
            </tr>
          ))}
        </DataTable>
      )}
    </section>
  );
}
