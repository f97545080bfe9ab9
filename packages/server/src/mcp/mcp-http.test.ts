import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { addUser } from '../policy/testing/fixtures.js';
import { testDatabases } from '../testing/databases.js';
import { apiClient } from '../testing/keys.js';
import { type McpFixture, startMcpFixture, waitFor } from './test-support.js';

type ToolResult = {
  isError?: boolean;
  content: { type: string; text?: string }[];
  structuredContent?: Record<string, any>;
};

for (const { name, create } of testDatabases()) {
  describe(`MCP over Streamable HTTP with an API key (${name})`, () => {
    let t: Awaited<ReturnType<typeof create>>;
    let fx: McpFixture;
    let client: Client;
    let changed = 0;

    before(async () => {
      t = await create();
      fx = await startMcpFixture(t);
      client = new Client(
        { name: 'airlock-test', version: '1.0.0' },
        {
          versionNegotiation: { mode: 'auto' },
          listChanged: { tools: { onChanged: () => void changed++ } },
        },
      );
      await client.connect(
        new StreamableHTTPClientTransport(new URL('/mcp', fx.srv.url), {
          requestInit: { headers: { authorization: `Bearer ${fx.key}` } },
        }),
      );
    });
    after(async () => {
      await client?.close();
      await fx?.stop();
      await t?.drop();
    });

    test('lists the tools the key may use, with annotations', async () => {
      const { tools } = await client.listTools();
      const names = tools.map((x) => x.name).sort();
      assert.deepEqual(names, ['cancel_run', 'get_run', 'list_actions', 'list_runners', 'run_action']);
      const list = tools.find((x) => x.name === 'list_actions')!;
      assert.equal(list.annotations?.readOnlyHint, true);
      const run = tools.find((x) => x.name === 'run_action')!;
      assert.equal(run.annotations?.destructiveHint, true);
      assert.ok((run.inputSchema.required as string[]).includes('reason'));
    });

    test('an untrusted pack lists no runnable actions; trusting it sends tools/list_changed', async () => {
      const before = (await client.callTool({ name: 'list_actions', arguments: {} })) as ToolResult;
      assert.deepEqual(before.structuredContent?.['actions'], []);
      const all = (await client.callTool({
        name: 'list_actions',
        arguments: { include_untrusted: true },
      })) as ToolResult;
      assert.ok(all.structuredContent?.['actions'].some((a: any) => a.id === 'showcase.echo' && a.trusted === false));
      await new Promise((r) => setTimeout(r, 1500)); // let the surface watcher see the subscription
      const n = changed;
      await fx.trustShowcase();
      await waitFor(() => changed > n, 15_000);
      const after = (await client.callTool({ name: 'list_actions', arguments: { runner: 'web-1' } })) as ToolResult;
      const echo = after.structuredContent?.['actions'].find((a: any) => a.id === 'showcase.echo');
      assert.equal(echo.risk, 'read');
      assert.equal(echo.trusted, true);
      assert.deepEqual(echo.annotations, {
        readOnlyHint: true,
        destructiveHint: false,
        idempotentHint: false,
        openWorldHint: true,
      });
      assert.equal(echo.args_schema.properties.message.type, 'string');
      assert.deepEqual(echo.args_schema.required, ['message']);
    });

    test('run_action streams output as progress and returns the result', async () => {
      const progress: string[] = [];
      const res = (await client.callTool(
        {
          name: 'run_action',
          arguments: { runner: 'web-1', action: 'showcase.count', args: { n: 3, delay_ms: 50 }, reason: 'mcp test' },
        },
        { onprogress: (p) => void progress.push(String(p.message)) },
      )) as ToolResult;
      assert.notEqual(res.isError, true, JSON.stringify(res));
      const s = res.structuredContent!;
      assert.equal(s['status'], 'success');
      assert.equal(s['exit_code'], 0);
      assert.match(s['audit_hash'], /^sha256:/);
      assert.match(s['run_id'], /^[0-9a-f-]{36}$/);
      assert.equal(s['output'], '1 of 3\n2 of 3\n3 of 3');
      assert.ok(progress.includes('1 of 3') && progress.includes('3 of 3'), JSON.stringify(progress));
      const got = (await client.callTool({ name: 'get_run', arguments: { run_id: s['run_id'] } })) as ToolResult;
      assert.equal(got.structuredContent?.['status'], 'success');
    });

    test('a run that needs approval comes back pending with its id and URL, without blocking', async () => {
      const rule = await fx.api('POST', '/api/v1/policy/rules', {
        kind: 'override',
        action: 'showcase.whoami',
        decision: 'require_approval',
        approvers: 1,
        approver_role: 'admin',
        comment: 'mcp pending test',
      });
      assert.equal(rule.status, 201, JSON.stringify(rule.body));
      const started = Date.now();
      const res = (await client.callTool({
        name: 'run_action',
        arguments: { runner: 'web-1', action: 'showcase.whoami', args: {}, reason: 'needs approval', wait_seconds: 1 },
      })) as ToolResult;
      assert.ok(Date.now() - started < 30_000, 'bounded wait');
      assert.notEqual(res.isError, true, JSON.stringify(res));
      const s = res.structuredContent!;
      assert.equal(s['status'], 'pending_approval');
      assert.match(String(s['run_id']), /^[0-9a-f-]{36}$/);
      assert.match(JSON.stringify(res), /https?:\/\/[^"]+/);
      await fx.api('DELETE', `/api/v1/policy/rules/${rule.body.id}`);
    });

    test('a client that supports URL elicitation is sent to the approval page; the call resumes and finishes', async () => {
      const rule = await fx.api('POST', '/api/v1/policy/rules', {
        kind: 'override',
        action: 'showcase.date',
        decision: 'require_approval',
        approver_role: 'admin',
        comment: 'mcp elicitation test',
      });
      assert.equal(rule.status, 201, JSON.stringify(rule.body));
      const { db } = fx.srv.server.ctx;
      const approver = apiClient(
        fx.srv.url,
        (await addUser(db, fx.srv.server.bootstrap.orgId, 'mcp-approver', 'admin', ['runs:read', 'runs:write'])).key,
      );
      const asked: { mode?: string; url?: string; message?: string }[] = [];
      const eliciting = new Client(
        { name: 'eliciting', version: '1.0.0' },
        { versionNegotiation: { mode: 'auto' }, capabilities: { elicitation: { url: {} } } },
      );
      // The "person": opens the URL, and a second user approves the run it names.
      eliciting.setRequestHandler('elicitation/create', async (req) => {
        const p = req.params as { mode?: string; url?: string; message?: string };
        asked.push(p);
        const id = /\/runs\/([0-9a-f-]{36})/.exec(p.url ?? '')?.[1];
        assert.ok(id !== undefined, `the URL names the run: ${p.url}`);
        const ok = await approver('POST', `/api/v1/runs/${id}/approve`, { comment: 'seen in the dashboard' });
        assert.equal(ok.status, 200, JSON.stringify(ok.body));
        return { action: 'accept' };
      });
      await eliciting.connect(
        new StreamableHTTPClientTransport(new URL('/mcp', fx.srv.url), {
          requestInit: { headers: { authorization: `Bearer ${fx.key}` } },
        }),
      );
      try {
        const before = (await fx.api('GET', '/api/v1/runs?action=showcase.date')).body.runs.length;
        const res = (await eliciting.callTool({
          name: 'run_action',
          arguments: { runner: 'web-1', action: 'showcase.date', reason: 'elicitation', wait_seconds: 30 },
        })) as ToolResult;
        assert.equal(asked.length, 1, JSON.stringify(asked));
        assert.equal(asked[0]?.mode, 'url');
        assert.match(asked[0]?.message ?? '', /needs approval/);
        assert.equal(res.structuredContent?.['status'], 'success', JSON.stringify(res));
        const after = (await fx.api('GET', '/api/v1/runs?action=showcase.date')).body.runs.length;
        assert.equal(after, before + 1, 'the retried call followed the same run');
      } finally {
        await eliciting.close();
        await fx.api('DELETE', `/api/v1/policy/rules/${rule.body.id}`);
      }
    });

    test('secrets are redacted in the returned output', async () => {
      const res = (await client.callTool({
        name: 'run_action',
        arguments: { runner: 'web-1', action: 'showcase.fake_secret', reason: 'redaction' },
      })) as ToolResult;
      assert.equal(res.structuredContent?.['status'], 'success');
      assert.doesNotMatch(String(res.structuredContent?.['output']), /hunter2-airlock-demo|wJalrXUtnFEMI/);
    });

    test('errors come back as tool errors naming the field', async () => {
      const bad = (await client.callTool({
        name: 'run_action',
        arguments: { runner: 'web-1', action: 'showcase.echo', args: { message: '-rf' }, reason: 'bad args' },
      })) as ToolResult;
      assert.equal(bad.isError, true);
      assert.equal(bad.structuredContent?.['status'], 'validation_failed');
      assert.match(bad.content[0]!.text!, /args\.message/);
      const unknown = (await client.callTool({
        name: 'run_action',
        arguments: { runner: 'web-1', action: 'showcase.nope', reason: 'x' },
      })) as ToolResult;
      assert.equal(unknown.isError, true);
      assert.match(unknown.content[0]!.text!, /^bad_request: action:/);
      const noRunner = (await client.callTool({
        name: 'run_action',
        arguments: { runner: 'ghost', action: 'showcase.echo', args: { message: 'x' }, reason: 'x' },
      })) as ToolResult;
      assert.equal(noRunner.isError, true);
      assert.match(noRunner.content[0]!.text!, /runner/);
      const noRun = (await client.callTool({ name: 'get_run', arguments: { run_id: 'nope' } })) as ToolResult;
      assert.equal(noRun.isError, true);
      assert.match(noRun.content[0]!.text!, /run_id/);
    });

    test('cancel_run stops a running action', async () => {
      const started = (await client.callTool({
        name: 'run_action',
        arguments: {
          runner: 'web-1',
          action: 'showcase.sleep',
          args: { seconds: 60 },
          reason: 'to cancel',
          wait_seconds: 0,
        },
      })) as ToolResult;
      const id = started.structuredContent?.['run_id'];
      assert.equal(started.structuredContent?.['final'], false);
      await waitFor(async () => (await fx.api('GET', `/api/v1/runs/${id}`)).body.status === 'running');
      const c = (await client.callTool({
        name: 'cancel_run',
        arguments: { run_id: id, reason: 'enough' },
      })) as ToolResult;
      assert.notEqual(c.isError, true, JSON.stringify(c));
      const done = (await client.callTool({
        name: 'get_run',
        arguments: { run_id: id, wait_seconds: 15 },
      })) as ToolResult;
      assert.equal(done.structuredContent?.['status'], 'cancelled');
    });

    test('a 2025-era client (plain initialize) is served too, and per-action tools carry risk hints', async () => {
      const legacy = new Client({ name: 'legacy', version: '1.0.0' });
      await legacy.connect(
        new StreamableHTTPClientTransport(new URL('/mcp?tools=actions', fx.srv.url), {
          requestInit: { headers: { authorization: `Bearer ${fx.key}` } },
        }),
      );
      const { tools } = await legacy.listTools();
      const echo = tools.find((x) => x.name === 'web-1__showcase.echo');
      assert.ok(echo, tools.map((x) => x.name).join(','));
      assert.equal(echo.annotations?.readOnlyHint, true);
      const r = (await legacy.callTool({
        name: 'web-1__showcase.echo',
        arguments: { message: 'hi there', _reason: 'per-action tool' },
      })) as ToolResult;
      assert.equal(r.structuredContent?.['output'], 'hi there');
      await legacy.close();
    });

    test('a 2025-era client gets a session: tools/list_changed reaches it; another caller cannot use the session', async () => {
      let legacyChanged = 0;
      const legacy = new Client(
        { name: 'legacy-session', version: '1.0.0' },
        { listChanged: { tools: { onChanged: () => void legacyChanged++ } } },
      );
      const transport = new StreamableHTTPClientTransport(new URL('/mcp', fx.srv.url), {
        requestInit: { headers: { authorization: `Bearer ${fx.key}` } },
      });
      await legacy.connect(transport);
      try {
        const sid = transport.sessionId;
        assert.ok(sid !== undefined && sid !== '', 'the server opened a session');
        assert.ok((await legacy.listTools()).tools.some((x) => x.name === 'run_action'));
        // Someone else's key presenting the session id is answered as if it did not exist.
        const { db } = fx.srv.server.ctx;
        const other = await addUser(db, fx.srv.server.bootstrap.orgId, 'session-thief', 'admin', ['runs:read']);
        const stolen = await fetch(new URL('/mcp', fx.srv.url), {
          method: 'POST',
          headers: {
            authorization: `Bearer ${other.key}`,
            'mcp-session-id': sid,
            'mcp-protocol-version': '2025-11-25',
            'content-type': 'application/json',
            accept: 'application/json, text/event-stream',
          },
          body: JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'tools/list' }),
        });
        assert.equal(stolen.status, 404);
        // A change of the tool surface (a new runner) is pushed on the session's stream.
        await new Promise((r) => setTimeout(r, 1500)); // the GET stream opens after initialize
        const created = await fx.api('POST', '/api/v1/runners', { name: 'legacy-watch', labels: {} });
        assert.equal(created.status, 201);
        await waitFor(() => legacyChanged > 0, 15_000);
      } finally {
        await legacy.close();
      }
    });

    test('Origin validation and authentication on /mcp', async () => {
      const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' });
      const evil = await fetch(new URL('/mcp', fx.srv.url), {
        method: 'POST',
        headers: {
          authorization: `Bearer ${fx.key}`,
          origin: 'https://evil.example',
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
        },
        body,
      });
      assert.equal(evil.status, 403);
      const anon = await fetch(new URL('/mcp', fx.srv.url), {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
        body,
      });
      assert.equal(anon.status, 401);
      assert.match(
        anon.headers.get('www-authenticate') ?? '',
        /resource_metadata="http:\/\/127\.0\.0\.1:\d+\/\.well-known\/oauth-protected-resource\/mcp"/,
      );
      const badKey = await fetch(new URL('/mcp', fx.srv.url), {
        method: 'POST',
        headers: {
          authorization: 'Bearer alk_0000000000_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx',
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
        },
        body,
      });
      assert.equal(badKey.status, 401);
    });
  });
}
