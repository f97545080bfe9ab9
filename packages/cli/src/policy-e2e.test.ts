// End to end with real processes: `airlock server` + `airlock runner connect`, on SQLite and
// PostgreSQL: an agent key asks for a destructive action → pending → a second user approves
// → the runner executes → the audit trail shows requester, approver, rule and result; the
// same with self-approval refused, expiry and a grant revoked mid-way; signed dispatch with
// `airlock approve --sign`. Then a compromised control plane: a fake `ws` server the runner
// dials sends forged, unsigned, expired and replayed envelopes; the runner refuses each with
// its own code and runs only the properly signed one.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type ApproverCert, certBytes, dispatchBytes, type RunActionMessage } from '@airlock/core';
import { generateSigningKey, signRaw } from '@airlock/runner';
import { openDatabase } from '@airlock/server';
import { apiClient, mintTestKey, ownerId, testDatabases } from '@airlock/server/testing';
import { WebSocketServer } from 'ws';
import { type AirlockProcess, freePort, spawnAirlock, until } from './testing/processes.js';

const FINAL = ['success', 'failure', 'validation_failed', 'error', 'timeout', 'cancelled'];
const ALL = [
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

function writeOpsPack(dir: string): string {
  const root = join(dir, 'ops');
  mkdirSync(join(root, 'actions'), { recursive: true });
  writeFileSync(
    join(root, 'pack.yaml'),
    'name: ops\nversion: 1.0.0\nnamespace: ops\ndescription: Test actions at every risk tier; they only echo.\n',
  );
  const action = (id: string, risk: string) =>
    `id: ops.${id}\ntitle: ${id}\ndescription: Echo for tests.\nrisk: ${risk}\nkind: exec\nargv: ["echo", "${id}", "{{target}}"]\nargs:\n  target: { type: string, required: true, pattern: '[a-z0-9-]{1,40}', max_length: 40 }\nlimits: { timeout_s: 5, timeout_s_max: 30, output_bytes: 4096, output_bytes_max: 8192 }\n`;
  writeFileSync(join(root, 'actions', 'wipe.yaml'), action('wipe', 'destructive'));
  writeFileSync(join(root, 'actions', 'touch.yaml'), action('touch', 'change'));
  return root;
}

const root = generateSigningKey();

for (const { name, create } of testDatabases()) {
  describe(`approvals and signed dispatch with real processes (${name})`, () => {
    let t: Awaited<ReturnType<typeof create>>;
    let dir: string;
    let url: string;
    let server: AirlockProcess;
    const procs: AirlockProcess[] = [];
    let admin: ReturnType<typeof apiClient>;
    let agent: ReturnType<typeof apiClient>;
    let agentOther: ReturnType<typeof apiClient>;
    let alice: ReturnType<typeof apiClient>;
    let aliceKey: string;
    let agentKeyId: string;

    const final = (api: ReturnType<typeof apiClient>, id: string, ms = 30_000) =>
      until(
        async () => {
          const r = (await api('GET', `/api/v1/runs/${id}`)).body;
          return FINAL.includes(r.status) ? r : undefined;
        },
        ms,
        `run ${id} to finish`,
      );
    const startRunner = async (rn: string, signing: boolean, packs: string): Promise<void> => {
      const home = join(dir, rn);
      mkdirSync(home, { recursive: true });
      const cfg = join(home, 'runner.yaml');
      writeFileSync(
        cfg,
        `name: ${rn}\npacks: [${JSON.stringify(packs)}]\nlog: ${JSON.stringify(join(home, 'events.jsonl'))}\n` +
          (signing ? `signing:\n  root_public_key: ${root.publicKey}\n  require_tiers: [destructive]\n` : ''),
      );
      const created = await admin('POST', '/api/v1/runners', { name: rn, labels: { env: 'prod' } });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const p = spawnAirlock(
        ['runner', 'connect', '--config', cfg, '--server', url, '--bootstrap-key', created.body.bootstrap_key],
        { AIRLOCK_HOME: home },
      );
      procs.push(p);
      await p.waitFor(/connected to the control plane/);
    };
    const trail = async (id: string) => {
      const db = await openDatabase(t.url);
      try {
        const rows = await db.kysely
          .selectFrom('audit_events')
          .select('body')
          .where('id', '=', id)
          .orderBy('seq')
          .execute();
        return rows.map(
          (r) =>
            JSON.parse(r.body) as {
              kind: string;
              principal: { id: string; name?: string };
              status: string;
              data?: Record<string, unknown>;
            },
        );
      } finally {
        await db.close();
      }
    };

    before(async () => {
      t = await create();
      dir = mkdtempSync(join(tmpdir(), 'airlock-pole2e-'));
      const port = await freePort();
      url = `http://127.0.0.1:${port}`;
      server = spawnAirlock(['server', '--listen', `127.0.0.1:${port}`, '--database', t.url], {
        AIRLOCK_HOME: join(dir, 'server'),
        AIRLOCK_APPROVAL_SWEEP_MS: '200',
      });
      await server.waitFor(/listening on/);
      const db = await openDatabase(t.url);
      const org = (await db.kysely.selectFrom('orgs').select('id').executeTakeFirstOrThrow()).id;
      admin = apiClient(url, await mintTestKey(db, org, await ownerId(db, org), ALL));
      const addUser = async (username: string, role: 'admin' | 'operator') => {
        const id = randomUUID();
        await db.kysely
          .insertInto('users')
          .values({
            id,
            org_id: org,
            username,
            password_hash: 'x',
            role,
            disabled: 0,
            must_change_password: 0,
            created_at: new Date().toISOString(),
          })
          .execute();
        return id;
      };
      const agentUser = await addUser('agent-owner', 'operator');
      const agentToken = await mintTestKey(db, org, agentUser, ['runs:read', 'runs:write']);
      agent = apiClient(url, agentToken);
      agentKeyId = (
        await db.kysely
          .selectFrom('api_keys')
          .select('id')
          .where('prefix', '=', agentToken.split('_').slice(0, 2).join('_'))
          .executeTakeFirstOrThrow()
      ).id;
      agentOther = apiClient(url, await mintTestKey(db, org, agentUser, ['runs:read', 'runs:write']));
      aliceKey = await mintTestKey(db, org, await addUser('alice', 'admin'), ['runs:read', 'runs:write']);
      alice = apiClient(url, aliceKey);
      await db.close();
      const packs = writeOpsPack(dir);
      await startRunner('plain', false, packs);
      await startRunner('signed', true, packs);
      const pack = await until(async () => (await admin('GET', '/api/v1/packs')).body.packs[0], 10_000, 'the pack');
      assert.equal((await admin('POST', `/api/v1/packs/${pack.id}/trust`, { comment: 'e2e' })).status, 200);
    });

    after(async () => {
      for (const p of procs) await p.kill('SIGKILL');
      await server?.kill('SIGKILL');
      await t.drop();
      rmSync(dir, { recursive: true, force: true });
    });

    test('agent key asks for destructive → pending → self-approval refused → second user approves → runs; trail complete', async () => {
      const r = await agent('POST', '/api/v1/runs', {
        runner: 'plain',
        action: 'ops.wipe',
        args: { target: 'cache' },
        reason: 'disk full',
      });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      assert.equal(r.body.status, 'pending_approval');
      const self = await agentOther('POST', `/api/v1/runs/${r.body.id}/approve`, { comment: 'me' });
      assert.equal(self.status, 403);
      assert.equal(self.body.error.code, 'self_approval');
      const ok = await alice('POST', `/api/v1/runs/${r.body.id}/approve`, { comment: 'go ahead' });
      assert.equal(ok.status, 200, JSON.stringify(ok.body));
      const done = await final(admin, r.body.id);
      assert.equal(done.status, 'success');
      const lines = (await admin('GET', `/api/v1/runs/${r.body.id}/output`)).body.lines.map(
        (l: { line: string }) => l.line,
      );
      assert.deepEqual(lines, ['wipe cache']);
      const events = await until(
        async () => {
          const ev = await trail(r.body.id);
          return ev.some((e) => e.kind === 'run.result') ? ev : undefined;
        },
        10_000,
        'the run.result audit event',
      );
      const by = (k: string) => events.find((e) => e.kind === k);
      assert.equal(by('run.requested')?.principal.id, agentKeyId);
      assert.equal(by('run.approval_requested')?.data?.['rule'], 'default:destructive');
      assert.equal(
        (by('run.approval_refused') as { error?: { code: string } } | undefined)?.error?.code,
        'self_approval',
      );
      assert.equal(by('run.approved')?.principal.name, 'alice (key)');
      assert.equal(by('run.approval_granted')?.data?.['rule'], 'default:destructive');
      assert.equal(by('run.result')?.status, 'success');
    });

    test('expiry fails closed', async () => {
      await admin('PUT', '/api/v1/policy/settings', { approval_ttl_s: 1 });
      const r = await agent('POST', '/api/v1/runs', {
        runner: 'plain',
        action: 'ops.wipe',
        args: { target: 'late' },
        reason: 'no one answers',
      });
      const done = await final(admin, r.body.id);
      assert.deepEqual([done.status, done.error.code], ['cancelled', 'approval_expired']);
      assert.equal((await alice('POST', `/api/v1/runs/${r.body.id}/approve`, {})).status, 409);
      assert.ok((await trail(r.body.id)).some((e) => e.kind === 'run.approval_expired'));
      await admin('PUT', '/api/v1/policy/settings', { approval_ttl_s: 900 });
    });

    test('a grant revoked mid-way: the next request waits for approval again', async () => {
      const g = await admin('POST', '/api/v1/policy/grants', {
        subject: { type: 'api_key', id: agentKeyId },
        action: 'ops.wipe',
        selector: { env: 'prod' },
      });
      assert.equal(g.status, 201);
      const first = await agent('POST', '/api/v1/runs', {
        runner: 'plain',
        action: 'ops.wipe',
        args: { target: 'one' },
        reason: 'granted',
      });
      assert.notEqual(first.body.status, 'pending_approval');
      assert.equal((await final(admin, first.body.id)).status, 'success');
      assert.ok(
        (await trail(first.body.id)).some((e) => e.kind === 'grant.used' && e.data?.['rule'] === `grant:${g.body.id}`),
      );
      assert.equal(
        (await admin('POST', `/api/v1/policy/grants/${g.body.id}/revoke`, { reason: 'incident over' })).status,
        200,
      );
      const second = await agent('POST', '/api/v1/runs', {
        runner: 'plain',
        action: 'ops.wipe',
        args: { target: 'two' },
        reason: 'after revoke',
      });
      assert.equal(second.body.status, 'pending_approval');
      await alice('POST', `/api/v1/runs/${second.body.id}/deny`, { comment: 'grant was revoked' });
    });

    test('signed tier: the runner refuses an unsigned approval; `airlock approve --sign` runs it', async () => {
      await admin('PUT', '/api/v1/policy/settings', { approval_ttl_s: 900 });
      const unsigned = await agent('POST', '/api/v1/runs', {
        runner: 'signed',
        action: 'ops.wipe',
        args: { target: 'x' },
        reason: 'unsigned',
      });
      await alice('POST', `/api/v1/runs/${unsigned.body.id}/approve`, { comment: 'ok' });
      const refused = await final(admin, unsigned.body.id);
      assert.deepEqual([refused.status, refused.error.code], ['validation_failed', 'signature_missing']);

      writeFileSync(
        join(dir, 'root.json'),
        JSON.stringify({ public_key: root.publicKey, private_key: root.privateKey }),
      );
      await admin('PUT', '/api/v1/policy/settings', { signed_tiers: ['destructive'], root_public_key: root.publicKey });
      const cli = (args: string[]) =>
        spawnAirlock(args, { AIRLOCK_HOME: join(dir, 'cli'), AIRLOCK_SERVER: url, AIRLOCK_API_KEY: aliceKey });
      const keygen = cli(['policy', 'keygen', '--out', join(dir, 'alice.json')]);
      const pub = (await keygen.waitFor(/public key: (\S+)/))[1]!;
      const certify = cli([
        'policy',
        'certify',
        '--root-key',
        join(dir, 'root.json'),
        '--public-key',
        pub,
        '--subject',
        'alice',
        '--hours',
        '2',
        '--out',
        join(dir, 'alice.cert'),
      ]);
      await certify.waitFor(/valid until/);
      const r = await agent('POST', '/api/v1/runs', {
        runner: 'signed',
        action: 'ops.wipe',
        args: { target: 'y' },
        limits: { timeout_s: 9 },
        reason: 'signed',
      });
      assert.equal(r.body.status, 'pending_approval');
      const plain = cli(['approve', r.body.id, '--comment', 'no sig']);
      await until(() => plain.child.exitCode !== null, 10_000, 'approve without --sign to exit');
      assert.equal(plain.child.exitCode, 1);
      assert.match(plain.output(), /signature_required/);
      const approve = cli([
        'approve',
        r.body.id,
        '--sign',
        '--key',
        join(dir, 'alice.json'),
        '--cert',
        join(dir, 'alice.cert'),
        '--comment',
        'signed ok',
      ]);
      await approve.waitFor(/run .*: (queued|dispatched|running|success)/);
      const done = await final(admin, r.body.id);
      assert.equal(done.status, 'success', JSON.stringify(done));
      assert.equal(done.limits.timeout_s, 9);
      await admin('PUT', '/api/v1/policy/settings', { signed_tiers: [] });
    });
  });
}

describe('a compromised control plane cannot make a signing runner act', () => {
  let dir: string;
  let wss: WebSocketServer;
  let runner: AirlockProcess;
  const results = new Map<string, { status: string; error?: { code: string } }>();
  let send: (m: unknown) => void = () => {};
  const approver = generateSigningKey();
  const now = Date.now();
  const cert: ApproverCert = {
    v: 1,
    key_id: 'k1',
    public_key: approver.publicKey,
    subject: 'alice',
    not_before: new Date(now - 60_000).toISOString(),
    not_after: new Date(now + 3_600_000).toISOString(),
  };
  const signedCert = { cert, signature: signRaw(root.privateKey, root.publicKey, certBytes(cert)) };
  let packHash = '';

  const envelope = (
    over: {
      expires?: number;
      nonce?: string;
      args?: Record<string, unknown>;
      id?: string;
      signer?: typeof approver;
      cert?: typeof signedCert;
    } = {},
  ): RunActionMessage => {
    const id = over.id ?? `fake-${randomUUID()}`;
    const expires = new Date(over.expires ?? Date.now() + 600_000).toISOString();
    const nonce = over.nonce ?? randomUUID().replaceAll('-', '');
    const args = { target: 'box' };
    const signer = over.signer ?? approver;
    const signature = signRaw(
      signer.privateKey,
      signer.publicKey,
      dispatchBytes({
        v: 1,
        runner: 'edge',
        request_id: id,
        action: 'ops.wipe',
        pack_hash: packHash,
        args,
        limits: {},
        expires_at: expires,
        nonce,
      }),
    );
    return {
      type: 'run_action',
      request_id: id,
      action: 'ops.wipe',
      pack: 'ops',
      pack_hash: packHash,
      args: over.args ?? args,
      limits: {},
      reason: 'forged?',
      principal: { type: 'user', id: 'mallory' },
      approval: {
        approvers: ['alice'],
        signature,
        key_id: 'k1',
        expires_at: expires,
        nonce,
        cert: over.cert ?? signedCert,
      },
    };
  };
  const dispatch = async (m: RunActionMessage | Record<string, unknown>) => {
    const id = String((m as { request_id: string }).request_id);
    send(m);
    return until(() => results.get(id), 15_000, `result of ${id}`);
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'airlock-fakecp-'));
    const port = await freePort();
    wss = new WebSocketServer({ host: '127.0.0.1', port, path: '/api/v1/runners/connect' });
    wss.on('connection', (ws) => {
      send = (m) => ws.send(JSON.stringify(m));
      ws.on('message', (data: Buffer) => {
        const m = JSON.parse(data.toString()) as {
          type: string;
          request_id?: string;
          packs?: { hash: string }[];
          status?: string;
          error?: { code: string };
        };
        if (m.type === 'hello') {
          packHash = m.packs?.[0]?.hash ?? '';
          ws.send(
            JSON.stringify({
              type: 'welcome',
              protocol: 1,
              runner_id: 'fake',
              session_id: 's',
              server_version: '0.0.0',
              heartbeat_s: 30,
            }),
          );
        }
        if (m.type === 'result' && m.request_id !== undefined) {
          results.set(m.request_id, { status: m.status!, ...(m.error === undefined ? {} : { error: m.error }) });
          ws.send(JSON.stringify({ type: 'ack', request_id: m.request_id }));
        }
      });
    });
    const packs = writeOpsPack(dir);
    const home = join(dir, 'edge');
    mkdirSync(home, { recursive: true });
    const cfg = join(home, 'runner.yaml');
    writeFileSync(
      cfg,
      `name: edge\npacks: [${JSON.stringify(packs)}]\nlog: ${JSON.stringify(join(home, 'events.jsonl'))}\nsigning:\n  root_public_key: ${root.publicKey}\n  require_tiers: [destructive]\n`,
    );
    runner = spawnAirlock(['runner', 'connect', '--config', cfg, '--server', `http://127.0.0.1:${port}`], {
      AIRLOCK_HOME: home,
      AIRLOCK_RUNNER_KEY: 'alr_fake_token',
    });
    await runner.waitFor(/connected to the control plane/);
    await until(() => packHash !== '', 10_000, 'hello');
  });
  after(async () => {
    await runner?.kill('SIGKILL');
    wss?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('unsigned, forged, tampered, uncertified, expired and replayed envelopes are refused, each with its code; the signed one runs', async () => {
    const { approval: _a, ...unsigned } = envelope();
    assert.equal((await dispatch(unsigned)).error?.code, 'signature_missing');
    assert.equal((await dispatch(envelope({ signer: generateSigningKey() }))).error?.code, 'signature_invalid');
    assert.equal((await dispatch(envelope({ args: { target: 'everything' } }))).error?.code, 'signature_invalid');
    const rogueRoot = generateSigningKey();
    assert.equal(
      (
        await dispatch(
          envelope({ cert: { cert, signature: signRaw(rogueRoot.privateKey, rogueRoot.publicKey, certBytes(cert)) } }),
        )
      ).error?.code,
      'cert_untrusted',
    );
    assert.equal((await dispatch(envelope({ expires: Date.now() - 1000 }))).error?.code, 'envelope_expired');
    const good = envelope({ nonce: 'nonce-used-once-0001' });
    const ok = await dispatch(good);
    assert.equal(ok.status, 'success', JSON.stringify(ok));
    // Replays: the same nonce under a new request id, and the very same frame again.
    const again = envelope({ nonce: 'nonce-used-once-0001' });
    assert.equal((await dispatch(again)).error?.code, 'nonce_replayed');
    results.delete(good.request_id);
    send(good);
    await new Promise((r) => setTimeout(r, 500));
    const log = readFileSync(join(dir, 'edge', 'events.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { id: string; status: string; error: { code: string } | null });
    assert.equal(log.filter((e) => e.id === good.request_id).length, 1, 'the replayed frame never ran a second time');
    assert.deepEqual(
      log.map((e) => e.error?.code ?? e.status),
      [
        'signature_missing',
        'signature_invalid',
        'signature_invalid',
        'cert_untrusted',
        'envelope_expired',
        'success',
        'nonce_replayed',
      ],
      'every refusal is in the runner security log',
    );
  });
});
