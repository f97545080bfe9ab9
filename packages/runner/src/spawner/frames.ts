/**
 * Frames between the runner and its spawn helper (native/airlock-spawner.c, where the
 * layout is documented): u32 length (LE, of what follows) | u8 type | u32 id | payload.
 * The helper is our own process, but its frames are still parsed defensively: every
 * length is bounded and checked, unknown types are errors, and a bad frame ends the helper.
 */

export const FRAME = {
  spawn: 0x01,
  kill: 0x02,
  started: 0x81,
  stdout: 0x82,
  stderr: 0x83,
  exit: 0x84,
  failed: 0x85,
} as const;

/** Largest frame the helper sends: a 64 KiB output chunk plus the header. */
export const MAX_HELPER_FRAME = 64 * 1024 + 5;
/** Largest frame the helper accepts (argv + env of one action). */
export const MAX_REQUEST_FRAME = 4 * 1024 * 1024;

/** rlimits the helper can set, by the index it expects. */
export const RLIMIT_INDEX = { cpu_s: 0, memory_bytes: 1, max_procs: 2, max_files: 3 } as const;

export type HelperFrame =
  | { readonly type: 'started'; readonly id: number; readonly pid: number }
  | { readonly type: 'stdout' | 'stderr'; readonly id: number; readonly data: Buffer }
  | { readonly type: 'exit'; readonly id: number; readonly signalled: boolean; readonly value: number }
  | { readonly type: 'failed'; readonly id: number; readonly errno: number; readonly stage: string };

export class SpawnerProtocolError extends Error {
  readonly code = 'spawner_protocol';
}

export interface SpawnRequest {
  readonly id: number;
  readonly file: string;
  readonly argv: readonly string[];
  readonly env: readonly string[];
  readonly cwd: string;
  readonly rlimits: readonly { readonly resource: number; readonly value: bigint }[];
}

function str(s: string, label: string): Buffer {
  const b = Buffer.from(s, 'utf8');
  // A NUL would silently cut the string at the system call; Node's own spawn refuses it too.
  if (b.includes(0)) throw new TypeError(`${label} must not contain NUL bytes`);
  const out = Buffer.allocUnsafe(4 + b.length);
  out.writeUInt32LE(b.length, 0);
  b.copy(out, 4);
  return out;
}

function header(type: number, id: number, payloadLen: number): Buffer {
  const h = Buffer.allocUnsafe(9);
  h.writeUInt32LE(5 + payloadLen, 0);
  h.writeUInt8(type, 4);
  h.writeUInt32LE(id >>> 0, 5);
  return h;
}

export function encodeSpawn(req: SpawnRequest): Buffer {
  if (!req.file.startsWith('/')) throw new TypeError(`file must be an absolute path, got ${req.file}`);
  if (req.argv.length === 0) throw new TypeError('argv must not be empty');
  const parts: Buffer[] = [];
  const n = Buffer.allocUnsafe(4);
  n.writeUInt32LE(req.rlimits.length, 0);
  parts.push(n);
  for (const r of req.rlimits) {
    const b = Buffer.allocUnsafe(12);
    b.writeUInt32LE(r.resource, 0);
    b.writeBigUInt64LE(r.value, 4);
    parts.push(b);
  }
  parts.push(str(req.file, 'file'), str(req.cwd, 'cwd'));
  const count = (k: number): Buffer => {
    const b = Buffer.allocUnsafe(4);
    b.writeUInt32LE(k, 0);
    return b;
  };
  parts.push(count(req.argv.length), ...req.argv.map((a, i) => str(a, `argv[${i}]`)));
  parts.push(count(req.env.length), ...req.env.map((e) => str(e, 'env entry')));
  const payload = Buffer.concat(parts);
  if (payload.length + 5 > MAX_REQUEST_FRAME) throw new TypeError('argv and environment exceed 4 MiB');
  return Buffer.concat([header(FRAME.spawn, req.id, payload.length), payload]);
}

export function encodeKill(id: number, signal: number, closeOutput: boolean): Buffer {
  return Buffer.concat([header(FRAME.kill, id, 2), Buffer.from([signal, closeOutput ? 1 : 0])]);
}

/**
 * Incremental decoder for helper → runner frames. Feed it chunks as they arrive; it
 * returns the complete frames and keeps the rest. Throws SpawnerProtocolError on anything
 * malformed; after that the stream is unusable (the caller ends the helper).
 */
export class FrameDecoder {
  private buf: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): HelperFrame[] {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const frames: HelperFrame[] = [];
    let off = 0;
    while (this.buf.length - off >= 4) {
      const len = this.buf.readUInt32LE(off);
      if (len < 5 || len > MAX_HELPER_FRAME) throw new SpawnerProtocolError(`frame length ${len} out of bounds`);
      if (this.buf.length - off - 4 < len) break;
      frames.push(decodeBody(this.buf.subarray(off + 4, off + 4 + len)));
      off += 4 + len;
    }
    // Copy the remainder so a retained subarray never pins a large chunk.
    this.buf = off === 0 ? this.buf : Buffer.from(this.buf.subarray(off));
    return frames;
  }

  /** Bytes of an incomplete frame still waiting for the rest. */
  get pending(): number {
    return this.buf.length;
  }
}

function decodeBody(b: Buffer): HelperFrame {
  const type = b.readUInt8(0);
  const id = b.readUInt32LE(1);
  const p = b.subarray(5);
  switch (type) {
    case FRAME.started:
      if (p.length !== 4) throw new SpawnerProtocolError(`started frame of ${p.length} bytes`);
      return { type: 'started', id, pid: p.readUInt32LE(0) };
    case FRAME.stdout:
    case FRAME.stderr:
      if (p.length === 0) throw new SpawnerProtocolError('empty output frame');
      // Copy: the decoder's buffer is reused for the next frames.
      return { type: type === FRAME.stdout ? 'stdout' : 'stderr', id, data: Buffer.from(p) };
    case FRAME.exit: {
      if (p.length !== 5) throw new SpawnerProtocolError(`exit frame of ${p.length} bytes`);
      const how = p.readUInt8(0);
      const value = p.readUInt32LE(1);
      if (how > 1 || value > 255) throw new SpawnerProtocolError(`exit frame how=${how} value=${value}`);
      return { type: 'exit', id, signalled: how === 1, value };
    }
    case FRAME.failed: {
      if (p.length < 8) throw new SpawnerProtocolError(`failed frame of ${p.length} bytes`);
      const errno = p.readUInt32LE(0);
      const n = p.readUInt32LE(4);
      if (n !== p.length - 8 || n > 100) throw new SpawnerProtocolError(`failed frame stage length ${n}`);
      const stage = p.subarray(8).toString('utf8');
      if (!/^[a-z0-9 /_-]*$/i.test(stage)) throw new SpawnerProtocolError('failed frame stage is not plain text');
      return { type: 'failed', id, errno, stage };
    }
    default:
      throw new SpawnerProtocolError(`unknown frame type 0x${type.toString(16)}`);
  }
}
