// The sandbox module against scripted sandbox hosts that speak the wire protocol over a real
// WebSocket (no VMs: the QEMU end-to-end suite is packages/cli/src/sandbox-control-plane.test.ts).
// Policy, placement, scope, visibility, quotas, audit and reconciliation, on both databases.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { encodeMessage, parseMessage, type SandboxHostMessage, type WireMessage } from '@airlock/core';
import WebSocket from 'ws';
import { testDatabases } from '../testing/databases.js';
import { apiClient, mintTestKey, ownerId } from '../testing/keys.js';
import { startTestServer, type TestServer } from '../testing/server.js';

type Api = ReturnType<typeof apiClient>;
const H = (c: string) => `sha256:${c.repeat(64)}`;

async function until(fn: () => Promise<boolean> | boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** A scripted sandbox host: answers creates with fresh ids, execs with canned output. */
class FakeHost {
  ws!: WebSocket;
  readonly live = new Set<string>();
  readonly seen: WireMessage[] = [];
  private n = 0;
  slots = 4;

  constructor(
    readonly name: string,
    readonly token: string,
    readonly hash: string,
  ) {}

  async connect(url: string): Promise<void> {
    this.ws = new WebSocket(`${url.replace(/^http/, 'ws')}/api/v1/runners/connect`, {
      headers: { authorization: `Bearer ${this.token}` },
    });
    const welcomed = new Promise<void>((resolve) => {
      this.ws.on('message', (data: Buffer) => {
        const m = parseMessage(new Uint8Array(data));
        assert.ok(m.ok, m.ok ? '' : m.error.message);
        this.seen.push(m.value);
        if (m.value.type === 'welcome') {
          this.advertise();
          resolve();
        } else this.serve(m.value);
      });
    });
    await new Promise((r) => this.ws.once('open', r));
    this.send({
      type: 'hello',
      protocol: 1,
      runner: { name: this.name },
      version: '0.1.0',
      packs: [{ name: 'sandbox-image:python', version: '0.1.0', hash: this.hash, actions: [] }],
      capabilities: ['sandbox'],
      labels: {},
    });
    await welcomed;
  }

  send(m: WireMessage): void {
    this.ws.send(encodeMessage(m));
  }

  advert(): SandboxHostMessage {
    return {
      type: 'sandbox_host',
      backend: 'qemu',
      isolation: 'microvm',
      kvm: false,
      images: [{ pack: 'python', hash: this.hash }],
      capacity: { slots_total: this.slots, slots_free: this.slots - this.live.size, memory_free_mb: 8192 },
      sandboxes: [...this.live],
    };
  }

  advertise(): void {
    this.send(this.advert());
  }

  private serve(m: WireMessage): void {
    switch (m.type) {
      case 'sandbox_create': {
        const id = `sb_${this.name}${++this.n}`.replace(/[^A-Za-z0-9_-]/g, '');
        this.live.add(id);
        this.send({
          type: 'sandbox_reply',
          request_id: m.request_id,
          sandbox: {
            id,
            language_pack: m.language_pack,
            state: 'running',
            memory_mb: m.memory_mb,
            vcpus: m.vcpus,
            lifetime_s: m.lifetime_s,
            boot_ms: 5,
          },
        });
        this.advertise();
        return;
      }
      case 'sandbox_exec':
        this.send({ type: 'sandbox_output', request_id: m.request_id, seq: 0, stream: 'stdout', data: 'hi\n' });
        this.send({
          type: 'sandbox_reply',
          request_id: m.request_id,
          exec: {
            stdout: 'hi\n',
            stderr: '',
            exit_code: 3,
            signal: null,
            duration_ms: 1500,
            timed_out: false,
            truncated: false,
            redactions: [],
          },
        });
        return;
      case 'sandbox_destroy':
        this.live.delete(m.sandbox);
        this.send({ type: 'sandbox_reply', request_id: m.request_id });
        this.advertise();
        return;
      default:
    }
  }

  close(): void {
    this.ws.terminate();
  }
}

for (const { name, create } of testDatabases()) {
  describe(`sandboxes API with scripted hosts (${name})`, () => {
    let t: Awaited<ReturnType<typeof create>>;
    let srv: TestServer;
    let admin: Api;
    let alice: Api;
    let bob: Api;
    let aliceId: string;
    let aliceKey: string;
    const hosts: FakeHost[] = [];

    const newHost = async (hostName: string, hash = H('a'), labels: Record<string, string> = {}): Promise<FakeHost> => {
      const created = await admin('POST', '/api/v1/runners', { name: hostName, labels });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const reg = await admin('POST', '/api/v1/runners/register', { bootstrap_key: created.body.bootstrap_key });
      const h = new FakeHost(hostName, reg.body.token, hash);
      await h.connect(srv.url);
      hosts.push(h);
      await until(
        async () =>
          (await admin('GET', '/api/v1/sandboxes/hosts')).body.hosts.some((x: { name: string }) => x.name === hostName),
        'host listed',
      );
      return h;
    };

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
      for (const u of ['alice', 'bob']) {
        const r = await admin('POST', '/api/v1/users', {
          username: u,
          role: 'operator',
          password: 'correct horse battery staple 1',
        });
        assert.equal(r.status, 201, JSON.stringify(r.body));
        const key = await mintTestKey(db, orgId, r.body.user.id, ['runs:read', 'runs:write']);
        if (u === 'alice') {
          alice = apiClient(srv.url, key);
          aliceKey = key;
          aliceId = r.body.user.id;
        } else bob = apiClient(srv.url, key);
      }
    });
    after(async () => {
      for (const h of hosts) h.close();
      await srv?.stop();
      await t?.drop();
    });

    test('no host: 409 no_sandbox_host; an untrusted image: 409 image_untrusted, audited', async () => {
      const none = await alice('POST', '/api/v1/sandboxes', { language_pack: 'python' });
      assert.equal(none.status, 409);
      assert.equal(none.body.error.code, 'no_sandbox_host');
      await newHost('fake-1');
      const untrusted = await alice('POST', '/api/v1/sandboxes', { language_pack: 'python' });
      assert.equal(untrusted.status, 409, JSON.stringify(untrusted.body));
      assert.equal(untrusted.body.error.code, 'image_untrusted');
      assert.match(untrusted.body.error.message, /sandbox-image:python/);
      const pack = (await admin('GET', '/api/v1/packs')).body.packs.find(
        (p: { name: string }) => p.name === 'sandbox-image:python',
      );
      assert.equal((await admin('POST', `/api/v1/packs/${pack.id}/trust`, { comment: 'ok' })).status, 200);
      const denied = await admin('GET', '/api/v1/audit/events?kind=sandbox.denied');
      assert.ok(denied.body.events.length >= 2);
    });

    test('create, exec (streamed NDJSON), CPU accounting, visibility, destroy', async () => {
      const sb = await alice('POST', '/api/v1/sandboxes', { language_pack: 'python', memory_mb: 8192 });
      assert.equal(sb.status, 400, 'memory above the schema bound is a field error');
      assert.match(JSON.stringify(sb.body.error.fields), /body\.memory_mb/);
      const ok = await alice('POST', '/api/v1/sandboxes', { language_pack: 'python', memory_mb: 1024, vcpus: 2 });
      assert.equal(ok.status, 201, JSON.stringify(ok.body));
      assert.deepEqual(ok.body.limits, { memory_mb: 512, vcpus: 2, lifetime_s: 900 }, 'lowered into the policy caps');
      const id = ok.body.id as string;

      const res = await fetch(`${srv.url}/api/v1/sandboxes/${id}/exec?stream=1`, {
        method: 'POST',
        headers: { authorization: `Bearer ${aliceKey}`, 'content-type': 'application/json' },
        body: JSON.stringify({ code: 'print("hi")' }),
      });
      const lines = (await res.text())
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      assert.deepEqual(lines[0], { type: 'stdout', data: 'hi\n' });
      assert.equal(lines.at(-1).type, 'result');
      assert.equal(lines.at(-1).exit_code, 3);
      const after = await alice('GET', `/api/v1/sandboxes/${id}`);
      assert.equal(after.body.exec_count, 1);
      assert.equal(after.body.cpu_seconds, 3, '1.5 s × 2 vCPUs');

      assert.equal((await bob('GET', `/api/v1/sandboxes/${id}`)).status, 404);
      assert.equal((await bob('POST', `/api/v1/sandboxes/${id}/exec`, { code: 'x' })).status, 404);
      assert.equal((await bob('DELETE', `/api/v1/sandboxes/${id}`)).status, 404);
      assert.deepEqual((await bob('GET', '/api/v1/sandboxes')).body.sandboxes, []);
      assert.ok((await admin('GET', '/api/v1/sandboxes')).body.sandboxes.some((s: { id: string }) => s.id === id));

      const gone = await alice('DELETE', `/api/v1/sandboxes/${id}`);
      assert.equal(gone.status, 200);
      assert.equal(gone.body.state, 'destroyed');
      assert.equal((await alice('POST', `/api/v1/sandboxes/${id}/exec`, { code: 'x' })).status, 409);
      const exec = (await admin('GET', '/api/v1/audit/events?kind=sandbox.exec')).body.events[0];
      assert.equal(exec.status, 'failure');
      assert.equal(exec.exit_code, 3);
      assert.match(exec.args_digest, /^sha256:/);
    });

    test('a CPU-second quota blocks the next create and exec with a clear message; explain says the same', async () => {
      const policy = (await admin('GET', '/api/v1/policy/sandboxes')).body;
      const put = await admin('PUT', '/api/v1/policy/sandboxes', {
        ...policy,
        quotas: { ...policy.quotas, user: { concurrent: 5, cpu_seconds_per_day: 2 } },
      });
      assert.equal(put.status, 200, JSON.stringify(put.body));
      const refused = await alice('POST', '/api/v1/sandboxes', { language_pack: 'python' });
      assert.equal(refused.status, 429);
      assert.equal(refused.body.error.code, 'quota_exceeded');
      assert.match(refused.body.error.message, /user alice used 3 of 2 sandbox CPU-seconds today/);
      const explain = await admin('GET', `/api/v1/policy/sandboxes/explain?user=${aliceId}`);
      assert.equal(explain.body.decision, 'deny');
      assert.equal(explain.body.rule, 'sandbox:quota:user.cpu_seconds_per_day');
      assert.equal((await admin('PUT', '/api/v1/policy/sandboxes', policy)).status, 200);
      const allowed = await admin('GET', `/api/v1/policy/sandboxes/explain?user=${aliceId}&memory_mb=4096`);
      assert.equal(allowed.body.decision, 'allow');
      assert.equal(allowed.body.limits.memory_mb, 512);
      assert.deepEqual(allowed.body.hosts, ['fake-1']);
      const changed = await admin('GET', '/api/v1/audit/events?kind=policy.sandboxes_changed');
      assert.equal(changed.body.events.length, 2);
    });

    test('placement stays inside the user scope and spreads by capacity', async () => {
      await newHost('fake-2', H('a'), { zone: 'b' });
      // Alice may only use hosts labelled zone=b.
      assert.equal(
        (await admin('PUT', `/api/v1/policy/scopes/users/${aliceId}`, { selector: { zone: 'b' }, runners: null }))
          .status,
        200,
      );
      const a1 = await alice('POST', '/api/v1/sandboxes', { language_pack: 'python' });
      const a2 = await alice('POST', '/api/v1/sandboxes', { language_pack: 'python' });
      assert.equal(a1.body.host.name, 'fake-2');
      assert.equal(a2.body.host.name, 'fake-2');
      // The admin is unscoped: fake-1 has more free slots now.
      const b1 = await admin('POST', '/api/v1/sandboxes', { language_pack: 'python' });
      assert.equal(b1.body.host.name, 'fake-1');
      assert.equal((await admin('DELETE', `/api/v1/policy/scopes/users/${aliceId}`)).status < 300, true);
      for (const s of [a1, a2, b1]) await admin('DELETE', `/api/v1/sandboxes/${s.body.id}`);
    });

    test('a host that disconnects loses its sandboxes; back with them, they recover; unknown ones are destroyed', async () => {
      const h = await newHost('fake-3');
      // Only fake-3 has room now.
      for (const x of hosts)
        if (x !== h) {
          x.slots = x.live.size;
          x.advertise();
        }
      await until(
        async () =>
          (await admin('GET', '/api/v1/sandboxes/hosts')).body.hosts.every(
            (x: { name: string; capacity: { slots_free: number } }) =>
              x.name === 'fake-3' || x.capacity.slots_free === 0,
          ),
        'full hosts',
      );
      const s = await alice('POST', '/api/v1/sandboxes', { language_pack: 'python' });
      assert.equal(s.status, 201, JSON.stringify(s.body));
      assert.equal(s.body.host.name, 'fake-3');
      h.close();
      await until(async () => (await alice('GET', `/api/v1/sandboxes/${s.body.id}`)).body.state === 'lost', 'lost');
      const token = h.token;
      const back = new FakeHost('fake-3', token, H('a'));
      for (const id of h.live) back.live.add(id);
      back.live.add('sb_orphan1');
      await back.connect(srv.url);
      hosts.push(back);
      await until(
        async () => (await alice('GET', `/api/v1/sandboxes/${s.body.id}`)).body.state === 'running',
        'recovered',
      );
      await until(
        () => back.seen.some((m) => m.type === 'sandbox_destroy' && m.sandbox === 'sb_orphan1'),
        'orphan destroyed',
      );
      const kinds = (await admin('GET', '/api/v1/audit/events?kind=sandbox.')).body.events.map(
        (e: { kind: string }) => e.kind,
      );
      assert.ok(kinds.includes('sandbox.lost') && kinds.includes('sandbox.recovered'), kinds.join(','));
    });

    test('a host may not send server messages; bad sandbox frames are refused, the connection kept', async () => {
      const h = hosts.at(-1)!;
      h.ws.send(
        JSON.stringify({
          type: 'sandbox_exec',
          request_id: 'x',
          sandbox: 'sb',
          code: 'x',
          timeout_ms: 1,
          max_output_bytes: 1,
        }),
      );
      h.ws.send(JSON.stringify({ type: 'sandbox_output', request_id: 'x', seq: -1, stream: 'stdout', data: '' }));
      await until(() => h.seen.filter((m) => m.type === 'error').length >= 2, 'two errors');
      const errs = h.seen.filter((m): m is Extract<WireMessage, { type: 'error' }> => m.type === 'error');
      assert.match(errs[0]!.message, /may not send sandbox_exec/);
      assert.match(errs[1]!.message, /sandbox_output\.seq/);
      assert.equal(h.ws.readyState, WebSocket.OPEN);
    });
  });
}
