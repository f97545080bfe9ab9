import { AIRLOCK_VERSION, AirlockError } from '@airlock/core';
import { Command, CommanderError } from 'commander';
import { registerActionCommands } from './commands/action.js';
import { registerAuditCommands } from './commands/audit.js';
import { registerDoctorCommand } from './commands/doctor.js';
import { registerMcpCommands } from './commands/mcp.js';
import { registerPackCommands } from './commands/pack.js';
import { registerPolicyCommands } from './commands/policy.js';
import { registerRunnerCommands } from './commands/runner.js';
import { registerSandboxCommands } from './commands/sandbox.js';
import { registerServerCommand } from './commands/server.js';
import { registerUpCommand } from './commands/up.js';
import { ExitCode } from './exit-codes.js';

/** Build the `airlock` program. Exported for tests, which drive it in-process. */
export function buildProgram(): Command {
  const program = new Command('airlock')
    .description(
      'Safe hands for AI agents: declared actions on real hosts and microVM sandboxes for code, ' +
        'under one policy, approval and audit envelope.',
    )
    .version(AIRLOCK_VERSION, '-V, --version', 'print the airlock version')
    .helpOption('-h, --help', 'show help for a command')
    .showHelpAfterError('(run with --help for usage)')
    // Set before subcommands are added: commander copies it into each one at creation.
    .exitOverride()
    .configureHelp({ sortSubcommands: false, showGlobalOptions: true })
    .addHelpText(
      'after',
      `
Environment:
  AIRLOCK_HOME     data directory (default ~/.airlock)

Examples:
  airlock pack validate packs/linux-core
  airlock action run linux.uptime --reason "smoke test"
  airlock audit verify

Docs: docs/architecture.md, docs/action-packs.md, docs/security-model.md`,
    );
  registerUpCommand(program);
  registerPackCommands(program);
  registerActionCommands(program);
  registerServerCommand(program);
  registerRunnerCommands(program);
  registerAuditCommands(program);
  registerPolicyCommands(program);
  registerMcpCommands(program);
  registerSandboxCommands(program);
  registerDoctorCommand(program);
  return program;
}

/** Run the CLI; returns the process exit code. Errors print as `airlock: <code>: <message>`. */
export async function main(argv: readonly string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv as string[]);
    return typeof process.exitCode === 'number' ? process.exitCode : ExitCode.ok;
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help and --version exit through here with code 0.
      return e.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
    }
    if (e instanceof AirlockError) {
      process.stderr.write(`airlock: ${e.code}: ${e.message}\n`);
      return ExitCode.failure;
    }
    process.stderr.write(`airlock: internal: ${(e as Error)?.stack ?? String(e)}\n`);
    return ExitCode.internal;
  }
}
