import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SandboxError, toSandboxError } from '../errors.js';
import type { SandboxManager } from '../manager.js';
import type { ExecEvent } from '../sandbox.js';
import { CreateBody, ExecBody, GuestPath, parse, SignalBody, signalNumber } from './schemas.js';

/** Largest JSON body accepted (code and stdin are 1 MiB each at most). */
const MAX_JSON_BODY = 4 << 20;
/** Largest file upload. The guest's writable layer is smaller than this anyway. */
const MAX_UPLOAD = 1 << 30;

function send(res: ServerResponse, status: number, body?: unknown): void {
  if (body === undefined) {
    res.writeHead(status).end();
    return;
  }
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
}

function sendError(res: ServerResponse, e: unknown): void {
  const err = toSandboxError(e);
  if (res.headersSent) {
    res.destroy();
    return;
  }
  // A refused body was not read to its end: the connection cannot carry another request.
  if (err.code === 'payload_too_large') res.setHeader('connection', 'close');
  send(res, err.status, err.toBody());
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > MAX_JSON_BODY) throw new SandboxError('payload_too_large', `request body exceeds ${MAX_JSON_BODY} bytes`);
    chunks.push(c);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return {};
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new SandboxError('invalid_request', `body: not valid JSON (${(e as Error).message})`);
  }
}

/** Streams NDJSON events; stops writing once the client has gone. */
function ndjson(res: ServerResponse): (e: ExecEvent) => void {
  res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
  return (e) => {
    if (!res.destroyed) res.write(`${JSON.stringify(e)}\n`);
  };
}

/** The upload body as chunks, refusing anything past the cap. */
async function* limited(req: IncomingMessage, max: number): AsyncGenerator<Buffer> {
  let n = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > max) throw new SandboxError('payload_too_large', `upload exceeds ${max} bytes`);
    yield c;
  }
}

type Handler = (req: IncomingMessage, res: ServerResponse, params: string[], query: URLSearchParams) => Promise<void>;

/**
 * The sandbox daemon's HTTP API: the emberd routes (create, exec, delete),
 * and airlock's superset (info, list, inspect, files, streaming, background
 * processes). Errors are `{"error": {"code", "message"}}` with the status of
 * the code's entry in SANDBOX_ERROR_CODES.
 */
