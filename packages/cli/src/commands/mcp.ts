import { AirlockError } from '@airlock/core';
import type { Command } from 'commander';

/** `airlock mcp` (stdio bridge) and `airlock mcp config`. */
export function registerMcpCommands(program: Command): void {
  program
    .command('mcp')
    .description('stdio MCP bridge for local agent clients (not available yet)')
    .action(() => {
      throw new AirlockError('not_available', 'airlock mcp (the MCP bridge) is not available in this build yet');
    });
}
