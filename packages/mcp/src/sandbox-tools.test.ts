// The sandbox tools over a real MCP client and server (the SDK's in-memory transport pair),
// with a scripted SandboxApi behind them: what the tool schema accepts and what it passes on.
// The control plane behind the real tools is exercised end to end in
// packages/cli/src/sandbox-control-plane.test.ts.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Client, InMemoryTransport } from '@modelcontextprotocol/client';
import { McpServer } from '@modelcontextprotocol/server';
import type { SandboxApi, SandboxInfo } from './backend.js';
import { registerSandboxTools } from './sandbox-tools.js';

type CreateReq = Parameters<SandboxApi['create']>[0];

const INFO: SandboxInfo = {
  id: 'sbx_1',
  state: 'running',
  language_pack: 'python',
  image_hash: `sha256:${'a'.repeat(64)}`,
  host: { id: 'h', name: 'host-1' },
  limits: { memory_mb: 192, vcpus: 1, lifetime_s: 600 },
  created_at: '2026-12-06T00:00:00.000Z',
  expires_at: '2026-12-06T00:10:00.000Z',
  end_reason: null,
  exec_count: 0,
  cpu_seconds: 0,
};

describe('sandbox MCP tools', () => {
  const asked: CreateReq[] = [];
  let client: Client;
  let server: McpServer;

  before(async () => {
    const api: SandboxApi = {
      available: async () => true,
      create: async (req) => {
        asked.push(req);
        return INFO;
      },
      list: async () => [INFO],
      exec: async () => {
        throw new Error('not used');
      },
      writeFile: async () => ({ path: '/x', size: 0 }),
      readFile: async () => ({ path: '/x', size: 0, content_b64: '', text: '' }),
      destroy: async () => INFO,
    };
    server = new McpServer({ name: 't', version: '1' }, { capabilities: { tools: {} } });
    registerSandboxTools(
      server,
      api,
      () => true,
      (err) => ({ isError: true, content: [{ type: 'text', text: String(err) }] }),
      60,
    );
    const [a, b] = InMemoryTransport.createLinkedPair();
    await server.connect(a);
    client = new Client({ name: 'agent', version: '1' });
    await client.connect(b);
  });
  after(async () => {
    await client?.close();
    await server?.close();
  });

  test('sandbox_create documents egress and says secrets never enter the guest', async () => {
    const tool = (await client.listTools()).tools.find((t) => t.name === 'sandbox_create');
    assert.ok(tool);
    assert.match(tool.description ?? '', /Secrets in `egress\.secrets` never enter the guest/);
    const props = (tool.inputSchema as { properties: Record<string, { properties?: Record<string, unknown> }> })
      .properties;
    assert.deepEqual(Object.keys(props['egress']?.properties ?? {}).sort(), ['allow', 'secrets']);
  });

  test('sandbox_create passes egress (allow and secrets) on unchanged; none when not asked', async () => {
    const egress = {
      allow: ['api.example.com:443'],
      secrets: [{ name: 'API_TOKEN', value: 'sk-x', hosts: ['api.example.com'] }],
    };
    const r = await client.callTool({ name: 'sandbox_create', arguments: { language_pack: 'python', egress } });
    assert.notEqual(r.isError, true, JSON.stringify(r));
    assert.deepEqual(asked.at(-1), { language_pack: 'python', egress });
    await client.callTool({ name: 'sandbox_create', arguments: {} });
    assert.deepEqual(asked.at(-1), { language_pack: 'python' });
  });

  test('malformed egress is refused by the tool schema before the API is called', async () => {
    const before = asked.length;
    for (const egress of [
      true,
      { allow: [] },
      { allow: ['a:1'], all: true },
      { allow: ['a:1'], secrets: [{ name: 'x y', value: 'v', hosts: ['a'] }] },
    ]) {
      const r = await client.callTool({ name: 'sandbox_create', arguments: { egress } }).catch((e: Error) => ({
        isError: true,
        content: [{ type: 'text', text: e.message }],
      }));
      assert.equal(r.isError, true, JSON.stringify(egress));
    }
    assert.equal(asked.length, before);
  });
});
