import { auditEventShapeError, hashEvent } from '@airlock/core';
import type { ServerContext } from '../context.js';
import {
  insertRunnerEvent,
  moveRunnerHead,
  relinkNext,
  runnerChain,
  runnerChainForUpdate,
  runnerEventHash,
} from '../db/hot-queries.js';
import type { AuditTransaction, ServerAuditInput } from './audit-log.js';
import type { RunnerEventLink } from './tables.js';

const SYSTEM = { type: 'system', id: 'airlock' } as const;

/** Alert kinds raised by the mirror (severity in docs/audit.md and cef.ts). */
export const MIRROR_ALERTS = {
  badHash: 'runner.chain_bad_hash',
  gap: 'runner.chain_gap',
  fork: 'runner.chain_fork',
  truncated: 'runner.log_truncated',
  started: 'runner.mirror_started',
} as const;

function alert(
  orgId: string,
  runnerName: string,
  kind: string,
  critical: boolean,
  data: Record<string, unknown>,
  id?: string,
): ServerAuditInput {
  return {
    orgId,
    kind,
    actor: SYSTEM,
    runner: runnerName,
    status: critical ? 'error' : 'success',
    data: { ...data, alert: critical ? 'critical' : kind === MIRROR_ALERTS.started ? 'info' : 'warning' },
    ...(id === undefined ? {} : { id }),
  };
}

/**
 * Mirror one runner security-log event (from a `result`): check its hash and its link to
 * the last event seen from that runner, store it, and raise an alert event on a gap or fork.
 *
 * - own hash wrong (or not an event): `runner.chain_bad_hash` (critical), not stored;
 * - first event from the runner: stored as `start`, any `prev` accepted, `runner.mirror_started`;
 * - seq = head + 1 and prev = head hash: stored as `linked`;
 * - seq = head + 1 but another prev: `runner.chain_fork` (critical), stored as `fork`;
 * - seq jumps ahead: `runner.chain_gap` (warning; local runs on the host also write the log),
 *   stored as `gap`;
 * - seq already mirrored with the same hash: a re-delivery, nothing happens (idempotent);
 *   with another hash: `runner.chain_fork` (critical), the stored event is kept;
 * - an older seq not mirrored yet (a late re-delivery into a gap): stored, no alert.
 * After a gap or fork the mirror follows the runner: the new event becomes the expected head.
 */
export async function mirrorRunnerEvent(
  ctx: ServerContext,
  orgId: string,
  runnerId: string,
  event: Readonly<Record<string, unknown>>,
  outer?: AuditTransaction,
): Promise<void> {
  if (outer !== undefined) return mirrorIn(ctx, outer, orgId, runnerId, event);
  await ctx.db.kysely.transaction().execute((trx) => mirrorIn(ctx, trx, orgId, runnerId, event));
}

/**
 * The mirror's reads and writes and its alerts, in one transaction: the caller's (the run's
 * finalisation, so the result, the mirrored event and the audit events commit together) or
 * its own.
 */
