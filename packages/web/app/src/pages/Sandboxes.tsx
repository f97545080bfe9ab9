import { type FormEvent, useRef, useState } from 'react';
import { type ApiError, api } from '../api';
import { commaList, lines, messagesUnder } from '../forms';
import {
  Badge,
  describedBy,
  Empty,
  ErrorBox,
  Field,
  Loading,
  NotAvailable,
  PageHeader,
  shortHash,
  TableWrap,
  Time,
  usePoll,
  useSession,
} from '../lib';

/** A sandbox as `GET /api/v1/sandboxes` shows it. */
interface Sandbox {
  id: string;
  state: string;
  language_pack: string;
  image_hash: string;
  host: { id: string; name?: string };
  created_by: { type: string; id: string; name?: string };
  limits: { memory_mb: number; vcpus: number; lifetime_s: number };
  created_at: string;
  expires_at: string;
  end_reason: string | null;
  exec_count: number;
  cpu_seconds: number;
  /** Its egress: allowlist, secret NAMES and bound hosts; null: none (absent on servers before the field). */
  egress?: { allow: string[]; secrets: { name: string; hosts: string[] }[] } | null;
}

interface Host {
  id: string;
  name: string;
  backend: string;
  isolation: string;
  kvm: boolean;
  images: { pack: string; hash: string }[];
  capacity: { slots_total: number; slots_free: number; memory_free_mb: number };
  /** Whether the host can give a sandbox egress (absent on servers before egress). */
  egress?: boolean;
}

/** One egress attempt, as `GET /api/v1/sandboxes/:id/egress` shows it (from the audit trail). */
interface EgressEvent {
  time: string;
  method: string;
  host: string;
  port: number;
  addresses: string[];
  decision: 'allowed' | 'refused';
  reason: string;
  intercepted: boolean;
  secrets_used: string[];
  bytes_up: number;
  bytes_down: number;
  duration_ms: number;
  audit_hash: string;
}

/** A sandbox's egress: allowlist, secret NAMES and bound hosts (values are write-only), events. */
interface SandboxEgress {
  sandbox: string;
  enabled: boolean;
  allow: string[];
  secrets: { name: string; hosts: string[] }[];
  events: EgressEvent[];
}

interface ExecResult {
  stdout: string;
  stderr: string;
  exit_code: number;
  duration_ms: number;
  timed_out: boolean;
  truncated: boolean;
  audit_hash: string;
}

const LIVE = ['creating', 'running'];

/** "in 14 min" for a time ahead (the shared `ago` formats the past). */
function untilText(iso: string): string {
  const min = Math.max(0, Math.round((Date.parse(iso) - Date.now()) / 60_000));
  return min < 60 ? `in ${min} min` : `in ${Math.round(min / 6) / 10} h`;
}

/** Run code in one sandbox and show what came back (redacted on the host). */
function Console({ sandbox, onDone }: { sandbox: Sandbox; onDone: () => void }) {
  const [code, setCode] = useState(sandbox.language_pack === 'python' ? 'print(6*7)' : 'echo hello');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError>();
  const [history, setHistory] = useState<{ n: number; code: string; result: ExecResult }[]>([]);
  async function run(e: FormEvent): Promise<void> {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const result = await api<ExecResult>('POST', `/api/v1/sandboxes/${encodeURIComponent(sandbox.id)}/exec`, {
        code,
      });
      setHistory((h) => [{ n: (h[0]?.n ?? 0) + 1, code, result }, ...h].slice(0, 20));
      onDone();
    } catch (err) {
      setError(err as ApiError);
    } finally {
      setBusy(false);
    }
  }
  const codeErr = error?.fieldMessage('code');
  return (
    <section className="panel" aria-labelledby="console-h">
      <h2 id="console-h">
        Console · <code>{sandbox.id}</code> ({sandbox.language_pack})
      </h2>
      {error !== undefined && codeErr === undefined && <ErrorBox error={error} title="The code did not run" />}
      <form onSubmit={(e) => void run(e)} noValidate>
        <Field
          id="sandbox-code"
          label="Code"
          hint="Runs with the pack's interpreter; output is redacted."
          error={codeErr}
        >
          <textarea
            id="sandbox-code"
            rows={6}
            value={code}
            spellCheck={false}
            onChange={(e) => setCode(e.target.value)}
            {...describedBy('sandbox-code', true, codeErr)}
          />
        </Field>
        <button type="submit" className="btn btn-primary" disabled={busy || code.trim() === ''}>
          {busy ? 'Running…' : 'Run'}
        </button>
      </form>
      {history.map((h) => (
        <div key={h.n} className="console-entry" data-testid="console-entry">
          <h3 className="sr-only">Code</h3>
          <pre>{h.code}</pre>
          <p>
            <Badge value={h.result.exit_code === 0 ? 'success' : 'failure'} label={`exit ${h.result.exit_code}`} />{' '}
            {h.result.timed_out && <Badge value="timeout" />} {Math.round(h.result.duration_ms)} ms · audit{' '}
            <code>{shortHash(h.result.audit_hash)}</code>
          </p>
          {h.result.stdout !== '' && (
            <>
              <h3 className="sr-only">Standard output</h3>
              <pre data-testid="stdout">{h.result.stdout}</pre>
            </>
          )}
          {h.result.stderr !== '' && (
            <>
              <h3 className="sr-only">Standard error</h3>
              <pre className="stderr">{h.result.stderr}</pre>
            </>
          )}
        </div>
      ))}
    </section>
  );
}

