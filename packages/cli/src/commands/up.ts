import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { AIRLOCK_VERSION } from '@airlock/core';
import { airlockHome, runnerState } from '@airlock/runner';
import type { Command } from 'commander';
import { localPrincipal, openLocalRunner } from '../local-runner.js';
import { runnerConfigFrom } from '../options.js';

/** `airlock up` (what `npm start` runs): bring up the local product and say what is there. */
export function registerUpCommand(program: Command): void {
  program
    .command('up')
    .description('bring up a complete local installation (what "npm start" runs)')
    .option('-c, --config <file>', 'runner config file (YAML)')
    .action(async (opts: { config?: string }) => {
      const home = airlockHome();
      mkdirSync(home, { recursive: true, mode: 0o700 });
      const config = runnerConfigFrom(opts);
      const { catalog, engine } = openLocalRunner(config);
      const state = runnerState(config, catalog);
      const actions = state.packs.reduce((n, p) => n + p.actions.length, 0);
      const out = (s: string): void => void process.stdout.write(`${s}\n`);
      out(`airlock ${AIRLOCK_VERSION} — local installation in ${home}`);
      out('');
      out(`runner "${state.runner.name}": ${state.packs.length} packs, ${actions} declared actions`);
      for (const p of state.packs) out(`  ${p.name.padEnd(14)} ${p.hash.slice(0, 23)}…  ${p.actions.length} actions`);
      for (const f of state.failures) out(`  FAILED ${f.dir}: ${f.errors.join('; ')}`);
      out(`security log: ${config.logPath}`);
      const smoke = catalog.findAction('showcase.host_summary') !== undefined ? 'showcase.host_summary' : 'linux.uptime';
      const res = await engine.run({
        requestId: randomUUID(),
        action: smoke,
        args: {},
        reason: 'npm start smoke check',
        principal: localPrincipal(),
      });
      out(`smoke check: ${smoke} → ${res.status} in ${res.durationMs} ms (event #${res.auditSeq})`);
      out('');
      out('Not in this build yet: the control plane (airlock server, dashboard at http://127.0.0.1:7700),');
      out('MCP for agents, and microVM sandboxes. They arrive with the next milestones (see docs/architecture.md).');
      out('');
      out('Try:');
      out('  npx airlock action list');
      out('  npx airlock action run linux.uptime --reason "first run"');
      out('  npx airlock action run showcase.echo --arg \'message=$(id); rm -rf /\' --reason "metacharacters stay literal"');
      out('  npx airlock events tail');
      out('  npx airlock audit verify');
      if (res.status !== 'success') process.exitCode = 1;
    });
}
