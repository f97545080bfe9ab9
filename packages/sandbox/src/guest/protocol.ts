/**
 * The host side of the airlock guest protocol. The layout is specified in
 * `guest/agent/proto.h`; a test pins every constant here against that header.
 *
 *   u32 length (type + id + payload) | u8 type | u32 id | payload     (little-endian)
 *
 * Guest frames are untrusted: guest code runs as root and can write to the
 * control port itself. Every length is checked before it is used, and a frame
 * that breaks a bound makes the splitter fail; the caller resets the channel.
 */

export const PROTOCOL_VERSION = 1;
export const HEADER_SIZE = 4;
export const MIN_FRAME = 5;
export const MAX_FRAME = 1048581;
export const MAX_PAYLOAD = 1048576;
export const MAX_ARGS = 1024;
export const MAX_ENV = 1024;
export const MAX_PATH = 4096;
export const CHUNK = 32768;
export const MAX_ENTROPY = 512;
/** Egress streams: unacknowledged bytes per stream and direction, streams at once, proxy port. */
export const NET_WINDOW = 262144;
export const NET_MAX_STREAMS = 64;
export const NET_PROXY_PORT = 3128;

/** Frame types; host→guest below 0x80, guest→host from 0x80. */
export const T = {
  HELLO: 0x01,
  PING: 0x02,
  EXEC: 0x03,
  STDIN: 0x04,
  SIGNAL: 0x05,
  PUT_BEGIN: 0x06,
  PUT_DATA: 0x07,
  PUT_END: 0x08,
  GET: 0x09,
  SHUTDOWN: 0x0a,
  CONFIG: 0x0b,
  NET_LISTEN: 0x0c,
  NET_DATA_H: 0x0d,
  NET_CLOSE_H: 0x0e,
  NET_ACK_H: 0x0f,
  READY: 0x81,
  PONG: 0x82,
  STARTED: 0x83,
  STDOUT: 0x84,
  STDERR: 0x85,
  EXIT: 0x86,
  OK: 0x87,
  FILE_DATA: 0x88,
  FILE_END: 0x89,
  ERROR: 0x8a,
  NET_OPEN: 0x8b,
  NET_DATA_G: 0x8c,
  NET_CLOSE_G: 0x8d,
  NET_ACK_G: 0x8e,
} as const;

export const EXEC_STDIN = 0x01;
export const EXIT_TIMED_OUT = 0x01;
export const EXIT_TRUNCATED = 0x02;

/** Error codes the guest reports in ERROR frames. */
export const GUEST_ERROR = {
  BAD_FRAME: 1,
  BAD_REQUEST: 2,
  IO: 3,
  UNKNOWN_ID: 4,
  LIMIT: 5,
  DUPLICATE_ID: 6,
} as const;

/** One decoded guest→host frame. */
export type GuestFrame =
  | { readonly kind: 'ready'; readonly id: number; readonly version: number; readonly nonce: Buffer }
  | { readonly kind: 'pong'; readonly id: number; readonly data: Buffer }
  | { readonly kind: 'started'; readonly id: number; readonly pid: number }
  | { readonly kind: 'stdout' | 'stderr' | 'file_data'; readonly id: number; readonly data: Buffer }
  | {
      readonly kind: 'exit';
      readonly id: number;
      readonly exitCode: number;
      readonly signal: number;
      readonly timedOut: boolean;
      readonly truncated: boolean;
      readonly durationMs: number;
    }
  | { readonly kind: 'ok'; readonly id: number }
  | { readonly kind: 'file_end'; readonly id: number; readonly size: number }
  | { readonly kind: 'error'; readonly id: number; readonly code: number; readonly message: string }
  /** Egress stream frames: `id` is the guest's stream id (its own id space, see proto.h). */
  | { readonly kind: 'net_open' | 'net_close'; readonly id: number }
  | { readonly kind: 'net_data'; readonly id: number; readonly data: Buffer }
  | { readonly kind: 'net_ack'; readonly id: number; readonly bytes: number };

/** Thrown by the decoders on a frame that breaks the protocol. */
export class ProtocolViolation extends Error {
  override readonly name = 'ProtocolViolation';
}

function frame(type: number, id: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  if (payload.length > MAX_PAYLOAD)
    throw new ProtocolViolation(`payload of ${payload.length} bytes exceeds ${MAX_PAYLOAD}`);
  const out = Buffer.allocUnsafe(9 + payload.length);
  out.writeUInt32LE(5 + payload.length, 0);
  out.writeUInt8(type, 4);
  out.writeUInt32LE(id >>> 0, 5);
  payload.copy(out, 9);
  return out;
}

