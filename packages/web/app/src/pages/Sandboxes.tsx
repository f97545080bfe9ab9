import { type FormEvent, useState } from 'react';
import { type ApiError, api } from '../api';
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
}

interface Host {
  id: string;
  name: string;
  backend: string;
  isolation: string;
  kvm: boolean;
  images: { pack: string; hash: string }[];
  capacity: { slots_total: number; slots_free: number; memory_free_mb: number };
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

function CreateSandbox({ packs, onCreated }: { packs: string[]; onCreated: (s: Sandbox) => void }) {
  const [pack, setPack] = useState(packs.includes('python') ? 'python' : (packs[0] ?? 'python'));
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError>();
  async function submit(e: FormEvent): Promise<void> {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      onCreated(await api<Sandbox>('POST', '/api/v1/sandboxes', { language_pack: pack }));
    } catch (err) {
      setError(err as ApiError);
    } finally {
      setBusy(false);
    }
  }
  return (
    <form className="panel" onSubmit={(e) => void submit(e)} aria-labelledby="new-sandbox-h">
      <h2 id="new-sandbox-h">New sandbox</h2>
      <ErrorBox error={error} title="Could not create the sandbox" />
      <Field id="sandbox-pack" label="Language pack">
        <select id="sandbox-pack" value={pack} onChange={(e) => setPack(e.target.value)}>
          {packs.map((p) => (
            <option key={p} value={p}>
              {p}
            </option>
          ))}
        </select>
      </Field>
      <button type="submit" className="btn btn-primary" disabled={busy}>
        {busy ? 'Booting…' : 'Create sandbox'}
      </button>
    </form>
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
  const current = list.data?.sandboxes.find((x) => x.id === selected && x.state === 'running');
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
                    `${h.name}: ${h.backend} (${h.isolation}${h.kvm ? ', KVM' : ''}), ${h.capacity.slots_free}/${h.capacity.slots_total} slots free`,
                )
                .join(' · ')}
        </p>
      )}
      {canWrite && packs.length > 0 && (
        <CreateSandbox
          packs={packs}
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
                    {x.state === 'running' && canWrite && (
                      <button
                        type="button"
                        className="btn"
                        onClick={() => setSelected(x.id)}
                        aria-label={`Open console for ${x.id}`}
                      >
                        Console
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
      {current !== undefined && <Console key={current.id} sandbox={current} onDone={list.reload} />}
    </>
  );
}
