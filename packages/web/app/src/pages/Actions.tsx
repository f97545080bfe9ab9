import { type FormEvent, useMemo, useState } from 'react';
import { ApiError, type ArgSpec, api, type Risk, type Run, type Runner } from '../api';
import {
  describedBy,
  Empty,
  ErrorBox,
  Field,
  Link,
  Loading,
  navigate,
  PageHeader,
  RiskBadge,
  useLocation,
  usePoll,
  useSession,
} from '../lib';

interface CatalogAction {
  id: string;
  pack: string;
  title?: string;
  description?: string;
  risk?: Risk;
  args?: Record<string, ArgSpec>;
  runners: { id: string; name: string; online: boolean }[];
}

/** The action catalog: every action any runner advertises, with what the API tells about it. */
function buildCatalog(runners: Runner[]): CatalogAction[] {
  const map = new Map<string, CatalogAction>();
  for (const r of runners) {
    if (r.status === 'revoked') continue;
    for (const p of r.packs) {
      for (const a of p.actions) {
        const id = typeof a === 'string' ? a : a.id;
        let entry = map.get(id);
        if (entry === undefined) {
          entry = { id, pack: p.name, runners: [] };
          map.set(id, entry);
        }
        if (typeof a === 'object') {
          if (a.title !== undefined) entry.title = a.title;
          if (a.description !== undefined) entry.description = a.description;
          if (a.risk !== undefined) entry.risk = a.risk;
          if (a.args !== undefined) entry.args = a.args;
        }
        const risk = p.action_risks?.[id];
        if (risk !== undefined) entry.risk = risk;
        entry.runners.push({ id: r.id, name: r.name, online: r.online });
      }
    }
  }
  return [...map.values()].sort((a, b) => a.id.localeCompare(b.id));
}

type ArgType = 'string' | 'number' | 'boolean' | 'json';
interface ArgRow {
  key: number;
  name: string;
  type: ArgType;
  value: string;
}
let rowKey = 0;

function coerce(row: ArgRow): { value?: unknown; error?: string } {
  switch (row.type) {
    case 'string':
      return { value: row.value };
    case 'number': {
      if (row.value.trim() === '' || !Number.isFinite(Number(row.value))) return { error: 'enter a number' };
      return { value: Number(row.value) };
    }
    case 'boolean':
      return { value: row.value === 'true' };
    case 'json':
      try {
        return { value: JSON.parse(row.value) as unknown };
      } catch {
        return { error: 'not valid JSON' };
      }
  }
}

function specToRows(args: Record<string, ArgSpec> | undefined): ArgRow[] {
  if (args === undefined) return [];
  return Object.entries(args).map(([name, spec]) => ({
    key: rowKey++,
    name,
    type:
      spec.type === 'integer' || spec.type === 'number'
        ? 'number'
        : spec.type === 'boolean'
          ? 'boolean'
          : spec.type === 'list'
            ? 'json'
            : 'string',
    value:
      spec.default === undefined ? '' : typeof spec.default === 'string' ? spec.default : JSON.stringify(spec.default),
  }));
}

