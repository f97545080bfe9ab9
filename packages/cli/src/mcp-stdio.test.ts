// `airlock mcp`: the stdio bridge, driven by the MCP SDK's real client spawning the CLI,
// against a real control plane with an in-process runner serving the showcase pack.
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { defaultRunnerConfig, type RunningRunner, redeemBootstrapKey, startRunner } from '@airlock/runner';
import {
  apiClient,
  mintTestKey,
  ownerId,
  startTestServer,
  type TestServer,
  testDatabases,
} from '@airlock/server/testing';
import { Client } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { repoRoot, until } from './testing/processes.js';

const bin = join(repoRoot, 'packages', 'cli', 'bin', 'airlock.js');
type ToolResult = {
  isError?: boolean;
  content: { type: string; text?: string }[];
  structuredContent?: Record<string, any>;
};

const db = testDatabases()[0]!; // the bridge holds no state; the server's database contract is covered in packages/server
describe('airlock mcp (stdio bridge)', () => {
  let t: Awaited<ReturnType<typeof db.create>>;
  let srv: TestServer;
  let runner: RunningRunner;
  let home: string;
  let key: string;
  let client: Client;
  let changed = 0;

  before(async () => {
    t = await db.create();
    srv = await startTestServer(t.url);
    const d = srv.server.ctx.db;
    const org = srv.server.bootstrap.orgId;
    key = await mintTestKey(d, org, await ownerId(d, org), [
      'runs:read',
      'runs:write',
      'runners:read',
      'runners:write',
      'packs:read',
      'packs:trust',
    ]);
    const api = apiClient(srv.url, key);
    home = mkdtempSync(join(tmpdir(), 'airlock-mcp-cli-'));
    const created = await api('POST', '/api/v1/runners', { name: 'web-1', labels: {} });
    const reg = await redeemBootstrapKey(srv.url, created.body.bootstrap_key);
    runner = startRunner({
      config: {
        ...defaultRunnerConfig({}),
        name: 'web-1',
        packDirs: [join(repoRoot, 'packs', 'showcase')],
        logPath: join(home, 'events.jsonl'),
      },
      serverUrl: srv.url,
      token: reg.token,
      backoff: { minMs: 50, maxMs: 500 },
    });
    await until(async () => ((await api('GET', '/api/v1/packs')).body.packs ?? []).length === 1, 15_000);
    client = new Client(
      { name: 'stdio-test', version: '1.0.0' },
      { listChanged: { tools: { onChanged: () => void changed++ } } },
    );
    await client.connect(
      new StdioClientTransport({
        command: process.execPath,
        args: [bin, 'mcp'],
        env: {
          PATH: process.env['PATH'] ?? '',
          AIRLOCK_SERVER: srv.url,
          AIRLOCK_API_KEY: key,
          AIRLOCK_MCP_POLL_MS: '300',
          AIRLOCK_HOME: home,
        },
        stderr: 'pipe',
      }),
    );
    // Trust after connecting: the bridge announces the change.
    const n = changed;
    const pack = (await api('GET', '/api/v1/packs')).body.packs[0];
    await api('POST', `/api/v1/packs/${pack.id}/trust`, { comment: 'test' });
    await until(() => changed > n, 10_000);
  });
  after(async () => {
    await client?.close();
    runner?.stop();
    await srv?.stop();
    await t?.drop();
    rmSync(home, { recursive: true, force: true });
  });

  test('lists the tools and the trusted actions with their schemas', async () => {
    const { tools } = await client.listTools();
    assert.deepEqual(tools.map((x) => x.name).sort(), [
      'cancel_run',
      'get_run',
      'list_actions',
      'list_runners',
      'run_action',
    ]);
    const r = (await client.callTool({ name: 'list_actions', arguments: {} })) as ToolResult;
    const echo = r.structuredContent?.['actions'].find((a: any) => a.id === 'showcase.echo');
    assert.equal(echo.risk, 'read');
    assert.equal(echo.args_schema.properties.message.maxLength, 200);
  });

  test('run_action streams progress and returns the result; errors name the field', async () => {
    const progress: string[] = [];
    const res = (await client.callTool(
      {
        name: 'run_action',
        arguments: { runner: 'web-1', action: 'showcase.count', args: { n: 2, delay_ms: 50 }, reason: 'stdio test' },
      },
      { onprogress: (p) => void progress.push(String(p.message)) },
    )) as ToolResult;
    assert.equal(res.structuredContent?.['status'], 'success', JSON.stringify(res));
    assert.equal(res.structuredContent?.['output'], '1 of 2\n2 of 2');
    assert.match(res.structuredContent?.['audit_hash'], /^sha256:/);
    assert.ok(progress.includes('2 of 2'), JSON.stringify(progress));
    const bad = (await client.callTool({
      name: 'run_action',
      arguments: { runner: 'web-1', action: 'showcase.echo', args: {}, reason: 'missing arg' },
    })) as ToolResult;
    assert.equal(bad.isError, true);
    assert.match(bad.content[0]!.text!, /args\.message/);
  });

  test('a bad key fails fast with a message on stderr', async () => {
    // Asynchronous: the control plane answering the bridge runs in this process.
    const r = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = execFile(
        process.execPath,
        [bin, 'mcp'],
        {
          env: {
            PATH: process.env['PATH'] ?? '',
            AIRLOCK_SERVER: srv.url,
            AIRLOCK_API_KEY: 'alk_0000000000_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx',
          },
          timeout: 20_000,
        },
        (err, stdout, stderr) =>
          resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr }),
      );
      child.stdin?.end();
    });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /invalid API key/);
    assert.equal(r.stdout, '');
  });

  test('mcp config prints ready-to-paste configs', () => {
    for (const [client, rootKey] of [
      ['claude', 'mcpServers'],
      ['cursor', 'mcpServers'],
      ['vscode', 'servers'],
    ] as const) {
      const r = spawnSync(
        process.execPath,
        [bin, 'mcp', 'config', '--client', client, '--server', 'http://airlock.example:7700'],
        { encoding: 'utf8', env: { PATH: process.env['PATH'] ?? '' } },
      );
      assert.equal(r.status, 0, r.stderr);
      const cfg = JSON.parse(r.stdout);
      assert.equal(cfg[rootKey].airlock.command, 'airlock');
      assert.deepEqual(cfg[rootKey].airlock.args, ['mcp']);
      assert.equal(cfg[rootKey].airlock.env.AIRLOCK_SERVER, 'http://airlock.example:7700');
    }
    const http = spawnSync(
      process.execPath,
      [bin, 'mcp', 'config', '--client', 'vscode', '--http', '--server', 'https://a.example'],
      { encoding: 'utf8' },
    );
    assert.deepEqual(JSON.parse(http.stdout), { servers: { airlock: { type: 'http', url: 'https://a.example/mcp' } } });
  });
});
