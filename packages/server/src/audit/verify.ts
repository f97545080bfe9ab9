import { type ChainHead, hashEvent, type TamperReason, verifyChain } from '@airlock/core';
import type { Db } from '../db/database.js';
import { parseBody } from './query.js';
import { type Checkpoint, checkpointSignatureValid } from './signing.js';
import { auditDb } from './tables.js';

/** Rows verified per query, to bound memory on large logs. */
const CHUNK = 1000;

export type ServerVerifyResult =
  | { ok: true; count: number; head: ChainHead | null }
  | { ok: false; index: number; reason: TamperReason | 'signature'; message: string };

export interface CheckpointSummary {
  count: number;
  latest: Checkpoint | null;
}

/** Result of verifying one runner's mirror. */
export interface RunnerMirrorResult {
  runner_id: string;
  name: string;
  ok: boolean;
  count: number;
  head: ChainHead | null;
  /** Stored chain position the server expects next from this runner. */
  expected_head: ChainHead | null;
  /** Seq where mirroring started, and the seqs where the mirror legitimately restarted (gap or fork). */
  start_seq: number | null;
  breaks: { seq: number; link: string }[];
  index?: number;
  reason?: string;
  message?: string;
}

/**
 * Verify the server chain from the database, in chunks. Each row's body must be a valid event
 * whose own seq and hash match the row's columns, link to its predecessor, and every signed
 * checkpoint must carry a valid signature and the hash of the event at its seq. A checkpoint
 * past the last row means the tail was deleted.
 */
export async function verifyServerChain(
  db: Db,
): Promise<{ result: ServerVerifyResult; checkpoints: CheckpointSummary }> {
  const adb = auditDb(db);
  const cps = (
    await adb
      .selectFrom('audit_checkpoints')
      .select(['seq', 'hash', 'time', 'key_id', 'signature'])
      .orderBy('seq')
      .orderBy('id')
      .execute()
  ).map((c) => ({ ...c, seq: Number(c.seq) }));
  const keys = new Map(
    (await adb.selectFrom('audit_signing_keys').select(['key_id', 'public_key']).execute()).map((k) => [
      k.key_id,
      k.public_key,
    ]),
  );
  const summary: CheckpointSummary = { count: cps.length, latest: cps[cps.length - 1] ?? null };
  for (const cp of cps) {
    const pem = keys.get(cp.key_id);
    if (pem === undefined || !checkpointSignatureValid(cp, pem)) {
      return {
        result: {
          ok: false,
          index: cp.seq,
          reason: 'signature',
          message: `checkpoint at seq ${cp.seq} (${cp.time}): ${pem === undefined ? `unknown key ${cp.key_id}` : 'bad signature'}`,
        },
        checkpoints: summary,
      };
    }
  }
  const bySeq = new Map<number, Checkpoint[]>();
  for (const cp of cps) bySeq.set(cp.seq, [...(bySeq.get(cp.seq) ?? []), cp]);

  // Chunks overlap by one event so a rewritten last event of a chunk is classified like in one pass.
  let before: ChainHead | undefined; // head before `carry`
  let carry: { event: unknown; index: number } | undefined;
  let index = 0;
  let lastSeq = -1;
  let count = 0;
  let head: ChainHead | null = null;
  for (;;) {
    const rows = await db.kysely
      .selectFrom('audit_events')
      .select(['seq', 'hash', 'body'])
      .where('seq', '>', lastSeq)
      .orderBy('seq')
      .limit(CHUNK)
      .execute();
    if (rows.length === 0) break;
    const events: unknown[] = carry === undefined ? [] : [carry.event];
    const base = carry === undefined ? index : carry.index;
    for (const r of rows) {
      const ev = parseBody(r.body);
      const e = ev as { seq?: unknown; hash?: unknown };
      if (e.seq !== Number(r.seq) || e.hash !== r.hash) {
        // The columns are what search and export index by; they must agree with the hashed body.
        const pre = verifyChain(events, before === undefined ? {} : { after: before });
        if (!pre.ok) return { result: { ...pre, index: pre.index + base }, checkpoints: summary };
        return {
          result: {
            ok: false,
            index,
            reason: 'edited',
            message: `event ${index} (seq ${String(r.seq)}): the row's seq/hash columns differ from its body`,
          },
          checkpoints: summary,
        };
      }
      events.push(ev);
      index++;
    }
    const res = verifyChain(events, before === undefined ? {} : { after: before });
    if (!res.ok) return { result: { ...res, index: res.index + base }, checkpoints: summary };
    for (const ev of events) {
      const e = ev as { seq: number; hash: string };
      for (const cp of bySeq.get(e.seq) ?? []) {
        if (cp.hash !== e.hash) {
          return {
            result: {
              ok: false,
              index: e.seq,
              reason: 'edited',
              message: `event at seq ${e.seq} differs from the signed checkpoint of ${cp.time}; the log was rewritten`,
            },
            checkpoints: summary,
          };
        }
      }
    }
    count = index;
    const last = events[events.length - 1] as { seq: number; hash: string };
    const prevOfLast = events.length >= 2 ? (events[events.length - 2] as { seq: number; hash: string }) : before;
    head = { seq: last.seq, hash: last.hash };
    before = prevOfLast === undefined ? undefined : { seq: prevOfLast.seq, hash: prevOfLast.hash };
    carry = { event: last, index: index - 1 };
    lastSeq = Number(rows[rows.length - 1]?.seq);
  }
  const latest = summary.latest;
  if (latest !== null && latest.seq > (head?.seq ?? -1)) {
    return {
      result: {
        ok: false,
        index: count,
        reason: 'truncated',
        message: `the log ends at seq ${head?.seq ?? -1} but a checkpoint signed at ${latest.time} covers seq ${latest.seq}; events were deleted from the end`,
      },
      checkpoints: summary,
    };
  }
  return { result: { ok: true, count, head }, checkpoints: summary };
}

