// Sandboxes under the control plane, end to end with real parts: a control plane (SQLite and
// PostgreSQL), sandbox hosts booting real QEMU guests (TCG, 192 MiB) that dial out over the
// runner WebSocket, and the official MCP SDK client with agent API keys. The egress case (SQLite
// only, one guest) has a real far end: servers in a network namespace (egress-far fixture).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { redeemBootstrapKey } from '@airlock/runner';
import { type EgressDaemonOptions, SandboxHostClient, SandboxManager } from '@airlock/sandbox';
import {
  apiClient,
  mintTestKey,
  ownerId,
  startTestServer,
  type TestServer,
  testDatabases,
} from '@airlock/server/testing';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
// The far-end fixture is test support of the sandbox package, not part of its public surface.
import { FAR_PORTS, startFarEnd, startTestDns } from '../../sandbox/dist/testing/egress-far.js';

type ToolResult = {
  isError?: boolean;
  content: { type: string; text?: string }[];
  structuredContent?: Record<string, any>;
};

const imageDir = process.env['AIRLOCK_IMAGE_CACHE'] ?? '/var/cache/airlock-images';
/** Boots under TCG on a loaded 2-core machine can take longer than the SDK's 60 s default. */
const SLOW = { timeout: 300_000 };
const bin = join(import.meta.dirname, '..', 'bin', 'airlock.js');

