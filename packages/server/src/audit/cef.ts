import { AIRLOCK_VERSION } from '@airlock/core';

/** Kinds that mean the integrity of a log is in question: highest severity. */
const CRITICAL_KINDS = new Set([
  'runner.chain_fork',
  'runner.chain_bad_hash',
  'runner.log_truncated',
  'audit.chain_broken',
]);
/** Kinds that are worth a look but often legitimate. */
const WARNING_KINDS = new Set(['runner.chain_gap']);

const STATUS_SEVERITY: Readonly<Record<string, number>> = {
  success: 2,
  cancelled: 3,
  failure: 5,
  timeout: 5,
  error: 6,
  validation_failed: 6,
};

/**
 * CEF severity (0..10) of an event: from its status, raised for authentication failures,
 * trust rejections and chain alerts. Documented in docs/audit.md.
 */
export function cefSeverity(kind: string, status: string): number {
  let s = STATUS_SEVERITY[status] ?? 3;
  if (CRITICAL_KINDS.has(kind)) s = Math.max(s, 9);
  if (WARNING_KINDS.has(kind)) s = Math.max(s, 5);
  if (kind.startsWith('auth.') && status !== 'success') s = Math.max(s, 7);
  if (/(^|\.)(reject|rejected|trust_rejected)$/.test(kind) || (kind.startsWith('pack.') && kind.includes('reject')))
    s = Math.max(s, 7);
  return s;
}

/** Escape a CEF header field: backslash and pipe; line breaks become spaces (not allowed in the header). */
export function cefHeader(value: string): string {
  return value
    .replace(/\\/g, '\\\\')
    .replace(/\|/g, '\\|')
    .replace(/\r\n|\r|\n/g, ' ');
}

/** Escape a CEF extension value: backslash, equals sign, and line breaks as `\n` / `\r`. */
export function cefValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/=/g, '\\=').replace(/\r/g, '\\r').replace(/\n/g, '\\n');
}

interface EventLike {
  seq?: unknown;
  id?: unknown;
  time?: unknown;
  kind?: unknown;
  principal?: { type?: unknown; id?: unknown; name?: unknown } | null;
  runner?: unknown;
  action?: unknown;
  status?: unknown;
  pack_hash?: unknown;
  reason?: unknown;
  exit_code?: unknown;
  duration_ms?: unknown;
  error?: { code?: unknown; message?: unknown } | null;
  data?: unknown;
  hash?: unknown;
}

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
const num = (v: unknown): string | undefined => (typeof v === 'number' && Number.isFinite(v) ? String(v) : undefined);

/** One CEF line (without newline) for an audit event. */
export function cefLine(event: unknown, orgId: string | null): string {
  const e = (typeof event === 'object' && event !== null ? event : {}) as EventLike;
  const kind = str(e.kind) ?? 'unknown';
  const status = str(e.status) ?? 'unknown';
  const action = str(e.action);
  const name = `${kind}${action === undefined ? '' : ` ${action}`} ${status}`;
  const time = str(e.time);
  const rt = time === undefined ? undefined : Date.parse(time);
  const err = e.error !== null && typeof e.error === 'object' ? e.error : undefined;
  const msg =
    err !== undefined
      ? `${String(err.code ?? '')}: ${String(err.message ?? '')}`
      : e.data !== undefined && e.data !== null
        ? JSON.stringify(e.data)
        : undefined;
  const ext: [string, string | undefined][] = [
    ['rt', rt === undefined || Number.isNaN(rt) ? undefined : String(rt)],
    ['cat', kind.split('.')[0]],
    ['externalId', str(e.id)],
    ['suser', str(e.principal?.name) ?? str(e.principal?.id)],
    ['suid', str(e.principal?.id)],
    ['act', action],
    ['outcome', status],
    ['reason', str(e.reason)],
    ['msg', msg],
    ['cs1Label', 'runner'],
    ['cs1', str(e.runner)],
    ['cs2Label', 'hash'],
    ['cs2', str(e.hash)],
    ['cs3Label', 'pack_hash'],
    ['cs3', str(e.pack_hash)],
    ['cs4Label', 'org'],
    ['cs4', orgId ?? undefined],
    ['cs5Label', 'principal_type'],
    ['cs5', str(e.principal?.type)],
    ['cn1Label', 'seq'],
    ['cn1', num(e.seq)],
    ['cn2Label', 'exit_code'],
    ['cn2', num(e.exit_code)],
    ['cn3Label', 'duration_ms'],
    ['cn3', num(e.duration_ms)],
  ];
  // Drop a label whose value is absent.
  const present = new Set(ext.filter(([, v]) => v !== undefined).map(([k]) => k));
  const parts = ext
    .filter(([k, v]) => v !== undefined && (!k.endsWith('Label') || present.has(k.slice(0, -'Label'.length))))
    .map(([k, v]) => `${k}=${cefValue(v as string)}`);
  const header = ['CEF:0', 'airlock', 'airlock', AIRLOCK_VERSION, kind, name, String(cefSeverity(kind, status))].map(
    (h, i) => (i === 0 ? h : cefHeader(h)),
  );
  return `${header.join('|')}|${parts.join(' ')}`;
}
