import { useEffect, useState } from 'react';
import { type Approval, api } from '../api';
import { FormError, Segmented, TextField, useAction } from '../forms';
import {
  Badge,
  Empty,
  ErrorBox,
  Link,
  Loading,
  PageHeader,
  principalName,
  RiskBadge,
  Time,
  usePoll,
  useSession,
} from '../lib';
import { type BrowserKey, type DispatchEnvelope, listBrowserKeys, signEnvelope } from '../signing';

const STATES = ['pending', 'approved', 'denied', 'expired'] as const;
type State = (typeof STATES)[number];

/** Browser keys of this user whose certificate is valid now. */
function useUsableKeys(username: string): BrowserKey[] {
  const [keys, setKeys] = useState<BrowserKey[]>([]);
  useEffect(() => {
    listBrowserKeys(username)
      .then((all) => {
        const now = new Date().toISOString();
        setKeys(all.filter((k) => k.cert !== undefined && k.cert.cert.not_after > now));
      })
      .catch(() => setKeys([]));
  }, [username]);
  return keys;
}

export function ApprovalCard({ a, onDecided }: { a: Approval; onDecided: (what: string) => void }) {
  const s = useSession();
  const [comment, setComment] = useState('');
  const keys = useUsableKeys(s.me.user.username);
  const [keyId, setKeyId] = useState<string>('');
  const key = keys.find((k) => k.id === keyId) ?? keys[0];
  const mine = a.requester_user_id === s.me.user.id;
  const base = `/api/v1/runs/${encodeURIComponent(a.run_id)}`;
  const act = useAction(async (vote: 'approve' | 'deny') => {
    if (vote === 'deny') {
      await api('POST', `${base}/deny`, { comment });
    } else if (a.signature_required) {
      if (key?.cert === undefined)
        throw new Error('this run needs a signature: enroll an approver key in Settings → Approver keys first');
      const { envelope } = await api<{ envelope: DispatchEnvelope }>('GET', `${base}/approval`);
      const signature = await signEnvelope(key, envelope);
      await api('POST', `${base}/approve`, { comment, signature, cert: key.cert });
    } else {
      await api('POST', `${base}/approve`, { comment });
    }
    onDecided(`${vote === 'approve' ? 'Approved' : 'Denied'}: ${a.action} on ${a.runner.name}.`);
  });
  const id = `c-${a.run_id}`;
  const approvals = a.votes.filter((v) => v.vote === 'approve').length;
  return (
    <article className="panel approval" aria-labelledby={`${id}-h`} data-run={a.run_id} data-state={a.state}>
      <div className="page-header">
        <h2 id={`${id}-h`}>
          <code>{a.action}</code> on {a.runner.name}
        </h2>
        <div className="button-row">
          <RiskBadge risk={a.risk} />
          <Badge value={a.state === 'approved' ? 'success' : a.state} label={a.state} />
        </div>
      </div>
      <dl className="facts">
        <dt>Requested by</dt>
        <dd>
          {principalName(a.requested_by as { type: string; id: string; name?: string })} <Time iso={a.created_at} />
        </dd>
        <dt>Reason</dt>
        <dd>{a.reason}</dd>
        <dt>Rule</dt>
        <dd>
          <code>{a.rule}</code> — needs {a.approvers_required} approval{a.approvers_required === 1 ? '' : 's'} from{' '}
          {a.approver_role} or above
          {a.approver_group !== null && (
            <>
              {' '}
              in group <code>{a.approver_group}</code>
            </>
          )}
          {a.signature_required && ', signed'}
        </dd>
        <dt>Arguments (redacted)</dt>
        <dd>
          <pre className="json">{JSON.stringify(a.args, null, 2)}</pre>
        </dd>
        <dt>Limits</dt>
        <dd>
          {Object.keys(a.limits).length === 0 ? (
            <span className="muted">action defaults</span>
          ) : (
            <code>{JSON.stringify(a.limits)}</code>
          )}
        </dd>
        <dt>{a.state === 'pending' ? 'Expires' : 'Decided'}</dt>
        <dd>
          {a.state === 'pending' ? <Time iso={a.expires_at} /> : <Time iso={a.decided_at} />} ({approvals} of{' '}
          {a.approvers_required} approved)
        </dd>
        {a.votes.length > 0 && (
          <>
            <dt>Votes</dt>
            <dd>
              <ul className="plain-list">
                {a.votes.map((v) => (
                  <li key={v.approver.id + v.at}>
                    <strong>{v.approver.name}</strong> {v.vote === 'approve' ? 'approved' : 'denied'}
                    {v.signed ? ' (signed)' : ''}
                    {v.comment !== '' && <> — “{v.comment}”</>} <Time iso={v.at} />
                  </li>
                ))}
              </ul>
            </dd>
          </>
        )}
      </dl>
      <p>
        <Link to={`/runs/${a.run_id}`}>Open the run</Link>
      </p>
      {a.state === 'pending' && s.can('runs:write') && (
        <form onSubmit={(e) => act.submit(e, 'approve')} noValidate aria-label={`Decide on ${a.action}`}>
          {mine && (
            <p className="alert alert-info" role="note">
              You asked for this run: another approver must decide it.
            </p>
          )}
          <FormError error={act.error} title="Your vote was not recorded" fields={['comment']} />
          <TextField
            id={`${id}-comment`}
            label="Comment"
            hint="Recorded in the audit log with your vote; required to deny."
            value={comment}
            onChange={setComment}
            error={act.field('comment')}
          />
          {a.signature_required &&
            (keys.length === 0 ? (
              <p className="alert alert-warn" role="note">
                This tier needs a signed approval. <Link to="/settings#approver-keys">Enroll an approver key</Link> in
                this browser, or approve with <code>airlock approve {a.run_id} --sign</code>.
              </p>
            ) : (
              <div className="field">
                <label htmlFor={`${id}-key`}>Sign with</label>
                <select id={`${id}-key`} value={key?.id ?? ''} onChange={(e) => setKeyId(e.target.value)}>
                  {keys.map((k) => (
                    <option key={k.id} value={k.id}>
                      {k.cert?.cert.key_id} (valid until {new Date(k.cert?.cert.not_after ?? '').toLocaleString()})
                    </option>
                  ))}
                </select>
              </div>
            ))}
          <div className="button-row">
            <button type="submit" className="btn btn-primary" disabled={act.busy}>
              {a.signature_required ? 'Sign and approve' : 'Approve'}
            </button>
            <button type="button" className="btn btn-danger" disabled={act.busy} onClick={() => void act.run('deny')}>
              Deny
            </button>
          </div>
        </form>
      )}
    </article>
  );
}

