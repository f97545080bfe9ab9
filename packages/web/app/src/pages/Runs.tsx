import { useEffect, useRef, useState } from 'react';
import {
  type ApiError,
  type Approval,
  api,
  FINAL_STATUSES,
  isFinal,
  type OutputLine,
  type Run,
  type Runner,
} from '../api';
import {
  Badge,
  DataTable,
  duration,
  Empty,
  ErrorBox,
  Field,
  Link,
  Loading,
  PageHeader,
  principalName,
  shortHash,
  Time,
  usePoll,
  useSession,
} from '../lib';
import { ApprovalCard } from './Approvals';

const STATUSES = ['queued', 'dispatched', 'running', ...FINAL_STATUSES];

function useRunnerNames(): (id: string) => string {
  const runners = usePoll(
    () => api<{ runners: Runner[] }>('GET', '/api/v1/runners').catch(() => ({ runners: [] as Runner[] })),
    [],
    10000,
  );
  return (id) => runners.data?.runners.find((r) => r.id === id)?.name ?? id.slice(0, 8);
}

export function RunsPage() {
  const [status, setStatus] = useState('');
  const [action, setAction] = useState('');
  const q = new URLSearchParams({ limit: '100' });
  if (status !== '') q.set('status', status);
  if (action.trim() !== '') q.set('action', action.trim());
  const runs = usePoll(() => api<{ runs: Run[] }>('GET', `/api/v1/runs?${q}`), [status, action], 2000);
  const runnerName = useRunnerNames();
  const list = runs.data?.runs ?? [];
  return (
    <>
      <PageHeader title="Runs" sub="Every requested action, newest first. This list updates live.">
        <Link to="/actions" className="btn btn-primary">
          Run an action
        </Link>
      </PageHeader>
      <div className="filters">
        <Field id="runs-status" label="Status">
          <select id="runs-status" value={status} onChange={(e) => setStatus(e.target.value)}>
            <option value="">any</option>
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {s.replace('_', ' ')}
              </option>
            ))}
          </select>
        </Field>
        <Field id="runs-action" label="Action (exact id)">
          <input
            id="runs-action"
            placeholder="linux.uptime"
            value={action}
            onChange={(e) => setAction(e.target.value)}
          />
        </Field>
      </div>
      <ErrorBox error={runs.error} title="Could not load runs" />
      {runs.loading ? (
        <Loading what="runs" />
      ) : list.length === 0 ? (
        <Empty title={status === '' && action === '' ? 'No runs yet' : 'No runs match'}>
          <p>
            Runs appear here as soon as someone (or an agent) requests one. Start one from the{' '}
            <Link to="/actions">Actions catalog</Link>.
          </p>
        </Empty>
      ) : (
        <DataTable label="Runs" columns={['Action', 'Status', 'Runner', 'Asked by', 'Reason', 'Requested', 'Duration']}>
          {list.map((r) => (
            <tr key={r.id}>
              <td>
                <Link to={`/runs/${r.id}`}>{r.action}</Link>
              </td>
              <td>
                <Badge value={r.status} />
              </td>
              <td>{runnerName(r.runner_id)}</td>
              <td>{principalName(r.requested_by)}</td>
              <td className="truncate" title={r.reason}>
                {r.reason}
              </td>
              <td>
                <Time iso={r.created_at} />
              </td>
              <td>{duration(r.duration_ms)}</td>
            </tr>
          ))}
        </DataTable>
      )}
    </>
  );
}

