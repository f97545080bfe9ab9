import { type FormEvent, useState } from 'react';
import { type ApiError, type ApiKey, api, type Permission, type User } from '../api';
import {
  Badge,
  CopyButton,
  describedBy,
  ErrorBox,
  Field,
  Loading,
  NotAvailable,
  PageHeader,
  TableWrap,
  Time,
  usePoll,
  useSession,
} from '../lib';

const ALL_SCOPES: Permission[] = [
  'runs:read',
  'runs:write',
  'runners:read',
  'runners:write',
  'packs:read',
  'packs:trust',
  'audit:read',
  'users:read',
  'users:write',
  'keys:write',
];

function PasswordForm() {
  const s = useSession();
  const [current, setCurrent] = useState('');
  const [next, setNext] = useState('');
  const [error, setError] = useState<ApiError>();
  const [done, setDone] = useState(false);
  async function submit(e: FormEvent): Promise<void> {
    e.preventDefault();
    setError(undefined);
    setDone(false);
    try {
      await api('POST', '/api/v1/auth/password', { current, new: next });
      setCurrent('');
      setNext('');
      setDone(true);
      await s.refreshMe();
    } catch (err) {
      setError(err as ApiError);
    }
  }
  const curErr = error?.fieldMessage('current');
  const newErr = error?.fieldMessage('new');
  return (
    <form className="panel" onSubmit={(e) => void submit(e)} aria-labelledby="pw-h">
      <h2 id="pw-h">Your password</h2>
      {error !== undefined && error.fields.length === 0 && <ErrorBox error={error} title="Password not changed" />}
      {done && (
        <p className="alert alert-ok" role="status">
          Password changed. Your other sessions were signed out.
        </p>
      )}
      <div className="form-row">
        <Field id="pw-current" label="Current password" error={curErr}>
          <input
            id="pw-current"
            type="password"
            autoComplete="current-password"
            value={current}
            onChange={(e) => setCurrent(e.target.value)}
            {...describedBy('pw-current', false, curErr)}
          />
        </Field>
        <Field id="pw-new" label="New password" error={newErr}>
          <input
            id="pw-new"
            type="password"
            autoComplete="new-password"
            value={next}
            onChange={(e) => setNext(e.target.value)}
            {...describedBy('pw-new', false, newErr)}
          />
        </Field>
      </div>
      <button type="submit" className="btn btn-primary">
        Change password
      </button>
    </form>
  );
}