function RunForm({ action }: { action: CatalogAction }) {
  const online = action.runners.filter((r) => r.online);
  const [runner, setRunner] = useState(online[0]?.name ?? action.runners[0]?.name ?? '');
  const [rows, setRows] = useState<ArgRow[]>(() => specToRows(action.args));
  const [reason, setReason] = useState('');
  const [local, setLocal] = useState<Record<string, string>>({});
  const [error, setError] = useState<ApiError>();
  const [busy, setBusy] = useState(false);
  const typed = action.args !== undefined;

  const update = (key: number, patch: Partial<ArgRow>): void =>
    setRows((rs) => rs.map((r) => (r.key === key ? { ...r, ...patch } : r)));

  async function submit(e: FormEvent): Promise<void> {
    e.preventDefault();
    const errs: Record<string, string> = {};
    const args: Record<string, unknown> = {};
    for (const row of rows) {
      if (row.name.trim() === '') {
        if (row.value !== '') errs[`name-${row.key}`] = 'give the argument a name';
        continue;
      }
      if (!/^[a-z_][a-z0-9_]*$/i.test(row.name.trim()))
        errs[`name-${row.key}`] = 'argument names are letters, digits and _';
      const c = coerce(row);
      if (c.error !== undefined) errs[`value-${row.key}`] = c.error;
      else args[row.name.trim()] = c.value;
    }
    if (reason.trim() === '') errs['reason'] = 'say why you run it (it is recorded with the run)';
    if (runner === '') errs['runner'] = 'choose a runner';
    setLocal(errs);
    if (Object.keys(errs).length > 0) return;
    setBusy(true);
    setError(undefined);
    try {
      const run = await api<Run>('POST', '/api/v1/runs', { runner, action: action.id, args, reason: reason.trim() });
      navigate(`/runs/${run.id}`);
    } catch (err) {
      setError(err as ApiError);
      setBusy(false);
    }
  }
  const argError = (name: string): string | undefined =>
    error?.fields.find((f) => f.field === `body.args.${name}` || f.field === `args.${name}` || f.field === name)
      ?.message;
  const runnerErr =
    local['runner'] ?? error?.fieldMessage('runner') ?? (error?.code === 'runner_offline' ? error.message : undefined);
  const reasonErr = local['reason'] ?? error?.fieldMessage('reason');
  const unplaced =
    error?.fields.filter(
      (f) => !f.field.startsWith('body.args.') && !['body.runner', 'body.reason'].includes(f.field),
    ) ?? [];
  return (
    <form className="panel" onSubmit={(e) => void submit(e)} noValidate aria-labelledby="runform-h">
      <h2 id="runform-h">Run {action.id}</h2>
      {error !== undefined && (error.fields.length === 0 || unplaced.length > 0) && error.code !== 'runner_offline' && (
        <ErrorBox
          error={
            new ApiError(
              error.status,
              error.code,
              error.code === 'pack_untrusted' ? `${error.message} — review it under Packs & trust.` : error.message,
              unplaced,
            )
          }
          title="The run was not started"
        />
      )}
      <Field id="run-runner" label="Runner" error={runnerErr}>
        <select
          id="run-runner"
          value={runner}
          onChange={(e) => setRunner(e.target.value)}
          {...describedBy('run-runner', false, runnerErr)}
        >
          {action.runners.map((r) => (
            <option key={r.id} value={r.name}>
              {r.name} {r.online ? '' : '(offline)'}
            </option>
          ))}
        </select>
      </Field>
      <fieldset className="args">
        <legend>Arguments</legend>
        {!typed && (
          <p className="hint">
            This server does not publish argument schemas yet: add each argument by name. The runner validates them
            against the action's declaration and names any problem.
          </p>
        )}
        {rows.length === 0 && <p className="muted">No arguments. Defaults declared by the action apply.</p>}
        {rows.map((row, i) => {
          const nameErr = local[`name-${row.key}`];
          const valueErr = local[`value-${row.key}`] ?? argError(row.name.trim());
          const spec = action.args?.[row.name];
          return (
            <div className="arg-row" key={row.key}>
              {typed ? (
                <span className="arg-name">
                  <code>{row.name}</code>
                  {spec?.description !== undefined && <span className="hint"> {spec.description}</span>}
                </span>
              ) : (
                <Field id={`arg-name-${row.key}`} label={`Name of argument ${i + 1}`} error={nameErr}>
                  <input
                    id={`arg-name-${row.key}`}
                    value={row.name}
                    onChange={(e) => update(row.key, { name: e.target.value })}
                    {...describedBy(`arg-name-${row.key}`, false, nameErr)}
                  />
                </Field>
              )}
              {!typed && (
                <Field id={`arg-type-${row.key}`} label="Type">
                  <select
                    id={`arg-type-${row.key}`}
                    value={row.type}
                    onChange={(e) =>
                      update(row.key, {
                        type: e.target.value as ArgType,
                        value: e.target.value === 'boolean' ? 'true' : row.value,
                      })
                    }
                  >
                    <option value="string">text</option>
                    <option value="number">number</option>
                    <option value="boolean">true/false</option>
                    <option value="json">JSON (list)</option>
                  </select>
                </Field>
              )}
              <Field id={`arg-value-${row.key}`} label={typed ? `Value of ${row.name}` : 'Value'} error={valueErr}>
                {row.type === 'boolean' ? (
                  <select
                    id={`arg-value-${row.key}`}
                    value={row.value}
                    onChange={(e) => update(row.key, { value: e.target.value })}
                  >
                    <option value="true">true</option>
                    <option value="false">false</option>
                  </select>
                ) : spec?.enum !== undefined ? (
                  <select
                    id={`arg-value-${row.key}`}
                    value={row.value}
                    onChange={(e) => update(row.key, { value: e.target.value })}
                  >
                    {spec.enum.map((v) => (
                      <option key={v}>{v}</option>
                    ))}
                  </select>
                ) : (
                  <input
                    id={`arg-value-${row.key}`}
                    inputMode={row.type === 'number' ? 'numeric' : undefined}
                    value={row.value}
                    onChange={(e) => update(row.key, { value: e.target.value })}
                    {...describedBy(`arg-value-${row.key}`, false, valueErr)}
                  />
                )}
              </Field>
              {!typed && (
                <button
                  type="button"
                  className="btn btn-small btn-ghost"
                  onClick={() => setRows((rs) => rs.filter((r) => r.key !== row.key))}
                  aria-label={`Remove argument ${row.name || i + 1}`}
                >
                  Remove
                </button>
              )}
            </div>
          );
        })}
        {!typed && (
          <button
            type="button"
            className="btn btn-small"
            onClick={() => setRows((rs) => [...rs, { key: rowKey++, name: '', type: 'string', value: '' }])}
          >
            Add argument
          </button>
        )}
      </fieldset>
      <Field
        id="run-reason"
        label="Reason"
        hint="Why you run it; recorded with the run and in the audit log."
        error={reasonErr}
      >
        <input
          id="run-reason"
          value={reason}
          onChange={(e) => setReason(e.target.value)}
          {...describedBy('run-reason', true, reasonErr)}
        />
      </Field>
      <div className="button-row">
        <button type="submit" className="btn btn-primary" disabled={busy || action.runners.length === 0}>
          {busy ? 'Starting…' : 'Run'}
        </button>
      </div>
    </form>
  );
}

