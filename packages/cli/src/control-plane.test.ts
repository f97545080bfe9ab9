// End to end with real processes: `airlock server` and two `airlock runner connect`
// processes, on SQLite and on PostgreSQL. Covers dispatch, streaming, cancel, kill -9 of a
// runner mid-action, a server restart mid-action, trust-on-hash after a pack change, and
// revocation.
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { openDatabase } from '@airlock/server';
import { apiClient, mintTestKey, ownerId, testDatabases } from '@airlock/server/testing';
import { type AirlockProcess, freePort, repoRoot, spawnAirlock, until } from './testing/processes.js';

for (const { name, create } of testDatabases()) {
  describe(`control plane with real processes (${name})`, () => {
    let t: Awaited<ReturnType<typeof create>>;
    let dir: string;
    let port: number;
    let url: string;
    let server: AirlockProcess;
    const runners = new Map<string, AirlockProcess>();
    let api: ReturnType<typeof apiClient>;

    const startServer = async (): Promise<void> => {
      server = spawnAirlock(['server', '--listen', `127.0.0.1:${port}`, '--database', t.url], {
        AIRLOCK_HOME: join(dir, 'server'),
      });
      await server.waitFor(/listening on/);
    };
    const runnerConfig = (rn: string, packs: string): string => {
      const home = join(dir, rn);
      mkdirSync(home, { recursive: true });
      const file = join(home, 'runner.yaml');
      writeFileSync(
        file,
        `name: ${rn}\npacks: [${JSON.stringify(packs)}]\nlog: ${JSON.stringify(join(home, 'events.jsonl'))}\n`,
      );
      return file;
    };
    const startRunner = async (rn: string, extra: string[] = []): Promise<AirlockProcess> => {
      const p = spawnAirlock(
        ['runner', 'connect', '--config', join(dir, rn, 'runner.yaml'), '--server', url, ...extra],
        { AIRLOCK_HOME: join(dir, rn) },
      );
      runners.set(rn, p);
      await p.waitFor(/connected to the control plane|connecting to/);
      return p;
    };
    const runnerRow = async (rn: string) =>
      (await api('GET', '/api/v1/runners')).body.runners.find((r: { name: string }) => r.name === rn);
    const run = async (runner: string, action: string, args: Record<string, unknown>, reason = 'test') => {
      const r = await api('POST', '/api/v1/runs', { runner, action, args, reason });
      return r;
    };
    const runStatus = async (id: string) => (await api('GET', `/api/v1/runs/${id}`)).body;
    const final = (id: string, ms = 30_000) =>
      until(
        async () => {
          const r = await runStatus(id);
          return ['success', 'failure', 'validation_failed', 'error', 'timeout', 'cancelled'].includes(r.status)
            ? r
            : undefined;
        },
        ms,
        `run ${id} to finish`,
      );

    before(async () => {
      t = await create();
      dir = mkdtempSync(join(tmpdir(), 'airlock-e2e-'));
      port = await freePort();
      url = `http://127.0.0.1:${port}`;
      await startServer();
      const db = await openDatabase(t.url);
      const org = (await db.kysely.selectFrom('orgs').select('id').executeTakeFirstOrThrow()).id;
      const key = await mintTestKey(db, org, await ownerId(db, org), [
        'runs:read',
        'runs:write',
        'runners:read',
        'runners:write',
        'packs:read',
        'packs:trust',
      ]);
      await db.close();
      api = apiClient(url, key);
      // r1 serves the bundled showcase pack; r2 a copy we can change.
      cpSync(join(repoRoot, 'packs', 'showcase'), join(dir, 'r2-packs', 'showcase'), { recursive: true });
      runnerConfig('r1', join(repoRoot, 'packs', 'showcase'));
      runnerConfig('r2', join(dir, 'r2-packs', 'showcase'));
      for (const rn of ['r1', 'r2']) {
        const created = await api('POST', '/api/v1/runners', { name: rn, labels: { team: 'e2e' } });
        assert.equal(created.status, 201, JSON.stringify(created.body));
        await startRunner(rn, ['--bootstrap-key', created.body.bootstrap_key]);
      }
      await until(
        async () => (await runnerRow('r1'))?.online && (await runnerRow('r2'))?.online,
        20_000,
        'both runners online',
      );
      const packs = (await api('GET', '/api/v1/packs')).body.packs;
      assert.equal(packs.length, 1, 'both runners advertise the same showcase hash');
      assert.equal((await api('POST', `/api/v1/packs/${packs[0].id}/trust`, { comment: 'e2e' })).status, 200);
    });

    after(async () => {
      for (const p of runners.values()) await p.kill('SIGKILL');
      await server?.kill('SIGKILL');
      await t.drop();
      rmSync(dir, { recursive: true, force: true });
    });

    test('dispatch to each runner and stream the output', async () => {
      for (const rn of ['r1', 'r2']) {
        const r = await run(rn, 'showcase.count', { n: 3, delay_ms: 50 });
        assert.equal(r.status, 201, JSON.stringify(r.body));
        const done = await final(r.body.id);
        assert.equal(done.status, 'success');
        const lines = (await api('GET', `/api/v1/runs/${r.body.id}/output`)).body.lines;
        assert.equal(lines.length, 3);
      }
    });

    test('cancel a running action', async () => {
      const r = await run('r1', 'showcase.sleep', { seconds: 60 });
      await until(async () => (await runStatus(r.body.id)).status === 'running', 10_000, 'running');
      assert.equal((await api('POST', `/api/v1/runs/${r.body.id}/cancel`, { reason: 'e2e' })).status, 202);
      assert.equal((await final(r.body.id)).status, 'cancelled');
    });

    test('kill -9 of the runner mid-action: a definite status after restart, never a second execution', async () => {
      const r = await run('r1', 'showcase.sleep', { seconds: 30 });
      await until(async () => (await runStatus(r.body.id)).status === 'running', 10_000, 'running');
      await runners.get('r1')!.kill('SIGKILL');
      await startRunner('r1');
      const done = await final(r.body.id);
      assert.equal(done.status, 'error');
      assert.equal(done.error.code, 'runner_restarted');
      const events = readFileSync(join(dir, 'r1', 'events.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { id: string; status: string });
      assert.deepEqual(
        events.filter((e) => e.id === r.body.id).map((e) => e.status),
        ['error'],
        'exactly one attempt recorded for the interrupted run',
      );
      // The runner is usable again.
      const again = await run('r1', 'showcase.echo', { message: 'back' });
      assert.equal((await final(again.body.id)).status, 'success');
    });

    test('server restart mid-action: the result arrives after the runner reconnects', async () => {
      const r = await run('r2', 'showcase.sleep', { seconds: 3 });
      await until(async () => (await runStatus(r.body.id)).status === 'running', 10_000, 'running');
      await server.kill('SIGKILL');
      await new Promise((res) => setTimeout(res, 500));
      await startServer();
      const done = await final(r.body.id, 45_000);
      assert.equal(done.status, 'success');
      assert.match(done.audit_hash, /^sha256:/);
    });

    test('a changed pack on a runner blocks dispatch until trusted', async () => {
      const file = join(dir, 'r2-packs', 'showcase', 'actions', 'echo.yaml');
      writeFileSync(
        file,
        readFileSync(file, 'utf8').replace('title: Echo a message', 'title: Echo a message (changed)'),
      );
      const reload = spawnAirlock(['runner', 'reload', '--config', join(dir, 'r2', 'runner.yaml')], {
        AIRLOCK_HOME: join(dir, 'r2'),
      });
      await reload.waitFor(/sent SIGHUP/);
      const pending = await until(
        async () => (await api('GET', '/api/v1/packs?status=pending')).body.packs[0] as { id: string } | undefined,
        15_000,
        'the changed pack to show as pending',
      );
      const blocked = await run('r2', 'showcase.echo', { message: 'x' });
      assert.equal(blocked.status, 409);
      assert.equal(blocked.body.error.code, 'pack_untrusted');
      const detail = await until(
        async () => {
          const d = (await api('GET', `/api/v1/packs/${pending.id}`)).body;
          return d.files.some((f: { diff: string | null }) => f.diff !== null) ? d : undefined;
        },
        10_000,
        'file contents for the diff',
      );
      const changed = detail.files.filter((f: { change: string }) => f.change === 'changed');
      assert.deepEqual(
        changed.map((f: { path: string }) => f.path),
        ['actions/echo.yaml'],
      );
      assert.match(changed[0].diff, /\+ title: Echo a message \(changed\)/);
      assert.equal((await api('POST', `/api/v1/packs/${pending.id}/trust`, {})).status, 200);
      const ok = await run('r2', 'showcase.echo', { message: 'x' });
      assert.equal(ok.status, 201);
      assert.equal((await final(ok.body.id)).status, 'success');
    });

    test('a revoked runner is refused at once and its connection closed', async () => {
      const r1 = await runnerRow('r1');
      assert.equal((await api('POST', `/api/v1/runners/${r1.id}/revoke`, { reason: 'e2e' })).status, 200);
      const proc = runners.get('r1')!;
      await until(() => proc.child.exitCode !== null, 10_000, 'the revoked runner to exit');
      assert.equal(proc.child.exitCode, 1);
      assert.match(proc.output(), /revoked/);
      const again = spawnAirlock(['runner', 'connect', '--config', join(dir, 'r1', 'runner.yaml'), '--server', url], {
        AIRLOCK_HOME: join(dir, 'r1'),
      });
      await until(() => again.child.exitCode !== null, 10_000, 'the refused runner to exit');
      assert.equal(again.child.exitCode, 1);
      assert.match(again.output(), /refused the runner token/);
    });
  });
}
