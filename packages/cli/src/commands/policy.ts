import type { Command } from 'commander';

/** `airlock policy|grant|approve|deny …` (filled by the policy work). */
export function registerPolicyCommands(program: Command): void {
  void program;
}
