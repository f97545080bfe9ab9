import { type ReactNode, useCallback, useEffect, useMemo, useState } from 'react';
import { ApiError, api, loadRouteSet, type Me, type Permission, setCsrfToken, setUnauthorizedHandler } from './api';
import { Link, navigate, type Session, SessionContext, useLocation } from './lib';
import { ActionsPage } from './pages/Actions';
import { ApprovalsPage } from './pages/Approvals';
import { AuditPage } from './pages/Audit';
import { ConsentPage } from './pages/Consent';
import { OverviewPage } from './pages/Overview';
import { PackDetailPage, PacksPage } from './pages/Packs';
import { PoliciesPage } from './pages/Policies';
import { RunnerDetailPage, RunnersPage } from './pages/Runners';
import { RunDetailPage, RunsPage } from './pages/Runs';
import { SandboxesPage } from './pages/Sandboxes';
import { SettingsPage } from './pages/Settings';
import { SignInPage } from './pages/SignIn';

// ---------------------------------------------------------------- theme

type Theme = 'light' | 'dark';
function initialTheme(): Theme {
  const saved = localStorage.getItem('airlock-theme');
  if (saved === 'light' || saved === 'dark') return saved;
  return matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light';
}
function useTheme(): [Theme, () => void] {
  const [theme, setTheme] = useState<Theme>(initialTheme);
  useEffect(() => {
    document.documentElement.dataset['theme'] = theme;
  }, [theme]);
  const toggle = useCallback(() => {
    setTheme((t) => {
      const next = t === 'dark' ? 'light' : 'dark';
      localStorage.setItem('airlock-theme', next);
      return next;
    });
  }, []);
  return [theme, toggle];
}

// ---------------------------------------------------------------- navigation

interface NavItem {
  to: string;
  label: string;
  perm?: Permission;
}
const NAV: NavItem[] = [
  { to: '/', label: 'Overview' },
  { to: '/runs', label: 'Runs', perm: 'runs:read' },
  { to: '/actions', label: 'Actions', perm: 'runners:read' },
  { to: '/approvals', label: 'Approvals', perm: 'runs:read' },
  { to: '/runners', label: 'Runners', perm: 'runners:read' },
  { to: '/sandboxes', label: 'Sandboxes', perm: 'runs:read' },
  { to: '/packs', label: 'Packs & trust', perm: 'packs:read' },
  { to: '/policies', label: 'Policies & grants', perm: 'runs:read' },
  { to: '/audit', label: 'Audit', perm: 'audit:read' },
  { to: '/settings', label: 'Settings' },
];

function isCurrent(item: string, path: string): boolean {
  return item === '/' ? path === '/' : path === item || path.startsWith(`${item}/`);
}

function Route({ path }: { path: string }): ReactNode {
  const seg = path.split('/').filter(Boolean).map(decodeURIComponent);
  switch (seg[0]) {
    case undefined:
      return <OverviewPage />;
    case 'runners':
      return seg[1] === undefined ? <RunnersPage /> : <RunnerDetailPage id={seg[1]} />;
    case 'packs':
      return seg[1] === undefined ? <PacksPage /> : <PackDetailPage id={seg[1]} />;
    case 'runs':
      return seg[1] === undefined ? <RunsPage /> : <RunDetailPage id={seg[1]} />;
    case 'actions':
      return <ActionsPage selected={seg[1]} />;
    case 'audit':
      return <AuditPage />;
    case 'sandboxes':
      return <SandboxesPage />;
    case 'settings':
      return <SettingsPage />;
    case 'approvals':
      return <ApprovalsPage />;
    case 'policies':
      return <PoliciesPage />;
    case 'consent':
      return <ConsentPage request={new URLSearchParams(location.search).get('request') ?? ''} />;
    default:
      return (
        <div className="empty">
          <h1 id="page-title" tabIndex={-1}>
            Page not found
          </h1>
          <p>
            There is no page at <code>{path}</code>. <Link to="/">Go to the overview</Link>.
          </p>
        </div>
      );
  }
}

