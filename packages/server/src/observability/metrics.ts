import { AIRLOCK_VERSION } from '@airlock/core';
import type { Db } from '../db/database.js';
import { runDispatchTimes } from '../db/hot-queries.js';
import type { SandboxTables } from '../sandboxes/tables.js';
import { Counter, Gauge, Histogram, Registry } from './exposition.js';

/** Run statuses that are not final: the queues an operator watches. */
const OPEN_RUN_STATUSES = ['pending_approval', 'queued', 'dispatched', 'running'] as const;

/** Seconds: from a few milliseconds (a local dispatch) to an hour (a run waiting for approval). */
const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600];
const HTTP_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** What the audit observer needs to know about one recorded event. */
export interface ObservedEvent {
  readonly kind: string;
  readonly id?: string | undefined;
  readonly status?: string | undefined;
  readonly durationMs?: number | undefined;
  readonly data?: Readonly<Record<string, unknown>> | undefined;
}

/**
 * The control plane's metrics. Gauges that describe shared state (runs waiting, runners) are
 * read from the database at scrape time, so every instance on one Postgres reports the same
 * numbers; counters and histograms count what this process saw since it started, which is
 * what Prometheus' rate() and sum() expect of several instances.
 */
export class ServerMetrics {
  readonly registry = new Registry();
  private readonly buildInfo = this.registry.register(
    new Gauge('airlock_build_info', 'Always 1; the version label says which airlock this is'),
  );
  private readonly startTime = this.registry.register(
    new Gauge('airlock_process_start_time_seconds', 'Start time of this server process, in Unix seconds'),
  );
  readonly runsOpen = this.registry.register(
    new Gauge('airlock_runs', 'Runs not yet finished, by status (queue depths), from the database'),
  );
  readonly runners = this.registry.register(
    new Gauge('airlock_runners', 'Runners by status as recorded in the database (online = connected)'),
  );
  readonly capabilities = this.registry.register(
    new Gauge(
      'airlock_runner_capabilities',
      'Online runners offering each capability (capability="sandbox" counts sandbox hosts)',
    ),
  );
  readonly sandboxes = this.registry.register(
    new Gauge('airlock_sandboxes', 'Sandboxes being created or alive, by state, from the database (all hosts)'),
  );
  readonly runsFinished = this.registry.register(
    new Counter('airlock_runs_finished_total', 'Runs finalised by this instance, by final status'),
  );
  readonly decisions = this.registry.register(
    new Counter('airlock_policy_decisions_total', 'Policy decisions on run requests made by this instance'),
  );
  readonly auditEvents = this.registry.register(
    new Counter('airlock_audit_events_total', 'Audit events appended by this instance, by kind'),
  );
  readonly dispatchSeconds = this.registry.register(
    new Histogram(
      'airlock_run_dispatch_seconds',
      'Time from a run request to its dispatch to the runner (includes queueing and any approval wait), observed when the run finishes',
      LATENCY_BUCKETS,
    ),
  );
  readonly runSeconds = this.registry.register(
    new Histogram(
      'airlock_run_duration_seconds',
      'Duration of finished runs as reported by the runner',
      LATENCY_BUCKETS,
    ),
  );
  readonly httpSeconds = this.registry.register(
    new Histogram(
      'airlock_http_request_duration_seconds',
      'HTTP request duration by method, route pattern and status class',
      HTTP_BUCKETS,
    ),
  );
  readonly scrapeErrors = this.registry.register(
    new Counter('airlock_metrics_scrape_errors_total', 'Scrapes whose database-backed gauges could not be read'),
  );

  constructor(private readonly db: Db) {
    this.buildInfo.set({ version: AIRLOCK_VERSION }, 1);
    this.startTime.set({}, Math.floor(Date.now() / 1000));
  }

  /** Count an audit event; a finished run also feeds the latency histograms (read back from its row). */
  observeAudit(e: ObservedEvent): void {
    this.auditEvents.inc({ kind: e.kind });
    if (e.kind === 'run.denied') this.decisions.inc({ decision: 'deny' });
    if (e.kind === 'run.requested') {
      const d = e.data?.['decision'];
      this.decisions.inc({ decision: typeof d === 'string' ? d : 'allow' });
    }
    if (e.kind === 'run.result') {
      this.runsFinished.inc({ status: e.status ?? 'unknown' });
      if (typeof e.durationMs === 'number') this.runSeconds.observe(e.durationMs / 1000);
      if (e.id !== undefined) void this.observeDispatch(e.id);
    }
  }

  private async observeDispatch(runId: string): Promise<void> {
    try {
      const row = await runDispatchTimes.first(this.db.kysely, { id: runId });
      if (row?.dispatched_at == null) return;
      const s = (Date.parse(row.dispatched_at) - Date.parse(row.created_at)) / 1000;
      if (Number.isFinite(s) && s >= 0) this.dispatchSeconds.observe(s);
    } catch {
      // A metric is never worth failing a run over; the database error shows elsewhere.
    }
  }

  /** Read the database-backed gauges, then render everything. */
  async render(): Promise<string> {
    try {
      const runs = await this.db.kysely
        .selectFrom('runs')
        .select(['status', (eb) => eb.fn.countAll<number>().as('n')])
        .where('status', 'in', [...OPEN_RUN_STATUSES])
        .groupBy('status')
        .execute();
      const byStatus = new Map(runs.map((r) => [r.status as string, Number(r.n)]));
      this.runsOpen.replace(OPEN_RUN_STATUSES.map((s) => ({ labels: { status: s }, value: byStatus.get(s) ?? 0 })));
      const runners = await this.db.kysely.selectFrom('runners').select(['status', 'state']).execute();
      const counts = new Map<string, number>();
      const caps = new Map<string, number>();
      for (const r of runners) {
        counts.set(r.status, (counts.get(r.status) ?? 0) + 1);
        if (r.status !== 'online' || r.state === null) continue;
        for (const c of parseCapabilities(r.state)) caps.set(c, (caps.get(c) ?? 0) + 1);
      }
      this.runners.replace(
        ['online', 'offline', 'pending', 'revoked'].map((s) => ({ labels: { status: s }, value: counts.get(s) ?? 0 })),
      );
      this.capabilities.replace([...caps].map(([c, n]) => ({ labels: { capability: c }, value: n })));
      const live = await this.db.kysely
        .withTables<SandboxTables>()
        .selectFrom('sandboxes')
        .select(['state', (eb) => eb.fn.countAll<number>().as('n')])
        .where('state', 'in', ['creating', 'running'])
        .groupBy('state')
        .execute();
      const byState = new Map(live.map((r) => [r.state as string, Number(r.n)]));
      this.sandboxes.replace(
        ['creating', 'running'].map((s) => ({ labels: { state: s }, value: byState.get(s) ?? 0 })),
      );
    } catch {
      this.scrapeErrors.inc();
    }
    return this.registry.render();
  }
}

function parseCapabilities(state: string): string[] {
  try {
    const caps = (JSON.parse(state) as { capabilities?: unknown }).capabilities;
    return Array.isArray(caps) ? caps.filter((c): c is string => typeof c === 'string').slice(0, 32) : [];
  } catch {
    return [];
  }
}