async function until(fn: () => Promise<boolean> | boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A sandbox host in this process: a real daemon manager plus its outbound control-plane client. */
interface Host {
  readonly manager: SandboxManager;
  readonly client: SandboxHostClient;
  readonly id: string;
  close(): Promise<void>;
}

async function startHost(
  srv: TestServer,
  api: ReturnType<typeof apiClient>,
  name: string,
  maxSandboxes: number,
  egress?: EgressDaemonOptions,
): Promise<Host> {
  const created = await api('POST', '/api/v1/runners', { name, labels: { kind: 'sandbox' } });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const reg = await redeemBootstrapKey(srv.url, created.body.bootstrap_key);
  const stateDir = mkdtempSync(join(tmpdir(), 'alsh-'));
  const manager = await SandboxManager.open({
    imageDir,
    stateDir,
    accel: 'tcg',
    defaultMemoryMb: 192,
    maxSandboxes,
    buildImages: true,
    // Behaviour, not speed: other work on this 2-core TCG machine can slow a boot past 60 s.
    bootTimeoutMs: 180_000,
    ...(egress === undefined ? {} : { egress }),
  });
  const client = new SandboxHostClient({
    serverUrl: srv.url,
    token: reg.token,
    name,
    labels: { kind: 'sandbox' },
    manager,
    backoff: { minMs: 50, maxMs: 500 },
  });
  client.start();
  await until(
    async () => ((await api('GET', '/api/v1/sandboxes/hosts')).body.hosts ?? []).some((h: any) => h.name === name),
    20_000,
    `host ${name} to connect`,
  );
  return {
    manager,
    client,
    id: reg.runnerId,
    async close() {
      client.stop();
      await manager.close();
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
}

/** QEMU processes whose command line mentions `needle` (a host's private AIRLOCK_HOME). */
function vmPidsUnder(needle: string): number[] {
  const pids: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8');
      if (cmd.includes('qemu-system') && cmd.includes(needle)) pids.push(Number(p));
    } catch {
      // the process ended while we looked
    }
  }
  return pids;
}

/**
 * A sandbox host as its own process (`airlock sandbox serve --server`), so the test can kill
 * it with SIGKILL the way a host dies: no goodbye frame, the socket just goes away.
 */
async function startHostProcess(
  srv: TestServer,
  api: ReturnType<typeof apiClient>,
  name: string,
  maxSandboxes: number,
): Promise<{ kill(): void; close(): Promise<void> }> {
  const created = await api('POST', '/api/v1/runners', { name, labels: { kind: 'sandbox' } });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const home = mkdtempSync(join(tmpdir(), 'alshp-'));
  const args = [bin, 'sandbox', 'serve', '--listen', '127.0.0.1:0', '--accel', 'tcg'];
  args.push('--max-sandboxes', String(maxSandboxes), '--boot-timeout', '180000', '--server', srv.url);
  args.push('--bootstrap-key', created.body.bootstrap_key, '--name', name, '--label', 'kind=sandbox');
  const child = spawn(process.execPath, args, {
    env: { ...process.env, AIRLOCK_HOME: home, AIRLOCK_IMAGE_CACHE: imageDir },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  try {
    await until(
      async () => ((await api('GET', '/api/v1/sandboxes/hosts')).body.hosts ?? []).some((h: any) => h.name === name),
      120_000,
      `host process ${name} to connect`,
    );
  } catch (e) {
    child.kill('SIGKILL');
    throw new Error(`${String(e)}\n--- ${name} stderr ---\n${stderr}`);
  }
  const killVms = () => {
    for (const pid of vmPidsUnder(home)) process.kill(pid, 'SIGKILL');
  };
  return {
    kill() {
      child.kill('SIGKILL');
    },
    async close() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await new Promise((r) => child.once('exit', r));
      }
      killVms(); // VMs outlive a killed daemon by design (the next daemon re-adopts them)
      rmSync(home, { recursive: true, force: true });
    },
  };
}

async function trustImage(api: ReturnType<typeof apiClient>, pack: string): Promise<void> {
  await until(
    async () =>
      ((await api('GET', '/api/v1/packs')).body.packs ?? []).some((p: any) => p.name === `sandbox-image:${pack}`),
    10_000,
    `the ${pack} image to be recorded`,
  );
  for (const p of (await api('GET', '/api/v1/packs')).body.packs.filter(
    (x: any) => x.name === `sandbox-image:${pack}`,
  )) {
    const r = await api('POST', `/api/v1/packs/${p.id}/trust`, { comment: 'reviewed image hash' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
  }
}

async function mcpClient(srv: TestServer, key: string): Promise<Client> {
  const client = new Client({ name: 'agent', version: '1.0.0' }, { versionNegotiation: { mode: 'auto' } });
  await client.connect(
    new StreamableHTTPClientTransport(new URL('/mcp', srv.url), {
      requestInit: { headers: { authorization: `Bearer ${key}` } },
    }),
  );
  return client;
}

async function userKey(srv: TestServer, admin: ReturnType<typeof apiClient>, username: string): Promise<string> {
  const r = await admin('POST', '/api/v1/users', {
    username,
    role: 'operator',
    password: 'correct horse battery staple 1',
  });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return mintTestKey(srv.server.ctx.db, srv.server.bootstrap.orgId, r.body.user.id, [
    'runs:read',
    'runs:write',
    'runners:read',
  ]);
}

for (const { name, create } of testDatabases()) {
  describe(`sandboxes through the control plane and MCP (${name})`, () => {
    let t: Awaited<ReturnType<typeof create>>;
    let srv: TestServer;
    let admin: ReturnType<typeof apiClient>;
    let host: Host;
    let alice: Client;
    let bob: Client;
    let aliceKey: string;

    before(async () => {
      t = await create();
      srv = await startTestServer(t.url);
      const db = srv.server.ctx.db;
      const orgId = srv.server.bootstrap.orgId;
      admin = apiClient(
        srv.url,
        await mintTestKey(db, orgId, await ownerId(db, orgId), [
          'runs:read',
          'runs:write',
          'runners:read',
          'runners:write',
          'packs:read',
          'packs:trust',
          'audit:read',
          'users:read',
          'users:write',
        ]),
      );
      host = await startHost(srv, admin, 'sbx-host-1', 4);
      aliceKey = await userKey(srv, admin, 'alice');
      alice = await mcpClient(srv, aliceKey);
      bob = await mcpClient(srv, await userKey(srv, admin, 'bob'));
    });
    after(async () => {
      await alice?.close();
      await bob?.close();
      await host?.close();
      await srv?.stop();
      await t?.drop();
    });

    test('an agent creates a python sandbox, runs code, reads its file, destroys it; audit, visibility and quota hold', async () => {
      const { tools } = await alice.listTools();
      const names = tools.map((x) => x.name);
      for (const n of [
        'sandbox_create',
        'sandbox_exec',
        'sandbox_write_file',
        'sandbox_read_file',
        'sandbox_destroy',
        'sandbox_list',
      ])
        assert.ok(names.includes(n), `${n} in ${names.join(', ')}`);

      // Trust-on-hash applies to images: an untrusted image blocks the create.
      const untrusted = (await alice.callTool(
        {
          name: 'sandbox_create',
          arguments: { language_pack: 'python' },
        },
        SLOW,
      )) as ToolResult;
      assert.equal(untrusted.isError, true);
      assert.equal(untrusted.structuredContent?.['error']?.code, 'image_untrusted', JSON.stringify(untrusted));
      await trustImage(admin, 'python');

      // A quota of one live sandbox per user.
      const policy = (await admin('GET', '/api/v1/policy/sandboxes')).body;
      const set = await admin('PUT', '/api/v1/policy/sandboxes', {
        ...policy,
        quotas: { ...policy.quotas, user: { concurrent: 1, cpu_seconds_per_day: 3600 } },
      });
      assert.equal(set.status, 200, JSON.stringify(set.body));

      const created = (await alice.callTool(
        {
          name: 'sandbox_create',
          arguments: { language_pack: 'python', memory_mb: 192, lifetime_s: 600 },
        },
        SLOW,
      )) as ToolResult;
      assert.notEqual(created.isError, true, JSON.stringify(created));
      const sb = created.structuredContent!['sandbox'];
      assert.match(sb.id, /^sbx_/);
      assert.equal(sb.state, 'running');
      assert.equal(sb.host.name, 'sbx-host-1');

      const progress: string[] = [];
      const ran = (await alice.callTool(
        {
          name: 'sandbox_exec',
          arguments: {
            sandbox_id: sb.id,
            code: "print(6*7)\nopen('/root/out.txt', 'w').write('written in the guest')\nprint('token ghp_' + 'a'*36)",
          },
        },
        { ...SLOW, onprogress: (p) => void progress.push(String(p.message)) },
      )) as ToolResult;
      assert.notEqual(ran.isError, true, JSON.stringify(ran));
      assert.equal(ran.structuredContent!['exit_code'], 0);
      assert.match(ran.structuredContent!['stdout'], /^42\n/);
      // Output is redacted on the host before it leaves it.
      assert.ok(!ran.structuredContent!['stdout'].includes('a'.repeat(36)), ran.structuredContent!['stdout']);
      assert.ok(
        progress.some((m) => m.includes('42')),
        JSON.stringify(progress),
      );

      const read = (await alice.callTool({
        name: 'sandbox_read_file',
        arguments: { sandbox_id: sb.id, path: '/root/out.txt' },
      })) as ToolResult;
      assert.notEqual(read.isError, true, JSON.stringify(read));
      assert.equal(read.structuredContent!['text'], 'written in the guest');

      const wrote = (await alice.callTool({
        name: 'sandbox_write_file',
        arguments: { sandbox_id: sb.id, path: '/root/in.txt', content: 'from the agent' },
      })) as ToolResult;
      assert.notEqual(wrote.isError, true, JSON.stringify(wrote));

      // Another user's key neither sees nor uses it.
      const bobList = (await bob.callTool({ name: 'sandbox_list', arguments: {} })) as ToolResult;
      assert.deepEqual(bobList.structuredContent!['sandboxes'], []);
      const bobExec = (await bob.callTool({
        name: 'sandbox_exec',
        arguments: { sandbox_id: sb.id, code: 'print(1)' },
      })) as ToolResult;
      assert.equal(bobExec.isError, true);
      assert.equal(bobExec.structuredContent?.['error']?.code, 'not_found');
      const bobRead = (await bob.callTool({
        name: 'sandbox_read_file',
        arguments: { sandbox_id: sb.id, path: '/root/out.txt' },
      })) as ToolResult;
      assert.equal(bobRead.structuredContent?.['error']?.code, 'not_found');
      const bobDestroy = (await bob.callTool({
        name: 'sandbox_destroy',
        arguments: { sandbox_id: sb.id },
      })) as ToolResult;
      assert.equal(bobDestroy.structuredContent?.['error']?.code, 'not_found');
      // Admins of the organisation see it.
      assert.ok((await admin('GET', '/api/v1/sandboxes')).body.sandboxes.some((s: any) => s.id === sb.id));

      // The quota blocks the next create with a clear message.
      const second = (await alice.callTool(
        {
          name: 'sandbox_create',
          arguments: { language_pack: 'python' },
        },
        SLOW,
      )) as ToolResult;
      assert.equal(second.isError, true);
      assert.equal(second.structuredContent?.['error']?.code, 'quota_exceeded');
      assert.match(second.content[0]!.text!, /quota reached: user alice has 1 of 1 concurrent sandboxes/);

      const gone = (await alice.callTool({ name: 'sandbox_destroy', arguments: { sandbox_id: sb.id } })) as ToolResult;
      assert.notEqual(gone.isError, true, JSON.stringify(gone));
      assert.equal(gone.structuredContent!['sandbox'].state, 'destroyed');
      assert.equal(host.manager.list().length, 0);

      // The audit log shows every step, chained.
      const audit = await admin('GET', '/api/v1/audit/events?limit=200&kind=sandbox.');
      assert.equal(audit.status, 200, JSON.stringify(audit.body));
      const events = audit.body.events as any[];
      const kinds = events.map((e) => e.kind);
      for (const k of [
        'sandbox.denied',
        'sandbox.created',
        'sandbox.exec',
        'sandbox.file_read',
        'sandbox.file_written',
        'sandbox.destroyed',
      ])
        assert.ok(kinds.includes(k), `${k} in ${kinds.join(', ')}`);
      const exec = events.find((e) => e.kind === 'sandbox.exec' && e.status === 'success');
      assert.ok(exec, 'a successful exec event');
      const body = exec;
      assert.match(body.args_digest, /^sha256:[0-9a-f]{64}$/);
      assert.match(body.args.code, /print\(6\*7\)/);
      assert.equal(body.exit_code, 0);
      assert.ok(!JSON.stringify(body).includes('a'.repeat(36)));
      const verify = await admin('GET', '/api/v1/audit/verify');
      assert.equal(verify.status, 200, JSON.stringify(verify.body));
      assert.equal(verify.body.ok, true, JSON.stringify(verify.body));
    });

    test('the stdio bridge (airlock mcp) offers the same sandbox tools', async () => {
      const home = mkdtempSync(join(tmpdir(), 'alsh-mcp-'));
      const stdio = new Client({ name: 'agent-stdio', version: '1.0.0' }, { versionNegotiation: { mode: 'auto' } });
      await stdio.connect(
        new StdioClientTransport({
          command: process.execPath,
          args: [bin, 'mcp'],
          env: {
            PATH: process.env['PATH'] ?? '',
            AIRLOCK_SERVER: srv.url,
            AIRLOCK_API_KEY: aliceKey,
            AIRLOCK_HOME: home,
          },
          stderr: 'pipe',
        }),
      );
      try {
        const names = (await stdio.listTools()).tools.map((x) => x.name);
        assert.ok(names.includes('sandbox_exec') && names.includes('sandbox_list'), names.join(', '));
        const created = (await stdio.callTool(
          {
            name: 'sandbox_create',
            arguments: { language_pack: 'python', memory_mb: 192 },
          },
          SLOW,
        )) as ToolResult;
        assert.notEqual(created.isError, true, JSON.stringify(created));
        const id = created.structuredContent!['sandbox'].id as string;
        const progress: string[] = [];
        const ran = (await stdio.callTool(
          {
            name: 'sandbox_exec',
            arguments: { sandbox_id: id, code: 'import sys\nprint("out")\nprint("err", file=sys.stderr)\nsys.exit(3)' },
          },
          { ...SLOW, onprogress: (p) => void progress.push(String(p.message)) },
        )) as ToolResult;
        assert.equal(ran.structuredContent!['exit_code'], 3, JSON.stringify(ran));
        assert.equal(ran.structuredContent!['stdout'], 'out\n');
        assert.equal(ran.structuredContent!['stderr'], 'err\n');
        assert.ok(
          progress.some((m) => m.includes('out')),
          JSON.stringify(progress),
        );
        const listed = (await stdio.callTool({ name: 'sandbox_list', arguments: {} })) as ToolResult;
        assert.ok(listed.structuredContent!['sandboxes'].some((x: { id: string }) => x.id === id));
        const gone = (await stdio.callTool({ name: 'sandbox_destroy', arguments: { sandbox_id: id } })) as ToolResult;
        assert.equal(gone.structuredContent!['sandbox'].state, 'destroyed');
      } finally {
        await stdio.close();
        rmSync(home, { recursive: true, force: true });
      }
    });
  });

  describe(`two sandbox hosts (${name})`, () => {
    let t: Awaited<ReturnType<typeof create>>;
    let srv: TestServer;
    let api: ReturnType<typeof apiClient>;
    let a: Awaited<ReturnType<typeof startHostProcess>>;
    let b: Host;

    before(async () => {
      t = await create();
      srv = await startTestServer(t.url);
      const db = srv.server.ctx.db;
      const orgId = srv.server.bootstrap.orgId;
      api = apiClient(
        srv.url,
        await mintTestKey(db, orgId, await ownerId(db, orgId), [
          'runs:read',
          'runs:write',
          'runners:read',
          'runners:write',
          'packs:read',
          'packs:trust',
        ]),
      );
      a = await startHostProcess(srv, api, 'host-a', 2);
      b = await startHost(srv, api, 'host-b', 2);
      await trustImage(api, 'shell');
    });
    after(async () => {
      await a?.close();
      await b?.close();
      await srv?.stop();
      await t?.drop();
    });

    test('creates spread by capacity; a killed host loses its sandboxes and new creates go to the other', async () => {
      const first = await api('POST', '/api/v1/sandboxes', { language_pack: 'shell', memory_mb: 192 });
      assert.equal(first.status, 201, JSON.stringify(first.body));
      const second = await api('POST', '/api/v1/sandboxes', { language_pack: 'shell', memory_mb: 192 });
      assert.equal(second.status, 201, JSON.stringify(second.body));
      assert.deepEqual([first.body.host.name, second.body.host.name].sort(), ['host-a', 'host-b']);

      const onA = first.body.host.name === 'host-a' ? first.body : second.body;
      const onB = first.body.host.name === 'host-b' ? first.body : second.body;
      const ran = await api('POST', `/api/v1/sandboxes/${onB.id}/exec`, { code: 'echo on-b' });
      assert.equal(ran.status, 200, JSON.stringify(ran.body));
      assert.equal(ran.body.stdout, 'on-b\n');

      // Host A's process is killed: no goodbye, its socket just goes away.
      a.kill();
      await until(async () => (await api('GET', `/api/v1/sandboxes/${onA.id}`)).body.state === 'lost', 15_000, 'lost');
      const refused = await api('POST', `/api/v1/sandboxes/${onA.id}/exec`, { code: 'echo x' });
      assert.equal(refused.status, 409);
      assert.match(refused.body.error.message, /lost/);
      assert.equal((await api('GET', `/api/v1/sandboxes/${onB.id}`)).body.state, 'running');

      const third = await api('POST', '/api/v1/sandboxes', { language_pack: 'shell', memory_mb: 192 });
      assert.equal(third.status, 201, JSON.stringify(third.body));
      assert.equal(third.body.host.name, 'host-b');

      for (const id of [onB.id, third.body.id])
        assert.equal((await api('DELETE', `/api/v1/sandboxes/${id}`)).status, 200);
      assert.equal(b.manager.list().length, 0);
    });
  });

  describe(`sandbox egress through the control plane (${name})`, {
    skip: process.getuid?.() !== 0 && 'needs root (network namespace for the far end)',
  }, () => {
    const SECRET = 'sk-cp-e2e-5b1f0c9d7a3e4f6b8c2d';
    let t: Awaited<ReturnType<typeof create>>;
    let srv: TestServer;
    let adminKey: string;
    let admin: ReturnType<typeof apiClient>;
    let host: Host;
    let agent: Client;
    let far: Awaited<ReturnType<typeof startFarEnd>>;
    let dns: Awaited<ReturnType<typeof startTestDns>>;

    before(async () => {
      far = await startFarEnd();
      dns = await startTestDns({ 'bound.test': [far.address], 'ok.test': [far.address] });
      t = await create();
      srv = await startTestServer(t.url);
      const db = srv.server.ctx.db;
      const orgId = srv.server.bootstrap.orgId;
      adminKey = await mintTestKey(db, orgId, await ownerId(db, orgId), [
        'runs:read',
        'runs:write',
        'runners:read',
        'runners:write',
        'packs:read',
        'packs:trust',
        'audit:read',
        'users:read',
        'users:write',
      ]);
      admin = apiClient(srv.url, adminKey);
      host = await startHost(srv, admin, 'egress-host', 2, {
        dnsServers: [dns.server],
        upstreamCaCerts: [far.caPem],
      });
      await trustImage(admin, 'python');
      agent = await mcpClient(srv, await userKey(srv, admin, 'agent-owner'));
    });
    after(async () => {
      await agent?.close();
      await host?.close();
      await srv?.stop();
      await t?.drop();
      await dns?.close();
      await far?.close();
    });

    test('an agent gets egress to the allowed far end with a secret it never sees; every attempt is audited', async () => {
      const hosts = (await admin('GET', '/api/v1/sandboxes/hosts')).body.hosts;
      assert.equal(hosts[0].egress, true, 'the host advertises egress');
      const policy = (await admin('GET', '/api/v1/policy/sandboxes')).body;
      const put = await admin('PUT', '/api/v1/policy/sandboxes', {
        ...policy,
        allow_egress: true,
        egress_allow: ['bound.test:80', 'bound.test:443'],
      });
      assert.equal(put.status, 200, JSON.stringify(put.body));

      const egress = {
        allow: ['bound.test:80', 'bound.test:443'],
        secrets: [{ name: 'API_TOKEN', value: SECRET, hosts: ['bound.test'] }],
      };
      // Outside the organisation's cap: refused before anything boots, naming the entry.
      const outside = (await agent.callTool({
        name: 'sandbox_create',
        arguments: { language_pack: 'python', egress: { allow: ['ok.test:80'] } },
      })) as ToolResult;
      assert.equal(outside.isError, true);
      // The text names the field at fault (like a 400), the structured error the entry itself.
      assert.match(outside.content[0]!.text!, /egress\.allow\.0: not allowed in this organisation/);
      const refusal = outside.structuredContent!['error'] as { message: string; fields: { field: string }[] };
      assert.match(refusal.message, /egress to ok\.test:80 is not allowed in this organisation/);
      assert.deepEqual(
        refusal.fields.map((f) => f.field),
        ['egress.allow.0'],
      );

      const created = (await agent.callTool(
        { name: 'sandbox_create', arguments: { language_pack: 'python', memory_mb: 192, lifetime_s: 900, egress } },
        SLOW,
      )) as ToolResult;
      assert.notEqual(created.isError, true, JSON.stringify(created));
      const sb = created.structuredContent!['sandbox'];

      const code = [
        'import json, os, urllib.request',
        'def get(url):',
        '    try:',
        "        req = urllib.request.Request(url, headers={'Authorization': 'Bearer ' + os.environ['API_TOKEN']})",
        '        with urllib.request.urlopen(req, timeout=90) as r:',
        "            return {'status': r.status, 'body': r.read().decode()}",
        '    except Exception as e:',
        "        return {'error': repr(e)}",
        'print(json.dumps({',
        "    'token_in_guest': os.environ['API_TOKEN'],",
        "    'plain': get('http://bound.test/cp-plain'),",
        "    'https': get('https://bound.test/cp-https'),",
        `    'not_allowed': get('http://bound.test:${FAR_PORTS.never}/cp-never'),`,
        '}))',
      ].join('\n');
      const ran = (await agent.callTool(
        { name: 'sandbox_exec', arguments: { sandbox_id: sb.id, code, timeout_ms: 240_000 } },
        SLOW,
      )) as ToolResult;
      assert.notEqual(ran.isError, true, JSON.stringify(ran));
      assert.equal(ran.structuredContent!['exit_code'], 0, JSON.stringify(ran.structuredContent));
      const out = JSON.parse(ran.structuredContent!['stdout']) as Record<string, any>;
      assert.notEqual(out['token_in_guest'], SECRET, 'the guest sees a placeholder, not the secret');
      assert.ok(!ran.structuredContent!['stdout'].includes(SECRET));
      assert.equal(out['plain'].status, 200, JSON.stringify(out));
      assert.equal(out['https'].status, 200, JSON.stringify(out));
      assert.ok(out['not_allowed'].error, JSON.stringify(out));

      // Checked at the far end: the requests arrived with the real secret; the other port never saw a connection.
      const plain = await far.waitFor((r) => r.kind === 'http' && r.url === '/cp-plain');
      assert.equal(plain.headers?.['authorization'], `Bearer ${SECRET}`);
      const tls = await far.waitFor((r) => r.kind === 'http' && r.url === '/cp-https');
      assert.equal(tls.port, FAR_PORTS.https);
      assert.equal(tls.headers?.['authorization'], `Bearer ${SECRET}`);
      assert.equal(far.accepts(FAR_PORTS.never), 0, 'a non-allowed target never got a connection');

      // Every attempt became a sandbox.egress audit event of the creator, allowed and refused.
      let events: any[] = [];
      await until(
        async () => {
          events = (await admin('GET', '/api/v1/audit/events?kind=sandbox.egress&limit=100')).body.events;
          return events.length >= 3;
        },
        30_000,
        'three sandbox.egress audit events',
      );
      const allowed = events.filter((e) => e.data.decision === 'allowed');
      const refused = events.filter((e) => e.data.decision === 'refused');
      assert.equal(allowed.length, 2, JSON.stringify(events));
      assert.ok(allowed.every((e) => e.data.secrets_used.includes('API_TOKEN') && e.data.sandbox === sb.id));
      assert.ok(allowed.some((e) => e.data.port === 443 && e.data.intercepted === true));
      assert.equal(refused.length, 1, JSON.stringify(events));
      assert.equal(refused[0].data.port, FAR_PORTS.never);
      for (const e of events) assert.deepEqual(e.principal, sb.created_by, 'actor: the sandbox creator');
      const view = await admin('GET', `/api/v1/sandboxes/${sb.id}/egress`);
      assert.equal(view.status, 200, JSON.stringify(view.body));
      assert.deepEqual(view.body.secrets, [{ name: 'API_TOKEN', hosts: ['bound.test'] }]);
      assert.equal(view.body.events.length, 3);

      const gone = (await agent.callTool({ name: 'sandbox_destroy', arguments: { sandbox_id: sb.id } })) as ToolResult;
      assert.notEqual(gone.isError, true, JSON.stringify(gone));

      // The secret's value is nowhere the control plane keeps: not in the whole audit export,
      // not in any row, not in the database files (with the WAL).
      const exp = await fetch(`${srv.url}/api/v1/audit/export?limit=10000`, {
        headers: { authorization: `Bearer ${adminKey}` },
      });
      const exported = await exp.text();
      assert.ok(exported.includes('sandbox.egress') && exported.includes('API_TOKEN'));
      assert.ok(!exported.includes(SECRET), 'not in the audit export');
      const kysely = srv.server.ctx.db.kysely;
      for (const table of ['audit_events', 'sandboxes', 'sandbox_policies', 'sandbox_execs']) {
        const rows = await kysely
          .selectFrom(table as 'audit_events')
          .selectAll()
          .execute();
        assert.ok(!JSON.stringify(rows).includes(SECRET), `not in ${table}`);
      }
      if (name === 'sqlite') {
        const dir = dirname(t.url);
        for (const f of readdirSync(dir))
          assert.ok(!readFileSync(join(dir, f)).includes(SECRET), `not in the database file ${f}`);
      }
      const verify = await admin('GET', '/api/v1/audit/verify');
      assert.equal(verify.body.ok, true, JSON.stringify(verify.body));
    });
  });
}
