import { type FormEvent, useState } from 'react';
import { type ApiError, api, type Pack, type PackDetail, type Runner } from '../api';
import { Segmented } from '../forms';
import {
  Badge,
  DataTable,
  Empty,
  ErrorBox,
  Field,
  Link,
  Loading,
  PageHeader,
  shortHash,
  Time,
  usePoll,
  useSession,
} from '../lib';

const ORDER: Record<string, number> = { pending: 0, trusted: 1, rejected: 2 };

export function PacksPage() {
  const [filter, setFilter] = useState<'all' | 'pending' | 'trusted' | 'rejected'>('all');
  const packs = usePoll(() => api<{ packs: Pack[] }>('GET', '/api/v1/packs'), [], 3000);
  const runners = usePoll(
    () => api<{ runners: Runner[] }>('GET', '/api/v1/runners').catch(() => ({ runners: [] as Runner[] })),
    [],
    10000,
  );
  const all = [...(packs.data?.packs ?? [])].sort(
    (a, b) => (ORDER[a.status] ?? 3) - (ORDER[b.status] ?? 3) || a.name.localeCompare(b.name),
  );
  const list = filter === 'all' ? all : all.filter((p) => p.status === filter);
  const pendingCount = all.filter((p) => p.status === 'pending').length;
  const runnerName = (id: string | null): string =>
    id === null ? '—' : (runners.data?.runners.find((r) => r.id === id)?.name ?? id.slice(0, 8));
  return (
    <>
      <PageHeader
        title="Packs & trust"
        sub="A runner only runs actions of a pack whose exact content hash you trust. New or changed packs wait here for review."
      />
      <Segmented
        name="pack-filter"
        legend="Show"
        value={filter}
        onChange={setFilter}
        options={['all', 'pending', 'trusted', 'rejected'] as const}
        label={(f) => (f === 'pending' ? `awaiting trust (${pendingCount})` : f)}
      />
      <ErrorBox error={packs.error} title="Could not load packs" />
      {packs.loading ? (
        <Loading what="packs" />
      ) : list.length === 0 ? (
        <Empty title={filter === 'pending' ? 'Nothing awaits trust' : 'No packs here'}>
          <p>
            Packs appear when a runner connects and advertises them. Changed packs (a new hash) show up as awaiting
            trust.
          </p>
        </Empty>
      ) : (
        <DataTable label="Pack versions" columns={['Pack', 'Version', 'Hash', 'Trust', 'First seen', 'Decided']}>
          {list.map((p) => (
            <tr key={p.id} data-pack={p.name} data-status={p.status}>
              <td>
                <Link to={`/packs/${p.id}`}>{p.name}</Link>
              </td>
              <td>{p.version}</td>
              <td>
                <code title={p.hash}>{shortHash(p.hash)}</code>
              </td>
              <td>
                <Badge value={p.status} label={p.status === 'pending' ? 'awaiting trust' : p.status} />
              </td>
              <td>
                <Time iso={p.first_seen_at} /> <span className="muted">on {runnerName(p.first_seen_runner)}</span>
              </td>
              <td>
                {p.decided_at === null ? (
                  <span className="muted">—</span>
                ) : (
                  <>
                    {p.decided_by} · <Time iso={p.decided_at} />
                  </>
                )}
              </td>
            </tr>
          ))}
        </DataTable>
      )}
    </>
  );
}

function DiffView({ diff }: { diff: string }) {
  return (
    <pre className="diff">
      {diff.split('\n').map((l, i) => {
        const kind = l.startsWith('+ ') ? 'add' : l.startsWith('- ') ? 'del' : 'ctx';
        return (
          // biome-ignore lint/suspicious/noArrayIndexKey: lines have no identity
          <span key={i} className={`diff-${kind}`}>
            <span className="sr-only">{kind === 'add' ? 'added: ' : kind === 'del' ? 'removed: ' : ''}</span>
            {l}
            {'\n'}
          </span>
        );
      })}
    </pre>
  );
}

