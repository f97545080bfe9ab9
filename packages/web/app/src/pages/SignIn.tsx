import { type FormEvent, useState } from 'react';
import { ApiError, api, setCsrfToken } from '../api';
import { describedBy, Field } from '../lib';

export function SignInPage(props: {
  note: string | undefined;
  onSignedIn: () => Promise<void>;
  theme: string;
  toggleTheme: () => void;
}) {
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [org, setOrg] = useState('');
  const [showOrg, setShowOrg] = useState(false);
  const [error, setError] = useState<ApiError>();
  const [busy, setBusy] = useState(false);
  const [missing, setMissing] = useState<{ username?: string; password?: string }>({});

  async function submit(e: FormEvent): Promise<void> {
    e.preventDefault();
    const m: { username?: string; password?: string } = {};
    if (username.trim() === '') m.username = 'enter your username';
    if (password === '') m.password = 'enter your password';
    setMissing(m);
    if (m.username !== undefined || m.password !== undefined) return;
    setBusy(true);
    setError(undefined);
    try {
      const res = await api<{ csrf_token: string }>('POST', '/api/v1/auth/login', {
        username: username.trim(),
        password,
        ...(org.trim() === '' ? {} : { org: org.trim() }),
      });
      setCsrfToken(res.csrf_token);
      await props.onSignedIn();
    } catch (err) {
      setError(err instanceof ApiError ? err : new ApiError(0, 'client', String(err)));
      setBusy(false);
    }
  }

  const userErr = missing.username ?? error?.fieldMessage('username');
  const passErr = missing.password ?? error?.fieldMessage('password');
  return (
    <main className="signin">
      <div className="signin-card">
        <div className="signin-head">
          <h1>
            <span aria-hidden="true" className="brand-mark">
              ◇
            </span>{' '}
            Sign in to airlock
          </h1>
          <button
            type="button"
            className="btn btn-ghost btn-small"
            onClick={props.toggleTheme}
            aria-label={`Switch to ${props.theme === 'dark' ? 'light' : 'dark'} theme`}
          >
            {props.theme === 'dark' ? '☀' : '☾'}
          </button>
        </div>
        {props.note !== undefined && (
          <p className="alert alert-info" role="status">
            {props.note}
          </p>
        )}
        {error !== undefined && error.fields.length === 0 && (
          <p className="alert alert-bad" role="alert">
            {error.status === 401
              ? 'The username or password is not right (or the account is disabled).'
              : error.message}
          </p>
        )}
        <form onSubmit={(e) => void submit(e)} noValidate>
          <Field id="username" label="Username" error={userErr}>
            <input
              id="username"
              name="username"
              autoComplete="username"
              value={username}
              onChange={(e) => setUsername(e.target.value)}
              {...describedBy('username', false, userErr)}
            />
          </Field>
          <Field id="password" label="Password" error={passErr}>
            <input
              id="password"
              name="password"
              type="password"
              autoComplete="current-password"
              value={password}
              onChange={(e) => setPassword(e.target.value)}
              {...describedBy('password', false, passErr)}
            />
          </Field>
          {showOrg ? (
            <Field id="org" label="Organisation" hint="Leave empty for the first organisation of this server.">
              <input
                id="org"
                name="org"
                value={org}
                onChange={(e) => setOrg(e.target.value)}
                {...describedBy('org', true, undefined)}
              />
            </Field>
          ) : (
            <button type="button" className="linklike" onClick={() => setShowOrg(true)}>
              Sign in to another organisation
            </button>
          )}
          <button type="submit" className="btn btn-primary btn-block" disabled={busy}>
            {busy ? 'Signing in…' : 'Sign in'}
          </button>
        </form>
        <details className="firstrun">
          <summary>First time here?</summary>
          <p>
            On first start the server creates the user <code>admin</code> with a one-time password.{' '}
            <code>npm start</code> prints it, and it is kept in <code>~/.airlock/server/initial-admin-password</code>{' '}
            until you change it. Sign in with it, then choose your own password in Settings.
          </p>
        </details>
      </div>
    </main>
  );
}