function str(s: string | Buffer): Buffer {
  const b = typeof s === 'string' ? Buffer.from(s, 'utf8') : s;
  if (b.includes(0)) throw new ProtocolViolation('strings sent to the guest may not contain NUL bytes');
  const len = Buffer.allocUnsafe(4);
  len.writeUInt32LE(b.length, 0);
  return Buffer.concat([len, b]);
}

/** What the host asks the guest to run. */
export interface ExecFrameSpec {
  readonly argv: readonly string[];
  readonly env: readonly string[];
  readonly cwd: string;
  readonly timeoutMs: number;
  readonly outputLimit: number;
  readonly stdin: boolean;
}

/** Per-sandbox guest settings (see AL_T_CONFIG in proto.h); 0 keeps the guest's current value. */
export interface ConfigFrameSpec {
  readonly maxProcs: number;
  readonly rwMb: number;
  readonly timeMs: number;
  readonly entropy: Buffer;
}

/** Encoders for host→guest frames. */
export const encode = {
  hello: (nonce: Buffer) => frame(T.HELLO, 0, nonce),
  ping: (id: number, data: Buffer) => frame(T.PING, id, data),
  exec(id: number, spec: ExecFrameSpec): Buffer {
    if (spec.argv.length === 0 || spec.argv.length > MAX_ARGS)
      throw new ProtocolViolation('argv must have 1..1024 entries');
    if (spec.env.length > MAX_ENV) throw new ProtocolViolation('env must have at most 1024 entries');
    const head = Buffer.allocUnsafe(13);
    head.writeUInt32LE(spec.timeoutMs >>> 0, 0);
    head.writeUInt32LE(spec.outputLimit >>> 0, 4);
    head.writeUInt8(spec.stdin ? EXEC_STDIN : 0, 8);
    head.writeUInt16LE(spec.argv.length, 9);
    head.writeUInt16LE(spec.env.length, 11);
    return frame(T.EXEC, id, Buffer.concat([head, str(spec.cwd), ...spec.argv.map(str), ...spec.env.map(str)]));
  },
  stdin: (id: number, data: Buffer) => frame(T.STDIN, id, data),
  signal(id: number, signo: number): Buffer {
    const b = Buffer.allocUnsafe(4);
    b.writeUInt32LE(signo, 0);
    return frame(T.SIGNAL, id, b);
  },
  putBegin(id: number, path: string, mode: number): Buffer {
    const b = Buffer.allocUnsafe(4);
    b.writeUInt32LE(mode, 0);
    return frame(T.PUT_BEGIN, id, Buffer.concat([b, str(path)]));
  },
  putData: (id: number, data: Buffer) => frame(T.PUT_DATA, id, data),
  putEnd: (id: number) => frame(T.PUT_END, id),
  get: (id: number, path: string) => frame(T.GET, id, str(path)),
  shutdown: () => frame(T.SHUTDOWN, 0),
  netListen(id: number, port: number): Buffer {
    const b = Buffer.allocUnsafe(2);
    b.writeUInt16LE(port, 0);
    return frame(T.NET_LISTEN, id, b);
  },
  netData(stream: number, data: Buffer): Buffer {
    if (data.length > CHUNK) throw new ProtocolViolation(`stream data chunk of ${data.length} bytes exceeds ${CHUNK}`);
    return frame(T.NET_DATA_H, stream, data);
  },
  netClose: (stream: number) => frame(T.NET_CLOSE_H, stream),
  netAck(stream: number, bytes: number): Buffer {
    const b = Buffer.allocUnsafe(4);
    b.writeUInt32LE(bytes, 0);
    return frame(T.NET_ACK_H, stream, b);
  },
  config(id: number, spec: ConfigFrameSpec): Buffer {
    if (spec.entropy.length > MAX_ENTROPY) throw new ProtocolViolation(`at most ${MAX_ENTROPY} bytes of entropy`);
    const head = Buffer.allocUnsafe(16);
    head.writeUInt32LE(spec.maxProcs >>> 0, 0);
    head.writeUInt32LE(spec.rwMb >>> 0, 4);
    head.writeBigUInt64LE(BigInt(Math.max(0, Math.floor(spec.timeMs))), 8);
    return frame(T.CONFIG, id, Buffer.concat([head, spec.entropy]));
  },
};

function need(p: Buffer, n: number, what: string): void {
  if (p.length !== n) throw new ProtocolViolation(`${what} payload must be ${n} bytes, got ${p.length}`);
}

