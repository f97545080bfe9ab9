import { type FormEvent, useState } from 'react';
import { type ApiError, api, type Pack, type Runner } from '../api';
import { parsePairs } from '../forms';
import {
  Badge,
  CopyButton,
  DataTable,
  describedBy,
  Empty,
  ErrorBox,
  Field,
  Link,
  Loading,
  navigate,
  PageHeader,
  shortHash,
  TableWrap,
  Time,
  useLocation,
  usePoll,
  useSession,
} from '../lib';

interface Created {
  runner: Runner;
  bootstrap_key: string;
  bootstrap_expires_at: string;
  command: string;
}

function CreateRunner({ onCreated, onCancel }: { onCreated: (c: Created) => void; onCancel: () => void }) {
  const [name, setName] = useState('');
  const [labels, setLabels] = useState('');
  const [error, setError] = useState<ApiError>();
  const [local, setLocal] = useState<{ name?: string; labels?: string }>({});
  const [busy, setBusy] = useState(false);
  async function submit(e: FormEvent): Promise<void> {
    e.preventDefault();
    const l = parsePairs(labels);
    const errs: { name?: string; labels?: string } = {};
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(name))
      errs.name = 'use 1-63 letters, digits, dot, dash or underscore, starting with a letter or digit';
    if (l.error !== undefined) errs.labels = l.error;
    setLocal(errs);
    if (Object.keys(errs).length > 0) return;
    setBusy(true);
    setError(undefined);
    try {
      onCreated(await api<Created>('POST', '/api/v1/runners', { name, labels: l.pairs }));
    } catch (err) {
      setError(err as ApiError);
    } finally {
      setBusy(false);
    }
  }
  const nameErr = local.name ?? error?.fieldMessage('name') ?? (error?.code === 'conflict' ? error.message : undefined);
  const labelErr = local.labels ?? error?.fieldMessage('labels');
  return (
    <form className="panel" onSubmit={(e) => void submit(e)} noValidate aria-labelledby="new-runner-h">
      <h2 id="new-runner-h">New runner</h2>
      {error !== undefined && error.fields.length === 0 && error.code !== 'conflict' && (
        <ErrorBox error={error} title="Could not create the runner" />
      )}
      <div className="form-row">
        <Field
          id="runner-name"
          label="Name"
          hint="How people and agents will refer to this host, e.g. web-1."
          error={nameErr}
        >
          {/* biome-ignore lint/a11y/noAutofocus: the form was just opened on purpose */}
          <input
            id="runner-name"
            value={name}
            onChange={(e) => setName(e.target.value)}
            // biome-ignore lint/a11y/noAutofocus: the create form opens on request; focus goes to its only field
            autoFocus
            {...describedBy('runner-name', true, nameErr)}
          />
        </Field>
        <Field
          id="runner-labels"
          label="Labels (optional)"
          hint="Comma-separated key=value, e.g. env=prod, role=db."
          error={labelErr}
        >
          <input
            id="runner-labels"
            value={labels}
            onChange={(e) => setLabels(e.target.value)}
            {...describedBy('runner-labels', true, labelErr)}
          />
        </Field>
      </div>
      <div className="button-row">
        <button type="submit" className="btn btn-primary" disabled={busy}>
          {busy ? 'Creating…' : 'Create runner'}
        </button>
        <button type="button" className="btn" onClick={onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}

function BootstrapShown({ created, onDone }: { created: Created; onDone: () => void }) {
  return (
    <section className="panel panel-highlight" aria-labelledby="boot-h">
      <h2 id="boot-h">Runner {created.runner.name} created — start it on the host</h2>
      <p>
        Run this on the host. The bootstrap key works <strong>once</strong> and expires{' '}
        <Time iso={created.bootstrap_expires_at} /> — it is not shown again.
      </p>
      <div className="codeline">
        <code data-testid="bootstrap-command">{created.command}</code>
        <CopyButton text={created.command} label="Copy command" />
      </div>
      <p className="muted" role="status" aria-live="polite">
        The runner appears as online below as soon as it connects.
      </p>
      <div className="button-row">
        <Link to={`/runners/${created.runner.id}`} className="btn">
          Open runner
        </Link>
        <button type="button" className="btn" onClick={onDone}>
          Done
        </button>
      </div>
    </section>
  );
}

export function RunnersPage() {
  const s = useSession();
  const { search } = useLocation();
  const [creating, setCreating] = useState(search.get('new') === '1');
  const [created, setCreated] = useState<Created>();
  const runners = usePoll(() => api<{ runners: Runner[] }>('GET', '/api/v1/runners'), [], 2000);
  const list = runners.data?.runners ?? [];
  return (
    <>
      <PageHeader
        title="Runners"
        sub="Hosts that run declared actions. Runners dial out to this server; they never listen on a port."
      >
        {s.can('runners:write') && !creating && created === undefined && (
          <button type="button" className="btn btn-primary" onClick={() => setCreating(true)}>
            New runner
          </button>
        )}
      </PageHeader>
      {creating && (
        <CreateRunner
          onCreated={(c) => {
            setCreating(false);
            setCreated(c);
            runners.reload();
          }}
          onCancel={() => setCreating(false)}
        />
      )}
      {created !== undefined && <BootstrapShown created={created} onDone={() => setCreated(undefined)} />}
      <ErrorBox error={runners.error} title="Could not load runners" />
      {runners.loading ? (
        <Loading what="runners" />
      ) : list.length === 0 ? (
        <Empty title="No runners yet">
          <p>Create a runner, then start it on a host with the one-time command it shows.</p>
        </Empty>
      ) : (
        <DataTable label="Runners" columns={['Name', 'Status', 'Labels', 'Version', 'Last seen', 'Packs']}>
          {list.map((r) => (
            <tr key={r.id} data-runner={r.name}>
              <td>
                <Link to={`/runners/${r.id}`}>{r.name}</Link>
              </td>
              <td>
                <Badge value={r.status} />
              </td>
              <td>
                <Labels labels={r.labels} />
              </td>
              <td>{r.version ?? <span className="muted">—</span>}</td>
              <td>{r.online ? 'now' : <Time iso={r.last_seen_at} />}</td>
              <td>{r.packs.length}</td>
            </tr>
          ))}
        </DataTable>
      )}
    </>
  );
}

function Labels({ labels }: { labels: Record<string, string> }) {
  const e = Object.entries(labels);
  if (e.length === 0) return <span className="muted">—</span>;
  return (
    <span className="labels">
      {e.map(([k, v]) => (
        <span key={k} className="label">
          {k}={v}
        </span>
      ))}
    </span>
  );
}

export function RunnerDetailPage({ id }: { id: string }) {
  const s = useSession();
  const runner = usePoll(() => api<Runner>('GET', `/api/v1/runners/${encodeURIComponent(id)}`), [id], 3000);
  const packs = usePoll(
    () => (s.can('packs:read') ? api<{ packs: Pack[] }>('GET', '/api/v1/packs') : Promise.resolve({ packs: [] })),
    [],
    5000,
  );
  const [confirm, setConfirm] = useState(false);
  const [reason, setReason] = useState('');
  const [error, setError] = useState<ApiError>();
  const r = runner.data;
  if (runner.error !== undefined && r === undefined) {
    return (
      <>
        <PageHeader title="Runner" />
        <ErrorBox
          error={runner.error}
          title={runner.error.status === 404 ? 'No such runner' : 'Could not load the runner'}
        />
        <Link to="/runners">Back to runners</Link>
      </>
    );
  }
  if (r === undefined) return <Loading what="the runner" />;
  const trustOf = (name: string, hash: string): Pack | undefined =>
    packs.data?.packs.find((p) => p.name === name && p.hash === hash);

  async function revoke(e: FormEvent): Promise<void> {
    e.preventDefault();
    setError(undefined);
    try {
      await api(
        'POST',
        `/api/v1/runners/${encodeURIComponent(id)}/revoke`,
        reason.trim() === '' ? {} : { reason: reason.trim() },
      );
      setConfirm(false);
      runner.reload();
    } catch (err) {
      setError(err as ApiError);
    }
  }

  return (
    <>
      <PageHeader title={`Runner ${r.name}`} sub={<Link to="/runners">← All runners</Link>}>
        {s.can('runners:write') && r.status !== 'revoked' && !confirm && (
          <button type="button" className="btn btn-danger" onClick={() => setConfirm(true)}>
            Revoke…
          </button>
        )}
      </PageHeader>
      {confirm && (
        <form className="panel panel-danger" onSubmit={(e) => void revoke(e)} aria-labelledby="revoke-h">
          <h2 id="revoke-h">Revoke {r.name}?</h2>
          <p>
            Its token stops working at once and its connection is closed. To use the host again, create a new runner.
          </p>
          <ErrorBox error={error} title="Could not revoke" />
          <Field id="revoke-reason" label="Reason (recorded in the audit log)">
            <input id="revoke-reason" value={reason} onChange={(e) => setReason(e.target.value)} />
          </Field>
          <div className="button-row">
            <button type="submit" className="btn btn-danger">
              Revoke runner
            </button>
            <button type="button" className="btn" onClick={() => setConfirm(false)}>
              Keep it
            </button>
          </div>
        </form>
      )}
      <dl className="facts">
        <div>
          <dt>Status</dt>
          <dd>
            <Badge value={r.status} />
          </dd>
        </div>
        <div>
          <dt>Version</dt>
          <dd>{r.version ?? '—'}</dd>
        </div>
        <div>
          <dt>Last seen</dt>
          <dd>{r.online ? 'connected now' : <Time iso={r.last_seen_at} />}</dd>
        </div>
        <div>
          <dt>Created</dt>
          <dd>
            <Time iso={r.created_at} />
          </dd>
        </div>
        <div>
          <dt>Labels</dt>
          <dd>
            <Labels labels={r.labels} />
          </dd>
        </div>
        <div>
          <dt>Capabilities</dt>
          <dd>{r.capabilities.length === 0 ? '—' : r.capabilities.join(', ')}</dd>
        </div>
        <div>
          <dt>ID</dt>
          <dd>
            <code>{r.id}</code>
          </dd>
        </div>
      </dl>
      {r.status === 'pending' && (
        <div className="alert alert-info">
          This runner has not connected yet. Start it on the host with the bootstrap command shown when it was created.
        </div>
      )}
      <h2>Packs</h2>
      {r.packs.length === 0 ? (
        <p className="muted">
          This runner has not advertised any packs{r.online ? '' : ' (it advertises them when it connects)'}.
        </p>
      ) : (
        <TableWrap label={`Packs on ${r.name}`}>
          <table>
            <thead>
              <tr>
                <th scope="col">Pack</th>
                <th scope="col">Version</th>
                <th scope="col">Hash</th>
                <th scope="col">Trust</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {r.packs.map((p) => {
                const t = trustOf(p.name, p.hash);
                return (
                  <tr key={p.name + p.hash}>
                    <td>{t === undefined ? p.name : <Link to={`/packs/${t.id}`}>{p.name}</Link>}</td>
                    <td>{p.version}</td>
                    <td>
                      <code title={p.hash}>{shortHash(p.hash)}</code>
                    </td>
                    <td>{t === undefined ? <span className="muted">unknown</span> : <Badge value={t.status} />}</td>
                    <td>
                      <button
                        type="button"
                        className="linklike"
                        onClick={() => navigate(`/actions?pack=${encodeURIComponent(p.name)}`)}
                      >
                        {p.actions.length} actions
                      </button>
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </TableWrap>
      )}
    </>
  );
}
