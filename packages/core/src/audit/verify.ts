import { type AuditEvent, auditEventShapeError, type ChainHead, GENESIS_HASH, hashEvent } from './event.js';

/** Why a chain failed verification. */
export type TamperReason = 'malformed' | 'edited' | 'deleted' | 'reordered' | 'inserted' | 'truncated' | 'forked';

/** Outcome of {@link verifyChain}; on failure `index` is the first broken position in the input. */
export type VerifyResult =
  | { readonly ok: true; readonly count: number; readonly head: ChainHead | null }
  | { readonly ok: false; readonly index: number; readonly reason: TamperReason; readonly message: string };

/** What the verifier knows from outside the log (for example the control plane's mirror). */
export interface VerifyOptions {
  /** An event the chain must contain with exactly this hash; later events may follow it. */
  readonly expectedHead?: ChainHead;
  /** Exact number of events the input must hold. */
  readonly expectedCount?: number;
  /** Verify a segment: its first event follows this head instead of the genesis. */
  readonly after?: ChainHead;
}

function fail(index: number, reason: TamperReason, message: string): VerifyResult {
  return { ok: false, index, reason, message };
}

function field(value: unknown, key: 'seq' | 'hash' | 'prev'): unknown {
  return typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[key] : undefined;
}

/**
 * Verify a hash chain and report the first broken position with the most likely kind of
 * tampering. Each event must be well formed, carry the hash of its own content, and link
 * to its predecessor (`seq` one higher, `prev` equal to its hash).
 *
 * How a break is classified, at the first event `e` (index i) that does not link:
 * - shape wrong → `malformed` (i); stored hash ≠ recomputed → `edited` (i);
 * - `prev` links but `seq` is wrong → `edited` (i): seq was changed and the hash recomputed;
 * - `seq` is right but `prev` is not the predecessor's hash → `edited` (i − 1): the
 *   predecessor's content was changed and its hash recomputed (this cannot be told apart from
 *   a rewritten `prev` in `e` itself);
 * - `seq` jumps ahead → `inserted` if the same event reappears later (a copy placed early),
 *   `reordered` if the missing successor appears later, else `deleted`;
 * - `seq` repeats or goes back → `inserted` for a copy of an earlier event or a foreign event,
 *   `forked` for a second, different successor of an already verified event.
 * Then the options: fewer events than `expectedCount` or `expectedHead` not reached →
 * `truncated` (index = first missing position); more than `expectedCount` → `inserted`;
 * `expectedHead` reached with another hash → `edited` at that index (rewritten up to there).
 * Deleting events from the end is only detectable with one of the options.
 */