function ApiKeys() {
  const s = useSession();
  const keys = usePoll(() => api<{ keys: ApiKey[] }>('GET', '/api/v1/api-keys'), [], 10000);
  const mine = ALL_SCOPES.filter((p) => s.can(p));
  const [name, setName] = useState('');
  const [scopes, setScopes] = useState<Permission[]>(mine.filter((p) => p.endsWith(':read')));
  const [days, setDays] = useState('90');
  const [error, setError] = useState<ApiError>();
  const [created, setCreated] = useState<{ name: string; token: string }>();
  async function submit(e: FormEvent): Promise<void> {
    e.preventDefault();
    setError(undefined);
    try {
      const res = await api<Record<string, unknown>>('POST', '/api/v1/api-keys', {
        name: name.trim(),
        scopes,
        expires_in_days: Number(days),
      });
      const token = (res['token'] ?? res['key'] ?? res['secret']) as string | undefined;
      setCreated({ name: name.trim(), token: token ?? '(the server did not return a token)' });
      setName('');
      keys.reload();
    } catch (err) {
      setError(err as ApiError);
    }
  }
  async function revoke(id: string): Promise<void> {
    try {
      await api('DELETE', `/api/v1/api-keys/${encodeURIComponent(id)}`);
      keys.reload();
    } catch (err) {
      setError(err as ApiError);
    }
  }
  const nameErr = error?.fieldMessage('name');
  const scopeErr = error?.fieldMessage('scopes');
  const daysErr = error?.fieldMessage('expires_in_days');
  return (
    <section className="panel" aria-labelledby="keys-h">
      <h2 id="keys-h">API keys</h2>
      <p className="muted">For scripts, CI and the MCP bridge. A key can never do more than you can.</p>
      {created !== undefined && (
        <div className="panel panel-highlight" role="status">
          <p>
            <strong>Key “{created.name}” created.</strong> Copy it now — it is shown only this once.
          </p>
          <div className="codeline">
            <code data-testid="new-api-key">{created.token}</code>
            <CopyButton text={created.token} />
          </div>
          <button type="button" className="btn btn-small" onClick={() => setCreated(undefined)}>
            I have saved it
          </button>
        </div>
      )}
      {s.can('keys:write') && (
        <form onSubmit={(e) => void submit(e)} noValidate aria-label="Create an API key">
          {error !== undefined && error.fields.length === 0 && (
            <ErrorBox error={error} title="Could not create the key" />
          )}
          <div className="form-row">
            <Field id="key-name" label="Name" hint="What uses it, e.g. ci-deploy." error={nameErr}>
              <input
                id="key-name"
                value={name}
                onChange={(e) => setName(e.target.value)}
                {...describedBy('key-name', true, nameErr)}
              />
            </Field>
            <Field id="key-days" label="Expires in (days)" error={daysErr}>
              <input
                id="key-days"
                inputMode="numeric"
                value={days}
                onChange={(e) => setDays(e.target.value)}
                {...describedBy('key-days', false, daysErr)}
              />
            </Field>
          </div>
          <fieldset className="scopes" aria-describedby={scopeErr === undefined ? undefined : 'key-scopes-error'}>
            <legend>Scopes</legend>
            {mine.map((p) => (
              <label key={p} className="check">
                <input
                  type="checkbox"
                  checked={scopes.includes(p)}
                  onChange={(e) => setScopes(e.target.checked ? [...scopes, p] : scopes.filter((x) => x !== p))}
                />{' '}
                {p}
              </label>
            ))}
            {scopeErr !== undefined && (
              <p className="field-error" id="key-scopes-error">
                {scopeErr}
              </p>
            )}
          </fieldset>
          <button type="submit" className="btn btn-primary">
            Create key
          </button>
        </form>
      )}
      {keys.error !== undefined && <ErrorBox error={keys.error} title="Could not list keys" />}
      {keys.loading ? (
        <Loading what="keys" />
      ) : (keys.data?.keys.length ?? 0) === 0 ? (
        <p className="muted">No API keys yet.</p>
      ) : (
        <TableWrap label="API keys">
          <table>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Prefix</th>
                <th scope="col">Owner</th>
                <th scope="col">Scopes</th>
                <th scope="col">Last used</th>
                <th scope="col">Expires</th>
                <th scope="col">
                  <span className="sr-only">Revoke</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {keys.data?.keys.map((k) => (
                <tr key={k.id}>
                  <td>{k.name}</td>
                  <td>
                    <code>{k.prefix}</code>
                  </td>
                  <td>{k.user.username}</td>
                  <td className="small">{k.scopes.join(' ')}</td>
                  <td>
                    <Time iso={k.last_used_at} />
                  </td>
                  <td>
                    {k.revoked_at !== null ? (
                      <Badge value="revoked" />
                    ) : k.expires_at === null ? (
                      'never'
                    ) : (
                      new Date(k.expires_at).toLocaleDateString()
                    )}
                  </td>
                  <td>
                    {k.revoked_at === null && (
                      <button type="button" className="btn btn-small btn-danger" onClick={() => void revoke(k.id)}>
                        Revoke<span className="sr-only"> key {k.name}</span>
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableWrap>
      )}
    </section>
  );
}

function Users() {
  const s = useSession();
  const users = usePoll(() => api<{ users: User[] }>('GET', '/api/v1/users'), [], 10000);
  const [username, setUsername] = useState('');
  const [role, setRole] = useState<User['role']>('operator');
  const [error, setError] = useState<ApiError>();
  const [created, setCreated] = useState<{ username: string; password: string }>();
  async function submit(e: FormEvent): Promise<void> {
    e.preventDefault();
    setError(undefined);
    try {
      const res = await api<{ user: User; password?: string }>('POST', '/api/v1/users', {
        username: username.trim(),
        role,
      });
      if (res.password !== undefined) setCreated({ username: res.user.username, password: res.password });
      setUsername('');
      users.reload();
    } catch (err) {
      setError(err as ApiError);
    }
  }
  async function setDisabled(u: User, disabled: boolean): Promise<void> {
    try {
      await api('PATCH', `/api/v1/users/${encodeURIComponent(u.id)}`, { disabled });
      users.reload();
    } catch (err) {
      setError(err as ApiError);
    }
  }
  const userErr = error?.fieldMessage('username');
  return (
    <section className="panel" aria-labelledby="users-h">
      <h2 id="users-h">Users and roles</h2>
      {created !== undefined && (
        <div className="panel panel-highlight" role="status">
          <p>
            <strong>{created.username}</strong> can sign in with this one-time password (shown once); they choose their
            own after signing in.
          </p>
          <div className="codeline">
            <code>{created.password}</code>
            <CopyButton text={created.password} />
          </div>
        </div>
      )}
      {s.can('users:write') && (
        <form onSubmit={(e) => void submit(e)} noValidate aria-label="Add a user" className="form-row">
          <Field id="user-name" label="Username" error={userErr}>
            <input
              id="user-name"
              value={username}
              onChange={(e) => setUsername(e.target.value)}
              {...describedBy('user-name', false, userErr)}
            />
          </Field>
          <Field id="user-role" label="Role">
            <select id="user-role" value={role} onChange={(e) => setRole(e.target.value as User['role'])}>
              <option value="viewer">viewer — read only</option>
              <option value="operator">operator — run actions</option>
              <option value="admin">admin — manage runners, packs, users</option>
              <option value="owner">owner</option>
            </select>
          </Field>
          <div className="button-row align-end">
            <button type="submit" className="btn btn-primary">
              Add user
            </button>
          </div>
        </form>
      )}
      {error !== undefined && userErr === undefined && <ErrorBox error={error} title="User not changed" />}
      {users.loading ? (
        <Loading what="users" />
      ) : (
        <TableWrap label="Users">
          <table>
            <thead>
              <tr>
                <th scope="col">User</th>
                <th scope="col">Role</th>
                <th scope="col">State</th>
                <th scope="col">Created</th>
                <th scope="col">
                  <span className="sr-only">Change</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {users.data?.users.map((u) => (
                <tr key={u.id}>
                  <td>{u.username}</td>
                  <td>{u.role}</td>
                  <td>
                    {u.disabled ? (
                      <Badge value="revoked" label="disabled" />
                    ) : u.must_change_password ? (
                      <Badge value="pending" label="one-time password" />
                    ) : (
                      <Badge value="success" label="active" />
                    )}
                  </td>
                  <td>
                    <Time iso={u.created_at} />
                  </td>
                  <td>
                    {s.can('users:write') && u.id !== s.me.user.id && (
                      <button type="button" className="btn btn-small" onClick={() => void setDisabled(u, !u.disabled)}>
                        {u.disabled ? 'Enable' : 'Disable'}
                        <span className="sr-only"> {u.username}</span>
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableWrap>
      )}
    </section>
  );
}

export function SettingsPage() {
  const s = useSession();
  return (
    <>
      <PageHeader
        title="Settings"
        sub={`Signed in as ${s.me.user.username} (${s.me.user.role}) in ${s.me.user.org.name}.`}
      />
      {s.me.kind === 'user' && s.has('POST /api/v1/auth/password') && <PasswordForm />}
      {s.has('GET /api/v1/api-keys') ? <ApiKeys /> : <NotAvailable what="API keys" />}
      {s.has('GET /api/v1/users') && s.can('users:read') && <Users />}
      <section className="panel" aria-labelledby="more-h">
        <h2 id="more-h">Approver keys, OAuth clients, webhooks</h2>
        <p className="muted">Not available in this build: the control plane does not offer these APIs yet.</p>
      </section>
    </>
  );
}
