// An offline agent loop over MCP. It starts a throwaway control plane (SQLite, temp home)
// with one local runner serving the bundled packs, connects the official MCP client to
// /mcp with an API key, and lets a scripted "model" (no network, no API key) call the
// tools the way an LLM would: discover actions, make a mistake, read the field error,
// correct itself, and answer from the run's output. Swap `scriptedModel` for a real model.
// Run: node examples/mcp-agent-loop/run.mjs   (after `npm run build`)
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { bundledPacksDir, defaultRunnerConfig, loadCatalog, startRunner } from '../../packages/runner/dist/index.js';
import {
  createServer,
  ensureLocalApiKey,
  ensureLocalRunnerToken,
  serverConfig,
  trustPackHashes,
} from '../../packages/server/dist/index.js';

const text = (result) => result.content.map((c) => c.text ?? '').join('\n');

/** The scripted model: looks at the conversation, returns the next tool call or an answer. */
function scriptedModel(messages) {
  const step = messages.filter((m) => m.role === 'assistant').length;
  const last = messages.at(-1);
  if (step === 0) return { role: 'assistant', tool: 'list_actions', args: { runner: 'local' } };
  if (step === 1) {
    // Like a real model, it first passes something the schema refuses (an option-like value)…
    return {
      role: 'assistant',
      tool: 'run_action',
      args: { runner: 'local', action: 'showcase.echo', args: { message: '-n hello' }, reason: 'agent demo: greet' },
    };
  }
  if (step === 2 && last.isError) {
    // …reads the field error from the tool result and corrects itself.
    return {
      role: 'assistant',
      tool: 'run_action',
      args: {
        runner: 'local',
        action: 'showcase.echo',
        args: { message: 'hello from an agent' },
        reason: 'agent demo: greet',
      },
    };
  }
  if (step === 3)
    return {
      role: 'assistant',
      tool: 'run_action',
      args: { runner: 'local', action: 'showcase.host_summary', args: {}, reason: 'agent demo: which host?' },
    };
  return {
    role: 'assistant',
    final: `Done. The host said: ${last.text.split('\n').find((l) => l.includes('Linux')) ?? last.text.slice(0, 120)}`,
  };
}

const home = mkdtempSync(join(tmpdir(), 'airlock-mcp-example-'));
const server = await createServer(serverConfig({ listen: '127.0.0.1:0', home, logLevel: 'warn' }));
const url = await server.listen();
const token = await ensureLocalRunnerToken(server, 'local', join(home, 'runner', 'token'));
const runner = startRunner({
  config: { ...defaultRunnerConfig(), name: 'local', logPath: join(home, 'runner', 'events.jsonl') },
  serverUrl: url,
  token,
});
try {
  while (!runner.client.connected) await new Promise((r) => setTimeout(r, 50));
  const hashes = new Set(loadCatalog([bundledPacksDir()]).packs.map((p) => p.pack.hash));
  for (let i = 0; i < 100 && (await trustPackHashes(server, hashes, 'example')).length === 0; i++)
    await new Promise((r) => setTimeout(r, 50));
  const apiKey = await ensureLocalApiKey(server, join(home, 'server', 'api-key'));

  const client = new Client({ name: 'scripted-agent', version: '1.0.0' });
  await client.connect(
    new StreamableHTTPClientTransport(new URL('/mcp', url), {
      requestInit: { headers: { authorization: `Bearer ${apiKey}` } },
    }),
  );
  const tools = (await client.listTools()).tools.map((t) => t.name);
  console.log(`connected to ${url}/mcp — tools: ${tools.join(', ')}`);

  const messages = [{ role: 'user', content: 'Say hello on the local host, then tell me which host it is.' }];
  for (let turn = 0; turn < 8; turn++) {
    const reply = scriptedModel(messages);
    messages.push(reply);
    if (reply.final !== undefined) {
      console.log(`\nmodel: ${reply.final}`);
      break;
    }
    console.log(`\nmodel → ${reply.tool} ${JSON.stringify(reply.args)}`);
    const result = await client.callTool({ name: reply.tool, arguments: reply.args });
    const out = text(result);
    console.log(`tool ${result.isError ? 'ERROR' : 'ok'}: ${out.length > 400 ? `${out.slice(0, 400)}…` : out}`);
    messages.push({ role: 'tool', isError: result.isError === true, text: out });
  }
  await client.close();
} finally {
  runner.stop();
  await server.close();
  rmSync(home, { recursive: true, force: true });
}
