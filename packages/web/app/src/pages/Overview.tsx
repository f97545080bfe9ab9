import { api, isFinal, type Pack, type Run, type Runner } from '../api';
import { Badge, Empty, ErrorBox, Link, Loading, PageHeader, principalName, Time, usePoll, useSession } from '../lib';

function Card({
  label,
  value,
  to,
  tone,
  note,
}: {
  label: string;
  value: string | number;
  to?: string;
  tone?: string;
  note?: string;
}) {
  const body = (
    <>
      <span className="card-value">{value}</span>
      <span className="card-label">{label}</span>
      {note !== undefined && <span className="card-note">{note}</span>}
    </>
  );
  return (
    <li className={`card tone-${tone ?? 'plain'}`}>
      {to === undefined ? (
        <div className="card-inner">{body}</div>
      ) : (
        <Link to={to} className="card-inner">
          {body}
        </Link>
      )}
    </li>
  );
}

export function OverviewPage() {
  const s = useSession();
  const runners = usePoll(
    () =>
      s.can('runners:read') ? api<{ runners: Runner[] }>('GET', '/api/v1/runners') : Promise.resolve({ runners: [] }),
    [],
    3000,
  );
  const runs = usePoll(
    () => (s.can('runs:read') ? api<{ runs: Run[] }>('GET', '/api/v1/runs?limit=100') : Promise.resolve({ runs: [] })),
    [],
    3000,
  );
  const packs = usePoll(
    () =>
      s.can('packs:read')
        ? api<{ packs: Pack[] }>('GET', '/api/v1/packs?status=pending')
        : Promise.resolve({ packs: [] }),
    [],
    5000,
  );
  const approvalsAvailable = s.has('GET /api/v1/approvals');
  const approvals = usePoll(
    () =>
      approvalsAvailable
        ? api<{ approvals?: unknown[] }>('GET', '/api/v1/approvals?state=pending')
        : Promise.resolve(undefined),
    [approvalsAvailable],
    5000,
  );

  const rs = runners.data?.runners ?? [];
  const online = rs.filter((r) => r.online).length;
  const offline = rs.filter((r) => !r.online && r.status !== 'revoked').length;
  const all = runs.data?.runs ?? [];
  const inFlight = all.filter((r) => !isFinal(r.status));
  const failures = all
    .filter((r) => ['failure', 'error', 'timeout', 'validation_failed'].includes(r.status))
    .slice(0, 5);
  const pending = packs.data?.packs ?? [];
  const runnerName = (id: string): string => rs.find((r) => r.id === id)?.name ?? id.slice(0, 8);

  return (
    <>
      <PageHeader title="Overview" sub={`Organisation ${s.me.user.org.name}`} />
      <ErrorBox error={runners.error ?? runs.error ?? packs.error} title="Could not refresh" />
      <ul className="cards" aria-label="At a glance">
        <Card
          label="runners online"
          value={runners.loading ? '…' : `${online} / ${rs.filter((r) => r.status !== 'revoked').length}`}
          to="/runners"
          tone={offline > 0 ? 'warn' : 'ok'}
          note={offline > 0 ? `${offline} offline` : undefined}
        />
        <Card label="runs in flight" value={runs.loading ? '…' : inFlight.length} to="/runs" tone="info" />
        <Card
          label="approvals waiting"
          value={approvalsAvailable ? (approvals.data?.approvals?.length ?? '…') : '—'}
          to="/approvals"
          note={approvalsAvailable ? undefined : 'not in this build'}
        />
        <Card
          label="packs awaiting trust"
          value={packs.loading ? '…' : pending.length}
          to="/packs"
          tone={pending.length > 0 ? 'warn' : 'plain'}
        />
      </ul>

      {!runners.loading && rs.length === 0 && s.can('runners:write') && (
        <div className="alert alert-info">
          No runners yet. <Link to="/runners?new=1">Create a runner</Link> and start it on a host with the command it
          shows.
        </div>
      )}

      <div className="grid-2">
        <section aria-labelledby="pending-h" className="panel">
          <h2 id="pending-h">Packs awaiting trust</h2>
          {packs.loading ? (
            <Loading what="packs" />
          ) : pending.length === 0 ? (
            <p className="muted">Nothing to review. New or changed packs appear here when a runner advertises them.</p>
          ) : (
            <ul className="plain-list">
              {pending.map((p) => (
                <li key={p.id}>
                  <Link to={`/packs/${p.id}`}>
                    {p.name} {p.version}
                  </Link>{' '}
                  <span className="muted">
                    first seen <Time iso={p.first_seen_at} />
                  </span>
                </li>
              ))}
            </ul>
          )}
        </section>
        <section aria-labelledby="fail-h" className="panel">
          <h2 id="fail-h">Recent failures</h2>
          {runs.loading ? (
            <Loading what="runs" />
          ) : failures.length === 0 ? (
            <p className="muted">No failed runs among the last {all.length}.</p>
          ) : (
            <ul className="plain-list">
              {failures.map((r) => (
                <li key={r.id}>
                  <Badge value={r.status} /> <Link to={`/runs/${r.id}`}>{r.action}</Link>{' '}
                  <span className="muted">
                    on {runnerName(r.runner_id)} · <Time iso={r.created_at} />
                  </span>
                </li>
              ))}
            </ul>
          )}
        </section>
      </div>

      <section aria-labelledby="recent-h" className="panel">
        <h2 id="recent-h">Latest runs</h2>
        {runs.loading ? (
          <Loading what="runs" />
        ) : all.length === 0 ? (
          <Empty title="No runs yet">
            <p>
              Pick an action in the <Link to="/actions">Actions catalog</Link> and run it on a runner.
            </p>
          </Empty>
        ) : (
          <ul className="plain-list">
            {all.slice(0, 8).map((r) => (
              <li key={r.id}>
                <Badge value={r.status} /> <Link to={`/runs/${r.id}`}>{r.action}</Link>{' '}
                <span className="muted">
                  on {runnerName(r.runner_id)} by {principalName(r.requested_by)} · <Time iso={r.created_at} />
                </span>
              </li>
            ))}
          </ul>
        )}
      </section>
    </>
  );
}
