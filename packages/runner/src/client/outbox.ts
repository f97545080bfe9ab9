import {
  closeSync,
  existsSync,
  fstatSync,
  fsync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';

/** What the outbox keeps per request until the control plane acknowledges the result. */
export interface OutboxEntry {
  readonly requestId: string;
  readonly request: Record<string, unknown>;
  readonly outputs: Record<string, unknown>[];
  readonly result: Record<string, unknown> | undefined;
}

/** Output kept per request for replay after a reconnect (output is best effort; the result is the record). */
export const OUTBOX_OUTPUT_MAX = 1024 * 1024;

/** The journal is rewritten with only the live entries once it is this big and mostly dead. */
const COMPACT_MIN_BYTES = 1024 * 1024;

const SAFE_ID = /^[A-Za-z0-9_-]{1,128}$/;

type Record_ =
  | { readonly op: 'accept'; readonly id: string; readonly request: Record<string, unknown> }
  | { readonly op: 'output'; readonly id: string; readonly output: Record<string, unknown> }
  | { readonly op: 'result'; readonly id: string; readonly result: Record<string, unknown> }
  | { readonly op: 'remove'; readonly id: string };

interface Live {
  request: Record<string, unknown>;
  outputs: Record<string, unknown>[];
  result: Record<string, unknown> | undefined;
  /** Bytes of output kept (for the OUTBOX_OUTPUT_MAX cap). */
  outputBytes: number;
  /** Journal bytes this entry would take after a compaction. */
  bytes: number;
}

interface Waiter {
  readonly resolve: () => void;
  readonly reject: (e: Error) => void;
}

/**
 * The runner's persistent outbox: one append-only journal (`journal.jsonl`) of accepted
 * requests, their output lines, their results and their removal once acknowledged, with the
 * live entries indexed in memory. The request is durable before the runner says `accepted`,
 * and the result before it is sent, so neither a runner crash nor a lost connection loses a
 * result or lets a request run twice.
 *
 * Durable appends are group-committed: every record written before an fsync starts is
 * covered by it, and records appended while it runs wait for the next one (on the threadpool,
 * so the event loop keeps streaming). One journal instead of a folder per request saves a
 * mkdir, two file creations, a rename and a recursive remove per run. The journal is
 * rewritten with only the live entries when it is mostly dead, and at every start.
 */
export class Outbox {
  private readonly path: string;
  private readonly live = new Map<string, Live>();
  private fd: number;
  /** Bytes in the journal file that are known to be whole records. */
  private size = 0;
  private liveBytes = 0;
  /** Records appended but not yet written to the file. */
  private pending: string[] = [];
  /** Durable appends waiting for the fsync that covers them (written, or still pending). */
  private waiting: Waiter[] = [];
  private flushScheduled = false;
  private syncing = false;

  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.path = join(dir, 'journal.jsonl');
    const folders = this.importFolders();
    this.replay();
    this.fd = this.rewrite();
    // Their entries are in the (fsync'd) journal now.
    for (const d of folders) rmSync(d, { recursive: true, force: true });
  }

  private check(id: string): void {
    if (!SAFE_ID.test(id)) throw new Error(`unsafe request id ${JSON.stringify(id)}`);
  }

  has(id: string): boolean {
    return this.live.has(id);
  }

  /** Record an accepted request (fsync'd) before anything runs. */
  accept(id: string, request: Record<string, unknown>): void {
    this.apply({ op: 'accept', id, request });
    this.flushSync();
  }

  /** accept(), without blocking the event loop on the fsync. */
  acceptDurable(id: string, request: Record<string, unknown>): Promise<void> {
    this.apply({ op: 'accept', id, request });
    return this.durable();
  }

  /**
   * Keep an output line so it can be re-sent after a reconnect (not fsync'd: the result is
   * what counts). Only the first OUTBOX_OUTPUT_MAX bytes per request are kept, so replaying
   * an outbox after a long outage never loads an unbounded amount into memory.
   */
  appendOutput(id: string, output: Record<string, unknown>): void {
    const e = this.live.get(id);
    // Once full, a request's lines are not even measured: a flood makes no garbage here.
    if (e === undefined || e.outputBytes >= OUTBOX_OUTPUT_MAX) return;
    const size = JSON.stringify(output).length + 1;
    if (e.outputBytes + size > OUTBOX_OUTPUT_MAX) return;
    this.apply({ op: 'output', id, output });
    this.scheduleFlush();
  }

  /** Record the final result (fsync'd) before it is sent. */
  complete(id: string, result: Record<string, unknown>): void {
    this.apply({ op: 'result', id, result });
    this.flushSync();
  }

  /** complete(), without blocking the event loop on the fsync. */
  completeDurable(id: string, result: Record<string, unknown>): Promise<void> {
    this.apply({ op: 'result', id, result });
    return this.durable();
  }

  result(id: string): Record<string, unknown> | undefined {
    return this.live.get(id)?.result;
  }

  /** The control plane has the result: forget the entry. */
  remove(id: string): void {
    if (!this.live.has(id)) return;
    this.apply({ op: 'remove', id });
    this.scheduleFlush();
  }

  /** Every pending entry, oldest first. */
  entries(): OutboxEntry[] {
    return [...this.live].map(([requestId, e]) => ({
      requestId,
      request: e.request,
      outputs: [...e.outputs],
      result: e.result,
    }));
  }

  /** Update the index and queue the record for the journal. */
  private apply(r: Record_): void {
    this.check(r.id);
    const line = `${JSON.stringify(r)}\n`;
    this.index(r, line.length);
    this.pending.push(line);
  }

  private index(r: Record_, bytes: number): void {
    const e = this.live.get(r.id);
    switch (r.op) {
      case 'accept':
        if (e !== undefined) this.liveBytes -= e.bytes;
        this.live.set(r.id, { request: r.request, outputs: [], result: undefined, outputBytes: 0, bytes });
        this.liveBytes += bytes;
        return;
      case 'output':
        if (e === undefined) return;
        e.outputs.push(r.output);
        e.outputBytes += JSON.stringify(r.output).length + 1;
        e.bytes += bytes;
        this.liveBytes += bytes;
        return;
      case 'result':
        if (e === undefined) return;
        e.result = r.result;
        e.bytes += bytes;
        this.liveBytes += bytes;
        return;
      case 'remove':
        if (e === undefined) return;
        this.liveBytes -= e.bytes;
        this.live.delete(r.id);
        return;
    }
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // Records from the rest of this turn of the event loop join the same write.
    setImmediate(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  private durable(): Promise<void> {
    const p = new Promise<void>((resolve, reject) => this.waiting.push({ resolve, reject }));
    this.scheduleFlush();
    return p;
  }

  /**
   * Write what is pending, then (unless an fsync is already running) fsync for every durable
   * append written so far. Appends arriving during an fsync are written at once but wait
   * for the next fsync, which starts when this one ends.
   */
  private flush(): void {
    try {
      this.writePending();
    } catch (e) {
      this.failWaiters(e as Error);
      return;
    }
    if (this.syncing || this.waiting.length === 0) return;
    const batch = this.waiting;
    this.waiting = [];
    this.syncing = true;
    fsync(this.fd, (err) => {
      this.syncing = false;
      for (const w of batch) {
        if (err) w.reject(err);
        else w.resolve();
      }
      if (this.waiting.length > 0 || this.pending.length > 0) this.flush();
      else this.maybeCompact();
    });
  }

  /** Write and fsync everything now, on the event loop (recovery and the rarely used sync paths). */
  private flushSync(): void {
    this.writePending();
    fsyncSync(this.fd);
    // Earlier durable appends are covered by this fsync too.
    const batch = this.waiting;
    this.waiting = [];
    for (const w of batch) w.resolve();
  }

  private writePending(): void {
    if (this.pending.length === 0) return;
    const text = this.pending.join('');
    this.pending = [];
    try {
      writeSync(this.fd, text, this.size);
    } catch (e) {
      // A short or failed write (ENOSPC) must not leave half a record for the next one to be
      // glued to: cut the file back to its last whole record. The records are lost, and the
      // callers waiting for them hear so.
      try {
        ftruncateSync(this.fd, this.size);
      } catch {
        // the write error below is the one to report
      }
      throw e;
    }
    this.size += Buffer.byteLength(text);
  }

  private failWaiters(e: Error): void {
    const batch = this.waiting;
    this.waiting = [];
    for (const w of batch) w.reject(e);
  }

  private maybeCompact(): void {
    if (this.size < COMPACT_MIN_BYTES || this.size < 4 * this.liveBytes) return;
    try {
      const fd = this.rewrite();
      closeSync(this.fd);
      this.fd = fd;
    } catch {
      // Compaction is an optimisation: the journal as it is stays correct.
    }
  }

  /** Rewrite the journal with only the live entries (fsync'd, then renamed over it); returns its fd. */
  private rewrite(): number {
    const lines: string[] = [];
    for (const [id, e] of this.live) {
      lines.push(`${JSON.stringify({ op: 'accept', id, request: e.request })}\n`);
      for (const output of e.outputs) lines.push(`${JSON.stringify({ op: 'output', id, output })}\n`);
      if (e.result !== undefined) lines.push(`${JSON.stringify({ op: 'result', id, result: e.result })}\n`);
    }
    const text = lines.join('');
    const tmp = `${this.path}.tmp`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, text);
      fsyncSync(fd);
      renameSync(tmp, this.path);
      const dfd = openSync(this.dir, 'r');
      try {
        fsyncSync(dfd);
      } finally {
        closeSync(dfd);
      }
    } catch (e) {
      closeSync(fd);
      throw e;
    }
    this.size = fstatSync(fd).size;
    this.liveBytes = this.size;
    return fd;
  }

  /** Rebuild the index from the journal. A torn last record (a crash mid-write) was never reported durable. */
  private replay(): void {
    if (!existsSync(this.path)) return;
    const text = readFileSync(this.path, 'utf8');
    for (const line of text.split('\n')) {
      if (line === '') continue;
      let r: Record_;
      try {
        r = JSON.parse(line) as Record_;
      } catch {
        continue;
      }
      if (typeof r !== 'object' || r === null || typeof r.id !== 'string' || !SAFE_ID.test(r.id)) continue;
      this.index(r, line.length + 1);
    }
  }

  /** Outboxes written by earlier versions kept a folder per request: fold them into the index. */
  private importFolders(): string[] {
    const folders: string[] = [];
    for (const id of readdirSync(this.dir).sort()) {
      const d = join(this.dir, id);
      if (!SAFE_ID.test(id) || !existsSync(join(d, 'request.json'))) continue;
      folders.push(d);
      try {
        const request = JSON.parse(readFileSync(join(d, 'request.json'), 'utf8')) as Record<string, unknown>;
        this.index({ op: 'accept', id, request }, 0);
        if (existsSync(join(d, 'output.jsonl'))) {
          for (const line of readFileSync(join(d, 'output.jsonl'), 'utf8').split('\n')) {
            try {
              if (line !== '') this.index({ op: 'output', id, output: JSON.parse(line) }, 0);
            } catch {
              // a torn last line after a crash; the lines before it are intact
            }
          }
        }
        if (existsSync(join(d, 'result.json'))) {
          this.index({ op: 'result', id, result: JSON.parse(readFileSync(join(d, 'result.json'), 'utf8')) }, 0);
        }
      } catch {
        // a torn request file: it was never acknowledged as accepted
      }
    }
    return folders;
  }
}