export function PackDetailPage({ id }: { id: string }) {
  const s = useSession();
  const pack = usePoll(() => api<PackDetail>('GET', `/api/v1/packs/${encodeURIComponent(id)}`), [id], 4000);
  const [comment, setComment] = useState('');
  const [error, setError] = useState<ApiError>();
  const [busy, setBusy] = useState(false);
  const [showUnchanged, setShowUnchanged] = useState(false);
  const p = pack.data;
  if (p === undefined) {
    return pack.error !== undefined ? (
      <>
        <PageHeader title="Pack" />
        <ErrorBox
          error={pack.error}
          title={pack.error.status === 404 ? 'No such pack version' : 'Could not load the pack'}
        />
      </>
    ) : (
      <Loading what="the pack" />
    );
  }
  async function decide(decision: 'trust' | 'reject', e?: FormEvent): Promise<void> {
    e?.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      await api(
        'POST',
        `/api/v1/packs/${encodeURIComponent(id)}/${decision}`,
        comment.trim() === '' ? {} : { comment: comment.trim() },
      );
      setComment('');
      pack.reload();
    } catch (err) {
      setError(err as ApiError);
    } finally {
      setBusy(false);
    }
  }
  const changed = p.files.filter((f) => f.change !== 'unchanged');
  const unchanged = p.files.filter((f) => f.change === 'unchanged');
  return (
    <>
      <PageHeader title={`Pack ${p.name} ${p.version}`} sub={<Link to="/packs">← All packs</Link>} />
      <dl className="facts">
        <div>
          <dt>Trust</dt>
          <dd>
            <Badge value={p.status} label={p.status === 'pending' ? 'awaiting trust' : p.status} />
          </dd>
        </div>
        <div className="wide">
          <dt>New hash</dt>
          <dd>
            <code className="hash" data-testid="new-hash">
              {p.hash}
            </code>
          </dd>
        </div>
        <div className="wide">
          <dt>{p.base === null ? 'Trusted before' : `Trusted hash (${p.base.version})`}</dt>
          <dd>
            {p.base === null ? (
              <span className="muted">none — this pack was never trusted here</span>
            ) : (
              <code className="hash" data-testid="old-hash">
                {p.base.hash}
              </code>
            )}
          </dd>
        </div>
        {p.decided_at !== null && (
          <div className="wide">
            <dt>Decision</dt>
            <dd>
              {p.status} by {p.decided_by} <Time iso={p.decided_at} />
              {p.comment !== null && <> — “{p.comment}”</>}
            </dd>
          </div>
        )}
      </dl>

      {p.status === 'pending' && s.can('packs:trust') && (
        <form className="panel panel-highlight" onSubmit={(e) => void decide('trust', e)} aria-labelledby="decide-h">
          <h2 id="decide-h">Decide</h2>
          <p>Trusting lets runners that advertise exactly this hash run its actions. Rejecting keeps them blocked.</p>
          <ErrorBox error={error} title="Could not record the decision" />
          <Field
            id="decision-comment"
            label="Comment (recorded in the audit log)"
            error={error?.fieldMessage('comment')}
          >
            <textarea id="decision-comment" rows={2} value={comment} onChange={(e) => setComment(e.target.value)} />
          </Field>
          <div className="button-row">
            <button type="submit" className="btn btn-primary" disabled={busy}>
              Trust this hash
            </button>
            <button type="button" className="btn btn-danger" disabled={busy} onClick={() => void decide('reject')}>
              Reject
            </button>
          </div>
        </form>
      )}

      <h2>
        Changes {p.base === null ? '(all files are new)' : `against ${p.base.version} (${shortHash(p.base.hash)})`}
      </h2>
      {changed.length === 0 ? (
        <p className="muted">No file differs from the trusted version.</p>
      ) : (
        <ul className="files">
          {changed.map((f) => (
            <li key={f.path} className="file">
              <details open={changed.length <= 6}>
                <summary>
                  <Badge
                    value={f.change === 'removed' ? 'rejected' : f.change === 'added' ? 'success' : 'pending'}
                    label={f.change}
                  />{' '}
                  <code>{f.path}</code>
                </summary>
                <p className="muted small">
                  {f.old_sha256 !== null && <>old {shortHash(f.old_sha256)} </>}
                  {f.new_sha256 !== null && <>new {shortHash(f.new_sha256)}</>}
                </p>
                {f.diff === null ? (
                  <p className="muted">
                    The file contents are not available yet (the runner sends them after it connects).
                  </p>
                ) : (
                  <DiffView diff={f.diff} />
                )}
              </details>
            </li>
          ))}
        </ul>
      )}
      {unchanged.length > 0 && (
        <p>
          <button
            type="button"
            className="linklike"
            aria-expanded={showUnchanged}
            onClick={() => setShowUnchanged((v) => !v)}
          >
            {showUnchanged ? 'Hide' : 'Show'} {unchanged.length} unchanged files
          </button>
        </p>
      )}
      {showUnchanged && (
        <ul className="plain-list">
          {unchanged.map((f) => (
            <li key={f.path}>
              <code>{f.path}</code>
            </li>
          ))}
        </ul>
      )}
    </>
  );
}
