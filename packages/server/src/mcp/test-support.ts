// Test support for the MCP tests: a control plane with one in-process runner serving the
// bundled showcase pack (pending trust until `trustShowcase`).

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defaultRunnerConfig, type RunningRunner, redeemBootstrapKey, startRunner } from '@airlock/runner';
import type { TestDb } from '../testing/databases.js';
import { apiClient, mintTestKey, ownerId } from '../testing/keys.js';
import { startTestServer, type TestServer } from '../testing/server.js';

export const repoRoot = resolve(fileURLToPath(import.meta.url), '../../../../..');

export const ALL_SCOPES = [
  'runs:read',
  'runs:write',
  'runners:read',
  'runners:write',
  'packs:read',
  'packs:trust',
  'audit:read',
  'users:read',
  'users:write',
  'keys:write',
];

export async function waitFor(fn: () => Promise<boolean> | boolean, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail('condition not met in time');
}

export interface McpFixture {
  readonly srv: TestServer;
  readonly key: string;
  readonly api: ReturnType<typeof apiClient>;
  readonly runner: RunningRunner;
  trustShowcase(): Promise<void>;
  stop(): Promise<void>;
}

/** Server + runner `web-1` with packs/showcase; the pack is left pending. */
export async function startMcpFixture(t: TestDb): Promise<McpFixture> {
  const srv = await startTestServer(t.url);
  const db = srv.server.ctx.db;
  const orgId = srv.server.bootstrap.orgId;
  const key = await mintTestKey(db, orgId, await ownerId(db, orgId), ALL_SCOPES);
  const api = apiClient(srv.url, key);
  const runnerHome = mkdtempSync(join(tmpdir(), 'airlock-mcp-rh-'));
  const created = await api('POST', '/api/v1/runners', { name: 'web-1', labels: {} });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const reg = await redeemBootstrapKey(srv.url, created.body.bootstrap_key);
  const config = {
    ...defaultRunnerConfig({}),
    name: 'web-1',
    packDirs: [join(repoRoot, 'packs', 'showcase')],
    logPath: join(runnerHome, 'events.jsonl'),
  };
  const runner = startRunner({ config, serverUrl: srv.url, token: reg.token, backoff: { minMs: 50, maxMs: 500 } });
  await waitFor(async () => (await api('GET', `/api/v1/runners/${reg.runnerId}`)).body.online === true);
  await waitFor(async () => ((await api('GET', '/api/v1/packs')).body.packs ?? []).length === 1);
  return {
    srv,
    key,
    api,
    runner,
    async trustShowcase() {
      const pack = (await api('GET', '/api/v1/packs')).body.packs[0];
      const r = await api('POST', `/api/v1/packs/${pack.id}/trust`, { comment: 'test' });
      assert.equal(r.status, 200, JSON.stringify(r.body));
    },
    async stop() {
      runner.stop();
      await srv.stop();
      rmSync(runnerHome, { recursive: true, force: true });
    },
  };
}
