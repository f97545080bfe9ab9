import { AirlockError } from '@airlock/core';
import { createAirlockMcpServer, HttpBackend } from '@airlock/mcp';
import type { McpServer } from '@modelcontextprotocol/server';
import { serveStdio } from '@modelcontextprotocol/server/stdio';
import type { Command } from 'commander';

const CLIENTS = ['claude', 'claude-desktop', 'cursor', 'vscode'] as const;
type ClientKind = (typeof CLIENTS)[number];

/** The ready-to-paste configuration of an MCP client for airlock. */
export function mcpClientConfig(
  client: ClientKind,
  opts: { server: string; apiKey?: string; http?: boolean },
): { file: string; config: unknown } {
  const server = opts.server.replace(/\/+$/, '');
  const env = { AIRLOCK_SERVER: server, AIRLOCK_API_KEY: opts.apiKey ?? '<your alk_… API key>' };
  const stdio = { command: 'airlock', args: ['mcp'], env };
  const http = { type: 'http', url: `${server}/mcp` };
  switch (client) {
    case 'claude':
      return {
        file: ".mcp.json (project) or `claude mcp add-json airlock '…'`",
        config: { mcpServers: { airlock: opts.http === true ? http : { type: 'stdio', ...stdio } } },
      };
    case 'claude-desktop':
      return { file: 'claude_desktop_config.json', config: { mcpServers: { airlock: stdio } } };
    case 'cursor':
      return {
        file: '~/.cursor/mcp.json (or .cursor/mcp.json in a project)',
        config: { mcpServers: { airlock: opts.http === true ? { url: `${server}/mcp` } : stdio } },
      };
    case 'vscode':
      return {
        file: '.vscode/mcp.json',
        config: { servers: { airlock: opts.http === true ? http : { type: 'stdio', ...stdio } } },
      };
  }
}

/** `airlock mcp` (stdio bridge) and `airlock mcp config`. */
export function registerMcpCommands(program: Command): void {
  const mcp = program
    .command('mcp')
    .description(
      'stdio MCP server for local agent clients; talks to the control plane at $AIRLOCK_SERVER with $AIRLOCK_API_KEY',
    )
    .option('--action-tools', 'also offer one tool per trusted action (runner__pack.action)')
    .action(async (opts: { actionTools?: boolean }) => {
      const server = process.env['AIRLOCK_SERVER'] ?? 'http://127.0.0.1:7700';
      const token = process.env['AIRLOCK_API_KEY'];
      if (token === undefined || token === '')
        throw new AirlockError(
          'invalid_config',
          'AIRLOCK_API_KEY is not set: create a key in the dashboard or with the API, then set AIRLOCK_API_KEY',
        );
      const backend = new HttpBackend({ server, token });
      // Fail early (on stderr, stdout is the protocol) when the key or the server is wrong.
      try {
        await backend.permissions();
      } catch (err) {
        throw new AirlockError(
          'invalid_config',
          `cannot use the control plane at ${server}: ${(err as Error).message}`,
        );
      }
      // The tool surface changes with trust decisions and runners: take a baseline now, poll, announce.
      const fingerprint = async (): Promise<string> => {
        const [a, r] = await Promise.all([
          backend.listActions().catch(() => []),
          backend.listRunners().catch(() => []),
        ]);
        return JSON.stringify([
          a.map((x) => [x.runner_id, x.id, x.pack_hash, x.trusted, x.runner_online]),
          r.map((x) => [x.id, x.status]),
        ]);
      };
      let last = await fingerprint();
      const live = new Set<McpServer>();
      const handle = serveStdio(
        async () => {
          const s = await createAirlockMcpServer(backend, { actionTools: opts.actionTools === true });
          live.add(s);
          return s;
        },
        { onerror: (err) => process.stderr.write(`airlock mcp: ${err.message}\n`) },
      );
      const poll = setInterval(
        () => {
          void fingerprint().then((fp) => {
            if (fp !== last) for (const s of live) if (s.isConnected()) s.sendToolListChanged();
            last = fp;
          });
        },
        Number(process.env['AIRLOCK_MCP_POLL_MS'] ?? 5000),
      );
      poll.unref();
      const stop = async (): Promise<void> => {
        clearInterval(poll);
        await handle.close();
        process.exit(0);
      };
      process.stdin.on('end', () => void stop());
      process.on('SIGTERM', () => void stop());
      await new Promise<never>(() => {});
    });

  mcp
    .command('config')
    .description('print the MCP client configuration for airlock, ready to paste')
    .requiredOption('--client <client>', `one of ${CLIENTS.join(', ')}`)
    .option('--server <url>', 'control plane URL (default: $AIRLOCK_SERVER or http://127.0.0.1:7700)')
    .option('--http', 'connect over Streamable HTTP with OAuth instead of the stdio bridge')
    .option('--with-key', 'include $AIRLOCK_API_KEY in the printed config (it is a secret)')
    .action((opts: { client: string; server?: string; http?: boolean; withKey?: boolean }) => {
      if (!(CLIENTS as readonly string[]).includes(opts.client))
        throw new AirlockError('invalid_args', `--client must be one of ${CLIENTS.join(', ')}`);
      const server = opts.server ?? process.env['AIRLOCK_SERVER'] ?? 'http://127.0.0.1:7700';
      const key = opts.withKey === true ? process.env['AIRLOCK_API_KEY'] : undefined;
      const { file, config } = mcpClientConfig(opts.client as ClientKind, {
        server,
        ...(key === undefined ? {} : { apiKey: key }),
        ...(opts.http === true ? { http: true } : {}),
      });
      process.stderr.write(`# paste into ${file}\n`);
      process.stdout.write(`${JSON.stringify(config, null, 2)}\n`);
    });
}
