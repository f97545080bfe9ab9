import { AIRLOCK_VERSION } from '@airlock/core';
import { type CheckResult, type DoctorContext, fail, ok, warn } from './check.js';
import { clockSkewSeconds, httpBase, probeGet } from './http-probe.js';

/** What the server check learned, for the checks that need a live server. */
export interface ServerReach {
  readonly reachable: boolean;
  readonly base: string;
}

/** The control plane answers /healthz and /readyz, runs the same version, and agrees on the time. */
export async function checkServer(ctx: DoctorContext): Promise<{ results: CheckResult[]; reach: ServerReach }> {
  const base = httpBase(ctx.server.url);
  const results: CheckResult[] = [];
  let health: Awaited<ReturnType<typeof probeGet>>;
  try {
    health = await probeGet(`${base}/healthz`, {}, ctx.timeoutMs);
  } catch (e) {
    const detail = `${base} (${ctx.server.source}): ${(e as Error).message}`;
    const fix = ctx.server.configured
      ? 'start the control plane ("systemctl start airlock-server" or "airlock server"), or correct the URL; check firewalls and TLS termination in between'
      : 'no control plane at the default address: start one ("npm start" or "airlock server"), or set AIRLOCK_SERVER';
    results.push(ctx.server.configured ? fail('server', detail, fix) : warn('server', detail, fix));
    return { results, reach: { reachable: false, base } };
  }
  if (health.status !== 200) {
    results.push(
      fail(
        'server',
        `${base}/healthz answered HTTP ${health.status}`,
        'the address answers but is not an airlock control plane (a proxy in between?); check AIRLOCK_SERVER',
      ),
    );
    return { results, reach: { reachable: false, base } };
  }
  let version = '?';
  try {
    version = String((JSON.parse(health.body) as { version?: unknown }).version ?? '?');
  } catch {
    // An answer that is not JSON still proves reachability; the version stays unknown.
  }
  results.push(
    version === AIRLOCK_VERSION
      ? ok('server', `${base}: airlock ${version}`)
      : warn(
          'server',
          `${base}: airlock ${version}, this host has ${AIRLOCK_VERSION}`,
          'upgrade the older side (docs/operations.md, "Upgrades"); mixed versions work within one protocol version',
        ),
  );
  try {
    const ready = await probeGet(`${base}/readyz`, {}, ctx.timeoutMs);
    if (ready.status === 200) results.push(ok('server ready', 'database reachable, migrations current'));
    else if (ready.status === 404) results.push(ok('server ready', 'server predates /readyz; skipped'));
    else
      results.push(
        fail('server ready', `/readyz answered ${ready.status}: ${ready.body.slice(0, 300)}`, 'see the server log'),
      );
  } catch (e) {
    results.push(fail('server ready', (e as Error).message, 'see the server log'));
  }

  const date = health.headers['date'];
  const skew = typeof date === 'string' ? clockSkewSeconds(date, health.sentAt, health.receivedAt) : undefined;
  if (skew === undefined) {
    results.push(warn('clock', 'the server sent no usable Date header', 'check for a proxy that strips Date'));
  } else {
    const a = Math.abs(skew);
    const detail = `this host is ${a === 0 ? 'in step with' : `${a.toFixed(1)} s ${skew > 0 ? 'behind' : 'ahead of'}`} the server`;
    const fix =
      'synchronise clocks with NTP (systemd-timesyncd or chrony) on both hosts: audit times, approval expiry and session lifetimes depend on them';
    results.push(
      a >= ctx.skew.failSeconds
        ? fail('clock', detail, fix)
        : a >= ctx.skew.warnSeconds
          ? warn('clock', detail, fix)
          : ok('clock', detail),
    );
  }
  return { results, reach: { reachable: true, base } };
}
