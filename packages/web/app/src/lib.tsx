// Shared pieces: a tiny router, polling, session context, and small components.
import { createContext, type ReactNode, useCallback, useContext, useEffect, useRef, useState } from 'react';
import { ApiError, type Me, type Permission } from './api';

// ---------------------------------------------------------------- router

const listeners = new Set<() => void>();
export function navigate(to: string, replace = false): void {
  if (to === location.pathname + location.search) return;
  if (replace) history.replaceState(null, '', to);
  else history.pushState(null, '', to);
  for (const l of listeners) l();
}
window.addEventListener('popstate', () => {
  for (const l of listeners) l();
});
export function useLocation(): { path: string; search: URLSearchParams } {
  const [, force] = useState(0);
  useEffect(() => {
    const l = (): void => force((n) => n + 1);
    listeners.add(l);
    return () => void listeners.delete(l);
  }, []);
  return { path: location.pathname, search: new URLSearchParams(location.search) };
}

/** An in-app link: a real `<a href>` (so open-in-new-tab works) that navigates without reload. */
export function Link(props: {
  to: string;
  children: ReactNode;
  className?: string;
  'aria-current'?: 'page' | undefined;
  onClick?: () => void;
}) {
  return (
    <a
      href={props.to}
      className={props.className}
      aria-current={props['aria-current']}
      onClick={(e) => {
        if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
        e.preventDefault();
        props.onClick?.();
        navigate(props.to);
      }}
    >
      {props.children}
    </a>
  );
}

// ---------------------------------------------------------------- session

export interface Session {
  me: Me;
  routes: Set<string>;
  can(p: Permission): boolean;
  has(route: string): boolean;
  signOut(): Promise<void>;
  refreshMe(): Promise<void>;
}
export const SessionContext = createContext<Session | null>(null);
export function useSession(): Session {
  const s = useContext(SessionContext);
  if (s === null) throw new Error('no session');
  return s;
}

// ---------------------------------------------------------------- data loading

export interface Loaded<T> {
  data: T | undefined;
  error: ApiError | undefined;
  loading: boolean;
  reload: () => void;
}

/**
 * Load data and keep it fresh: reloads every `everyMs` while the tab is visible (live
 * updates without a page reload). Keeps the last good data while a refresh fails.
 */
export function usePoll<T>(load: () => Promise<T>, deps: unknown[], everyMs = 0): Loaded<T> {
  const [data, setData] = useState<T>();
  const [error, setError] = useState<ApiError>();
  const [loading, setLoading] = useState(true);
  const [tick, setTick] = useState(0);
  const loadRef = useRef(load);
  loadRef.current = load;
  // biome-ignore lint/correctness/useExhaustiveDependencies: deps are the caller's
  useEffect(() => {
    let alive = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const run = async (): Promise<void> => {
      try {
        const d = await loadRef.current();
        if (!alive) return;
        setData(d);
        setError(undefined);
      } catch (e) {
        if (!alive) return;
        setError(e instanceof ApiError ? e : new ApiError(0, 'client', String(e)));
      } finally {
        if (alive) setLoading(false);
      }
      if (alive && everyMs > 0) timer = setTimeout(tickOnce, everyMs);
    };
    const tickOnce = (): void => {
      if (document.visibilityState === 'hidden') timer = setTimeout(tickOnce, everyMs);
      else void run();
    };
    void run();
    return () => {
      alive = false;
      if (timer !== undefined) clearTimeout(timer);
    };
  }, [...deps, tick, everyMs]);
  const reload = useCallback(() => setTick((n) => n + 1), []);
  return { data, error, loading, reload };
}

// ---------------------------------------------------------------- formatting

