/** How one doctor check came out. `fail` makes `airlock doctor` exit non-zero. */
export type CheckStatus = 'ok' | 'warn' | 'fail';

/** One line of the doctor's report: what was checked, what was found, and what to do about it. */
export interface CheckResult {
  readonly check: string;
  readonly status: CheckStatus;
  readonly detail: string;
  /** What to do, when the status is not ok. */
  readonly fix?: string;
}

/** Everything the checks read, gathered once (so tests can point them at temp dirs and servers). */
export interface DoctorContext {
  readonly env: NodeJS.ProcessEnv;
  readonly home: string;
  /** Control-plane URL, and whether it was configured (a default that does not answer is only a warning). */
  readonly server: { readonly url: string; readonly configured: boolean; readonly source: string };
  /** Seconds of clock difference to the server tolerated before a warning / a failure. */
  readonly skew: { readonly warnSeconds: number; readonly failSeconds: number };
  readonly timeoutMs: number;
  /** Boot a tiny guest to prove KVM works (slow under TCG; off with --quick). */
  readonly probeKvm: boolean;
}

export function ok(check: string, detail: string): CheckResult {
  return { check, status: 'ok', detail };
}

export function warn(check: string, detail: string, fix: string): CheckResult {
  return { check, status: 'warn', detail, fix };
}

export function fail(check: string, detail: string, fix: string): CheckResult {
  return { check, status: 'fail', detail, fix };
}
