import { createHash } from 'node:crypto';
import {
  closeSync,
  constants,
  fstatSync,
  fsync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { dirname } from 'node:path';
import {
  AirlockError,
  type AuditEvent,
  type AuditEventFields,
  appendEvent,
  parseJsonl,
  useSha256,
  verifyChain,
} from '@airlock/core';

// Every event is hashed here (and every argument and output digest in the engine): node's
// native SHA-256 in place of core's portable one.
useSha256((data) => createHash('sha256').update(data).digest('hex'));

/** How long to wait for another process holding the log lock before giving up. */
const LOCK_TIMEOUT_MS = 10_000;
/** Longest a busy writer keeps the lock before leaving it free for {@link LOCK_YIELD_MS}. */
const MAX_HOLD_MS = 50;
const LOCK_YIELD_MS = 10;
/** How long an idle writer keeps the lock for the next append (a runner between runs). */
const IDLE_RELEASE_MS = 10;
const TAIL_WINDOW = 256 * 1024;

interface Head {
  readonly seq: number;
  readonly hash: string;
}

interface Queued {
  readonly fields: AuditEventFields;
  readonly resolve: (e: AuditEvent) => void;
  readonly reject: (e: unknown) => void;
}

/**
 * The runner's append-only, hash-chained JSONL security log. Each append is written and
 * `fsync`ed before it returns, so a result is never reported for an event that could be
 * lost. Appends from several processes (a runner and `airlock action run`) are serialised
 * with a lock file; the head is re-read under the lock whenever the file grew elsewhere.
 *
 * `appendDurable` is the group-commit form the engine uses: events appended while a batch
 * is being made durable wait for the next batch, and each batch is one locked write and one
 * fsync (on the threadpool, so the event loop keeps streaming other actions' output).
 * Every event is still fsync'd before its promise resolves.
 */
export class SecurityLog {
  readonly path: string;
  private head: Head | null = null;
  private knownSize = -1;
  private queue: Queued[] = [];
  private flushing = false;
  /** Batches written by appendDurable (benchmarks report events per fsync). */
  batches = 0;

  /** Append one event; resolves with it (and its hash) once it is durable. */
  appendDurable(fields: AuditEventFields): Promise<AuditEvent> {
    return new Promise((resolve, reject) => {
      this.queue.push({ fields, resolve, reject });
      if (!this.flushing) {
        this.flushing = true;
        // Let the other actions finishing in this turn of the loop join the batch.
        setImmediate(() => this.flush());
      }
    });
  }

  /**
   * The lock file and an open descriptor of the log, kept from the first batch of a busy
   * stretch until the queue drains (or {@link MAX_HOLD_MS} passes): taking the lock is a file
   * create and delete, which on a journalling filesystem waits behind the previous batch's
   * fsync, and cost more than the rest of a batch.
   */
  private hold: { readonly fd: number; readonly since: number } | undefined;

  private yieldUntil = 0;

  private flush(): void {
    const wait = this.yieldUntil - Date.now();
    if (wait > 0 && this.queue.length > 0) {
      setTimeout(() => this.flush(), wait);
      return;
    }
    const batch = this.queue;
    this.queue = [];
    if (batch.length === 0) {
      this.flushing = false;
      return;
    }
    this.batches++;
    let events: AuditEvent[];
    let fd: number;
    try {
      fd = this.take();
      const size = fstatSync(fd).size;
      if (size !== this.knownSize) this.head = this.readHead(fd, size);
      events = [];
      let head = this.head;
      for (const q of batch) {
        const e = appendEvent(head, q.fields);
        events.push(e);
        head = { seq: e.seq, hash: e.hash };
      }
      const text = events.map((e) => `${JSON.stringify(e)}\n`).join('');
      writeSync(fd, text);
      this.head = head;
      this.knownSize = size + Buffer.byteLength(text);
    } catch (e) {
      this.release();
      for (const q of batch) q.reject(e);
      this.flush();
      return;
    }
    // Nobody hears of these events before this fsync. The lock stays held while more are
    // queued, so the next batch chains on without taking it again.
    fsync(fd, (err) => {
      if (err) for (const q of batch) q.reject(err);
      else
        batch.forEach((q, i) => {
          q.resolve(events[i]!);
        });
      if (this.hold !== undefined && Date.now() - this.hold.since > MAX_HOLD_MS) {
        // After a long hold, leave the lock free for a moment: another writer may be waiting.
        this.release();
        this.yieldUntil = Date.now() + LOCK_YIELD_MS;
      }
      // Idle for now: the lock goes back unless another append comes within IDLE_RELEASE_MS.
      if (this.queue.length === 0 && this.hold !== undefined) {
        this.idleTimer = setTimeout(() => this.release(), IDLE_RELEASE_MS);
        this.idleTimer.unref();
      }
      this.flush();
    });
  }

  private idleTimer: NodeJS.Timeout | undefined;

  /** The held descriptor, taking the lock and opening the log first when not held. */
  private take(): number {
    clearTimeout(this.idleTimer);
    const lock = `${this.path}.lock`;
    if (this.hold !== undefined && (this.ownsLock || heldLocks.has(lock))) return this.hold.fd;
    // A descriptor borrowed under another SecurityLog's lock that has since been given back.
    this.release();
    // Held by another SecurityLog of this process: appends are synchronous sections of one
    // thread, so they cannot interleave with its own; only the descriptor is this one's.
    if (!heldLocks.has(lock)) {
      this.acquire(lock);
      this.ownsLock = true;
    }
    try {
      const fd = openSync(this.path, constants.O_RDWR | constants.O_CREAT | constants.O_APPEND, 0o600);
      this.hold = { fd, since: Date.now() };
      return fd;
    } catch (e) {
      if (this.ownsLock) {
        this.ownsLock = false;
        heldLocks.delete(lock);
        rmQuiet(lock);
      }
      throw e;
    }
  }

  private ownsLock = false;

  /** Close the held descriptor and give the lock back. */
  private release(): void {
    clearTimeout(this.idleTimer);
    const h = this.hold;
    if (h === undefined) return;
    this.hold = undefined;
    closeSync(h.fd);
    if (this.ownsLock) {
      this.ownsLock = false;
      const lock = `${this.path}.lock`;
      heldLocks.delete(lock);
      rmQuiet(lock);
    }
  }

  constructor(path: string) {
    this.path = path;
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  }

  /** Append one event; returns it (with its hash) once it is durable. */
  append(fields: AuditEventFields): AuditEvent {
    return this.withLock(() => {
      const fd = openSync(this.path, constants.O_RDWR | constants.O_CREAT | constants.O_APPEND, 0o600);
      try {
        const size = statSync(this.path).size;
        if (size !== this.knownSize) this.head = this.readHead(fd, size);
        const event = appendEvent(this.head, fields);
        const line = `${JSON.stringify(event)}\n`;
        writeSync(fd, line);
        fsyncSync(fd);
        this.head = { seq: event.seq, hash: event.hash };
        this.knownSize = size + Buffer.byteLength(line);
        return event;
      } finally {
        closeSync(fd);
      }
    });
  }

  /** The current head, or null for an empty log. */
  currentHead(): Head | null {
    return this.withLock(() => {
      const fd = openSync(this.path, constants.O_RDWR | constants.O_CREAT, 0o600);
      try {
        const size = statSync(this.path).size;
        this.head = this.readHead(fd, size);
        this.knownSize = statSync(this.path).size;
        return this.head;
      } finally {
        closeSync(fd);
      }
    });
  }

  /**
   * Find the head from the file's tail. A torn last line (a crash mid-write, so never
   * reported as durable) is moved aside to `<log>.torn-<time>` and cut off, so the chain
   * continues from the last complete event.
   */
  private readHead(fd: number, size: number): Head | null {
    if (size === 0) return null;
    const start = Math.max(0, size - TAIL_WINDOW);
    const buf = Buffer.alloc(size - start);
    readSync(fd, buf, 0, buf.length, start);
    let text = buf.toString('utf8');
    if (!text.endsWith('\n')) {
      const cut = text.lastIndexOf('\n');
      const tornFrom = start + cut + 1;
      const torn = text.slice(cut + 1);
      const aside = `${this.path}.torn-${Date.now()}`;
      const afd = openSync(aside, 'w', 0o600);
      writeSync(afd, torn);
      fsyncSync(afd);
      closeSync(afd);
      ftruncateSync(fd, tornFrom);
      fsyncSync(fd);
      text = text.slice(0, cut + 1);
    }
    const lines = text.split('\n').filter((l) => l.length > 0);
    const last = lines[lines.length - 1];
    if (last === undefined) return null;
    let ev: unknown;
    try {
      ev = JSON.parse(last);
    } catch {
      throw new AirlockError('audit_chain_broken', `${this.path}: last line is not JSON; run "airlock audit verify"`);
    }
    const e = ev as { seq?: unknown; hash?: unknown };
    if (typeof e.seq !== 'number' || typeof e.hash !== 'string') {
      throw new AirlockError('audit_chain_broken', `${this.path}: last line is not an audit event`);
    }
    return { seq: e.seq, hash: e.hash };
  }

  private withLock<T>(fn: () => T): T {
    const lock = `${this.path}.lock`;
    // Held by this process (a batch in flight): this thread is the only writer already.
    if (heldLocks.has(lock)) return fn();
    this.acquire(lock);
    try {
      return fn();
    } finally {
      heldLocks.delete(lock);
      rmQuiet(lock);
    }
  }

  /** Create the lock file (waiting for another process to give it up) and note it held. */
  private acquire(lock: string): void {
    const deadline = Date.now() + LOCK_TIMEOUT_MS;
    for (;;) {
      try {
        const fd = openSync(lock, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
        writeSync(fd, String(process.pid));
        closeSync(fd);
        heldLocks.add(lock);
        return;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        if (lockHolderIsGone(lock)) {
          // A holder that died (kill -9) leaves its lock behind; its pid is not running.
          rmQuiet(lock);
          continue;
        }
        if (Date.now() > deadline) {
          throw new AirlockError('internal', `${lock}: lock held by another process for over ${LOCK_TIMEOUT_MS} ms`);
        }
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
      }
    }
  }
}

/** Lock files this process holds (any SecurityLog of it), by path. */
const heldLocks = new Set<string>();
// A process ending while it holds a lock (an idle release still pending) gives it back, so
// the next writer need not wait to find the holder gone.
process.once('exit', () => {
  for (const lock of heldLocks) {
    try {
      rmQuiet(lock);
    } catch (e) {
      // Not fatal: the next writer finds this pid gone and removes the lock itself.
      process.stderr.write(`airlock: could not remove ${lock} at exit: ${(e as Error).message}\n`);
    }
  }
});

function lockHolderIsGone(lock: string): boolean {
  let pid: number;
  try {
    pid = Number.parseInt(readFileSync(lock, 'utf8'), 10);
  } catch {
    return false; // being written or already gone; retry
  }
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return false;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

function rmQuiet(p: string): void {
  try {
    unlinkSync(p);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}

/** Verify a security log file. */
export function verifyLogFile(path: string): ReturnType<typeof verifyChain> & { readonly parseErrors: number } {
  const text = readFileSync(path, 'utf8');
  const parsed = parseJsonl(text);
  const firstBad = parsed.errors[0];
  if (firstBad !== undefined) {
    return {
      ok: false,
      index: firstBad.line - 1,
      reason: 'malformed',
      message: firstBad.message,
      parseErrors: parsed.errors.length,
    };
  }
  return { ...verifyChain(parsed.events), parseErrors: 0 };
}
