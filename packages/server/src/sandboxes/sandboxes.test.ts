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
import type { SandboxTables } from './tables.js';

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
  /** Whether the host advertises egress. */
  egress = false;

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
      ...(this.egress ? { egress: true } : {}),
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

  describe(`sandbox egress with scripted hosts (${name})`, () => {
    const SECRET = 'sk-unit-7f3e9a1c5b2d4e6f';
    let t: Awaited<ReturnType<typeof create>>;
    let srv: TestServer;
    let admin: Api;
    let adminKey: string;
    let alice: Api;
    let bob: Api;
    let aliceId: string;
    const hosts: FakeHost[] = [];

    const newHost = async (hostName: string, egress: boolean): Promise<FakeHost> => {
      const created = await admin('POST', '/api/v1/runners', { name: hostName, labels: {} });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const reg = await admin('POST', '/api/v1/runners/register', { bootstrap_key: created.body.bootstrap_key });
      const h = new FakeHost(hostName, reg.body.token, H('e'));
      h.egress = egress;
      await h.connect(srv.url);
      hosts.push(h);
      await until(
        async () =>
          (await admin('GET', '/api/v1/sandboxes/hosts')).body.hosts.some((x: { name: string }) => x.name === hostName),
        'host listed',
      );
      return h;
    };
    const egressAsk = {
      language_pack: 'python',
      egress: {
        allow: ['api.far.example:443', 'plain.far.example:80'],
        secrets: [{ name: 'API_TOKEN', value: SECRET, hosts: ['api.far.example'] }],
      },
    };

    before(async () => {
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
          aliceId = r.body.user.id;
        } else bob = apiClient(srv.url, key);
      }
      await newHost('plain-1', false);
      const pack = (await admin('GET', '/api/v1/packs')).body.packs.find(
        (x: { name: string }) => x.name === 'sandbox-image:python',
      );
      assert.equal((await admin('POST', `/api/v1/packs/${pack.id}/trust`, { comment: 'ok' })).status, 200);
    });
    after(async () => {
      for (const h of hosts) h.close();
      await srv?.stop();
      await t?.drop();
    });

    test('the request is validated naming the field; egress: true is refused', async () => {
      const yes = await alice('POST', '/api/v1/sandboxes', { language_pack: 'python', egress: true });
      assert.equal(yes.status, 400);
      assert.match(JSON.stringify(yes.body.error.fields), /body\.egress/);
      assert.match(yes.body.error.message, /egress needs an allowlist/);
      const noPort = await alice('POST', '/api/v1/sandboxes', { egress: { allow: ['api.far.example'] } });
      assert.equal(noPort.status, 400);
      assert.equal(noPort.body.error.fields[0].field, 'body.egress.allow.0');
      const unbound = await alice('POST', '/api/v1/sandboxes', {
        egress: { allow: ['a.example:443'], secrets: [{ name: 'T', value: SECRET, hosts: ['b.example'] }] },
      });
      assert.equal(unbound.status, 400);
      assert.equal(unbound.body.error.fields[0].field, 'body.egress.secrets.0.hosts.0');
      assert.ok(!JSON.stringify(unbound.body).includes(SECRET), 'a refusal never echoes the secret');
    });

    test('policy: egress refused by default, then capped by egress_allow naming the entry; explain agrees', async () => {
      const off = await alice('POST', '/api/v1/sandboxes', egressAsk);
      assert.equal(off.status, 403, JSON.stringify(off.body));
      assert.match(off.body.error.message, /network egress is not allowed.*\(rule: sandbox:egress\)/);
      assert.deepEqual(off.body.error.fields, [
        { field: 'body.egress', message: 'network egress is not allowed for sandboxes in this organisation' },
      ]);
      const policy = (await admin('GET', '/api/v1/policy/sandboxes')).body;
      assert.deepEqual(policy.egress_allow, []);
      const bad = await admin('PUT', '/api/v1/policy/sandboxes', { ...policy, egress_allow: ['no-port.example'] });
      assert.equal(bad.status, 400);
      assert.equal(bad.body.error.fields[0].field, 'body.egress_allow.0');
      const put = await admin('PUT', '/api/v1/policy/sandboxes', {
        ...policy,
        allow_egress: true,
        egress_allow: ['*.far.example:443'],
      });
      assert.equal(put.status, 200, JSON.stringify(put.body));
      const capped = await alice('POST', '/api/v1/sandboxes', egressAsk);
      assert.equal(capped.status, 403, JSON.stringify(capped.body));
      assert.match(capped.body.error.message, /egress to plain\.far\.example:80 is not allowed in this organisation/);
      assert.match(capped.body.error.message, /rule: sandbox:egress_allow/);
      // The field names the entry outside the cap (index 1), like a 400 names a bad one.
      assert.deepEqual(capped.body.error.fields, [
        { field: 'body.egress.allow.1', message: 'not allowed in this organisation (allowed: *.far.example:443)' },
      ]);
      const explain = await admin(
        'GET',
        `/api/v1/policy/sandboxes/explain?user=${aliceId}&egress_allow=${encodeURIComponent('api.far.example:443,plain.far.example:80')}`,
      );
      assert.equal(explain.status, 200, JSON.stringify(explain.body));
      assert.equal(explain.body.decision, 'deny');
      assert.equal(explain.body.rule, 'sandbox:egress_allow');
      assert.match(explain.body.message, /plain\.far\.example:80/);
      const within = await admin(
        'GET',
        `/api/v1/policy/sandboxes/explain?user=${aliceId}&egress_allow=${encodeURIComponent('api.far.example:443')}`,
      );
      assert.equal(within.body.decision, 'allow');
      assert.ok(
        within.body.trace.some((x: string) => /egress_allow/.test(x)),
        JSON.stringify(within.body.trace),
      );
      assert.deepEqual(within.body.hosts, [], 'no host offers egress yet');
      assert.deepEqual(within.body.skipped, [{ host: 'plain-1', why: 'does not offer egress' }]);
      const ok = await admin('PUT', '/api/v1/policy/sandboxes', {
        ...policy,
        allow_egress: true,
        egress_allow: ['*.far.example:443', 'plain.far.example:80'],
      });
      assert.equal(ok.status, 200);
      const denied = await admin('GET', '/api/v1/audit/events?kind=sandbox.denied');
      assert.ok(denied.body.events.length >= 2);
      assert.deepEqual(denied.body.events[0].data.egress.secrets, [{ name: 'API_TOKEN', hosts: ['api.far.example'] }]);
    });

    test('placement: only hosts offering egress; none: 409 egress_unavailable; the host gets the secret', async () => {
      const none = await alice('POST', '/api/v1/sandboxes', egressAsk);
      assert.equal(none.status, 409, JSON.stringify(none.body));
      assert.equal(none.body.error.code, 'egress_unavailable');
      assert.match(none.body.error.message, /plain-1: does not offer egress/);
      assert.deepEqual(none.body.error.fields, [{ field: 'body.egress', message: none.body.error.message }]);
      const eg = await newHost('egress-1', true);
      // More free slots on the plain host: capacity alone would pick it.
      const plain = hosts[0]!;
      plain.slots = 16;
      plain.advertise();
      const ok = await alice('POST', '/api/v1/sandboxes', egressAsk);
      assert.equal(ok.status, 201, JSON.stringify(ok.body));
      assert.equal(ok.body.host.name, 'egress-1');
      // The view says it has egress: names and bound hosts, never the value; so do list and detail.
      const summary = { allow: egressAsk.egress.allow, secrets: [{ name: 'API_TOKEN', hosts: ['api.far.example'] }] };
      assert.deepEqual(ok.body.egress, summary);
      assert.deepEqual((await alice('GET', `/api/v1/sandboxes/${ok.body.id}`)).body.egress, summary);
      const listed = (await alice('GET', '/api/v1/sandboxes')).body.sandboxes.find(
        (x: { id: string }) => x.id === ok.body.id,
      );
      assert.deepEqual(listed.egress, summary);
      // Documented in the OpenAPI document (from the zod schema): nullable, names and hosts only.
      const doc = (await admin('GET', '/api/v1/openapi.json')).body;
      const schema = doc.paths['/api/v1/sandboxes/{id}'].get.responses['200'].content['application/json'].schema;
      assert.ok(schema.properties.egress, JSON.stringify(schema));
      assert.match(JSON.stringify(schema.properties.egress), /"secrets"/);
      assert.ok(!JSON.stringify(schema.properties.egress).includes('"value"'), 'no value in the documented view');
      const stored = await srv.server.ctx.db.kysely
        .withTables<SandboxTables>()
        .selectFrom('sandboxes')
        .select('egress')
        .where('id', '=', ok.body.id)
        .executeTakeFirstOrThrow();
      assert.deepEqual(JSON.parse(stored.egress!), summary, 'the column holds the summary');
      assert.ok(!stored.egress!.includes(SECRET));
      const sent = eg.seen.find((m) => m.type === 'sandbox_create');
      assert.ok(sent && sent.type === 'sandbox_create');
      assert.deepEqual(sent.egress, egressAsk.egress, 'the host gets the allowlist and the secret value');
      // Without egress the plain host is still used.
      const plainSb = await alice('POST', '/api/v1/sandboxes', { language_pack: 'python' });
      assert.equal(plainSb.body.host.name, 'plain-1');
      assert.equal(plainSb.body.egress, null, 'no egress: null');
      assert.equal((await alice('GET', `/api/v1/sandboxes/${plainSb.body.id}`)).body.egress, null);
      const noEgress = await alice('GET', `/api/v1/sandboxes/${plainSb.body.id}/egress`);
      assert.equal(noEgress.status, 200, JSON.stringify(noEgress.body));
      assert.deepEqual([noEgress.body.enabled, noEgress.body.allow, noEgress.body.secrets], [false, [], []]);
      assert.equal(plain.seen.filter((m) => m.type === 'sandbox_create' && m.egress !== undefined).length, 0);
      await alice('DELETE', `/api/v1/sandboxes/${plainSb.body.id}`);
    });

    test('each sandbox_egress becomes a sandbox.egress audit event of the creator; values never stored', async () => {
      const eg = hosts.find((h) => h.name === 'egress-1')!;
      const sbx = (await alice('GET', '/api/v1/sandboxes')).body.sandboxes.find(
        (x: { host: { name: string }; state: string }) => x.host.name === 'egress-1' && x.state === 'running',
      );
      const hostSid = [...eg.live][0]!;
      const base = {
        time: new Date().toISOString(),
        addresses: ['203.0.113.9'],
        bytes_up: 10,
        bytes_down: 20,
        duration_ms: 5,
      };
      eg.send({
        type: 'sandbox_egress',
        sandbox: hostSid,
        event: {
          ...base,
          method: 'CONNECT',
          host: 'api.far.example',
          port: 443,
          decision: 'allowed',
          reason: 'ok',
          intercepted: true,
          secrets_used: ['API_TOKEN'],
        },
      });
      eg.send({
        type: 'sandbox_egress',
        sandbox: hostSid,
        event: {
          ...base,
          addresses: [],
          method: 'GET',
          host: 'evil.example',
          port: 80,
          decision: 'refused',
          reason: 'evil.example:80 is not in the allowlist',
          intercepted: false,
          secrets_used: [],
        },
      });
      // About a sandbox the control plane does not know: dropped.
      eg.send({
        type: 'sandbox_egress',
        sandbox: 'sb_stranger',
        event: {
          ...base,
          method: 'GET',
          host: 'x.example',
          port: 80,
          decision: 'refused',
          reason: 'r',
          intercepted: false,
          secrets_used: [],
        },
      });
      await until(
        async () => (await admin('GET', '/api/v1/audit/events?kind=sandbox.egress')).body.events.length >= 2,
        'egress events',
      );
      const events = (await admin('GET', '/api/v1/audit/events?kind=sandbox.egress')).body.events as {
        principal: Record<string, unknown>;
        status: string;
        data: { sandbox: string; decision: string; secrets_used: string[] };
      }[];
      assert.equal(events.length, 2, 'the stranger event was dropped');
      const [refused, allowed] = events as [(typeof events)[0], (typeof events)[0]]; // newest first
      assert.deepEqual(allowed.principal, sbx.created_by, 'actor: the creator (alice, through her key)');
      assert.equal(allowed.status, 'success');
      assert.equal(allowed.data.sandbox, sbx.id);
      assert.deepEqual(allowed.data.secrets_used, ['API_TOKEN']);
      assert.equal(refused.status, 'validation_failed');
      assert.equal(refused.data.decision, 'refused');
      // Searchable like other sandbox events: by actor, and by text.
      const byActor = await admin('GET', `/api/v1/audit/events?kind=sandbox.egress&actor=${sbx.created_by.id}`);
      assert.equal(byActor.body.events.length, 2);
      const byText = await admin('GET', '/api/v1/audit/events?q=evil.example');
      assert.equal(byText.body.events[0].kind, 'sandbox.egress');

      const view = await alice('GET', `/api/v1/sandboxes/${sbx.id}/egress`);
      assert.equal(view.status, 200, JSON.stringify(view.body));
      assert.equal(view.body.enabled, true);
      assert.deepEqual(view.body.allow, egressAsk.egress.allow);
      assert.deepEqual(view.body.secrets, [{ name: 'API_TOKEN', hosts: ['api.far.example'] }]);
      assert.deepEqual(
        view.body.events.map((e: { host: string; decision: string }) => `${e.decision} ${e.host}`),
        ['allowed api.far.example', 'refused evil.example'],
      );
      assert.equal((await bob('GET', `/api/v1/sandboxes/${sbx.id}/egress`)).status, 404);

      // A row from before the column (migration 1000) has null there: the route falls back to
      // the sandbox.created audit event and answers the same; the view says null (unknown).
      const db0 = srv.server.ctx.db.kysely.withTables<SandboxTables>();
      await db0.updateTable('sandboxes').set({ egress: null }).where('id', '=', sbx.id).execute();
      const legacy = await alice('GET', `/api/v1/sandboxes/${sbx.id}/egress`);
      assert.equal(legacy.status, 200, JSON.stringify(legacy.body));
      assert.deepEqual(
        [legacy.body.enabled, legacy.body.allow, legacy.body.secrets, legacy.body.events.length],
        [true, view.body.allow, view.body.secrets, view.body.events.length],
      );
      assert.equal((await alice('GET', `/api/v1/sandboxes/${sbx.id}`)).body.egress, null);
      await db0
        .updateTable('sandboxes')
        .set({ egress: JSON.stringify({ allow: view.body.allow, secrets: view.body.secrets }) })
        .where('id', '=', sbx.id)
        .execute();

      // The value is nowhere the control plane keeps or shows: API answers, audit, database rows.
      const answers = [
        await alice('GET', `/api/v1/sandboxes/${sbx.id}`),
        await alice('GET', '/api/v1/sandboxes'),
        view,
        await admin('GET', '/api/v1/audit/events?limit=500'),
      ];
      for (const a of answers) assert.ok(!JSON.stringify(a.body).includes(SECRET));
      const exp = await fetch(`${srv.url}/api/v1/audit/export?limit=10000`, {
        headers: { authorization: `Bearer ${adminKey}` },
      });
      const text = await exp.text();
      assert.ok(text.includes('sandbox.egress') && text.includes('API_TOKEN'));
      assert.ok(!text.includes(SECRET), 'not in the audit export');
      const db = srv.server.ctx.db.kysely;
      for (const table of ['audit_events', 'sandboxes', 'sandbox_policies']) {
        const rows = await db
          .selectFrom(table as 'audit_events')
          .selectAll()
          .execute();
        assert.ok(rows.length > 0 || table !== 'audit_events');
        assert.ok(!JSON.stringify(rows).includes(SECRET), `not in ${table}`);
      }
      const verify = await admin('GET', '/api/v1/audit/verify');
      assert.equal(verify.body.ok, true, JSON.stringify(verify.body));
    });

    test('an egress event with an id is acknowledged and recorded once, however often the host sends it', async () => {
      const eg = hosts.find((h) => h.name === 'egress-1')!;
      const hostSid = [...eg.live][0]!;
      const event = (host: string) => ({
        time: new Date().toISOString(),
        method: 'CONNECT',
        host,
        port: 443,
        addresses: ['203.0.113.10'],
        decision: 'allowed' as const,
        reason: 'ok',
        intercepted: false,
        secrets_used: [],
        bytes_up: 1,
        bytes_down: 2,
        duration_ms: 3,
      });
      // The same event three times (a host re-sending after its acknowledgement was lost),
      // and one about a sandbox the control plane does not know (dropped, still acknowledged).
      for (let i = 0; i < 3; i++)
        eg.send({ type: 'sandbox_egress', id: 'testboot-7', sandbox: hostSid, event: event('once.example') });
      eg.send({ type: 'sandbox_egress', id: 'testboot-8', sandbox: 'sb_stranger', event: event('x.example') });
      const acked = () =>
        eg.seen
          .flatMap((m) => (m.type === 'sandbox_egress_ack' ? m.ids : []))
          .filter((id) => id.startsWith('testboot-'));
      await until(async () => acked().length >= 4, 'four acknowledgements');
      assert.deepEqual(acked().sort(), ['testboot-7', 'testboot-7', 'testboot-7', 'testboot-8']);
      const recorded = (await admin('GET', '/api/v1/audit/events?q=once.example')).body.events as {
        data: { event_id?: string };
      }[];
      assert.equal(recorded.length, 1, 'recorded once');
      assert.equal(recorded[0]?.data.event_id, 'testboot-7');
      assert.equal((await admin('GET', '/api/v1/audit/events?q=x.example')).body.events.length, 0);
    });
  });
}
