import { createHash, createPublicKey, type KeyObject, verify as verifySignature } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, readSync, statSync, watch, writeFileSync } from 'node:fs';
import { AirlockError, type ChainHead, canonicalJson, GENESIS_HASH, parseJsonl, verifyChain } from '@airlock/core';
import { verifyLogFile } from '@airlock/runner';
import type { Command } from 'commander';
import { ExitCode } from '../exit-codes.js';
import { emit, positiveInt, runnerConfigFrom } from '../options.js';

interface EventLine {
  seq?: number;
  time?: string;
  status?: string;
  action?: string;
  principal?: { id?: string };
  duration_ms?: number;
  hash?: string;
  error?: { code?: string } | null;
}

function formatEvent(raw: string): string {
  let e: EventLine;
  try {
    e = JSON.parse(raw) as EventLine;
  } catch {
    return `(unparseable line) ${raw.slice(0, 120)}`;
  }
  const err = e.error?.code ? `  ${e.error.code}` : '';
  return `#${e.seq} ${e.time} ${String(e.status).padEnd(17)} ${String(e.action).padEnd(28)} ${e.principal?.id ?? '?'}  ${e.duration_ms} ms  ${e.hash?.slice(0, 19)}…${err}`;
}

function lastLines(path: string, n: number): string[] {
  const size = statSync(path).size;
  let start = size;
  let buf = Buffer.alloc(0);
  const fd = openSync(path, 'r');
  try {
    while (start > 0 && buf.toString('utf8').split('\n').length <= n + 1) {
      const len = Math.min(65536, start);
      start -= len;
      const chunk = Buffer.alloc(len);
      readSync(fd, chunk, 0, len, start);
      buf = Buffer.concat([chunk, buf]);
    }
  } finally {
    closeSync(fd);
  }
  return buf
    .toString('utf8')
    .split('\n')
    .filter((l) => l.length > 0)
    .slice(-n);
}

