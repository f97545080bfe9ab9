import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { AIRLOCK_VERSION, AirlockError } from '@airlock/core';
import {
  airlockHome,
  bundledPacksDir,
  defaultRunnerConfig,
  loadCatalog,
  type RunnerConfig,
  startRunner,
} from '@airlock/runner';
import type { Command } from 'commander';
import { runnerConfigFrom } from '../options.js';
import { progressBar } from './sandbox.js';
import { untilSignal } from './server.js';

/**
 * Start the sandbox daemon in this process when a backend is available, building the guest
 * images on first use (with progress). A host without one still gets the rest, and is told why.
 */
async function startSandboxDaemon(
  listenAddr: string,
  out: (s?: string) => void,
): Promise<{ url: string; close(): Promise<void> } | undefined> {
  try {
    const { SandboxManager, createSandboxServer, listen } = await import('@airlock/sandbox');
    out('sandbox daemon  preparing (guest images are built on first start; this can take a few minutes)…');
    const manager = await SandboxManager.open({
      backend: 'qemu',
      buildImages: true,
      progress: progressBar,
      maxSandboxes: 8,
    });
    const httpServer = createSandboxServer(manager);
    const a = await listen(httpServer, listenAddr);
    const info = manager.info();
    const url = `http://${a.address}:${a.port}`;
    out(
      `sandbox daemon  ${url}  (${String(info['backend'])}, ${String(info['isolation'])}, ${info['kvm'] ? 'KVM' : 'no KVM: software emulation, slower'})`,
    );
    return {
      url,
      async close() {
        httpServer.close();
        await manager.close();
      },
    };
  } catch (e) {
    out(`sandbox daemon  not started: ${(e as Error).message}`);
    return undefined;
  }
}

/** `airlock up` (what `npm start` runs): the whole local product in one process. */
export function registerUpCommand(program: Command): void {
  program
    .command('up')
    .description(
      'bring up a complete local installation: control plane on SQLite and a local runner (what "npm start" runs)',
    )
    .option('--listen <host:port>', 'control-plane address (env AIRLOCK_LISTEN; default 127.0.0.1:7700)')
    .option('-c, --config <file>', 'runner config file (YAML) for the local runner')
    .option('--sandbox-listen <host:port>', 'sandbox daemon address', '127.0.0.1:7777')
    .option('--no-sandbox', 'do not start the sandbox daemon')
    .addHelpText(
      'after',
      `
Everything lives in $AIRLOCK_HOME (default ~/.airlock): the SQLite database, the runner's
security log, its token, and a local API key. The bundled packs are trusted on your
behalf (an audited decision); packs you add later wait for your review. Ctrl-C stops.`,
    )
    .action(async (opts: { listen?: string; config?: string; sandbox: boolean; sandboxListen: string }) => {
      const { createServer, ensureLocalApiKey, ensureLocalRunnerToken, serverConfig, trustPackHashes } = await import(
        '@airlock/server'
      );
      const home = airlockHome();
      mkdirSync(home, { recursive: true, mode: 0o700 });
      const out = (s = ''): void => void process.stdout.write(`${s}\n`);
      out(`airlock ${AIRLOCK_VERSION} — starting a local installation in ${home}`);

      const config = serverConfig({
        home,
        logLevel: process.env['AIRLOCK_LOG_LEVEL'] ?? 'warn',
        ...(opts.listen === undefined ? {} : { listen: opts.listen }),
      });
      const server = await createServer(config);
      let url: string;
      try {
        url = await server.listen();
      } catch (e) {
        await server.close();
        throw new AirlockError(
          'invalid_config',
          `cannot listen on ${config.host}:${config.port} (${(e as Error).message}); is another airlock running? Use --listen or AIRLOCK_LISTEN to pick another address`,
        );
      }
      out(`control plane   ${url}  (SQLite ${server.ctx.db.location})`);
      out(`dashboard       ${url}/`);

      const runnerConfig: RunnerConfig =
        opts.config === undefined && (process.env['AIRLOCK_RUNNER_CONFIG'] ?? '') === ''
          ? { ...defaultRunnerConfig(), name: 'local' }
          : runnerConfigFrom(opts);
      const token = await ensureLocalRunnerToken(server, runnerConfig.name, join(home, 'runner', 'token'));
      const bundled = loadCatalog([bundledPacksDir()]);
      const runner = startRunner({
        config: runnerConfig,
        serverUrl: url,
        token,
        logger: (level, msg) => {
          if (level !== 'info') process.stderr.write(`runner ${level}: ${msg}\n`);
        },
      });
      const deadline = Date.now() + 15_000;
      while (!runner.client.connected && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      if (!runner.client.connected) out('local runner    NOT connected yet (see messages above); it keeps retrying');
      // Wait until the hello is recorded, then trust the bundled packs' exact hashes.
      const hashes = new Set(bundled.packs.map((p) => p.pack.hash));
      let trusted: string[] = [];
      for (let i = 0; i < 40; i++) {
        trusted = trusted.concat(await trustPackHashes(server, hashes, 'bundled with airlock; trusted by npm start'));
        const pending = await server.ctx.db.kysely
          .selectFrom('packs')
          .select('hash')
          .where('status', '=', 'pending')
          .execute();
        if (
          pending.every((p) => !hashes.has(p.hash)) &&
          (await server.ctx.db.kysely.selectFrom('packs').select('id').execute()).length > 0
        )
          break;
        await new Promise((r) => setTimeout(r, 50));
      }
      const actions = runner.engine.currentCatalog.packs.reduce((n, p) => n + p.pack.actions.length, 0);
      out(
        `local runner    "${runnerConfig.name}" connected: ${runner.engine.currentCatalog.packs.length} packs, ${actions} actions${trusted.length > 0 ? ` (trusted now: ${trusted.join(', ')})` : ''}`,
      );
      out(`security log    ${runnerConfig.logPath}`);
      const sandbox = opts.sandbox ? await startSandboxDaemon(opts.sandboxListen, out) : undefined;
      const apiKey = await ensureLocalApiKey(server, join(home, 'server', 'local-api-key'));
      out('');
      out('Sign in');
      out(`  user      ${server.bootstrap.username}`);
      out(
        server.bootstrap.password !== undefined
          ? `  password  ${server.bootstrap.password}   (one-time; change it with POST /api/v1/auth/password)`
          : '  password  (already changed)',
      );
      out(`  API key   ${apiKey}   (operator scopes; saved in ${join(home, 'server', 'local-api-key')})`);
      out('');
      out('Try it');
      out(`  curl -s -H "Authorization: Bearer ${apiKey}" -H 'content-type: application/json' \\`);
      out(
        `       -d '{"runner":"${runnerConfig.name}","action":"showcase.echo","args":{"message":"hello"},"reason":"first run"}' ${url}/api/v1/runs`,
      );
      out(`  curl -s -H "Authorization: Bearer ${apiKey}" ${url}/api/v1/runs`);
      out(`  API reference: ${url}/api/v1/openapi.json`);
      if (sandbox !== undefined) {
        out(
          `  curl -s -X POST ${sandbox.url}/sandboxes -d '{"language_pack":"python"}'   # then POST /sandboxes/ID/exec {"code":"print(6*7)"}`,
        );
      }
      out('');
      out(`Open ${url}/ in a browser and sign in as ${server.bootstrap.username}.`);
      out('ready (Ctrl-C to stop)');
      await untilSignal(async () => {
        runner.stop();
        await sandbox?.close();
        await server.close();
      });
    });
}