export function createSandboxServer(manager: SandboxManager): Server {
  const routes: [string, RegExp, Handler][] = [];
  const route = (method: string, pattern: string, h: Handler) => {
    routes.push([method, new RegExp(`^${pattern.replace(/\{\w+\}/g, '([A-Za-z0-9_-]{1,64})')}$`), h]);
  };

  route('GET', '/info', async (_q, res) => send(res, 200, manager.info()));

  route('POST', '/sandboxes', async (req, res) => {
    const body = parse(CreateBody, await readJson(req), 'body');
    const sb = await manager.create(body);
    send(res, 201, sb.describe());
  });

  route('GET', '/sandboxes', async (_q, res) => send(res, 200, { sandboxes: manager.list().map((s) => s.describe()) }));

  route('GET', '/sandboxes/{id}', async (_q, res, [id]) => {
    const sb = manager.get(id ?? '');
    const log = await sb.vm.bootLog().catch(() => '');
    send(res, 200, { ...sb.describe(), boot_log_tail: log.split('\n').slice(-40).join('\n') });
  });

  route('DELETE', '/sandboxes/{id}', async (_q, res, [id]) => {
    await manager.delete(id ?? '');
    send(res, 204);
  });

  route('POST', '/sandboxes/{id}/exec', async (req, res, [id], query) => {
    const sb = manager.get(id ?? '');
    const body = parse(ExecBody, await readJson(req), 'body');
    if (body.background) {
      const p = await sb.startBackground(body);
      send(res, 202, p.describe());
      return;
    }
    // The client going away mid-exec kills the guest process tree.
    const abort = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) abort.abort();
    });
    if (query.get('stream') === '1' || query.get('stream') === 'true') {
      const emit = ndjson(res);
      try {
        const r = await sb.exec(body, (e) => emit(e), abort.signal);
        emit({
          type: 'exit',
          exit_code: r.exit_code,
          signal: r.signal,
          duration_ms: r.duration_ms,
          timed_out: r.timed_out,
          truncated: r.truncated,
        });
      } catch (e) {
        emit({ type: 'error', error: toSandboxError(e).toBody().error });
      }
      res.end();
      return;
    }
    send(res, 200, await sb.exec(body, undefined, abort.signal));
  });

  route('PUT', '/sandboxes/{id}/files', async (req, res, [id], query) => {
    const sb = manager.get(id ?? '');
    const path = parse(GuestPath, query.get('path') ?? undefined, 'path');
    const modeText = query.get('mode') ?? '644';
    if (!/^[0-7]{3,4}$/.test(modeText))
      throw new SandboxError('invalid_request', 'mode: must be octal, e.g. 644 or 0755');
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > MAX_UPLOAD) throw new SandboxError('payload_too_large', `upload exceeds ${MAX_UPLOAD} bytes`);
    const size = await sb.putFile(path, Number.parseInt(modeText, 8), limited(req, MAX_UPLOAD));
    send(res, 200, { path, size });
  });

  route('GET', '/sandboxes/{id}/files', async (_q, res, [id], query) => {
    const sb = manager.get(id ?? '');
    const path = parse(GuestPath, query.get('path') ?? undefined, 'path');
    // Headers go out with the first chunk, so a missing file can still answer 404.
    let started = false;
    // A slow client pauses this guest's channel until it drains; one that goes away must not leave it paused.
    let paused = false;
    const resume = () => {
      if (!paused) return;
      paused = false;
      sb.channel.resumeInput();
    };
    res.on('drain', resume);
    res.once('close', resume);
    const size = await sb.getFile(path, (chunk) => {
      if (!started) {
        started = true;
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
      }
      if (!res.write(chunk) && !paused) {
        paused = true;
        sb.channel.pauseInput();
      }
    });
    if (!started) res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': 0 });
    res.end();
    void size;
  });

  // Every egress attempt of the sandbox (allowed and refused), oldest first.
  route('GET', '/sandboxes/{id}/egress', async (_q, res, [id]) => {
    const sb = manager.get(id ?? '');
    const e = sb.egress;
    send(res, 200, {
      sandbox: sb.id,
      enabled: e !== undefined,
      ...(e ? e.describe() : { allow: [], secrets: [] }),
      events: e ? e.log.list() : [],
      dropped_events: e ? e.log.dropped : 0,
    });
  });

  route('GET', '/sandboxes/{id}/processes', async (_q, res, [id]) => {
    const sb = manager.get(id ?? '');
    send(res, 200, { processes: [...sb.processes.values()].map((p) => p.describe()) });
  });

  const proc = (id: string | undefined, pid: string | undefined) => {
    const p = manager.get(id ?? '').processes.get(pid ?? '');
    if (!p) throw new SandboxError('not_found', `no process ${pid} in sandbox ${id}`);
    return p;
  };

  route('GET', '/sandboxes/{id}/processes/{pid}', async (_q, res, [id, pid]) =>
    send(res, 200, proc(id, pid).describe()),
  );

  route('GET', '/sandboxes/{id}/processes/{pid}/output', async (_q, res, [id, pid], query) => {
    const p = proc(id, pid);
    if (query.get('stream') === '1' || query.get('stream') === 'true') {
      const emit = ndjson(res);
      await new Promise<void>((resolve) => {
        const off = p.attach((e) => {
          emit(e);
          if (e.type === 'exit' || e.type === 'error') resolve();
        });
        if (!p.running) resolve();
        res.on('close', () => {
          off();
          resolve();
        });
      });
      res.end();
      return;
    }
    let stdout = '';
    let stderr = '';
    p.attach((e) => {
      if (e.type === 'stdout') stdout += e.data;
      if (e.type === 'stderr') stderr += e.data;
    })();
    send(res, 200, { ...p.describe(), stdout, stderr });
  });

  route('POST', '/sandboxes/{id}/processes/{pid}/signal', async (req, res, [id, pid]) => {
    const p = proc(id, pid);
    const body = parse(SignalBody, await readJson(req), 'body');
    if (p.running) p.proc.signal(signalNumber(body.signal));
    send(res, 200, p.describe());
  });

  route('DELETE', '/sandboxes/{id}/processes/{pid}', async (_q, res, [id, pid]) => {
    const p = proc(id, pid);
    if (p.running) p.proc.signal(9);
    send(res, 204);
  });

  return createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const matches = routes.map(([m, re, h]) => ({ m, h, params: re.exec(url.pathname) })).filter((r) => r.params);
    const hit = matches.find((r) => r.m === req.method);
    if (!hit) {
      req.resume();
      const e =
        matches.length > 0
          ? new SandboxError('method_not_allowed', `${req.method} not allowed on ${url.pathname}`)
          : new SandboxError('not_found', `no route ${req.method} ${url.pathname}`);
      send(res, e.status, e.toBody());
      return;
    }
    hit.h(req, res, hit.params?.slice(1) ?? [], url.searchParams).catch((e: unknown) => {
      req.resume();
      sendError(res, e);
    });
  });
}

/** Listen on `host:port` (default 127.0.0.1:7777); resolves with the bound address. */
export function listen(server: Server, address = '127.0.0.1:7777'): Promise<AddressInfo> {
  const i = address.lastIndexOf(':');
  const host = i > 0 ? address.slice(0, i) : '127.0.0.1';
  const port = Number(i >= 0 ? address.slice(i + 1) : address);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server.address() as AddressInfo));
  });
}