async function mirrorIn(
  ctx: ServerContext,
  outer: AuditTransaction,
  orgId: string,
  runnerId: string,
  event: Readonly<Record<string, unknown>>,
): Promise<void> {
  // The runner row is the lock that orders two results of one runner on Postgres.
  const runner = await (ctx.db.dialect === 'postgres' ? runnerChainForUpdate : runnerChain).first(outer, {
    id: runnerId,
    org_id: orgId,
  });
  if (runner === undefined) {
    ctx.log.warn({ runnerId, orgId }, 'audit mirror: event from an unknown runner ignored');
    return;
  }
  const name = runner.name;
  const problem = auditEventShapeError(event);
  let computed: string | undefined;
  if (problem === null) {
    try {
      computed = hashEvent(event as unknown as Parameters<typeof hashEvent>[0]);
    } catch {
      computed = undefined;
    }
  }
  if (problem !== null || computed !== event['hash']) {
    await ctx.audit.record(
      alert(orgId, name, MIRROR_ALERTS.badHash, true, {
        runner_id: runnerId,
        seq: typeof event['seq'] === 'number' ? event['seq'] : null,
        claimed_hash: typeof event['hash'] === 'string' ? event['hash'] : null,
        computed_hash: computed ?? null,
        problem: problem ?? 'content does not match its hash',
      }),
      outer,
    );
    return;
  }
  const seq = event['seq'] as number;
  const hash = event['hash'] as string;
  const prev = event['prev'] as string;
  const alerts: ServerAuditInput[] = [];
  await (async () => {
    const head =
      runner.chain_seq === null || runner.chain_hash === null
        ? null
        : { seq: Number(runner.chain_seq), hash: runner.chain_hash };
    const existing = await runnerEventHash.first(outer, { runner_id: runnerId, seq });
    let moveHead = false;
    if (existing !== undefined) {
      if (existing.hash === hash) return; // re-delivery
      alerts.push(
        alert(orgId, name, MIRROR_ALERTS.fork, true, {
          runner_id: runnerId,
          seq,
          mirrored_hash: existing.hash,
          received_hash: hash,
          detail: `the runner sent a different event for seq ${seq} than the one already mirrored; its log was rewritten`,
        }),
      );
      // Follow the runner so that one rewrite does not raise an alert for every later event.
      if (head === null || seq >= head.seq || prev === head.hash) moveHead = true;
    } else {
      const pred = seq === 0 ? undefined : await runnerEventHash.first(outer, { runner_id: runnerId, seq: seq - 1 });
      let link: RunnerEventLink;
      if (head === null) {
        link = pred !== undefined && pred.hash === prev ? 'linked' : 'start';
        alerts.push(alert(orgId, name, MIRROR_ALERTS.started, false, { runner_id: runnerId, seq, hash, prev }));
        moveHead = true;
      } else if (seq === head.seq + 1) {
        if (prev !== head.hash) {
          alerts.push(
            alert(orgId, name, MIRROR_ALERTS.fork, true, {
              runner_id: runnerId,
              seq: head.seq,
              mirrored_hash: head.hash,
              received_hash: prev,
              detail: `event seq ${seq} does not follow the mirrored event seq ${head.seq}; the runner's log was rewritten`,
            }),
          );
        }
        moveHead = true;
        link = pred === undefined ? 'gap' : pred.hash === prev ? 'linked' : 'fork';
      } else if (seq > head.seq + 1) {
        alerts.push(
          alert(orgId, name, MIRROR_ALERTS.gap, false, {
            runner_id: runnerId,
            from_seq: head.seq + 1,
            to_seq: seq - 1,
            missing: seq - head.seq - 1,
            detail: `events ${head.seq + 1}..${seq - 1} were not received (local runs on the host also write the log)`,
          }),
        );
        moveHead = true;
        link = 'gap';
      } else {
        // Older than the head and not mirrored yet: a late re-delivery into a gap.
        link = pred !== undefined && pred.hash === prev ? 'linked' : 'gap';
      }
      await insertRunnerEvent.execute(outer, {
        runner_id: runnerId,
        seq,
        time: typeof event['time'] === 'string' ? event['time'] : '',
        action: typeof event['action'] === 'string' ? event['action'] : '',
        status: typeof event['status'] === 'string' ? event['status'] : '',
        body: JSON.stringify(event),
        prev,
        hash,
        link,
      });
      // A row that follows this one and was stored as a break now links (late re-delivery).
      await relinkNext.execute(outer, { runner_id: runnerId, seq: seq + 1, prev: hash });
    }
    if (moveHead) {
      await moveRunnerHead.execute(outer, { id: runnerId, chain_seq: seq, chain_hash: hash });
    }
  })();
  // Appended last: on Postgres the chain lock is then held only until the commit just after.
  for (const a of alerts) await ctx.audit.record(a, outer);
}

/** On `hello`: a runner whose log head is behind what the server already mirrored was truncated. */
export async function checkRunnerLogHead(
  ctx: ServerContext,
  orgId: string,
  runnerId: string,
  head: { seq: number; hash: string } | null | undefined,
): Promise<void> {
  if (head === undefined) return; // the runner did not report its head
  const runner = await ctx.db.kysely
    .selectFrom('runners')
    .select(['name', 'chain_seq', 'chain_hash'])
    .where('id', '=', runnerId)
    .where('org_id', '=', orgId)
    .executeTakeFirst();
  if (runner === undefined || runner.chain_seq === null || runner.chain_hash === null) return;
  const stored = { seq: Number(runner.chain_seq), hash: runner.chain_hash };
  let why: string | undefined;
  if (head === null) why = `the runner reports an empty log; the server mirrored up to seq ${stored.seq}`;
  else if (head.seq < stored.seq)
    why = `the runner's log ends at seq ${head.seq}; the server mirrored up to seq ${stored.seq}`;
  else if (head.seq === stored.seq && head.hash !== stored.hash)
    why = `the runner's head at seq ${head.seq} differs from the mirrored event; the log was rewritten`;
  if (why === undefined) return;
  // Remember the reported head so that every reconnect does not raise the same alert again;
  // the mirrored events stay in runner_events as evidence.
  const updated = await ctx.db.kysely
    .updateTable('runners')
    .set({ chain_seq: head === null ? null : head.seq, chain_hash: head === null ? null : head.hash })
    .where('id', '=', runnerId)
    .where('chain_seq', '=', stored.seq)
    .where('chain_hash', '=', stored.hash)
    .executeTakeFirst();
  if (Number(updated.numUpdatedRows) === 0) return; // someone else handled this head change
  await ctx.audit.record(
    alert(orgId, runner.name, MIRROR_ALERTS.truncated, true, {
      runner_id: runnerId,
      mirrored_head: stored,
      reported_head: head,
      detail: why,
    }),
  );
}
