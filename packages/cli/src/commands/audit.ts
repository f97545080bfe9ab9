import { closeSync, existsSync, openSync, readSync, statSync, watch } from 'node:fs';
import { AirlockError } from '@airlock/core';
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
  return buf.toString('utf8').split('\n').filter((l) => l.length > 0).slice(-n);
}

/** `airlock audit verify` and `airlock events tail`. */
export function registerAuditCommands(program: Command): void {
  const audit = program.command('audit').description('verify the hash-chained security log');
  audit
    .command('verify')
    .description('verify a security log; exit 1 and the first bad index on any edit, deletion or reordering')
    .argument('[file]', 'log file (default: the runner config log, $AIRLOCK_HOME/runner/events.jsonl)')
    .option('-c, --config <file>', 'runner config file (YAML), for the default log path')
    .option('--json', 'print the result as JSON')
    .action((file: string | undefined, opts: { config?: string; json?: boolean }) => {
      const path = file ?? runnerConfigFrom(opts).logPath;
      if (!existsSync(path)) throw new AirlockError('invalid_args', `${path}: no such log file`);
      const res = verifyLogFile(path);
      if (res.ok) {
        emit(opts.json === true, { ok: true, file: path, count: res.count, head: res.head }, () => `${path}: ok, ${res.count} events, head ${res.head?.hash ?? '(empty)'}\n`);
      } else {
        emit(opts.json === true, { ok: false, file: path, index: res.index, reason: res.reason, message: res.message }, () => `${path}: BROKEN at index ${res.index} (${res.reason}): ${res.message}\n`);
        process.exitCode = ExitCode.failure;
      }
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