export function ActionsPage({ selected }: { selected: string | undefined }) {
  const s = useSession();
  const { search } = useLocation();
  const [query, setQuery] = useState(search.get('pack') ?? '');
  const runners = usePoll(() => api<{ runners: Runner[] }>('GET', '/api/v1/runners'), [], 5000);
  const catalog = useMemo(() => buildCatalog(runners.data?.runners ?? []), [runners.data]);
  const q = query.trim().toLowerCase();
  const list =
    q === ''
      ? catalog
      : catalog.filter(
          (a) =>
            a.id.includes(q) ||
            a.pack.includes(q) ||
            (a.title ?? '').toLowerCase().includes(q) ||
            (a.description ?? '').toLowerCase().includes(q),
        );
  const current = selected === undefined ? undefined : catalog.find((a) => a.id === selected);
  return (
    <>
      <PageHeader
        title="Actions"
        sub="Every declared action the connected runners offer. Agents can only request these, with typed arguments."
      />
      <ErrorBox error={runners.error} title="Could not load the catalog" />
      <div className="split">
        <div className="split-list">
          <Field id="action-search" label="Search actions">
            <input
              id="action-search"
              type="search"
              placeholder="e.g. uptime, postgres, restart"
              value={query}
              onChange={(e) => setQuery(e.target.value)}
            />
          </Field>
          <p className="muted small" role="status" aria-live="polite">
            {runners.loading ? 'Loading…' : `${list.length} of ${catalog.length} actions`}
          </p>
          {runners.loading ? (
            <Loading what="actions" />
          ) : catalog.length === 0 ? (
            <Empty title="No actions yet">
              <p>
                Actions come from the packs runners advertise. <Link to="/runners">Connect a runner</Link> first.
              </p>
            </Empty>
          ) : (
            <ul className="action-list">
              {list.slice(0, 300).map((a) => (
                <li key={a.id}>
                  <Link
                    to={`/actions/${a.id}${search.toString() === '' ? '' : `?${search}`}`}
                    className={a.id === selected ? 'active' : ''}
                    aria-current={a.id === selected ? 'page' : undefined}
                  >
                    <span className="action-id">{a.id}</span>
                    <RiskBadge risk={a.risk} />
                    <span className="muted small">
                      {a.runners.filter((r) => r.online).length}/{a.runners.length} runners online
                    </span>
                  </Link>
                </li>
              ))}
            </ul>
          )}
        </div>
        <div className="split-detail">
          {current === undefined ? (
            selected !== undefined && !runners.loading ? (
              <Empty title={`${selected} is not offered`}>
                <p>No connected runner advertises this action.</p>
              </Empty>
            ) : (
              <Empty title="Pick an action">
                <p>Choose an action on the left to see where it runs and to run it.</p>
              </Empty>
            )
          ) : (
            <>
              <h2 className="action-title">
                {current.title ?? current.id} <RiskBadge risk={current.risk} />
              </h2>
              <p>
                {current.description ?? (
                  <span className="muted">
                    Pack {current.pack}. Its description and argument schema are in the pack on the runner (`airlock
                    action show {current.id}`).
                  </span>
                )}
              </p>
              <p className="small">
                Offered by: {current.runners.map((r) => `${r.name}${r.online ? '' : ' (offline)'}`).join(', ')}
              </p>
              {s.can('runs:write') ? (
                <RunForm key={current.id} action={current} />
              ) : (
                <p className="muted">You can browse actions; running them needs the runs:write permission.</p>
              )}
            </>
          )}
        </div>
      </div>
    </>
  );
}