/** A span of seconds in words ("12 s", "3 min", "5 h", "2 d"). */
function span(s: number): string {
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h`;
  return `${Math.floor(s / 86400)} d`;
}
/** A time relative to now: "3 min ago", or "in 8 h" for expiries and deadlines. */
export function ago(iso: string | null | undefined): string {
  if (iso === null || iso === undefined) return 'never';
  const s = Math.round((Date.now() - Date.parse(iso)) / 1000);
  if (s <= -5) return `in ${span(-s)}`;
  if (s < 5) return 'just now';
  return `${span(s)} ago`;
}
export function Time({ iso }: { iso: string | null | undefined }) {
  if (iso === null || iso === undefined) return <span className="muted">—</span>;
  return (
    <time dateTime={iso} title={new Date(iso).toLocaleString()}>
      {ago(iso)}
    </time>
  );
}
export function duration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '—';
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}
export function shortHash(h: string | null | undefined): string {
  if (h === null || h === undefined) return '—';
  const hex = h.replace(/^sha256:/, '');
  return `sha256:${hex.slice(0, 12)}…`;
}
export function principalName(p: { type: string; id: string; name?: string } | null | undefined): string {
  if (p === null || p === undefined) return '—';
  const who = p.name ?? p.id;
  // Recorded names of keys and OAuth clients already say what they are ("alice (key)").
  return p.type === 'user' || who.endsWith(')') ? who : `${who} (${p.type.replace('_', ' ')})`;
}

// ---------------------------------------------------------------- components

const STATUS_TONE: Record<string, string> = {
  online: 'ok',
  success: 'ok',
  trusted: 'ok',
  offline: 'muted',
  pending: 'warn',
  queued: 'info',
  dispatched: 'info',
  running: 'info',
  failure: 'bad',
  error: 'bad',
  timeout: 'bad',
  validation_failed: 'bad',
  rejected: 'bad',
  revoked: 'bad',
  cancelled: 'muted',
  read: 'ok',
  change: 'warn',
  destructive: 'bad',
};
export function Badge({ value, label }: { value: string; label?: string }) {
  return <span className={`badge tone-${STATUS_TONE[value] ?? 'muted'}`}>{label ?? value.replace('_', ' ')}</span>;
}
export function RiskBadge({ risk }: { risk: string | undefined }) {
  if (risk === undefined)
    return (
      <span className="badge tone-muted" title="this server does not report the risk tier yet">
        risk ?
      </span>
    );
  return <Badge value={risk} label={risk} />;
}

export function ErrorBox({ error, title }: { error: ApiError | undefined; title?: string }) {
  if (error === undefined) return null;
  return (
    <div className="alert alert-bad" role="alert">
      <strong>{title ?? 'Something went wrong'}:</strong> {error.message}
      {error.fields.length > 0 && (
        <ul>
          {error.fields.map((f) => (
            <li key={f.field + f.message}>
              <code>{f.field.replace(/^body\./, '')}</code>: {f.message}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

export function NotAvailable({ what, detail }: { what: string; detail?: string }) {
  return (
    <div className="empty" role="status">
      <h2>{what} is not available in this build</h2>
      <p>
        {detail ??
          'This control plane does not offer the API behind this page yet. The page lights up once the server does; nothing to configure.'}
      </p>
    </div>
  );
}

export function Empty({ title, children }: { title: string; children?: ReactNode }) {
  return (
    <div className="empty">
      <h3>{title}</h3>
      {children}
    </div>
  );
}

export function Loading({ what }: { what: string }) {
  return (
    <p className="muted" role="status">
      Loading {what}…
    </p>
  );
}

export function CopyButton({ text, label = 'Copy' }: { text: string; label?: string }) {
  const [done, setDone] = useState<'idle' | 'copied' | 'failed'>('idle');
  return (
    <button
      type="button"
      className="btn btn-small"
      onClick={async () => {
        try {
          await navigator.clipboard.writeText(text);
          setDone('copied');
        } catch {
          setDone('failed');
        }
        setTimeout(() => setDone('idle'), 2500);
      }}
    >
      {done === 'copied' ? 'Copied' : done === 'failed' ? 'Select and copy' : label}
      <span className="sr-only" aria-live="polite">
        {done === 'copied'
          ? ' — copied to the clipboard'
          : done === 'failed'
            ? ' — the clipboard is not available; select the text'
            : ''}
      </span>
    </button>
  );
}

/** A labelled form field with its error message wired to it. */
export function Field(props: {
  id: string;
  label: string;
  hint?: string;
  error?: string | undefined;
  children: ReactNode;
}) {
  return (
    <div className={`field${props.error === undefined ? '' : ' has-error'}`}>
      <label htmlFor={props.id}>{props.label}</label>
      {props.children}
      {props.hint !== undefined && (
        <p className="hint" id={`${props.id}-hint`}>
          {props.hint}
        </p>
      )}
      {props.error !== undefined && (
        <p className="field-error" id={`${props.id}-error`}>
          {props.error}
        </p>
      )}
    </div>
  );
}
/** aria attributes for an input inside <Field>. */
export function describedBy(id: string, hint: boolean, error: string | undefined) {
  const ids = [hint ? `${id}-hint` : '', error === undefined ? '' : `${id}-error`].filter(Boolean).join(' ');
  return { 'aria-describedby': ids === '' ? undefined : ids, 'aria-invalid': error === undefined ? undefined : true };
}

/** A scrollable table wrapper reachable by keyboard. */
export function TableWrap({ label, children }: { label: string; children: ReactNode }) {
  return (
    // biome-ignore lint/a11y/noNoninteractiveTabindex: a scrollable region must be focusable
    <section className="table-wrap" tabIndex={0} aria-label={label}>
      {children}
    </section>
  );
}

export function PageHeader({ title, children, sub }: { title: string; children?: ReactNode; sub?: ReactNode }) {
  return (
    <div className="page-header">
      <div>
        <h1 id="page-title" tabIndex={-1}>
          {title}
        </h1>
        {sub !== undefined && <p className="sub">{sub}</p>}
      </div>
      {children !== undefined && <div className="page-actions">{children}</div>}
    </div>
  );
}

/**
 * A table with its column headers (the last one may be a screen-reader-only label for a column
 * of row buttons), inside the keyboard-reachable scroll wrapper.
 */
export function DataTable({
  label,
  columns,
  buttons,
  children,
}: {
  label: string;
  columns: readonly string[];
  /** Screen-reader name of a last column holding row buttons (Revoke, Delete…). */
  buttons?: string;
  children: ReactNode;
}) {
  return (
    <TableWrap label={label}>
      <table>
        <thead>
          <tr>
            {columns.map((c) => (
              <th key={c} scope="col">
                {c}
              </th>
            ))}
            {buttons !== undefined && (
              <th scope="col">
                <span className="sr-only">{buttons}</span>
              </th>
            )}
          </tr>
        </thead>
        <tbody>{children}</tbody>
      </table>
    </TableWrap>
  );
}

/** A small danger button for one row ("Revoke", "Delete"), named for screen readers by what it acts on. */
export function RowButton({ label, what, onClick }: { label: string; what: string; onClick: () => void }) {
  return (
    <button type="button" className="btn btn-small btn-danger" onClick={onClick}>
      {label}
      <span className="sr-only"> {what}</span>
    </button>
  );
}