/** `airlock audit verify` and `airlock events tail`. */
export function registerAuditCommands(program: Command): void {
  const audit = program.command('audit').description('verify the hash-chained security log');
  audit
    .command('verify')
    .description(
      'verify a security log, a control plane (--server) or an exported log offline (--export FILE --key PUBKEY); ' +
        'exit 1 and the first bad position on any edit, deletion, reordering or truncation',
    )
    .argument('[file]', 'log file (default: the runner config log, $AIRLOCK_HOME/runner/events.jsonl)')
    .option('-c, --config <file>', 'runner config file (YAML), for the default log path')
    .option(
      '--server [url]',
      'verify the server chain, its signed checkpoints and the runner mirrors of a control plane (default $AIRLOCK_SERVER)',
    )
    .option('--api-key <key>', 'API key with the audit:read scope, for --server (default $AIRLOCK_API_KEY)')
    .option('--export <file>', 'verify an NDJSON export (GET /api/v1/audit/export or `airlock audit export`) offline')
    .option(
      '--key <file>',
      'PEM public key that signed the checkpoints (GET /api/v1/audit/public-key?format=pem); repeat for several server instances',
      collectList,
      [],
    )
    .option('--json', 'print the result as JSON')
    .action(
      async (
        file: string | undefined,
        opts: {
          config?: string;
          server?: string | true;
          apiKey?: string;
          export?: string;
          key: string[];
          json?: boolean;
        },
      ) => {
        const json = opts.json === true;
        if (opts.export !== undefined) {
          if (opts.key.length === 0)
            throw new AirlockError(
              'invalid_args',
              '--export needs --key PUBKEY_FILE (the server public key, GET /api/v1/audit/public-key?format=pem)',
            );
          if (!existsSync(opts.export)) throw new AirlockError('invalid_args', `${opts.export}: no such file`);
          const keys = opts.key.map((k) => {
            if (!existsSync(k)) throw new AirlockError('invalid_args', `${k}: no such key file`);
            return readFileSync(k, 'utf8');
          });
          const res = verifyExport(readFileSync(opts.export, 'utf8'), keys);
          if (res.ok) {
            emit(json, { file: opts.export, ...res }, () => {
              const cp = res.latest_checkpoint;
              const first = res.first_seq === 0 ? '' : ` (starts at seq ${res.first_seq}, not at the genesis)`;
              const cov =
                cp === null
                  ? '\n  warning: no signed checkpoint in the export, so events cut from the end cannot be detected'
                  : `, ${res.checkpoints} checkpoint${res.checkpoints === 1 ? '' : 's'} verified, latest at seq ${cp.seq} (${cp.time})${res.unsigned_tail > 0 ? `; the last ${res.unsigned_tail} events are after it` : ''}`;
              return `${opts.export}: ok, ${res.events} events${res.elided > 0 ? ` + ${res.elided} elided` : ''}, head ${res.head?.hash ?? '(empty)'}${first}${cov}\n`;
            });
          } else {
            emit(
              json,
              { file: opts.export, ...res },
              () =>
                `${opts.export}: BROKEN at line ${res.line}${res.seq === undefined ? '' : ` (seq ${res.seq})`} (${res.reason}): ${res.message}\n`,
            );
            process.exitCode = ExitCode.failure;
          }
          return;
        }
        if (opts.server !== undefined) {
          const { url, key } = serverAccess(opts.server, opts.apiKey);
          const body = (await getJson(url, '/api/v1/audit/verify', key)) as ServerVerify;
          if (body.ok) {
            emit(json, { server: url, ...body }, () => {
              const cp = body.checkpoints?.latest;
              const runners = (body.runners ?? [])
                .map(
                  (r) =>
                    `\n  runner ${r.name}: ok, ${r.count} mirrored events${r.breaks.length > 0 ? `, ${r.breaks.length} restart(s) after gaps/forks` : ''}`,
                )
                .join('');
              return `${url}: ok, ${body.count} events, head ${body.head?.hash ?? '(empty)'}${cp ? `, latest checkpoint seq ${cp.seq} (${cp.time})` : ', no checkpoint yet'}${runners}\n`;
            });
          } else {
            emit(
              json,
              { server: url, ...body },
              () =>
                `${url}: BROKEN${body.index === undefined ? '' : ` at index ${body.index}`} (${body.reason}): ${body.message}\n`,
            );
            process.exitCode = ExitCode.failure;
          }
          return;
        }
        const path = file ?? runnerConfigFrom(opts).logPath;
        if (!existsSync(path)) throw new AirlockError('invalid_args', `${path}: no such log file`);
        const res = verifyLogFile(path);
        if (res.ok) {
          emit(
            json,
            { ok: true, file: path, count: res.count, head: res.head },
            () => `${path}: ok, ${res.count} events, head ${res.head?.hash ?? '(empty)'}\n`,
          );
        } else {
          emit(
            json,
            { ok: false, file: path, index: res.index, reason: res.reason, message: res.message },
            () => `${path}: BROKEN at index ${res.index} (${res.reason}): ${res.message}\n`,
          );
          process.exitCode = ExitCode.failure;
        }
      },
    );

  audit
    .command('export')
    .description(
      'download the audit log of a control plane as NDJSON with its signed checkpoints (all pages), for `audit verify --export`',
    )
    .option('--server [url]', 'control plane URL (default $AIRLOCK_SERVER)')
    .option('--api-key <key>', 'API key with the audit:read scope (default $AIRLOCK_API_KEY)')
    .option(
      '--cursor <cursor>',
      'start after this cursor (x-next-cursor of an earlier export) instead of the beginning',
    )
    .option('--format <format>', 'ndjson or cef', 'ndjson')
    .requiredOption('-o, --out <file>', 'file to write')
    .action(async (opts: { server?: string | true; apiKey?: string; cursor?: string; format: string; out: string }) => {
      if (opts.format !== 'ndjson' && opts.format !== 'cef')
        throw new AirlockError('invalid_args', `--format: expected ndjson or cef, got ${JSON.stringify(opts.format)}`);
      const { url, key } = serverAccess(opts.server ?? true, opts.apiKey);
      let cursor = opts.cursor;
      let out = '';
      let pages = 0;
      for (;;) {
        const qs = new URLSearchParams({
          format: opts.format,
          limit: '10000',
          ...(cursor === undefined ? {} : { cursor }),
        });
        const res = await request(url, `/api/v1/audit/export?${qs.toString()}`, key);
        const text = await res.text();
        const more = res.headers.get('x-has-more') === 'true';
        const next = res.headers.get('x-next-cursor') ?? undefined;
        pages++;
        // Keep only the last page's cursor line: it is where a later export continues.
        out += more
          ? text
              .split('\n')
              .filter((l) => !l.startsWith('{"type":"cursor"'))
              .join('\n')
          : text;
        if (!more || next === undefined || next === cursor) {
          cursor = next;
          break;
        }
        cursor = next;
      }
      writeFileSync(opts.out, out);
      process.stderr.write(
        `${opts.out}: ${pages} page${pages === 1 ? '' : 's'} written; continue later with --cursor ${cursor ?? ''}\n`,
      );
    });

  const events = program.command('events').description('read the runner security log');
  events
    .command('tail')
    .description('print the last events of the security log')
    .option('-n, --lines <n>', 'how many events', positiveInt('--lines', 100000), 20)
    .option('-f, --follow', 'keep printing events as they are appended (Ctrl-C to stop)')
    .option('-c, --config <file>', 'runner config file (YAML), for the log path')
    .option('--json', 'print raw JSON lines')
    .action(async (opts: { lines: number; follow?: boolean; config?: string; json?: boolean }) => {
      const path = runnerConfigFrom(opts).logPath;
      const show = (l: string): void => void process.stdout.write(`${opts.json === true ? l : formatEvent(l)}\n`);
      if (existsSync(path)) for (const l of lastLines(path, opts.lines)) show(l);
      else if (opts.follow !== true) {
        process.stderr.write(`${path}: no events yet\n`);
        return;
      }
      if (opts.follow !== true) return;
      let offset = existsSync(path) ? statSync(path).size : 0;
      let partial = '';
      const poll = (): void => {
        if (!existsSync(path)) return;
        const size = statSync(path).size;
        if (size <= offset) return;
        const fd = openSync(path, 'r');
        const buf = Buffer.alloc(size - offset);
        readSync(fd, buf, 0, buf.length, offset);
        closeSync(fd);
        offset = size;
        const text = partial + buf.toString('utf8');
        const parts = text.split('\n');
        partial = parts.pop() ?? '';
        for (const l of parts) if (l.length > 0) show(l);
      };
      const timer = setInterval(poll, 500);
      let watcher: ReturnType<typeof watch> | undefined;
      try {
        watcher = watch(path, poll);
      } catch {
        // the file may not exist yet; polling covers it
      }
      await new Promise<void>((r) => process.once('SIGINT', () => r()));
      clearInterval(timer);
      watcher?.close();
    });
}