function Shell({ session, theme, toggleTheme }: { session: Session; theme: Theme; toggleTheme: () => void }) {
  const { path } = useLocation();
  const [menuOpen, setMenuOpen] = useState(false);
  // Move focus to the page heading after in-app navigation, for keyboard and screen-reader users.
  const [first, setFirst] = useState(true);
  // biome-ignore lint/correctness/useExhaustiveDependencies: runs on path change only, by design
  useEffect(() => {
    setMenuOpen(false);
    if (first) {
      setFirst(false);
      return;
    }
    const t = setTimeout(() => document.getElementById('page-title')?.focus(), 50);
    return () => clearTimeout(t);
  }, [path]);
  const items = NAV.filter((i) => i.perm === undefined || session.can(i.perm));
  return (
    <div className="shell">
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <Link to="/" className="brand">
          <span aria-hidden="true" className="brand-mark">
            ◇
          </span>{' '}
          airlock
        </Link>
        <button
          type="button"
          className="btn btn-ghost menu-button"
          aria-expanded={menuOpen}
          aria-controls="primary-nav"
          onClick={() => setMenuOpen((o) => !o)}
        >
          Menu
        </button>
        <div className="topbar-right">
          <button
            type="button"
            className="btn btn-ghost"
            onClick={toggleTheme}
            aria-label={`Switch to ${theme === 'dark' ? 'light' : 'dark'} theme`}
          >
            {theme === 'dark' ? '☀ Light' : '☾ Dark'}
          </button>
          <span className="who" title={`organisation ${session.me.user.org.name}`}>
            {session.me.user.username} <span className="muted">· {session.me.user.role}</span>
          </span>
          <button type="button" className="btn btn-ghost" onClick={() => void session.signOut()}>
            Sign out
          </button>
        </div>
      </header>
      <nav id="primary-nav" aria-label="Primary" className={`sidenav${menuOpen ? ' open' : ''}`}>
        <ul>
          {items.map((i) => (
            <li key={i.to}>
              <Link to={i.to} aria-current={isCurrent(i.to, path) ? 'page' : undefined}>
                {i.label}
              </Link>
            </li>
          ))}
        </ul>
      </nav>
      <main id="main" className="main">
        {session.me.must_change_password && path !== '/settings' && (
          <div className="alert alert-warn" role="status">
            You are signed in with a one-time password. <Link to="/settings">Choose your own password</Link> in
            Settings.
          </div>
        )}
        <Route path={path} />
      </main>
    </div>
  );
}

export function App() {
  const [theme, toggleTheme] = useTheme();
  const [state, setState] = useState<
    | { kind: 'loading' }
    | { kind: 'signed-out'; note?: string }
    | { kind: 'error'; error: ApiError }
    | { kind: 'in'; me: Me; routes: Set<string> }
  >({ kind: 'loading' });

  const start = useCallback(async (): Promise<void> => {
    try {
      const [me, routes] = await Promise.all([api<Me>('GET', '/api/v1/auth/me'), loadRouteSet()]);
      setCsrfToken(me.csrf_token);
      setState({ kind: 'in', me, routes });
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) setState({ kind: 'signed-out' });
      else setState({ kind: 'error', error: e instanceof ApiError ? e : new ApiError(0, 'client', String(e)) });
    }
  }, []);

  useEffect(() => {
    setUnauthorizedHandler(() => setState({ kind: 'signed-out', note: 'Your session ended; sign in again.' }));
    void start();
  }, [start]);

  const session = useMemo<Session | null>(() => {
    if (state.kind !== 'in') return null;
    return {
      me: state.me,
      routes: state.routes,
      can: (p) => state.me.permissions.includes(p),
      has: (r) => state.routes.has(r),
      async signOut() {
        try {
          await api('POST', '/api/v1/auth/logout');
        } catch {
          // the session may already be gone
        }
        setCsrfToken(undefined);
        setState({ kind: 'signed-out', note: 'You are signed out.' });
        navigate('/', true);
      },
      async refreshMe() {
        const me = await api<Me>('GET', '/api/v1/auth/me');
        setCsrfToken(me.csrf_token);
        setState((s) => (s.kind === 'in' ? { ...s, me } : s));
      },
    };
  }, [state]);

  if (state.kind === 'loading') {
    return (
      <p className="center muted" role="status">
        Loading airlock…
      </p>
    );
  }
  if (state.kind === 'error') {
    return (
      <main className="center">
        <h1>airlock cannot load</h1>
        <p role="alert">{state.error.message}</p>
        <button type="button" className="btn" onClick={() => void start()}>
          Try again
        </button>
      </main>
    );
  }
  if (state.kind === 'signed-out' || session === null) {
    return (
      <SignInPage
        note={state.kind === 'signed-out' ? state.note : undefined}
        onSignedIn={start}
        theme={theme}
        toggleTheme={toggleTheme}
      />
    );
  }
  return (
    <SessionContext.Provider value={session}>
      <Shell session={session} theme={theme} toggleTheme={toggleTheme} />
    </SessionContext.Provider>
  );
}
