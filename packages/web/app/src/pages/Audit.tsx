import { type FormEvent, useState } from 'react';
import { ApiError, type AuditEvent, api, saveBlob } from '../api';
import {
  Badge,
  DataTable,
  Empty,
  ErrorBox,
  Field,
  Loading,
  NotAvailable,
  PageHeader,
  principalName,
  shortHash,
  Time,
  usePoll,
  useSession,
} from '../lib';

interface Verify {
  ok: boolean;
  count?: number;
  head?: { seq: number; hash: string } | null;
  reason?: string;
  message?: string;
  checkpoints: { count: number; latest: { seq: number; time: string } | null };
  runners: Record<string, unknown>[];
}

const FILTERS = ['q', 'kind', 'actor', 'runner', 'action'] as const;

export function AuditPage() {
  const s = useSession();
  const available = s.has('GET /api/v1/audit/events');
  const [form, setForm] = useState<Record<string, string>>({});
  const [applied, setApplied] = useState<Record<string, string>>({});
  const [open, setOpen] = useState<number>();
  const [exporting, setExporting] = useState<string>();
  const [exportErr, setExportErr] = useState<ApiError>();
  const params = new URLSearchParams({ limit: '100' });
  for (const [k, v] of Object.entries(applied))
    if (v.trim() !== '') params.set(k, k === 'from' || k === 'to' ? new Date(v).toISOString() : v.trim());
  const events = usePoll(
    () =>
      available
        ? api<{ events: AuditEvent[]; next_cursor: string | null }>('GET', `/api/v1/audit/events?${params}`)
        : Promise.resolve(undefined),
    [available, params.toString()],
    5000,
  );
  const verify = usePoll(
    () => (s.has('GET /api/v1/audit/verify') ? api<Verify>('GET', '/api/v1/audit/verify') : Promise.resolve(undefined)),
    [],
    30000,
  );
  if (!available) {
    return (
      <>
        <PageHeader title="Audit" />
        <NotAvailable what="The audit log" />
      </>
    );
  }
  function apply(e: FormEvent): void {
    e.preventDefault();
    setApplied({ ...form });
  }
  async function exportAll(format: 'ndjson' | 'cef'): Promise<void> {
    setExporting(format);
    setExportErr(undefined);
    try {
      const parts: string[] = [];
      let cursor: string | null = null;
      for (let page = 0; page < 1000; page++) {
        const q = new URLSearchParams({ format, limit: '10000' });
        if (cursor !== null) q.set('cursor', cursor);
        const res = await fetch(`/api/v1/audit/export?${q}`, { credentials: 'same-origin' });
        if (!res.ok) {
          const body = (await res.json().catch(() => ({}))) as { error?: { code?: string; message?: string } };
          throw new ApiError(
            res.status,
            body.error?.code ?? 'export',
            body.error?.message ?? `export failed (${res.status})`,
          );
        }
        parts.push(await res.text());
        cursor = res.headers.get('x-next-cursor');
        if (res.headers.get('x-has-more') !== 'true' || cursor === null || cursor === '') break;
      }
      const stamp = new Date().toISOString().replace(/[:.]/g, '-');
      saveBlob(
        new Blob(parts, { type: format === 'cef' ? 'text/plain' : 'application/x-ndjson' }),
        `airlock-audit-${stamp}.${format === 'cef' ? 'cef' : 'ndjson'}`,
      );
    } catch (e) {
      setExportErr(e as ApiError);
    } finally {
      setExporting(undefined);
    }
  }
  const v = verify.data;
  const list = events.data?.events ?? [];
  return (
    <>
      <PageHeader title="Audit" sub="Every attempt and every decision, in a hash chain the server verifies.">
        {s.has('GET /api/v1/audit/export') && (
          <>
            <button
              type="button"
              className="btn"
              onClick={() => void exportAll('ndjson')}
              disabled={exporting !== undefined}
            >
              {exporting === 'ndjson' ? 'Exporting…' : 'Export NDJSON'}
            </button>
            <button
              type="button"
              className="btn"
              onClick={() => void exportAll('cef')}
              disabled={exporting !== undefined}
            >
              {exporting === 'cef' ? 'Exporting…' : 'Export CEF'}
            </button>
          </>
        )}
      </PageHeader>
      <ErrorBox error={exportErr} title="Export failed" />
      {v !== undefined && (
        <div className={`alert ${v.ok ? 'alert-ok' : 'alert-bad'}`} role="status" data-testid="chain-status">
          {v.ok ? (
            <>
              <strong>Chain verified:</strong> {v.count ?? 0} events
              {v.head != null && <>, head {shortHash(v.head.hash)}</>}; {v.checkpoints.count} signed checkpoints
              {v.runners.length > 0 && <>; {v.runners.length} runner mirrors checked</>}.
            </>
          ) : (
            <>
              <strong>Chain verification FAILED:</strong> {v.message ?? v.reason ?? 'the chain does not verify'}
            </>
          )}
        </div>
      )}
      <form className="filters" onSubmit={apply} aria-label="Search the audit log">
        {FILTERS.map((f) => (
          <Field key={f} id={`audit-${f}`} label={f === 'q' ? 'Search text' : f}>
            <input
              id={`audit-${f}`}
              type={f === 'q' ? 'search' : 'text'}
              value={form[f] ?? ''}
              onChange={(e) => setForm({ ...form, [f]: e.target.value })}
            />
          </Field>
        ))}
        <Field id="audit-status" label="status">
          <select
            id="audit-status"
            value={form['status'] ?? ''}
            onChange={(e) => setForm({ ...form, status: e.target.value })}
          >
            <option value="">any</option>
            {['success', 'failure', 'validation_failed', 'error', 'timeout', 'cancelled'].map((x) => (
              <option key={x}>{x}</option>
            ))}
          </select>
        </Field>
        <Field id="audit-from" label="from">
          <input
            id="audit-from"
            type="datetime-local"
            value={form['from'] ?? ''}
            onChange={(e) => setForm({ ...form, from: e.target.value })}
          />
        </Field>
        <Field id="audit-to" label="to">
          <input
            id="audit-to"
            type="datetime-local"
            value={form['to'] ?? ''}
            onChange={(e) => setForm({ ...form, to: e.target.value })}
          />
        </Field>
        <div className="button-row">
          <button type="submit" className="btn btn-primary">
            Search
          </button>
          <button
            type="button"
            className="btn"
            onClick={() => {
              setForm({});
              setApplied({});
            }}
          >
            Clear
          </button>
        </div>
      </form>
      <ErrorBox error={events.error} title="Search failed" />
      {events.loading ? (
        <Loading what="events" />
      ) : list.length === 0 ? (
        <Empty title="No events match">
          <p>Change or clear the filters.</p>
        </Empty>
      ) : (
        <DataTable label="Audit events" columns={['#', 'When', 'Kind', 'Who', 'Runner', 'Status', 'Detail']}>
          {list.map((e) => (
            <AuditRow
              key={e.seq}
              e={e}
              open={open === e.seq}
              toggle={() => setOpen(open === e.seq ? undefined : e.seq)}
            />
          ))}
        </DataTable>
      )}
    </>
  );
}

function AuditRow({ e, open, toggle }: { e: AuditEvent; open: boolean; toggle: () => void }) {
  return (
    <>
      <tr>
        <td>{e.seq}</td>
        <td>
          <Time iso={e.time} />
        </td>
        <td>
          <code>{e.kind}</code>
          {e.action !== null && e.action !== e.kind && <span className="muted"> {e.action}</span>}
        </td>
        <td>{principalName(e.principal)}</td>
        <td>{e.runner ?? '—'}</td>
        <td>
          <Badge value={e.status} />
        </td>
        <td>
          <button type="button" className="btn btn-small" aria-expanded={open} onClick={toggle}>
            {open ? 'Hide' : 'Show'}
            <span className="sr-only"> event {e.seq}</span>
          </button>
        </td>
      </tr>
      {open && (
        <tr className="detail-row">
          <td colSpan={7}>
            <pre className="json">{JSON.stringify(e, null, 2)}</pre>
          </td>
        </tr>
      )}
    </>
  );
}
