// Test support: a control plane on a free loopback port with a temp home, on the given
// database. Not part of the package surface.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AirlockServer, createServer } from '../app.js';
import { serverConfig } from '../config.js';
import type { ServerConfig } from '../context.js';

export interface TestServer {
  readonly server: AirlockServer;
  readonly url: string;
  readonly home: string;
  stop(): Promise<void>;
}

/** Start a server for a test. `database` is a SQLite path or postgres:// URL (see testDatabases). */
export async function startTestServer(
  database: string,
  home?: string,
  overrides: Partial<ServerConfig> = {},
): Promise<TestServer> {
  const dir = home ?? mkdtempSync(join(tmpdir(), 'airlock-srv-'));
  const server = await createServer({
    ...serverConfig({
      listen: '127.0.0.1:0',
      home: dir,
      database,
      logLevel: process.env['AIRLOCK_TEST_LOG'] ?? 'silent',
    }),
    // Tests talk only to loopback, so their webhook receivers are opted in (the SSRF suite
    // overrides this to check the default refusal).
    webhookAllow: ['127.0.0.0/8', '::1/128'],
    ...overrides,
  });
  const url = await server.listen();
  return {
    server,
    url,
    home: dir,
    async stop() {
      await server.close();
      if (home === undefined) rmSync(dir, { recursive: true, force: true });
    },
  };
}
