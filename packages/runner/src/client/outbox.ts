import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { open, rename } from 'node:fs/promises';
import { join } from 'node:path';

/** What the outbox keeps per request until the control plane acknowledges the result. */
export interface OutboxEntry {
  readonly requestId: string;
  readonly request: Record<string, unknown>;
  readonly outputs: Record<string, unknown>[];
  readonly result: Record<string, unknown> | undefined;
}

function writeDurable(path: string, text: string): void {
  const tmp = `${path}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

/** Output kept per request for replay after a reconnect (output is best effort; the result is the record). */
export const OUTBOX_OUTPUT_MAX = 1024 * 1024;

/**
 * writeDurable off the event loop: the fsync runs on the threadpool, so the runner keeps
 * streaming other actions meanwhile, and concurrent fsyncs share the filesystem's journal commit.
 */
async function writeDurableAsync(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp`;
  const fh = await open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
}

const SAFE_ID = /^[A-Za-z0-9_-]{1,128}$/;

/**
 * The runner's persistent outbox: one folder per accepted request holding the request, its
 * output lines and, once finished, its result. The request is made durable before the
 * runner says `accepted`, and the result before it is sent, so neither a runner crash nor a
 * lost connection loses a result or lets a request run twice.
 */
export class Outbox {
  /** Bytes of output kept per request in this process (for the OUTBOX_OUTPUT_MAX cap). */
  private readonly outputKept = new Map<string, number>();

  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  private entryDir(id: string): string {
    if (!SAFE_ID.test(id)) throw new Error(`unsafe request id ${JSON.stringify(id)}`);
    return join(this.dir, id);
  }

  has(id: string): boolean {
    return SAFE_ID.test(id) && existsSync(join(this.dir, id, 'request.json'));
  }

  /** Record an accepted request (fsync'd) before anything runs. */
  accept(id: string, request: Record<string, unknown>): void {
    const d = this.entryDir(id);
    mkdirSync(d, { recursive: true, mode: 0o700 });
    writeDurable(join(d, 'request.json'), JSON.stringify(request));
  }

  /**
   * Keep an output line so it can be re-sent after a reconnect (not fsync'd: the result is
   * what counts). Only the first OUTBOX_OUTPUT_MAX bytes per request are kept, so replaying
   * an outbox after a long outage never loads an unbounded amount into memory.
   */
  appendOutput(id: string, output: Record<string, unknown>): void {
    const text = `${JSON.stringify(output)}\n`;
    const kept = this.outputKept.get(id) ?? 0;
    if (kept + text.length > OUTBOX_OUTPUT_MAX) return;
    this.outputKept.set(id, kept + text.length);
    const fd = openSync(join(this.entryDir(id), 'output.jsonl'), 'a', 0o600);
    try {
      writeSync(fd, text);
    } finally {
      closeSync(fd);
    }
  }

  /** accept(), without blocking the event loop on the fsync. */
  async acceptDurable(id: string, request: Record<string, unknown>): Promise<void> {
    const d = this.entryDir(id);
    mkdirSync(d, { recursive: true, mode: 0o700 });
    await writeDurableAsync(join(d, 'request.json'), JSON.stringify(request));
  }

  /** complete(), without blocking the event loop on the fsync. */
  async completeDurable(id: string, result: Record<string, unknown>): Promise<void> {
    await writeDurableAsync(join(this.entryDir(id), 'result.json'), JSON.stringify(result));
  }

  /** Record the final result (fsync'd) before it is sent. */
  complete(id: string, result: Record<string, unknown>): void {
    writeDurable(join(this.entryDir(id), 'result.json'), JSON.stringify(result));
  }

  result(id: string): Record<string, unknown> | undefined {
    const p = join(this.entryDir(id), 'result.json');
    return existsSync(p) ? (JSON.parse(readFileSync(p, 'utf8')) as Record<string, unknown>) : undefined;
  }

  /** The control plane has the result: forget the entry. */
  remove(id: string): void {
    this.outputKept.delete(id);
    rmSync(this.entryDir(id), { recursive: true, force: true });
  }

  /** Every pending entry, oldest first. */
  entries(): OutboxEntry[] {
    const out: OutboxEntry[] = [];
    for (const id of readdirSync(this.dir).sort()) {
      const d = join(this.dir, id);
      if (!SAFE_ID.test(id) || !existsSync(join(d, 'request.json'))) continue;
      let request: Record<string, unknown>;
      try {
        request = JSON.parse(readFileSync(join(d, 'request.json'), 'utf8')) as Record<string, unknown>;
      } catch {
        continue; // a torn request file: it was never acknowledged as accepted
      }
      const outputs: Record<string, unknown>[] = [];
      if (existsSync(join(d, 'output.jsonl'))) {
        for (const line of readFileSync(join(d, 'output.jsonl'), 'utf8').split('\n')) {
          if (line === '') continue;
          try {
            outputs.push(JSON.parse(line) as Record<string, unknown>);
          } catch {
            // a torn last line after a crash; the lines before it are intact
          }
        }
      }
      out.push({ requestId: id, request, outputs, result: this.result(id) });
    }
    return out;
  }
}