export function verifyChain(events: readonly unknown[], opts: VerifyOptions = {}): VerifyResult {
  const startSeq = opts.after === undefined ? 0 : opts.after.seq + 1;
  const startPrev = opts.after === undefined ? GENESIS_HASH : opts.after.hash;
  const seen = new Map<string, number>();
  let expectedSeq = startSeq;
  let prevHash = startPrev;

  for (let i = 0; i < events.length; i++) {
    const raw = events[i];
    const problem = auditEventShapeError(raw);
    if (problem !== null) return fail(i, 'malformed', `event ${i}: ${problem}`);
    const e = raw as AuditEvent;
    let computed: string;
    try {
      computed = hashEvent(e);
    } catch (err) {
      return fail(i, 'malformed', `event ${i}: ${err instanceof Error ? err.message : String(err)}`);
    }
    if (computed !== e.hash) {
      return fail(i, 'edited', `event ${i} (seq ${e.seq}): content does not match its hash`);
    }
    if (e.seq === expectedSeq && e.prev === prevHash) {
      seen.set(e.hash, i);
      prevHash = e.hash;
      expectedSeq++;
      continue;
    }
    if (e.prev === prevHash) {
      return fail(i, 'edited', `event ${i}: seq is ${e.seq}, expected ${expectedSeq}; its hash was recomputed`);
    }
    if (e.seq === expectedSeq) {
      if (i === 0) {
        return fail(0, 'edited', `event 0: prev does not match the chain start ${startPrev}`);
      }
      return fail(
        i - 1,
        'edited',
        `event ${i - 1} (seq ${expectedSeq - 1}): its hash is not the prev of event ${i}; it was rewritten`,
      );
    }
    if (e.seq < expectedSeq) {
      const dup = seen.get(e.hash);
      if (dup !== undefined) return fail(i, 'inserted', `event ${i}: duplicate of event ${dup} (seq ${e.seq})`);
      // Verified events so far are contiguous, so seq s sits at index s - startSeq.
      const parent =
        e.seq === startSeq ? startPrev : e.seq > startSeq ? field(events[e.seq - startSeq - 1], 'hash') : undefined;
      if (parent !== undefined && e.prev === parent) {
        return fail(i, 'forked', `event ${i}: a second successor of seq ${e.seq - 1}; the log forked`);
      }
      return fail(i, 'inserted', `event ${i}: seq ${e.seq} repeats and the event is not part of this chain`);
    }
    // seq jumps ahead: look at what follows to tell a misplaced event from a missing one.
    let successorLater = false;
    for (let j = i + 1; j < events.length; j++) {
      const later = events[j];
      if (field(later, 'hash') === e.hash) {
        return fail(i, 'inserted', `event ${i}: copy of event ${j} (seq ${e.seq}) placed out of order`);
      }
      if (field(later, 'seq') === expectedSeq && field(later, 'prev') === prevHash) successorLater = true;
    }
    if (successorLater) {
      return fail(i, 'reordered', `event ${i}: seq ${e.seq} where seq ${expectedSeq} was expected; events moved`);
    }
    const missing = e.seq - expectedSeq;
    return fail(
      i,
      'deleted',
      `event ${i}: seq jumps from ${expectedSeq - 1} to ${e.seq}; ${missing} event${missing === 1 ? '' : 's'} missing`,
    );
  }

  const count = events.length;
  if (opts.expectedCount !== undefined) {
    if (count < opts.expectedCount) {
      return fail(count, 'truncated', `expected ${opts.expectedCount} events, found ${count}`);
    }
    if (count > opts.expectedCount) {
      return fail(opts.expectedCount, 'inserted', `expected ${opts.expectedCount} events, found ${count}`);
    }
  }
  if (opts.expectedHead !== undefined) {
    const want = opts.expectedHead;
    const at = want.seq - startSeq;
    if (at >= count) {
      return fail(
        count,
        'truncated',
        `expected head seq ${want.seq} not reached; the chain ends at seq ${expectedSeq - 1}`,
      );
    }
    const have = at >= 0 ? field(events[at], 'hash') : undefined;
    if (have !== want.hash) {
      return fail(Math.max(at, 0), 'edited', `event ${at} (seq ${want.seq}) differs from the expected head; rewritten`);
    }
  }
  const last = events[count - 1] as AuditEvent | undefined;
  return { ok: true, count, head: last === undefined ? null : { seq: last.seq, hash: last.hash } };
}

/** Result of {@link parseJsonl}: one entry per line (null where a line is not JSON). */
export interface ParsedJsonl {
  readonly events: unknown[];
  /** 1-based line numbers; the matching event index is `line - 1`. */
  readonly errors: { readonly line: number; readonly message: string }[];
}

/**
 * Split a JSONL log into values, one per line. A single trailing newline is allowed; every
 * other line, including an empty line or a final line cut off mid-write, must be JSON. A line
 * that is not JSON is reported and kept as `null` so that indices still match line numbers
 * and {@link verifyChain} reports it as `malformed` at that index.
 */
export function parseJsonl(text: string): ParsedJsonl {
  const events: unknown[] = [];
  const errors: { line: number; message: string }[] = [];
  if (text.length === 0) return { events, errors };
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? '';
    if (line.trim() === '') {
      errors.push({ line: i + 1, message: `line ${i + 1}: empty line` });
      events.push(null);
      continue;
    }
    try {
      events.push(JSON.parse(line));
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      errors.push({ line: i + 1, message: `line ${i + 1}: not JSON (${why})` });
      events.push(null);
    }
  }
  return { events, errors };
}
