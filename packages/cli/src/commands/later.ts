import { AirlockError } from '@airlock/core';
import type { Command } from 'commander';

const notYet = (what: string) => (): never => {
  throw new AirlockError('not_available', `${what} is not available in this build yet`);
};

/** Verbs whose implementation lands with later work; each says so instead of pretending. */
export function registerLaterCommands(program: Command): void {
  const sandbox = program.command('sandbox').description('microVM sandboxes for arbitrary code (not available yet)');
  sandbox
    .command('serve')
    .description('run the sandbox daemon on 127.0.0.1:7777 (not available yet)')
    .option('--listen <addr>', 'address to listen on', '127.0.0.1:7777')
    .action(notYet('airlock sandbox serve (the sandbox daemon)'));
  program
    .command('doctor')
    .description('check what this host needs and print what to fix (not available yet)')
    .action(notYet('airlock doctor'));
}
