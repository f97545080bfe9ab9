import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { buildProgram } from './main.js';

const root = resolve(fileURLToPath(import.meta.url), '../../../..');
const bin = join(root, 'packages', 'cli', 'bin', 'airlock.js');

describe('airlock CLI', () => {
  let home: string;
  before(() => {
    home = mkdtempSync(join(tmpdir(), 'airlock-cli-'));
  });
  after(() => rmSync(home, { recursive: true, force: true }));

  const airlock = (...args: string[]) => {
    const r = spawnSync(process.execPath, [bin, ...args], {
      cwd: root,
      encoding: 'utf8',
      env: { ...process.env, AIRLOCK_HOME: home, AIRLOCK_RUNNER_CONFIG: '' },
      timeout: 60_000,
    });
    return { code: r.status, out: r.stdout, err: r.stderr };
  };

  test('--help lists the verbs and --version prints the version', () => {
    const h = airlock('--help');
    assert.equal(h.code, 0);
    for (const verb of ['up', 'pack', 'action', 'runner', 'audit', 'events', 'server', 'mcp', 'sandbox', 'doctor']) {
      assert.match(h.out, new RegExp(`\\n  ${verb}\\b`), verb);
    }
    const v = airlock('--version');
    assert.equal(v.code, 0);
    assert.match(v.out.trim(), /^\d+\.\d+\.\d+$/);
  });

  test('every verb has --help', () => {
    const paths: string[][] = [];
    const walk = (cmd: Command, prefix: string[]): void => {
      for (const sub of cmd.commands) {
        const p = [...prefix, sub.name()];
        paths.push(p);
        walk(sub, p);
      }
    };
    walk(buildProgram(), []);
    assert.ok(paths.length >= 15, `only ${paths.length} commands`);
    for (const p of paths) {
      const r = airlock(...p, '--help');
      assert.equal(r.code, 0, `${p.join(' ')} --help: ${r.err}`);
      assert.match(r.out, /Usage: airlock/, p.join(' '));
      assert.ok(r.out.length > 80, `${p.join(' ')} --help is too thin`);
    }
  });

  test('action run linux.uptime prints uptime and appends a verifiable event; one edited byte fails verify', () => {
    const r = airlock('action', 'run', 'linux.uptime', '--reason', 'smoke');
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /load average/);
    assert.match(r.err, /linux\.uptime: success/);
    const v = airlock('audit', 'verify');
    assert.equal(v.code, 0, v.out + v.err);
    assert.match(v.out, /ok, \d+ events/);
    const log = join(home, 'runner', 'events.jsonl');
    airlock('action', 'run', 'showcase.echo', '--arg', 'message=second', '--reason', 'two');
    const text = readFileSync(log, 'utf8');
    const i = text.indexOf('"reason":"smoke"');
    assert.ok(i > 0);
    writeFileSync(log, `${text.slice(0, i + 10)}S${text.slice(i + 11)}`); // smoke → Smoke
    const bad = airlock('audit', 'verify');
    assert.equal(bad.code, 1);
    assert.match(bad.out, /BROKEN at index 0/);
    writeFileSync(log, text);
    assert.equal(airlock('audit', 'verify').code, 0);
  });

  test('metacharacters stay literal through the CLI', () => {
    const marker = join(home, 'pwned');
    const r = airlock('action', 'run', 'showcase.echo', '--arg', `message=$(touch ${marker})`, '--reason', 'literal');
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out.trim(), `$(touch ${marker})`);
    assert.equal(existsSync(marker), false);
  });

  test('exit codes: validation_failed 3, unknown action 3, usage 2', () => {
    assert.equal(airlock('action', 'run', 'showcase.echo', '--arg', 'message=-n', '--reason', 'x').code, 3);
    assert.equal(airlock('action', 'run', 'nope.nothing', '--reason', 'x').code, 3);
    assert.equal(airlock('action', 'run', 'showcase.echo').code, 2);
    assert.equal(airlock('no-such-verb').code, 2);
    const bad = airlock('action', 'run', 'showcase.echo', '--arg', 'broken', '--reason', 'x');
    assert.equal(bad.code, 1);
    assert.match(bad.err, /--arg "broken": expected NAME=VALUE/);
  });

  test('pack validate prints hash and actions; pack hash agrees; errors exit 1 naming file and field', () => {
    const v = airlock('pack', 'validate', 'packs/linux-core', '--json');
    assert.equal(v.code, 0, v.err);
    const j = JSON.parse(v.out) as { hash: string; actions: unknown[] };
    assert.match(j.hash, /^sha256:[0-9a-f]{64}$/);
    assert.ok(j.actions.length > 5);
    assert.equal(airlock('pack', 'hash', 'packs/linux-core').out.trim(), j.hash);
    const dir = join(home, 'badpack');
    const s = airlock('pack', 'new', 'badpack', '--dir', home);
    assert.equal(s.code, 0, s.err);
    writeFileSync(
      join(dir, 'actions', 'greet.yaml'),
      readFileSync(join(dir, 'actions', 'greet.yaml'), 'utf8').replace(
        'max_length: 64',
        'max_length: 64\n    bogus: 1',
      ),
    );
    const bad = airlock('pack', 'validate', dir);
    assert.equal(bad.code, 1);
    assert.match(bad.out, /actions\/greet\.yaml: args\.who/);
  });

  test('pack new scaffolds a pack whose test passes', () => {
    const r = airlock('pack', 'new', 'demo-pack', '--dir', home);
    assert.equal(r.code, 0, r.err);
    const v = airlock('pack', 'validate', join(home, 'demo-pack'));
    assert.equal(v.code, 0, v.out);
    const t = airlock('pack', 'test', join(home, 'demo-pack'));
    assert.equal(t.code, 0, t.out + t.err);
    assert.match(t.out, /1 passed, 0 failed/);
  });

  test('docs/packs.md is generated from the catalog and up to date', () => {
    const r = airlock('pack', 'docs', 'packs');
    assert.equal(r.code, 0, r.err);
    assert.equal(
      r.out,
      readFileSync(join(root, 'docs', 'packs.md'), 'utf8'),
      'run "npm run docs:packs" and commit docs/packs.md',
    );
  });

  test('runner state advertises identity, version, packs with hashes and capabilities', () => {
    const r = airlock('runner', 'state', '--json');
    assert.equal(r.code, 0, r.err);
    const s = JSON.parse(r.out) as {
      version: string;
      capabilities: string[];
      packs: { name: string; hash: string; actions: unknown[] }[];
    };
    assert.deepEqual(s.capabilities, ['actions']);
    assert.ok(s.packs.some((p) => p.name === 'linux-core' && /^sha256:/.test(p.hash) && p.actions.length > 0));
  });

  test('events tail shows the latest events', () => {
    const r = airlock('events', 'tail', '--lines', '2');
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out.trim().split('\n').length, 2);
    assert.match(r.out, /showcase\.echo|linux\.uptime|nope\.nothing/);
  });

  test('a broken config names the key', () => {
    const cfg = join(home, 'runner.yaml');
    writeFileSync(cfg, 'concurrency: 1000\nbogus: 1\n');
    const r = airlock('runner', 'state', '--config', cfg);
    assert.equal(r.code, 1);
    assert.match(r.err, /runner\.yaml: concurrency: /);
    assert.match(r.err, /bogus/);
  });

  test('up (npm start) brings up the control plane and a local runner; the printed API key dispatches with curl-like calls', async () => {
    const { freePort, spawnAirlock, until } = await import('./testing/processes.js');
    const port = await freePort();
    const up = spawnAirlock(['up', '--listen', `127.0.0.1:${port}`, '--no-sandbox'], {
      AIRLOCK_HOME: join(home, 'up'),
    });
    try {
      await up.waitFor(/ready \(Ctrl-C to stop\)/, 60_000);
      const out = up.output();
      assert.match(out, /local runner +"local" connected: 9 packs/);
      assert.match(out, /user +admin/);
      const password = /password +(\S+)/.exec(out)?.[1];
      assert.ok(password !== undefined && password.length >= 16, out);
      const key = /API key +(alk_\S+)/.exec(out)?.[1];
      assert.ok(key !== undefined, out);
      const base = `http://127.0.0.1:${port}`;
      const headers = { authorization: `Bearer ${key}`, 'content-type': 'application/json' };
      const created = await fetch(`${base}/api/v1/runs`, {
        method: 'POST',
        headers,
        body: JSON.stringify({
          runner: 'local',
          action: 'showcase.echo',
          args: { message: 'hello' },
          reason: 'npm start test',
        }),
      });
      assert.equal(created.status, 201);
      const id = ((await created.json()) as { id: string }).id;
      const done = await until(
        async () => {
          const r = (await (await fetch(`${base}/api/v1/runs/${id}`, { headers })).json()) as { status: string };
          return r.status === 'success' ? r : undefined;
        },
        20_000,
        'the run',
      );
      assert.equal(done.status, 'success');
      const output = (await (await fetch(`${base}/api/v1/runs/${id}/output`, { headers })).json()) as {
        lines: { line: string }[];
      };
      assert.deepEqual(
        output.lines.map((l) => l.line),
        ['hello'],
      );
    } finally {
      await up.kill('SIGINT');
    }
  });
});