function collectList(value: string, previous: string[]): string[] {
  return [...previous, value];
}

interface ServerVerify {
  ok: boolean;
  count?: number;
  head?: ChainHead | null;
  index?: number;
  reason?: string;
  message?: string;
  checkpoints?: { count: number; latest: { seq: number; time: string } | null };
  runners?: { name: string; ok: boolean; count: number; breaks: unknown[] }[];
}

/** Server URL and API key from the options or AIRLOCK_SERVER / AIRLOCK_API_KEY. */
function serverAccess(server: string | true, apiKey: string | undefined): { url: string; key: string } {
  const url = server === true ? process.env['AIRLOCK_SERVER'] : server;
  if (url === undefined || url === '')
    throw new AirlockError('invalid_args', '--server: give the control plane URL or set AIRLOCK_SERVER');
  const key = apiKey ?? process.env['AIRLOCK_API_KEY'];
  if (key === undefined || key === '')
    throw new AirlockError(
      'invalid_args',
      '--api-key: give an API key with the audit:read scope or set AIRLOCK_API_KEY',
    );
  return { url: url.replace(/\/+$/, ''), key };
}

async function request(base: string, path: string, key: string): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${key}`, accept: 'application/json' } });
  } catch (err) {
    throw new AirlockError(
      'internal',
      `cannot reach ${base}: ${(err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message}`,
    );
  }
  if (!res.ok) {
    const text = await res.text();
    let msg = text.slice(0, 300);
    try {
      const b = JSON.parse(text) as { error?: { code?: string; message?: string } };
      if (b.error?.message !== undefined) msg = `${b.error.code ?? 'error'}: ${b.error.message}`;
    } catch {
      // not JSON: keep the text
    }
    throw new AirlockError('invalid_args', `${base}${path.split('?')[0]}: HTTP ${res.status}: ${msg}`);
  }
  return res;
}

async function getJson(base: string, path: string, key: string): Promise<unknown> {
  return (await request(base, path, key)).json();
}

/** Outcome of {@link verifyExport}. `line` is 1-based in the file. */
export type ExportVerifyResult =
  | {
      ok: true;
      events: number;
      elided: number;
      first_seq: number;
      head: ChainHead | null;
      checkpoints: number;
      latest_checkpoint: { seq: number; hash: string; time: string; key_id: string } | null;
      /** Events after the latest checkpoint (their deletion could not be detected). */
      unsigned_tail: number;
    }
  | { ok: false; line: number; seq?: number; reason: string; message: string };

/** key_id of an Ed25519 public key: first 16 hex of SHA-256 over the raw 32-byte key. */
export function exportKeyId(key: KeyObject): string {
  const jwk = key.export({ format: 'jwk' });
  if (jwk.crv !== 'Ed25519' || typeof jwk.x !== 'string')
    throw new AirlockError('invalid_args', 'the --key file is not an Ed25519 public key');
  return createHash('sha256').update(Buffer.from(jwk.x, 'base64url')).digest('hex').slice(0, 16);
}

interface Entry {
  line: number;
  seq: number;
  hash: string;
  prev: string;
  value: unknown;
  elided: boolean;
}

/**
 * Verify an NDJSON audit export offline (format in docs/audit.md): the hash chain of the
 * events (elided lines of other organisations link by their hashes), each checkpoint's
 * Ed25519 signature with one of the given public keys, and that each checkpoint's hash is the
 * hash of the event at its seq; a checkpoint past the last event means the tail was cut.
 */
export function verifyExport(text: string, publicKeysPem: readonly string[]): ExportVerifyResult {
  const keys = new Map<string, KeyObject>();
  for (const pem of publicKeysPem) {
    let k: KeyObject;
    try {
      k = createPublicKey(pem);
    } catch (err) {
      throw new AirlockError('invalid_args', `--key: not a PEM public key (${(err as Error).message})`);
    }
    keys.set(exportKeyId(k), k);
  }
  const fail = (line: number, reason: string, message: string, seq?: number): ExportVerifyResult => ({
    ok: false,
    line,
    ...(seq === undefined ? {} : { seq }),
    reason,
    message,
  });
  const parsed = parseJsonl(text);
  const firstError = parsed.errors[0];
  if (firstError !== undefined) return fail(firstError.line, 'malformed', firstError.message);
  const entries: Entry[] = [];
  const checkpoints: {
    line: number;
    cp: { seq: number; hash: string; time: string; key_id: string; signature: string };
  }[] = [];
  for (let i = 0; i < parsed.events.length; i++) {
    const line = i + 1;
    const v = parsed.events[i];
    if (typeof v !== 'object' || v === null || Array.isArray(v))
      return fail(line, 'malformed', `line ${line}: not a JSON object`);
    const o = v as Record<string, unknown>;
    const type = o['type'];
    const seq = o['seq'];
    if (type === 'cursor') continue;
    if (type === 'checkpoint') {
      if (
        !Number.isSafeInteger(seq) ||
        typeof o['hash'] !== 'string' ||
        typeof o['time'] !== 'string' ||
        typeof o['key_id'] !== 'string' ||
        typeof o['signature'] !== 'string'
      ) {
        return fail(line, 'malformed', `line ${line}: checkpoint without seq, hash, time, key_id and signature`);
      }
      checkpoints.push({
        line,
        cp: { seq: seq as number, hash: o['hash'], time: o['time'], key_id: o['key_id'], signature: o['signature'] },
      });
      continue;
    }
    if (type !== undefined && type !== 'elided')
      return fail(line, 'malformed', `line ${line}: unknown line type ${JSON.stringify(type)}`);
    if (!Number.isSafeInteger(seq) || typeof o['hash'] !== 'string' || typeof o['prev'] !== 'string') {
      return fail(line, 'malformed', `line ${line}: not an audit event (seq, prev and hash required)`);
    }
    entries.push({ line, seq: seq as number, hash: o['hash'], prev: o['prev'], value: v, elided: type === 'elided' });
  }

  // The chain: runs of full events go through verifyChain; elided lines link by seq and hash.
  const first = entries[0];
  let after: ChainHead | undefined =
    first === undefined || first.seq === 0 ? undefined : { seq: first.seq - 1, hash: first.prev };
  let run: Entry[] = [];
  const flush = (): ExportVerifyResult | undefined => {
    if (run.length === 0) return undefined;
    const res = verifyChain(
      run.map((e) => e.value),
      after === undefined ? {} : { after },
    );
    if (!res.ok) {
      const at = run[Math.min(res.index, run.length - 1)] as Entry;
      return fail(at.line, res.reason, `line ${at.line}: ${res.message}`, at.seq);
    }
    after = res.head ?? after;
    run = [];
    return undefined;
  };
  for (const e of entries) {
    if (!e.elided) {
      run.push(e);
      continue;
    }
    const bad = flush();
    if (bad !== undefined) return bad;
    const expectedSeq = after === undefined ? 0 : after.seq + 1;
    const expectedPrev = after === undefined ? GENESIS_HASH : after.hash;
    if (e.seq > expectedSeq)
      return fail(
        e.line,
        'deleted',
        `line ${e.line}: seq jumps from ${expectedSeq - 1} to ${e.seq}; events missing`,
        e.seq,
      );
    if (e.seq < expectedSeq) return fail(e.line, 'inserted', `line ${e.line}: seq ${e.seq} repeats`, e.seq);
    if (e.prev !== expectedPrev)
      return fail(
        e.line,
        'edited',
        `line ${e.line}: prev is not the hash of seq ${expectedSeq - 1}; that event was rewritten`,
        e.seq,
      );
    after = { seq: e.seq, hash: e.hash };
  }
  const bad = flush();
  if (bad !== undefined) return bad;

  const hashAt = new Map(entries.map((e) => [e.seq, e]));
  const firstSeq = first?.seq ?? 0;
  const lastSeq = after?.seq ?? -1;
  let latest: { seq: number; hash: string; time: string; key_id: string } | null = null;
  for (const { line, cp } of checkpoints) {
    const key = keys.get(cp.key_id);
    if (key === undefined) {
      return fail(
        line,
        'signature',
        `line ${line}: checkpoint signed by key ${cp.key_id}, which is not one of the --key files (${[...keys.keys()].join(', ')})`,
        cp.seq,
      );
    }
    const msg = Buffer.from(canonicalJson({ seq: cp.seq, hash: cp.hash, time: cp.time, key_id: cp.key_id }), 'utf8');
    let valid = false;
    try {
      valid = verifySignature(null, msg, key, Buffer.from(cp.signature, 'base64'));
    } catch {
      valid = false;
    }
    if (!valid)
      return fail(
        line,
        'signature',
        `line ${line}: the checkpoint signature is not valid; the checkpoint was altered`,
        cp.seq,
      );
    if (cp.seq > lastSeq) {
      return fail(
        line,
        'truncated',
        `the export ends at seq ${lastSeq} but the checkpoint signed at ${cp.time} covers seq ${cp.seq}; events were cut from the end`,
        cp.seq,
      );
    }
    if (cp.seq < firstSeq) continue; // before this export's range
    const at = hashAt.get(cp.seq);
    if (at === undefined || at.hash !== cp.hash) {
      return fail(
        at?.line ?? line,
        'edited',
        `seq ${cp.seq} differs from the checkpoint signed at ${cp.time}; the log was rewritten up to there`,
        cp.seq,
      );
    }
    if (latest === null || cp.seq >= latest.seq)
      latest = { seq: cp.seq, hash: cp.hash, time: cp.time, key_id: cp.key_id };
  }
  return {
    ok: true,
    events: entries.filter((e) => !e.elided).length,
    elided: entries.filter((e) => e.elided).length,
    first_seq: firstSeq,
    head: after ?? null,
    checkpoints: checkpoints.length,
    latest_checkpoint: latest,
    unsigned_tail: latest === null ? entries.length : lastSeq - latest.seq,
  };
}