/** Live output and status over Server-Sent Events; falls back to the JSON endpoints when SSE fails. */
function useRunStream(
  id: string,
  initial: Run | undefined,
): { lines: OutputLine[]; live: Run | undefined; connected: boolean; ended: boolean } {
  const [lines, setLines] = useState<OutputLine[]>([]);
  const [live, setLive] = useState<Run>();
  const [connected, setConnected] = useState(false);
  const [ended, setEnded] = useState(false);
  const seen = useRef(-1);
  const hasInitial = initial !== undefined;
  useEffect(() => {
    if (!hasInitial) return;
    seen.current = -1;
    setLines([]);
    setEnded(false);
    const es = new EventSource(`/api/v1/runs/${encodeURIComponent(id)}/stream`);
    let closedByUs = false;
    es.onopen = () => setConnected(true);
    es.addEventListener('output', (ev) => {
      const l = JSON.parse((ev as MessageEvent<string>).data) as OutputLine;
      if (l.seq <= seen.current) return;
      seen.current = l.seq;
      setLines((prev) => [...prev, l]);
    });
    es.addEventListener('status', (ev) => setLive(JSON.parse((ev as MessageEvent<string>).data) as Run));
    es.addEventListener('end', () => {
      closedByUs = true;
      setEnded(true);
      setConnected(false);
      es.close();
    });
    es.onerror = () => {
      if (closedByUs) return;
      setConnected(false); // EventSource reconnects by itself; replayed lines are de-duplicated by seq
    };
    return () => {
      closedByUs = true;
      es.close();
    };
  }, [id, hasInitial]);
  return { lines, live, connected, ended };
}

/** A run waiting for approval: the approver's card right on the run page (where MCP clients send people). */
function PendingApproval({ runId, onDecided }: { runId: string; onDecided: () => void }) {
  const a = usePoll(() => api<Approval>('GET', `/api/v1/runs/${encodeURIComponent(runId)}/approval`), [runId], 5000);
  if (a.data === undefined) return null;
  return <ApprovalCard a={a.data} onDecided={onDecided} />;
}

