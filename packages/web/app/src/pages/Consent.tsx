import { useState } from 'react';
import { api, type OAuthRequest } from '../api';
import { FormError, useAction } from '../forms';
import { ErrorBox, Loading, PageHeader, Time, usePoll, useSession } from '../lib';

const SCOPE_WORDS: Record<string, string> = {
  'runs:read': 'see runs and their output',
  'runs:write': 'ask for runs of actions (policy and approvals still apply)',
  'runners:read': 'see runners and the actions they offer',
  'runners:write': 'create and revoke runners',
  'packs:read': 'see packs and their trust',
  'packs:trust': 'trust or reject packs',
  'audit:read': 'read the audit log',
  'users:read': 'see users',
  'users:write': 'manage users and policy',
  'keys:write': 'create API keys',
};

/**
 * The OAuth consent screen for MCP clients: the signed-in user sees which client asks, where it
 * returns, and the scope; approving sends the browser back to the client with a one-time code.
 */
export function ConsentPage({ request }: { request: string }) {
  const s = useSession();
  const req = usePoll(
    () => api<OAuthRequest>('GET', `/api/v1/oauth/requests/${encodeURIComponent(request)}`),
    [request],
  );
  const [leaving, setLeaving] = useState(false);
  const decide = useAction(async (approve: boolean) => {
    const r = await api<{ redirect_to: string }>(
      'POST',
      `/api/v1/oauth/requests/${encodeURIComponent(request)}/decision`,
      { approve },
    );
    setLeaving(true);
    location.assign(r.redirect_to);
  });
  const v = req.data;
  const granted = (v?.scopes ?? []).filter((sc) => s.me.permissions.includes(sc as never));
  const dropped = (v?.scopes ?? []).filter((sc) => !granted.includes(sc));
  return (
    <>
      <PageHeader
        title="Authorize an MCP client"
        sub={`Signed in as ${s.me.user.username} in ${s.me.user.org.name}.`}
      />
      {req.loading ? (
        <Loading what="the request" />
      ) : req.error !== undefined ? (
        <ErrorBox
          error={req.error}
          title="This authorization request is unknown or expired; start again from your MCP client"
        />
      ) : v === undefined ? null : (
        <section className="panel" aria-labelledby="consent-h">
          <h2 id="consent-h">
            <span data-testid="consent-client">{v.client.name}</span> asks to act as you
          </h2>
          <dl className="facts">
            <dt>Client</dt>
            <dd>
              <code>{v.client.id}</code>
            </dd>
            <dt>Returns to</dt>
            <dd>
              <code>{v.client.redirect_host}</code> ({v.client.redirect_uri})
            </dd>
            <dt>Resource</dt>
            <dd>
              <code>{v.resource}</code>
            </dd>
            <dt>Request expires</dt>
            <dd>
              <Time iso={v.expires_at} />
            </dd>
          </dl>
          <h3>It may</h3>
          <ul data-testid="consent-scopes">
            {granted.map((sc) => (
              <li key={sc}>
                <code>{sc}</code> — {SCOPE_WORDS[sc] ?? sc}
              </li>
            ))}
          </ul>
          {dropped.length > 0 && (
            <p className="muted">
              Not granted (beyond your role):{' '}
              {dropped.map((d) => (
                <code key={d}>{d} </code>
              ))}
            </p>
          )}
          <p className="muted">
            It never gets more than you may do yourself; if your role or runner scope changes, its access changes with
            it. Revoke it any time in Settings → OAuth clients.
          </p>
          <FormError error={decide.error} title="Not decided" />
          {v.decided || leaving ? (
            <p className="alert alert-info" role="status">
              This request was decided; you can close this page.
            </p>
          ) : (
            <div className="button-row">
              <button
                type="button"
                className="btn btn-primary"
                onClick={() => void decide.run(true)}
                disabled={decide.busy}
              >
                Approve
              </button>
              <button
                type="button"
                className="btn btn-danger"
                onClick={() => void decide.run(false)}
                disabled={decide.busy}
              >
                Deny
              </button>
            </div>
          )}
        </section>
      )}
    </>
  );
}
