import { useState } from 'react';
import { api, type OAuthAuthorization, type PolicySettings } from '../api';
import { FormError, TextField, useAction } from '../forms';
import { Badge, DataTable, ErrorBox, Loading, RowButton, Time, usePoll, useSession } from '../lib';

/** MCP clients authorized by OAuth to act for you (or, for admins, for anyone); revocable at once. */
export function OAuthClients() {
  const s = useSession();
  const list = usePoll(
    () => api<{ authorizations: OAuthAuthorization[] }>('GET', '/api/v1/oauth/authorizations'),
    [],
    10000,
  );
  const revoke = useAction(async (id: string) => {
    await api('POST', `/api/v1/oauth/authorizations/${encodeURIComponent(id)}/revoke`);
    list.reload();
  });
  const items = list.data?.authorizations ?? [];
  return (
    <section className="panel" aria-labelledby="oauth-h">
      <h2 id="oauth-h">OAuth clients</h2>
      <p className="muted">
        MCP clients you approved on the consent screen. Their tokens never do more than their user may do now; revoking
        ends every token of the authorization at once.
      </p>
      <ErrorBox error={list.error ?? revoke.error} title="OAuth clients" />
      {list.loading ? (
        <Loading what="authorizations" />
      ) : items.length === 0 ? (
        <p className="muted">
          No MCP client is authorized. Point a client at <code>{location.origin}/mcp</code>; it will send you to a
          consent screen.
        </p>
      ) : (
        <DataTable
          label="OAuth authorizations"
          columns={['Client', 'User', 'Scopes', 'Authorized', 'Last refresh', 'State']}
          buttons="Revoke"
        >
          {items.map((a) => (
            <tr key={a.id}>
              <td>
                {a.client.name}
                <div className="small muted">
                  <code>{a.client.id}</code>
                </div>
              </td>
              <td>{a.user.username ?? a.user.id}</td>
              <td className="small">{a.scopes.join(' ')}</td>
              <td>
                <Time iso={a.created_at} />
              </td>
              <td>
                <Time iso={a.last_refreshed_at} />
              </td>
              <td>
                <Badge value={a.state === 'active' ? 'success' : 'revoked'} label={a.state} />
              </td>
              <td>
                {a.state === 'active' && (a.user.id === s.me.user.id || s.can('users:write')) && (
                  <RowButton label="Revoke" what={`${a.client.name}`} onClick={() => void revoke.run(a.id)} />
                )}
              </td>
            </tr>
          ))}
        </DataTable>
      )}
    </section>
  );
}

/** The approval webhook: where approval requests and decisions are announced, HMAC-signed. */
export function Webhooks() {
  const settings = usePoll(() => api<{ settings: PolicySettings }>('GET', '/api/v1/policy'), [], 0);
  const [url, setUrl] = useState<string>();
  const [secret, setSecret] = useState('');
  const [saved, setSaved] = useState(false);
  const current = settings.data?.settings;
  const shownUrl = url ?? current?.webhook_url ?? '';
  const save = useAction(async (clear: boolean) => {
    setSaved(false);
    await api('PUT', '/api/v1/policy/settings', {
      webhook_url: clear || shownUrl.trim() === '' ? null : shownUrl.trim(),
      ...(clear ? { webhook_secret: null } : secret === '' ? {} : { webhook_secret: secret }),
    });
    setSecret('');
    setUrl(undefined);
    setSaved(true);
    settings.reload();
  });
  return (
    <section className="panel" aria-labelledby="webhook-h">
      <h2 id="webhook-h">Webhooks</h2>
      <p className="muted">
        Approval requests and decisions are POSTed as JSON to this URL, signed with HMAC-SHA256 over{' '}
        <code>timestamp.body</code> in <code>x-airlock-signature</code>. Delivery is best effort; it never changes a
        decision.
      </p>
      <form onSubmit={(e) => save.submit(e, false)} noValidate aria-label="Approval webhook">
        <FormError error={save.error} title="Webhook not saved" fields={['webhook_url', 'webhook_secret']} />
        {saved && (
          <p className="alert alert-ok" role="status">
            Saved.
          </p>
        )}
        <div className="form-row">
          <TextField
            id="webhook-url"
            label="URL"
            type="url"
            placeholder="https://hooks.example.com/airlock"
            value={shownUrl}
            onChange={setUrl}
            error={save.field('webhook_url')}
          />
          <TextField
            id="webhook-secret"
            label="Signing secret"
            type="password"
            autoComplete="off"
            hint={
              current?.webhook_secret_set === true ? 'a secret is set; type to replace it' : 'at least 16 characters'
            }
            value={secret}
            onChange={setSecret}
            error={save.field('webhook_secret')}
          />
        </div>
        <div className="button-row">
          <button type="submit" className="btn btn-primary" disabled={save.busy}>
            Save webhook
          </button>
          {current?.webhook_url !== null && current?.webhook_url !== undefined && (
            <button type="button" className="btn" onClick={() => void save.run(true)} disabled={save.busy}>
              Remove webhook
            </button>
          )}
        </div>
      </form>
    </section>
  );
}
