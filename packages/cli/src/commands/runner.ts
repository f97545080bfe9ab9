import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { AirlockError } from '@airlock/core';
import { loadCatalog, redeemBootstrapKey, runnerState, startRunner } from '@airlock/runner';
import type { Command } from 'commander';
import { ExitCode } from '../exit-codes.js';
import { emit, runnerConfigFrom } from '../options.js';
import { untilSignal } from './server.js';

/** `airlock runner …`: the on-host runner. */
export function registerRunnerCommands(program: Command): void {
  const runner = program.command('runner').description('the on-host runner: state, reload, connect to a control plane');

  runner
    .command('state')
    .description('what this runner would advertise: identity, version, packs, hashes, actions, capabilities')
    .option('-c, --config <file>', 'runner config file (YAML)')
    .option('--json', 'print as JSON')
    .action((opts: { config?: string; json?: boolean }) => {
      const config = runnerConfigFrom(opts);
      const state = runnerState(config, loadCatalog(config.packDirs));
      emit(opts.json === true, state, () => {
        const lines = [
          `runner ${state.runner.name}  airlock ${state.version}  protocol ${state.protocol}`,
          `capabilities: ${state.capabilities.join(', ')}`,
          `labels: ${
            Object.entries(state.labels)
              .map(([k, v]) => `${k}=${v}`)
              .join(', ') || '(none)'
          }`,
          `security log: ${state.log}`,
          `packs (${state.packs.length}):`,
          ...state.packs.map(
            (p) =>
              `  ${p.name.padEnd(14)} ${p.version.padEnd(8)} ${p.hash}  ${p.actions.length} actions  trust: ${p.trusted}`,
          ),
        ];
        for (const f of state.failures) lines.push(`  FAILED ${f.dir}:`, ...f.errors.map((e) => `    ${e}`));
        return `${lines.join('\n')}\n`;
      });
    });

  runner
    .command('reload')
    .description(
      'ask the running runner to reload its packs (sends SIGHUP to the pid in runner.pid next to its security log)',
    )
    .option('-c, --config <file>', 'runner config file (YAML), to find the runner state folder')
    .action((opts: { config?: string }) => {
      const pidFile = join(dirname(runnerConfigFrom(opts).logPath), 'runner.pid');
      let pid: number;
      try {
        pid = Number.parseInt(readFileSync(pidFile, 'utf8'), 10);
      } catch {
        throw new AirlockError(
          'not_available',
          `no running runner: ${pidFile} does not exist (start one with "airlock runner connect")`,
        );
      }
      try {
        process.kill(pid, 'SIGHUP');
      } catch (e) {
        throw new AirlockError(
          'not_available',
          `runner pid ${pid} from ${pidFile} is not running (${(e as Error).message})`,
        );
      }
      process.stdout.write(`sent SIGHUP to runner pid ${pid}; it reloads its packs\n`);
    });

  runner
    .command('connect')
    .description('run the runner: dial out to the control plane and serve declared actions (never listens on a port)')
    .option('-c, --config <file>', 'runner config file (YAML)')
    .option('--server <url>', 'control-plane URL (overrides the config; env AIRLOCK_SERVER)')
    .option(
      '--bootstrap-key <key>',
      'one-time key from "create runner"; exchanged for a token saved in $AIRLOCK_HOME/runner/token',
    )
    .addHelpText(
      'after',
      `
Credentials, in order: AIRLOCK_RUNNER_KEY (a runner token), --bootstrap-key (exchanged once
for a token, then saved 0600), the saved token file. The runner reconnects with jittered
exponential backoff, keeps results in a persistent outbox until the control plane acks them,
and reloads its packs on SIGHUP ("airlock runner reload"). Exit code 1 when the control
plane revokes or refuses the runner.

Example:
  airlock runner connect --server https://airlock.example.com --bootstrap-key alb_…`,
    )
    .action(async (opts: { config?: string; server?: string; bootstrapKey?: string }) => {
      const config = runnerConfigFrom(opts);
      const serverUrl = opts.server ?? process.env['AIRLOCK_SERVER'] ?? config.server;
      if (serverUrl === undefined)
        throw new AirlockError(
          'invalid_config',
          'no control plane: pass --server URL, set AIRLOCK_SERVER, or set "server" in the runner config',
        );
      const tokenFile = config.tokenFile ?? join(dirname(config.logPath), 'token');
      let token = process.env['AIRLOCK_RUNNER_KEY'];
      if ((token === undefined || token === '') && opts.bootstrapKey !== undefined) {
        const reg = await redeemBootstrapKey(serverUrl, opts.bootstrapKey);
        mkdirSync(dirname(tokenFile), { recursive: true, mode: 0o700 });
        writeFileSync(tokenFile, `${reg.token}\n`, { mode: 0o600 });
        chmodSync(tokenFile, 0o600);
        process.stderr.write(`registered as runner ${reg.name} (${reg.runnerId}); token saved to ${tokenFile}\n`);
        token = reg.token;
      }
      if ((token === undefined || token === '') && existsSync(tokenFile))
        token = readFileSync(tokenFile, 'utf8').trim();
      if (token === undefined || token === '') {
        throw new AirlockError(
          'invalid_config',
          `no runner credentials: pass --bootstrap-key, set AIRLOCK_RUNNER_KEY, or keep a token in ${tokenFile}`,
        );
      }
      const running = startRunner({
        config,
        serverUrl,
        token,
        manageProcess: true,
        logger: (level, msg) => process.stderr.write(`${new Date().toISOString()} ${level} ${msg}\n`),
      });
      process.stderr.write(
        `runner ${config.name} connecting to ${serverUrl} (pid ${process.pid}; packs: ${running.engine.currentCatalog.packs.map((p) => p.pack.name).join(', ')})\n`,
      );
      const stop = await Promise.race([
        running.stopped,
        untilSignal(async () => running.stop()).then(() => ({ reason: 'closed' as const, detail: 'signal' })),
      ]);
      if (stop.reason !== 'closed') {
        process.stderr.write(`runner stopped: ${stop.detail}\n`);
        process.exitCode = ExitCode.failure;
      }
    });
}
