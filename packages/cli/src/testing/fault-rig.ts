// Test support for the fault tests: one `airlock server` process, runner processes, and the
// checks every fault test ends with (exactly one attempt per run in the runner's log, exactly
// one `run.result` per run on the server, both chains verify).
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { verifyLogFile } from '@airlock/runner';
import { openDatabase } from '@airlock/server';
import { apiClient, mintTestKey, ownerId } from '@airlock/server/testing';
import { type AirlockProcess, freePort, spawnAirlock, until } from './processes.js';

export const FINAL = ['success', 'failure', 'validation_failed', 'error', 'timeout', 'cancelled'];

export class FaultRig {
  server: AirlockProcess | undefined;
  readonly runners = new Map<string, AirlockProcess>();
  api!: ReturnType<typeof apiClient>;
  port = 0;

  constructor(
    readonly dir: string,
    readonly database: string,
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async startServer(env: Record<string, string> = {}): Promise<void> {
    if (this.port === 0) this.port = await freePort();
    this.server = spawnAirlock(['server', '--listen', `127.0.0.1:${this.port}`, '--database', this.database], {
      AIRLOCK_HOME: join(this.dir, 'server'),
      ...env,
    });
    await this.server.waitFor(/listening on/);
    if (this.api === undefined) {
      const db = await openDatabase(this.database);
      try {
        const org = (await db.kysely.selectFrom('orgs').select('id').executeTakeFirstOrThrow()).id;
        const key = await mintTestKey(db, org, await ownerId(db, org), [
          'runs:read',
          'runs:write',
          'runners:read',
          'runners:write',
          'packs:read',
          'packs:trust',
          'audit:read',
        ]);
        this.api = apiClient(this.url, key);
      } finally {
        await db.close();
      }
    }
  }

  home(rn: string): string {
    return join(this.dir, rn);
  }

  logPath(rn: string): string {
    return join(this.home(rn), 'events.jsonl');
  }

  /** Create (first time) and start a runner; `home` may be elsewhere (a small tmpfs). */
  async startRunner(
    rn: string,
    opts: { env?: Record<string, string>; server?: string; packs?: string[]; wait?: boolean } = {},
  ): Promise<AirlockProcess> {
    const home = this.home(rn);
    const config = join(home, 'runner.yaml');
    const extra: string[] = [];
    if (!existsSync(config)) {
      mkdirSync(home, { recursive: true });
      writeFileSync(
        config,
        `name: ${rn}\npacks: ${JSON.stringify(opts.packs ?? [])}\nlog: ${JSON.stringify(this.logPath(rn))}\n`,
      );
      const created = await this.api('POST', '/api/v1/runners', { name: rn, labels: {} });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      extra.push('--bootstrap-key', created.body.bootstrap_key as string);
    }
    const p = spawnAirlock(['runner', 'connect', '--config', config, '--server', opts.server ?? this.url, ...extra], {
      AIRLOCK_HOME: home,
      ...opts.env,
    });
    this.runners.set(rn, p);
    if (opts.wait !== false) await p.waitFor(/connected to the control plane/, 30_000);
    return p;
  }

  async trustAll(): Promise<void> {
    for (const p of (await this.api('GET', '/api/v1/packs?status=pending')).body.packs as { id: string }[])
      assert.equal((await this.api('POST', `/api/v1/packs/${p.id}/trust`, { comment: 'faults' })).status, 200);
  }

  async run(runner: string, action: string, args: Record<string, unknown>, limits?: Record<string, number>) {
    const r = await this.api('POST', '/api/v1/runs', {
      runner,
      action,
      args,
      reason: 'fault test',
      ...(limits === undefined ? {} : { limits }),
    });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body.id as string;
  }

  async status(id: string): Promise<{ status: string; error: { code: string; message: string } | null }> {
    return (await this.api('GET', `/api/v1/runs/${id}`)).body;
  }

  final(id: string, ms = 60_000) {
    return until(
      async () => {
        const r = await this.status(id).catch(() => undefined);
        return r !== undefined && FINAL.includes(r.status) ? r : undefined;
      },
      ms,
      `run ${id} to finish`,
    );
  }

  attempts(rn: string, id: string): { id: string; status: string }[] {
    if (!existsSync(this.logPath(rn))) return [];
    const text = readFileSync(this.logPath(rn), 'utf8').trim();
    if (text === '') return [];
    return text
      .split('\n')
      .map((l) => JSON.parse(l) as { id: string; status: string })
      .filter((e) => e.id === id);
  }

  /** Exactly one attempt per run on the runner, one run.result per run on the server; chains verify. */
  async assertExactlyOnce(rn: string, ids: string[]): Promise<void> {
    for (const id of ids) assert.equal(this.attempts(rn, id).length, 1, `run ${id}: one attempt in ${rn}'s log`);
    const log = verifyLogFile(this.logPath(rn));
    assert.equal(log.ok, true, JSON.stringify(log));
    const db = await openDatabase(this.database);
    try {
      const count = async (id: string): Promise<number> =>
        (
          await db.kysely
            .selectFrom('audit_events')
            .select('seq')
            .where('id', '=', id)
            .where('kind', '=', 'run.result')
            .execute()
        ).length;
      for (const id of ids) {
        // The run turns final just before its run.result is appended (and, after a server
        // crash in between, when the runner re-sends the result): wait for it, then no more.
        await until(async () => (await count(id)) >= 1, 30_000, `run ${id}: its run.result event`).catch(
          () => undefined,
        );
        assert.equal(await count(id), 1, `run ${id}: one run.result event on the server`);
      }
    } finally {
      await db.close();
    }
    const verify = (await this.api('GET', '/api/v1/audit/verify')).body;
    assert.equal(verify.ok, true, JSON.stringify(verify));
  }

  async stopAll(): Promise<void> {
    for (const p of this.runners.values()) await p.kill('SIGKILL');
    await this.server?.kill('SIGKILL');
  }
}

/** Peak and current resident memory of a process, in bytes (Linux /proc). */
export function memoryOf(pid: number): { rss: number; hwm: number } {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string): number => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(s)?.[1] ?? 0) * 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}