/** A secret row of the create form. Its value is not here: see `CreateSandbox`. */
interface SecretRow {
  key: number;
  name: string;
  hosts: string;
}

/**
 * The create form, with an optional egress part. Secret values are write-only everywhere, and
 * the form keeps it so in the page too: the value inputs are uncontrolled (React state would
 * mirror each keystroke into the input's `value` attribute, i.e. into the DOM) and are read once,
 * at submit; a successful create unmounts them, so nothing of the value stays in the page.
 */
function CreateSandbox({
  packs,
  egressOffered,
  onCreated,
}: {
  packs: string[];
  /** Whether any connected host offers egress (a create asking for it elsewhere is refused). */
  egressOffered: boolean;
  onCreated: (s: Sandbox) => void;
}) {
  const [pack, setPack] = useState(packs.includes('python') ? 'python' : (packs[0] ?? 'python'));
  const [allow, setAllow] = useState('');
  const [secrets, setSecrets] = useState<SecretRow[]>([]);
  const nextKey = useRef(1);
  const values = useRef(new Map<number, HTMLInputElement>());
  // Which secret row each index of the last request's `egress.secrets` was (empty rows are skipped).
  const [sentRows, setSentRows] = useState<number[]>([]);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError>();
  async function submit(e: FormEvent): Promise<void> {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    const allowList = lines(allow);
    const rows = secrets
      .map((r) => ({ row: r, value: values.current.get(r.key)?.value ?? '' }))
      .filter((x) => x.row.name.trim() !== '' || x.row.hosts.trim() !== '' || x.value !== '');
    setSentRows(rows.map((x) => x.row.key));
    // No allowlist and no secret: no egress at all (the default). Anything else is sent as typed,
    // and the server names whatever is wrong.
    const egress =
      allowList.length === 0 && rows.length === 0
        ? undefined
        : {
            allow: allowList,
            ...(rows.length === 0
              ? {}
              : {
                  secrets: rows.map((x) => ({
                    name: x.row.name.trim(),
                    value: x.value,
                    hosts: commaList(x.row.hosts),
                  })),
                }),
          };
    try {
      const created = await api<Sandbox>('POST', '/api/v1/sandboxes', {
        language_pack: pack,
        ...(egress === undefined ? {} : { egress }),
      });
      setAllow('');
      setSecrets([]);
      setSentRows([]);
      onCreated(created);
    } catch (err) {
      setError(err as ApiError);
    } finally {
      setBusy(false);
    }
  }
  // Policy and placement refusals about egress (403 sandbox:egress / egress_allow, 409
  // egress_unavailable) name their field like a 400 does: `body.egress` or `body.egress.allow.<i>`.
  const allowList = lines(allow);
  const allowErr =
    [
      messagesUnder(error, 'egress.allow', (rest) => {
        const entry = rest[0] === undefined ? undefined : allowList[Number(rest[0])];
        return entry === undefined ? undefined : `"${entry}"`;
      }),
      // `egress` itself (an unknown field, egress not allowed, no host offering it) has no input
      // of its own: the allowlist stands for it.
      error?.fields.find((f) => f.field === 'body.egress')?.message,
    ]
      .filter((m) => m !== undefined)
      .join('; ') || undefined;
  const secretsErr = error?.fields.find((f) => f.field === 'body.egress.secrets')?.message;
  const secretErr = (key: number, part: 'name' | 'value' | 'hosts'): string | undefined => {
    const i = sentRows.indexOf(key);
    if (i < 0) return undefined;
    const row = secrets.find((r) => r.key === key);
    const hostList = commaList(row?.hosts ?? '');
    return messagesUnder(error, `egress.secrets.${i}.${part}`, (rest) => {
      if (part !== 'hosts' || rest[0] === undefined) return undefined;
      const h = hostList[Number(rest[0])];
      return h === undefined ? undefined : `"${h}"`;
    });
  };
  const claimed = error?.fields.some((f) => f.field === 'body.egress' || f.field.startsWith('body.egress.')) ?? false;
  return (
    <form className="panel" onSubmit={(e) => void submit(e)} noValidate aria-labelledby="new-sandbox-h">
      <h2 id="new-sandbox-h">New sandbox</h2>
      {!claimed && <ErrorBox error={error} title="Could not create the sandbox" />}
      <Field id="sandbox-pack" label="Language pack">
        <select id="sandbox-pack" value={pack} onChange={(e) => setPack(e.target.value)}>
          {packs.map((p) => (
            <option key={p} value={p}>
              {p}
            </option>
          ))}
        </select>
      </Field>
      <fieldset data-testid="sandbox-egress-form">
        <legend>Network egress (optional)</legend>
        <p className="hint">
          Off unless you list destinations. The code then reaches exactly these through a proxy on the host, if the
          organisation's sandbox policy allows each one.
          {!egressOffered && ' No connected sandbox host offers egress right now.'}
        </p>
        <Field
          id="sandbox-egress-allow"
          label="Allowed destinations"
          hint="host:port, one per line, e.g. api.example.com:443 or *.pypi.org:443"
          error={allowErr}
        >
          <textarea
            id="sandbox-egress-allow"
            rows={3}
            value={allow}
            spellCheck={false}
            onChange={(e) => setAllow(e.target.value)}
            {...describedBy('sandbox-egress-allow', true, allowErr)}
          />
        </Field>
        {secrets.map((r, n) => {
          const id = `sandbox-secret-${r.key}`;
          const nameErr = secretErr(r.key, 'name');
          const valueErr = secretErr(r.key, 'value');
          const hostsErr = secretErr(r.key, 'hosts');
          const update = (patch: Partial<SecretRow>) =>
            setSecrets((all) => all.map((x) => (x.key === r.key ? { ...x, ...patch } : x)));
          return (
            <fieldset key={r.key} data-testid="sandbox-secret">
              <legend>Secret {n + 1}</legend>
              <div className="form-row">
                <Field id={`${id}-name`} label="Name" hint="the environment variable the code reads" error={nameErr}>
                  <input
                    id={`${id}-name`}
                    value={r.name}
                    spellCheck={false}
                    autoComplete="off"
                    onChange={(e) => update({ name: e.target.value })}
                    {...describedBy(`${id}-name`, true, nameErr)}
                  />
                </Field>
                <Field
                  id={`${id}-value`}
                  label="Value"
                  hint="write-only: sent to the host, never shown again"
                  error={valueErr}
                >
                  <input
                    id={`${id}-value`}
                    type="password"
                    autoComplete="new-password"
                    ref={(el) => {
                      if (el === null) values.current.delete(r.key);
                      else values.current.set(r.key, el);
                    }}
                    {...describedBy(`${id}-value`, true, valueErr)}
                  />
                </Field>
                <Field
                  id={`${id}-hosts`}
                  label="Bound hosts"
                  hint="comma-separated hosts of allowed destinations"
                  error={hostsErr}
                >
                  <input
                    id={`${id}-hosts`}
                    value={r.hosts}
                    spellCheck={false}
                    autoComplete="off"
                    onChange={(e) => update({ hosts: e.target.value })}
                    {...describedBy(`${id}-hosts`, true, hostsErr)}
                  />
                </Field>
              </div>
              <button
                type="button"
                className="btn btn-small"
                onClick={() => setSecrets((all) => all.filter((x) => x.key !== r.key))}
              >
                Remove<span className="sr-only"> secret {n + 1}</span>
              </button>
            </fieldset>
          );
        })}
        {secretsErr !== undefined && (
          <p className="field-error" id="sandbox-secrets-error">
            {secretsErr}
          </p>
        )}
        <button
          type="button"
          className="btn btn-small"
          onClick={() => setSecrets((all) => [...all, { key: nextKey.current++, name: '', hosts: '' }])}
        >
          Add a secret
        </button>
      </fieldset>
      <button type="submit" className="btn btn-primary" disabled={busy}>
        {busy ? 'Booting…' : 'Create sandbox'}
      </button>
    </form>
  );
}

