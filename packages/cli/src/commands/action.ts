import { randomUUID } from 'node:crypto';
import { AirlockError } from '@airlock/core';
import type { OutputLine, RunResult } from '@airlock/runner';
import type { Command } from 'commander';
import { ExitCode } from '../exit-codes.js';
import { localPrincipal, openLocalRunner } from '../local-runner.js';
import { collectKeyValue, emit, runnerConfigFrom } from '../options.js';

const STATUS_EXIT: Record<RunResult['status'], number> = {
  success: ExitCode.ok,
  failure: ExitCode.failure,
  validation_failed: ExitCode.validationFailed,
  error: ExitCode.error,
  timeout: ExitCode.timeout,
  cancelled: ExitCode.cancelled,
};

/** `airlock action …`: list declared actions and run one locally through the runner engine. */
export function registerActionCommands(program: Command): void {
  const action = program
    .command('action')
    .description('list and run declared actions on this host (local runner engine)');

  action
    .command('list')
    .description('list the actions of the configured packs')
    .option('-c, --config <file>', 'runner config file (YAML)')
    .option('--json', 'print as JSON')
    .action((opts: { config?: string; json?: boolean }) => {
      const { catalog } = openLocalRunner(runnerConfigFrom(opts));
      const rows = catalog.packs.flatMap(({ pack }) =>
        pack.actions.map((a) => ({ id: a.id, pack: pack.name, risk: a.risk, title: a.title })),
      );
      emit(
        opts.json === true,
        rows,
        () =>
          `${rows.map((r) => `${r.id.padEnd(34)} ${r.risk.padEnd(12)} ${r.title}`).join('\n')}\n${rows.length} actions\n`,
      );
      for (const f of catalog.failures) process.stderr.write(`warning: ${f.dir}: ${f.errors.join('; ')}\n`);
    });

  action
    .command('show')
    .description('show one action: description, arguments, limits, argv template')
    .argument('<action>', 'action id, for example linux.uptime')
    .option('-c, --config <file>', 'runner config file (YAML)')
    .action((id: string, opts: { config?: string }) => {
      const { catalog } = openLocalRunner(runnerConfigFrom(opts));
      const found = catalog.findAction(id);
      if (found === undefined)
        throw new AirlockError(
          'unknown_action',
          `${id} is not declared by any loaded pack (see "airlock action list")`,
        );
      process.stdout.write(
        `${JSON.stringify({ pack: found.loaded.pack.name, pack_hash: found.loaded.pack.hash, ...found.action }, null, 2)}\n`,
      );
    });

  action
    .command('run')
    .description('run a declared action on this host, with the same engine and security log as the runner')
    .argument('<action>', 'action id, for example linux.uptime')
    .option(
      '-a, --arg <name=value>',
      'an argument (repeatable); values are typed by the action',
      collectKeyValue('--arg'),
      {},
    )
    .requiredOption('-r, --reason <text>', 'why you run it; recorded in the security log')
    .option(
      '-l, --limit <name=value>',
      'request a limit, e.g. timeout_s=10 (clamped to the action bounds)',
      collectKeyValue('--limit'),
      {},
    )
    .option('-s, --stream', 'print output lines as they come (otherwise printed when the run ends)')
    .option('-c, --config <file>', 'runner config file (YAML)')
    .option('--json', 'print the result (and output lines) as JSON')
    .addHelpText(
      'after',
      `
Exit codes: 0 success, 1 failure (non-zero exit), 3 validation_failed, 4 error
(hash mismatch, binary missing, script tampered), 5 timeout, 6 cancelled (Ctrl-C).

Examples:
  airlock action run linux.uptime --reason smoke
  airlock action run linux.journal --arg unit=nginx --arg lines=50 --reason "5xx spike" --stream
  airlock action run showcase.sleep --arg seconds=20 --limit timeout_s=5 --reason "timeout demo"`,
    )
    .action(
      async (
        id: string,
        opts: {
          arg: Record<string, string>;
          limit: Record<string, string>;
          reason: string;
          stream?: boolean;
          config?: string;
          json?: boolean;
        },
      ) => {
        const { engine } = openLocalRunner(runnerConfigFrom(opts));
        const limits: Record<string, unknown> = {};
        for (const [k, v] of Object.entries(opts.limit)) {
          const n = Number(v);
          if (!Number.isFinite(n))
            throw new AirlockError('invalid_limits', `--limit ${k}: expected a number, got ${JSON.stringify(v)}`);
          limits[k] = n;
        }
        const lines: OutputLine[] = [];
        const ac = new AbortController();
        const onSigint = (): void => ac.abort();
        process.once('SIGINT', onSigint);
        const result = await engine
          .run(
            {
              requestId: randomUUID(),
              action: id,
              args: opts.arg,
              limits,
              reason: opts.reason,
              principal: localPrincipal(),
              coerceStrings: true,
            },
            {
              signal: ac.signal,
              onOutput: (l) => {
                if (opts.stream === true && opts.json !== true)
                  (l.stream === 'stdout' ? process.stdout : process.stderr).write(`${l.line}\n`);
                else lines.push(l);
              },
            },
          )
          .finally(() => process.off('SIGINT', onSigint));
        if (opts.json === true) {
          process.stdout.write(`${JSON.stringify({ ...result, output: lines }, null, 2)}\n`);
        } else {
          for (const l of lines) (l.stream === 'stdout' ? process.stdout : process.stderr).write(`${l.line}\n`);
          const parts = [`${result.status}`, `exit ${result.exitCode ?? '-'}`, `${result.durationMs} ms`];
          if (result.truncated) parts.push('output truncated');
          for (const c of result.clamped) parts.push(`${c.name} clamped ${c.requested}→${c.applied}`);
          process.stderr.write(
            `\n[airlock] ${id}: ${parts.join(', ')}; event #${result.auditSeq} ${result.auditHash}\n`,
          );
          if (result.error !== null) process.stderr.write(`[airlock] ${result.error.code}: ${result.error.message}\n`);
        }
        process.exitCode = STATUS_EXIT[result.status];
      },
    );
}