/**
 * Verify the mirrors of an organisation's runners: every stored event carries its own hash,
 * and each event stored as `linked` follows its predecessor row. `start`, `gap` and `fork`
 * rows begin a new segment (each has a matching alert event in the server chain).
 */
export async function verifyRunnerMirrors(db: Db, orgId: string): Promise<RunnerMirrorResult[]> {
  const adb = auditDb(db);
  const runners = await db.kysely
    .selectFrom('runners')
    .select(['id', 'name', 'chain_seq', 'chain_hash'])
    .where('org_id', '=', orgId)
    .orderBy('name')
    .execute();
  const out: RunnerMirrorResult[] = [];
  for (const r of runners) {
    const res: RunnerMirrorResult = {
      runner_id: r.id,
      name: r.name,
      ok: true,
      count: 0,
      head: null,
      expected_head:
        r.chain_seq === null || r.chain_hash === null ? null : { seq: Number(r.chain_seq), hash: r.chain_hash },
      start_seq: null,
      breaks: [],
    };
    let prev: { seq: number; hash: string } | undefined;
    let lastSeq = -1;
    let index = 0;
    outer: for (;;) {
      const rows = await adb
        .selectFrom('runner_events')
        .select(['seq', 'hash', 'prev', 'body', 'link'])
        .where('runner_id', '=', r.id)
        .where('seq', '>', lastSeq)
        .orderBy('seq')
        .limit(CHUNK)
        .execute();
      if (rows.length === 0) break;
      for (const row of rows) {
        const seq = Number(row.seq);
        const e = parseBody(row.body) as { seq?: unknown; hash?: unknown; prev?: unknown };
        const fail = (reason: string, message: string): void => {
          Object.assign(res, { ok: false, index, reason, message });
        };
        let computed: string | undefined;
        try {
          computed = hashEvent(e as Parameters<typeof hashEvent>[0]);
        } catch {
          computed = undefined;
        }
        if (
          computed === undefined ||
          computed !== e.hash ||
          e.hash !== row.hash ||
          e.seq !== seq ||
          e.prev !== row.prev
        ) {
          fail('edited', `mirrored event seq ${seq}: content does not match its hash`);
          break outer;
        }
        if (res.start_seq === null) res.start_seq = seq;
        if (row.link === 'linked') {
          if (prev === undefined || prev.seq !== seq - 1) {
            fail('deleted', `mirrored event seq ${seq}: its predecessor (seq ${seq - 1}) is missing from the mirror`);
            break outer;
          }
          if (prev.hash !== row.prev) {
            fail('edited', `mirrored event seq ${seq - 1}: its hash is not the prev of seq ${seq}; it was rewritten`);
            break outer;
          }
        } else if (index > 0) {
          res.breaks.push({ seq, link: row.link });
        }
        prev = { seq, hash: row.hash };
        index++;
        lastSeq = seq;
      }
    }
    res.count = index;
    res.head = prev === undefined ? null : prev;
    out.push(res);
  }
  return out;
}