/** "512 B", "2.0 KiB", "1.5 MiB". */
function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/**
 * A sandbox's egress: what it may reach, which secrets are bound where (names only: values are
 * write-only and the API never returns them), and every connection attempt as audited, newest
 * first, polled like the other live lists.
 */
function EgressPanel({ id }: { id: string }) {
  const eg = usePoll(() => api<SandboxEgress>('GET', `/api/v1/sandboxes/${encodeURIComponent(id)}/egress`), [id], 4000);
  // A server from before egress: say nothing rather than fail.
  if (eg.error?.notAvailable === true) return null;
  const d = eg.data;
  const events = [...(d?.events ?? [])].reverse();
  return (
    <section className="panel" aria-labelledby="egress-h" data-testid="sandbox-egress">
      <h2 id="egress-h">
        Egress · <code>{id}</code>
      </h2>
      <ErrorBox error={eg.error} title="Could not load the egress of this sandbox" />
      {d === undefined ? (
        eg.loading && <Loading what="egress" />
      ) : !d.enabled ? (
        <p className="muted">No egress: this sandbox has no network at all.</p>
      ) : (
        <>
          <dl className="facts">
            <div>
              <dt>Allowed destinations</dt>
              <dd data-testid="egress-allow">
                {d.allow.map((a, i) => (
                  <span key={a}>
                    {i > 0 && ', '}
                    <code>{a}</code>
                  </span>
                ))}
              </dd>
            </div>
            <div>
              <dt>Secrets</dt>
              <dd data-testid="egress-secrets">
                {d.secrets.length === 0
                  ? 'none'
                  : d.secrets.map((x, i) => (
                      <span key={x.name}>
                        {i > 0 && '; '}
                        <code>{x.name}</code> for {x.hosts.join(', ')}
                      </span>
                    ))}
              </dd>
            </div>
          </dl>
          <p className="hint">
            Secret values are write-only: the host swaps them into requests to their bound hosts; the guest, this page
            and the audit log only ever see names.
          </p>
          {events.length === 0 ? (
            <p className="muted">No connection attempts yet.</p>
          ) : (
            <TableWrap label="Egress events">
              <table data-testid="egress-events">
                <caption className="sr-only">Egress events of {id}, newest first</caption>
                <thead>
                  <tr>
                    <th scope="col">Time</th>
                    <th scope="col">Method</th>
                    <th scope="col">Destination</th>
                    <th scope="col">Decision</th>
                    <th scope="col">Reason</th>
                    <th scope="col">Bytes sent / received</th>
                  </tr>
                </thead>
                <tbody>
                  {events.map((e) => (
                    <tr key={e.audit_hash} data-decision={e.decision}>
                      <td className="nowrap">
                        <Time iso={e.time} />
                      </td>
                      <td>{e.method}</td>
                      <td className="nowrap">
                        <code>{`${e.host.includes(':') ? `[${e.host}]` : e.host}:${e.port}`}</code>
                        {e.addresses.length > 0 && <div className="small muted">{e.addresses.join(', ')}</div>}
                      </td>
                      <td>
                        <Badge value={e.decision === 'allowed' ? 'success' : 'failure'} label={e.decision} />
                      </td>
                      <td>
                        {e.reason}
                        {(e.intercepted || e.secrets_used.length > 0) && (
                          <div className="small muted">
                            {e.intercepted && 'TLS intercepted'}
                            {e.intercepted && e.secrets_used.length > 0 && ' · '}
                            {e.secrets_used.length > 0 && `secrets: ${e.secrets_used.join(', ')}`}
                          </div>
                        )}
                      </td>
                      <td className="nowrap">
                        {bytes(e.bytes_up)} / {bytes(e.bytes_down)}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </TableWrap>
          )}
        </>
      )}
    </section>
  );
}

/** Sandboxes under the control plane: list, create, a console to run code, destroy. */
export function SandboxesPage() {
  const s = useSession();
  const list = usePoll(() => api<{ sandboxes: Sandbox[] }>('GET', '/api/v1/sandboxes'), [], 5000);
  const hosts = usePoll(() => api<{ hosts: Host[] }>('GET', '/api/v1/sandboxes/hosts'), [], 10_000);
  const [selected, setSelected] = useState<string>();
  const [error, setError] = useState<ApiError>();
  if (list.error?.notAvailable === true) {
    return (
      <>
        <PageHeader title="Sandboxes" />
        <NotAvailable what="Sandboxes" />
      </>
    );
  }
  const canWrite = s.can('runs:write');
  const packs = [...new Set((hosts.data?.hosts ?? []).flatMap((h) => h.images.map((i) => i.pack)))].sort();
  const egressOffered = (hosts.data?.hosts ?? []).some((h) => h.egress === true);
  const shown = list.data?.sandboxes.find((x) => x.id === selected);
  const current = shown?.state === 'running' ? shown : undefined;
  async function destroy(id: string): Promise<void> {
    setError(undefined);
    try {
      await api('DELETE', `/api/v1/sandboxes/${encodeURIComponent(id)}`);
      if (selected === id) setSelected(undefined);
      list.reload();
    } catch (err) {
      setError(err as ApiError);
    }
  }
  return (
    <>
      <PageHeader
        title="Sandboxes"
        sub="MicroVMs for arbitrary code, placed on sandbox hosts under policy, quotas and audit. You see yours; admins see all."
      />
      <ErrorBox error={list.error ?? error} />
      {hosts.data !== undefined && (
        <p className="muted" data-testid="sandbox-hosts">
          {hosts.data.hosts.length === 0
            ? 'No sandbox host is connected: start one with airlock sandbox serve --server URL.'
            : hosts.data.hosts
                .map(
                  (h) =>
                    `${h.name}: ${h.backend} (${h.isolation}${h.kvm ? ', KVM' : ''}${h.egress === true ? ', egress' : ''}), ${h.capacity.slots_free}/${h.capacity.slots_total} slots free`,
                )
                .join(' · ')}
        </p>
      )}
      {canWrite && packs.length > 0 && (
        <CreateSandbox
          packs={packs}
          egressOffered={egressOffered}
          onCreated={(sb) => {
            setSelected(sb.id);
            list.reload();
          }}
        />
      )}
      {list.loading && list.data === undefined ? (
        <Loading what="sandboxes" />
      ) : (list.data?.sandboxes ?? []).length === 0 ? (
        <Empty title="No sandboxes yet" />
      ) : (
        <TableWrap label="Sandboxes">
          <table>
            <caption className="sr-only">Sandboxes</caption>
            <thead>
              <tr>
                <th scope="col">Sandbox</th>
                <th scope="col">State</th>
                <th scope="col">Pack</th>
                <th scope="col">Host</th>
                <th scope="col">Egress</th>
                <th scope="col">Created by</th>
                <th scope="col">Expires</th>
                <th scope="col">Execs</th>
                <th scope="col">
                  <span className="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {(list.data?.sandboxes ?? []).map((x) => (
                <tr key={x.id}>
                  <td>
                    <code>{x.id}</code>
                  </td>
                  <td>
                    <Badge value={x.state} />
                  </td>
                  <td>
                    {x.language_pack} <span className="muted">{shortHash(x.image_hash)}</span>
                  </td>
                  <td>{x.host.name ?? x.host.id}</td>
                  <td data-testid="sandbox-egress-cell">
                    {x.egress ? (
                      <span title={`may reach ${x.egress.allow.join(', ') || 'nothing yet'}`}>
                        {/* Warn tone: this sandbox has a network, unlike the default. */}
                        <span className="badge tone-warn">egress</span>{' '}
                        <span className="muted">
                          {x.egress.allow.length} host{x.egress.allow.length === 1 ? '' : 's'}
                          {x.egress.secrets.length > 0 &&
                            `, ${x.egress.secrets.length} secret${x.egress.secrets.length === 1 ? '' : 's'}`}
                        </span>
                      </span>
                    ) : (
                      <span className="muted">{x.egress === null ? 'none' : '—'}</span>
                    )}
                  </td>
                  <td>{x.created_by.name ?? x.created_by.id}</td>
                  <td>
                    {LIVE.includes(x.state) ? (
                      <time dateTime={x.expires_at}>{untilText(x.expires_at)}</time>
                    ) : (
                      (x.end_reason ?? '—')
                    )}
                  </td>
                  <td>
                    {x.exec_count} <span className="muted">({x.cpu_seconds} CPU-s)</span>
                  </td>
                  <td>
                    {x.state === 'running' && canWrite ? (
                      <button
                        type="button"
                        className="btn"
                        onClick={() => setSelected(x.id)}
                        aria-label={`Open console for ${x.id}`}
                      >
                        Console
                      </button>
                    ) : (
                      <button
                        type="button"
                        className="btn"
                        onClick={() => setSelected(x.id)}
                        aria-label={`Show egress of ${x.id}`}
                      >
                        Egress
                      </button>
                    )}{' '}
                    {LIVE.includes(x.state) || x.state === 'lost'
                      ? canWrite && (
                          <button
                            type="button"
                            className="btn btn-danger"
                            onClick={() => void destroy(x.id)}
                            aria-label={`Destroy ${x.id}`}
                          >
                            Destroy
                          </button>
                        )
                      : null}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableWrap>
      )}
      {current !== undefined && canWrite && <Console key={current.id} sandbox={current} onDone={list.reload} />}
      {shown !== undefined && <EgressPanel key={shown.id} id={shown.id} />}
    </>
  );
}
