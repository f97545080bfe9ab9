import { Readable } from 'node:stream';
import type { Db } from '../db/database.js';
import { cefLine } from './cef.js';
import { type AuditScope, decodeCursor, encodeCursor, visible } from './query.js';

/** Rows read per query while streaming. */
const CHUNK = 500;

export type ExportFormat = 'ndjson' | 'cef';

/** One export page: the seq range it covers and the cursor to continue after it. */
export interface ExportPage {
  readonly afterSeq: number;
  readonly endSeq: number;
  readonly hasMore: boolean;
  readonly nextCursor: string;
}

/**
 * Fix the page before streaming: `limit` chain positions after the cursor (events outside the
 * caller's scope count too, so page boundaries are the same for everyone). The end is pinned
 * now, so events appended while the page streams go to the next page.
 */
export async function exportPage(db: Db, cursor: string | undefined, limit: number): Promise<ExportPage> {
  const afterSeq = cursor === undefined ? -1 : decodeCursor('e', cursor);
  const rows = await db.kysely
    .selectFrom('audit_events')
    .select('seq')
    .where('seq', '>', afterSeq)
    .orderBy('seq')
    .limit(2)
    .offset(limit - 1)
    .execute();
  let endSeq: number;
  let hasMore = false;
  if (rows[0] !== undefined) {
    endSeq = Number(rows[0].seq);
    hasMore = rows[1] !== undefined;
  } else {
    const last = await db.kysely
      .selectFrom('audit_events')
      .select('seq')
      .orderBy('seq', 'desc')
      .limit(1)
      .executeTakeFirst();
    endSeq = last === undefined ? afterSeq : Math.max(afterSeq, Number(last.seq));
  }
  return { afterSeq, endSeq, hasMore, nextCursor: encodeCursor('e', endSeq) };
}

/**
 * Stream one page. NDJSON lines, oldest first:
 * - `{"type":"checkpoint",seq,hash,time,key_id,signature}` for each signed checkpoint whose seq
 *   falls in the page, first (so cutting events off the end leaves them in place);
 * - each event in the caller's scope, exactly as stored (the hashed JSON plus `hash`);
 * - `{"type":"elided",seq,prev,hash}` for an event of another organisation, so the chain
 *   still links without revealing its content;
 * - a final `{"type":"cursor","next_cursor":…,"has_more":…}`.
 * CEF: one line per event in scope, nothing else.
 */
export function exportStream(db: Db, scope: AuditScope, page: ExportPage, format: ExportFormat): Readable {
  async function* lines(): AsyncGenerator<string> {
    if (format === 'ndjson') {
      const cps = await db.kysely
        .selectFrom('audit_checkpoints')
        .select(['seq', 'hash', 'time', 'key_id', 'signature'])
        .where('seq', '>', page.afterSeq)
        .where('seq', '<=', page.endSeq)
        .orderBy('seq')
        .orderBy('id')
        .execute();
      if (cps.length > 0) {
        yield cps
          .map(
            (c) =>
              `${JSON.stringify({ type: 'checkpoint', seq: Number(c.seq), hash: c.hash, time: c.time, key_id: c.key_id, signature: c.signature })}\n`,
          )
          .join('');
      }
    }
    let after = page.afterSeq;
    while (after < page.endSeq) {
      const rows = await db.kysely
        .selectFrom('audit_events')
        .select(['seq', 'org_id', 'body', 'prev', 'hash'])
        .where('seq', '>', after)
        .where('seq', '<=', page.endSeq)
        .orderBy('seq')
        .limit(CHUNK)
        .execute();
      if (rows.length === 0) break;
      let out = '';
      for (const r of rows) {
        const inScope = visible(scope, r.org_id);
        if (format === 'ndjson') {
          // The stored body is single-line JSON; re-serialise only if someone stored it otherwise.
          const body = inScope
            ? r.body.includes('\n')
              ? JSON.stringify(JSON.parse(r.body))
              : r.body
            : JSON.stringify({ type: 'elided', seq: Number(r.seq), prev: r.prev, hash: r.hash });
          out += `${body}\n`;
        } else if (inScope) {
          let parsed: unknown;
          try {
            parsed = JSON.parse(r.body);
          } catch {
            parsed = { seq: Number(r.seq), kind: 'audit.malformed', status: 'error', hash: r.hash };
          }
          out += `${cefLine(parsed, r.org_id)}\n`;
        }
      }
      if (out !== '') yield out;
      after = Number(rows[rows.length - 1]?.seq);
    }
    if (format === 'ndjson')
      yield `${JSON.stringify({ type: 'cursor', next_cursor: page.nextCursor, has_more: page.hasMore })}\n`;
  }
  return Readable.from(lines(), { objectMode: false });
}