/** Decode one guest→host frame; throws ProtocolViolation on an unknown type or a bad payload. */
export function decodeGuestFrame(type: number, id: number, p: Buffer): GuestFrame {
  switch (type) {
    case T.READY:
      if (p.length < 4 || p.length > 68) throw new ProtocolViolation('READY payload out of bounds');
      return { kind: 'ready', id, version: p.readUInt32LE(0), nonce: p.subarray(4) };
    case T.PONG:
      if (p.length > 64) throw new ProtocolViolation('PONG payload out of bounds');
      return { kind: 'pong', id, data: p };
    case T.STARTED:
      need(p, 4, 'STARTED');
      return { kind: 'started', id, pid: p.readUInt32LE(0) };
    case T.STDOUT:
    case T.STDERR:
    case T.FILE_DATA:
      if (p.length > CHUNK) throw new ProtocolViolation(`data chunk of ${p.length} bytes exceeds ${CHUNK}`);
      return { kind: type === T.STDOUT ? 'stdout' : type === T.STDERR ? 'stderr' : 'file_data', id, data: p };
    case T.EXIT: {
      need(p, 13, 'EXIT');
      const flags = p.readUInt8(8);
      return {
        kind: 'exit',
        id,
        exitCode: p.readInt32LE(0),
        signal: p.readUInt32LE(4),
        timedOut: (flags & EXIT_TIMED_OUT) !== 0,
        truncated: (flags & EXIT_TRUNCATED) !== 0,
        durationMs: p.readUInt32LE(9),
      };
    }
    case T.OK:
      need(p, 0, 'OK');
      return { kind: 'ok', id };
    case T.FILE_END: {
      need(p, 8, 'FILE_END');
      const size = p.readUInt32LE(0) + p.readUInt32LE(4) * 2 ** 32;
      return { kind: 'file_end', id, size };
    }
    case T.ERROR: {
      if (p.length < 6) throw new ProtocolViolation('ERROR payload too short');
      const len = p.readUInt32LE(2);
      if (len !== p.length - 6 || len > 1024)
        throw new ProtocolViolation('ERROR message length does not match its frame');
      return { kind: 'error', id, code: p.readUInt16LE(0), message: p.subarray(6).toString('utf8') };
    }
    case T.NET_OPEN:
      need(p, 0, 'NET_OPEN');
      return { kind: 'net_open', id };
    case T.NET_CLOSE_G:
      need(p, 0, 'NET_CLOSE');
      return { kind: 'net_close', id };
    case T.NET_DATA_G:
      if (p.length === 0 || p.length > CHUNK)
        throw new ProtocolViolation(`stream data chunk of ${p.length} bytes outside 1..${CHUNK}`);
      return { kind: 'net_data', id, data: p };
    case T.NET_ACK_G: {
      need(p, 4, 'NET_ACK');
      const bytes = p.readUInt32LE(0);
      if (bytes === 0 || bytes > NET_WINDOW)
        throw new ProtocolViolation(`NET_ACK of ${bytes} bytes outside 1..${NET_WINDOW}`);
      return { kind: 'net_ack', id, bytes };
    }
    default:
      throw new ProtocolViolation(`unknown guest frame type 0x${type.toString(16).padStart(2, '0')}`);
  }
}

/**
 * Splits a byte stream into frames. `push` throws ProtocolViolation when a
 * header is out of bounds; after that the stream cannot be trusted and the
 * splitter must be discarded with its connection.
 */
export class FrameSplitter {
  private chunks: Buffer[] = [];
  private buffered = 0;

  /** Feed bytes; returns the complete frames they finish, in order. */
  push(data: Buffer): { type: number; id: number; payload: Buffer }[] {
    this.chunks.push(data);
    this.buffered += data.length;
    const out: { type: number; id: number; payload: Buffer }[] = [];
    for (;;) {
      if (this.buffered < HEADER_SIZE) break;
      const head = this.peek(HEADER_SIZE);
      const len = head.readUInt32LE(0);
      if (len < MIN_FRAME || len > MAX_FRAME)
        throw new ProtocolViolation(`frame length ${len} outside ${MIN_FRAME}..${MAX_FRAME}`);
      if (this.buffered < HEADER_SIZE + len) break;
      const whole = this.take(HEADER_SIZE + len);
      out.push({ type: whole.readUInt8(4), id: whole.readUInt32LE(5), payload: whole.subarray(9) });
    }
    return out;
  }

  /** Bytes of an incomplete frame held back. */
  get pending(): number {
    return this.buffered;
  }

  private peek(n: number): Buffer {
    if (this.chunks[0] !== undefined && this.chunks[0].length >= n) return this.chunks[0].subarray(0, n);
    const all = Buffer.concat(this.chunks);
    this.chunks = [all];
    return all.subarray(0, n);
  }

  private take(n: number): Buffer {
    const all = this.chunks.length === 1 && this.chunks[0] !== undefined ? this.chunks[0] : Buffer.concat(this.chunks);
    const head = all.subarray(0, n);
    const rest = all.subarray(n);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.buffered = rest.length;
    return head;
  }
}
