import { AirlockError } from '@airlock/core';
import type { Command } from 'commander';

const notYet = (what: string) => (): never => {
  throw new AirlockError('not_available', `${what} is not available in this build yet`);
};

/** Verbs whose implementation lands with later work; each says so instead of pretending. */
export function registerLaterCommands(program: Command): void {
  program
    .command('doctor')
    .description('check what this host needs and print what to fix (not available yet)')
    .action(notYet('airlock doctor'));
}