export function RunDetailPage({ id }: { id: string }) {
  const s = useSession();
  const run = usePoll(() => api<Run>('GET', `/api/v1/runs/${encodeURIComponent(id)}`), [id], 5000);
  const stream = useRunStream(id, run.data);
  const runnerName = useRunnerNames();
  const [cancelErr, setCancelErr] = useState<ApiError>();
  const [follow, setFollow] = useState(true);
  const outRef = useRef<HTMLPreElement>(null);
  // biome-ignore lint/correctness/useExhaustiveDependencies: scroll again whenever a line arrives
  useEffect(() => {
    if (follow && outRef.current !== null) outRef.current.scrollTop = outRef.current.scrollHeight;
  }, [stream.lines.length, follow]);

  const r = stream.live ?? run.data;
  if (r === undefined) {
    return run.error !== undefined ? (
      <>
        <PageHeader title="Run" />
        <ErrorBox error={run.error} title={run.error.status === 404 ? 'No such run' : 'Could not load the run'} />
      </>
    ) : (
      <Loading what="the run" />
    );
  }
  const final = isFinal(r.status);
  async function cancel(): Promise<void> {
    setCancelErr(undefined);
    try {
      await api('POST', `/api/v1/runs/${encodeURIComponent(id)}/cancel`, { reason: 'cancelled from the dashboard' });
      run.reload();
    } catch (e) {
      setCancelErr(e as ApiError);
    }
  }
  return (
    <>
      <PageHeader title={r.action} sub={<Link to="/runs">← All runs</Link>}>
        {!final && s.can('runs:write') && (
          <button type="button" className="btn btn-danger" onClick={() => void cancel()} disabled={r.cancel_requested}>
            {r.cancel_requested ? 'Cancelling…' : 'Cancel run'}
          </button>
        )}
      </PageHeader>
      <ErrorBox error={cancelErr} title="Could not cancel" />
      {r.status === 'pending_approval' && <PendingApproval runId={r.id} onDecided={run.reload} />}
      <div className="status-line" role="status" aria-live="polite">
        <Badge value={r.status} />{' '}
        {final ? (
          <>finished {r.exit_code !== null && <>with exit code {r.exit_code}</>}</>
        ) : (
          <span className="muted">{stream.connected ? 'streaming live' : 'waiting for updates'}</span>
        )}
      </div>
      {r.error !== null && (
        <div className="alert alert-bad">
          <strong>{r.error.code.replace('_', ' ')}:</strong> {r.error.message}
        </div>
      )}
      <dl className="facts">
        <div>
          <dt>Runner</dt>
          <dd>
            <Link to={`/runners/${r.runner_id}`}>{runnerName(r.runner_id)}</Link>
          </dd>
        </div>
        <div>
          <dt>Asked by</dt>
          <dd>{principalName(r.requested_by)}</dd>
        </div>
        <div>
          <dt>Approved by</dt>
          <dd>
            {r.approved_by === undefined ? (
              <span className="muted">not reported by this server</span>
            ) : (
              principalName(r.approved_by)
            )}
          </dd>
        </div>
        <div>
          <dt>Decided by rule</dt>
          <dd>
            {r.decided_by_rule === undefined || r.decided_by_rule === null ? (
              <span className="muted">—</span>
            ) : (
              <code>{r.decided_by_rule}</code>
            )}
          </dd>
        </div>
        <div className="wide">
          <dt>Reason</dt>
          <dd>{r.reason}</dd>
        </div>
        <div>
          <dt>Requested</dt>
          <dd>
            <Time iso={r.created_at} />
          </dd>
        </div>
        <div>
          <dt>Dispatched</dt>
          <dd>
            <Time iso={r.dispatched_at} />
          </dd>
        </div>
        <div>
          <dt>Started</dt>
          <dd>
            <Time iso={r.started_at} />
          </dd>
        </div>
        <div>
          <dt>Finished</dt>
          <dd>
            <Time iso={r.finished_at} />
          </dd>
        </div>
        <div>
          <dt>Duration</dt>
          <dd>{duration(r.duration_ms)}</dd>
        </div>
        <div>
          <dt>Pack</dt>
          <dd>
            {r.pack} <code title={r.pack_hash}>{shortHash(r.pack_hash)}</code>
          </dd>
        </div>
        <div className="wide">
          <dt>Arguments</dt>
          <dd>
            <code>{JSON.stringify(r.args)}</code>
          </dd>
        </div>
        {Object.keys(r.limits).length > 0 && (
          <div className="wide">
            <dt>Limits</dt>
            <dd>
              <code>{JSON.stringify(r.limits)}</code>
            </dd>
          </div>
        )}
        {r.clamped.length > 0 && (
          <div className="wide">
            <dt>Clamped</dt>
            <dd>
              <code>{JSON.stringify(r.clamped)}</code>
            </dd>
          </div>
        )}
        <div className="wide">
          <dt>Audit event</dt>
          <dd>
            {r.audit_hash === null ? (
              <span className="muted">not yet</span>
            ) : (
              <code title={r.audit_hash}>{shortHash(r.audit_hash)}</code>
            )}
          </dd>
        </div>
      </dl>
      <div className="output-head">
        <h2 id="output-h">Output</h2>
        <label className="check">
          <input type="checkbox" checked={follow} onChange={(e) => setFollow(e.target.checked)} /> follow
        </label>
      </div>
      {/* biome-ignore lint/a11y/noNoninteractiveTabindex: a scrollable log must be reachable by keyboard (axe scrollable-region-focusable) */}
      <pre className="output" ref={outRef} role="log" aria-labelledby="output-h" tabIndex={0} data-testid="run-output">
        {stream.lines.length === 0 ? (
          <span className="muted">{final ? 'This run printed nothing.' : 'Waiting for output…'}</span>
        ) : (
          stream.lines.map((l) => (
            <span key={l.seq} className={`out-${l.stream}`}>
              {l.line}
              {l.partial ? '' : '\n'}
            </span>
          ))
        )}
      </pre>
      {r.truncated && (
        <p className="alert alert-warn">The output reached its byte limit and was cut off; the process was stopped.</p>
      )}
    </>
  );
}
