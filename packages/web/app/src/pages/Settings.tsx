import { type FormEvent, useState } from 'react';
import { type ApiError, type ApiKey, api, type Permission, type User } from '../api';
import { FormError, SelectField, ShownOnce, TextField, useAction } from '../forms';
import {
  Badge,
  DataTable,
  ErrorBox,
  Loading,
  NotAvailable,
  PageHeader,
  RowButton,
  Time,
  usePoll,
  useSession,
} from '../lib';
import { ApproverKeys } from './ApproverKeys';
import { OAuthClients, Webhooks } from './Integrations';

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
  const [done, setDone] = useState(false);
  const act = useAction(async () => {
    setDone(false);
    await api('POST', '/api/v1/auth/password', { current, new: next });
    setCurrent('');
    setNext('');
    setDone(true);
    await s.refreshMe();
  });
  return (
    <form className="panel" onSubmit={act.submit} aria-labelledby="pw-h">
      <h2 id="pw-h">Your password</h2>
      <FormError error={act.error} title="Password not changed" fields={['current', 'new']} />
      {done && (
        <p className="alert alert-ok" role="status">
          Password changed. Your other sessions were signed out.
        </p>
      )}
      <div className="form-row">
        <TextField
          id="pw-current"
          label="Current password"
          type="password"
          autoComplete="current-password"
          value={current}
          onChange={setCurrent}
          error={act.field('current')}
        />
        <TextField
          id="pw-new"
          label="New password"
          type="password"
          autoComplete="new-password"
          value={next}
          onChange={setNext}
          error={act.field('new')}
        />
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
        <ShownOnce
          title={
            <>
              <strong>Key “{created.name}” created.</strong> Copy it now — it is shown only this once.
            </>
          }
          secret={created.token}
          testId="new-api-key"
          onDone={() => setCreated(undefined)}
        />
      )}
      {s.can('keys:write') && (
        <form onSubmit={(e) => void submit(e)} noValidate aria-label="Create an API key">
          {error !== undefined && error.fields.length === 0 && (
            <ErrorBox error={error} title="Could not create the key" />
          )}
          <div className="form-row">
            <TextField
              id="key-name"
              label="Name"
              hint="What uses it, e.g. ci-deploy."
              value={name}
              onChange={setName}
              error={nameErr}
            />
            <TextField
              id="key-days"
              label="Expires in (days)"
              inputMode="numeric"
              value={days}
              onChange={setDays}
              error={daysErr}
            />
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
        <DataTable
          label="API keys"
          columns={['Name', 'Prefix', 'Owner', 'Scopes', 'Last used', 'Expires']}
          buttons="Revoke"
        >
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
                  <RowButton label="Revoke" what={`key ${k.name}`} onClick={() => void revoke(k.id)} />
                )}
              </td>
            </tr>
          ))}
        </DataTable>
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
        <ShownOnce
          title={
            <>
              <strong>{created.username}</strong> can sign in with this one-time password (shown once); they choose
              their own after signing in.
            </>
          }
          secret={created.password}
          onDone={() => setCreated(undefined)}
        />
      )}
      {s.can('users:write') && (
        <form onSubmit={(e) => void submit(e)} noValidate aria-label="Add a user" className="form-row">
          <TextField id="user-name" label="Username" value={username} onChange={setUsername} error={userErr} />
          <SelectField
            id="user-role"
            label="Role"
            value={role}
            onChange={setRole}
            options={[
              ['viewer', 'viewer — read only'],
              ['operator', 'operator — run actions'],
              ['admin', 'admin — manage runners, packs, users'],
              ['owner', 'owner'],
            ]}
          />
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
        <DataTable label="Users" columns={['User', 'Role', 'State', 'Created']} buttons="Change">
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
        </DataTable>
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
      {s.has('GET /api/v1/policy/approver-keys') && <ApproverKeys />}
      {s.has('GET /api/v1/oauth/authorizations') && <OAuthClients />}
      {s.has('PUT /api/v1/policy/settings') && s.can('users:write') && <Webhooks />}
    </>
  );
}
