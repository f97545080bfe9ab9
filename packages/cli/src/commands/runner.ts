import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AirlockError } from '@airlock/core';
import { airlockHome, loadCatalog, runnerState } from '@airlock/runner';
import type { Command } from 'commander';
import { emit, runnerConfigFrom } from '../options.js';

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
          `labels: ${Object.entries(state.labels).map(([k, v]) => `${k}=${v}`).join(', ') || '(none)'}`,
          `security log: ${state.log}`,
          `packs (${state.packs.length}):`,
          ...state.packs.map((p) => `  ${p.name.padEnd(14)} ${p.version.padEnd(8)} ${p.hash}  ${p.actions.length} actions  trust: ${p.trusted}`),
        ];
        for (const f of state.failures) lines.push(`  FAILED ${f.dir}:`, ...f.errors.map((e) => `    ${e}`));
        return `${lines.join('\n')}\n`;
      });
    });

  runner
    .command('reload')
    .description('ask the running runner to reload its packs (sends SIGHUP to the pid in $AIRLOCK_HOME/runner/runner.pid)')
    .action(() => {
      const pidFile = join(airlockHome(), 'runner', 'runner.pid');
      let pid: number;
      try {
        pid = Number.parseInt(readFileSync(pidFile, 'utf8'), 10);
      } catch {
        throw new AirlockError('not_available', `no running runner: ${pidFile} does not exist (start one with "airlock runner connect")`);
      }
      try {
        process.kill(pid, 'SIGHUP');
      } catch (e) {
        throw new AirlockError('not_available', `runner pid ${pid} from ${pidFile} is not running (${(e as Error).message})`);
      }
      process.stdout.write(`sent SIGHUP to runner pid ${pid}; it reloads its packs\n`);
    });

  runner
    .command('connect')
    .description('run the runner: dial out to the control plane and serve declared actions (never listens on a port)')
    .option('-c, --config <file>', 'runner config file (YAML)')
    .option('--server <url>', 'control-plane URL (overrides the config)')
    .action(() => {
      throw new AirlockError('not_available', 'runner connect needs the control plane, which is not available in this build yet');
    });
}