export function ApprovalsPage() {
  const [state, setState] = useState<State>('pending');
  const list = usePoll(() => api<{ approvals: Approval[] }>('GET', `/api/v1/approvals?state=${state}`), [state], 3000);
  const items = list.data?.approvals ?? [];
  const [decided, setDecided] = useState<string>();
  return (
    <>
      <PageHeader
        title="Approvals"
        sub="Runs that policy holds until enough people approve. Nobody approves their own run; expired requests fail closed."
      />
      <Segmented name="approval-state" legend="Show" value={state} onChange={setState} options={STATES} />
      <p className={decided === undefined ? 'sr-only' : 'alert alert-ok'} role="status" data-testid="decided">
        {decided}
      </p>
      <ErrorBox error={list.error} title="Could not load approvals" />
      {list.loading ? (
        <Loading what="approvals" />
      ) : items.length === 0 ? (
        <Empty title={state === 'pending' ? 'Nothing waits for approval' : `No ${state} approvals`}>
          <p>
            Runs appear here when a policy rule asks for approval (by default, <code>destructive</code> actions). See{' '}
            <Link to="/policies">Policies &amp; grants</Link> for the rules.
          </p>
        </Empty>
      ) : (
        items.map((a) => (
          <ApprovalCard
            key={a.run_id}
            a={a}
            onDecided={(what) => {
              setDecided(what);
              list.reload();
            }}
          />
        ))
      )}
    </>
  );
}
