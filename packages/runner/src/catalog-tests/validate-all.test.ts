// Acceptance: the whole action-pack catalog in packs/ loads, is well-formed beyond what the
// loader checks (metadata, bounded limits, examples that validate and render), and the
// packs whose services do not exist on this machine are refused cleanly by the engine.
import assert from 'node:assert/strict';
import { existsSync, realpathSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { type ActionSpec, BUILTIN_LIMITS, renderArgv, validateArgs } from '@airlock/core';
import { type Catalog, loadCatalog } from '../catalog.js';
import { verifyLogFile } from '../security-log.js';
import { type TestRunner, tempDir, testRunner } from '../testing/fixture.js';
import { describeRun, packsDir, runAction } from './support.js';

const REQUIRED_PACKS = [
  'linux-core',
  'docker',
  'postgres',
  'cassandra',
  'nginx',
  'kubernetes',
  'redis',
  'git',
  'showcase',
];

/** Ceilings every action must stay under unless listed in LONG_RUNNING. */
const MAX_TIMEOUT_S = 600;
const MAX_OUTPUT_BYTES = 16 * 1024 * 1024;

/**
 * Actions allowed a longer timeout ceiling than MAX_TIMEOUT_S, each with the reason. Any
 * other action whose timeout_s_max exceeds 600 s fails the test, so a new long-running
 * action has to be justified here.
 */
const LONG_RUNNING: Readonly<Record<string, { max: number; why: string }>> = {
  'cassandra.repair': { max: 3600, why: 'anti-entropy repair streams data between replicas for minutes to hours' },
  'cassandra.flush': { max: 1800, why: 'flushing every memtable of a large keyspace' },
  'postgres.vacuum_analyze': { max: 3600, why: 'VACUUM of a large table (the default stays 600 s)' },
  'docker.image_prune': { max: 1800, why: 'deleting many image layers on a slow disk' },
  'redis.bigkeys': { max: 1800, why: 'SCAN of the whole keyspace with pauses to limit the load' },
  'k8s.rollout_status': { max: 1000, why: 'waits for a rollout for up to 15 min (`wait`), plus kubectl start-up' },
  'showcase.sleep': { max: 610, why: 'sleeps up to 600 s to demonstrate timeouts; needs a little headroom' },
};

/** Services with no server on this machine: the binary each action of the pack needs. */
const NO_SERVICE_HERE: Readonly<Record<string, string>> = {
  docker: 'docker',
  cassandra: 'nodetool',
  kubernetes: 'kubectl',
};

/**
 * Resolve like the runner (realpath), but tolerate paths that do not exist on this host:
 * examples name paths of the hosts they are written for (/srv/app, /var/log/nginx/shop.access.log).
 * A missing path is then checked lexically against allow/deny.
 */
function tolerantResolve(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
}

describe('action-pack catalog: static checks', () => {
  let catalog: Catalog;
  let actions: { pack: string; action: ActionSpec }[];

  before(() => {
    catalog = loadCatalog([packsDir]);
    actions = catalog.packs.flatMap((p) => p.pack.actions.map((a) => ({ pack: p.pack.name, action: a })));
  });

  test('every pack under packs/ loads with zero failures', () => {
    assert.ok(existsSync(packsDir), `${packsDir} does not exist`);
    assert.deepEqual(
      catalog.failures.map((f) => `${f.dir}: ${f.errors.join('; ')}`),
      [],
      'pack load failures',
    );
    assert.ok(catalog.packs.length >= REQUIRED_PACKS.length, `only ${catalog.packs.length} packs loaded`);
  });

  test('the required packs exist', () => {
    const names = catalog.packs.map((p) => p.pack.name);
    for (const name of REQUIRED_PACKS)
      assert.ok(names.includes(name), `pack ${name} is missing (have: ${names.join(', ')})`);
  });

  test('at least 60 actions, ids unique and prefixed with the pack namespace', () => {
    assert.ok(actions.length >= 60, `only ${actions.length} actions`);
    const ids = actions.map((a) => a.action.id);
    const dupes = ids.filter((id, i) => ids.indexOf(id) !== i);
    assert.deepEqual(dupes, [], 'duplicate action ids');
    for (const p of catalog.packs) {
      for (const a of p.pack.actions)
        assert.ok(a.id.startsWith(`${p.pack.namespace}.`), `${a.id} is not in namespace ${p.pack.namespace}`);
    }
  });

  test('every action has a title, a description and a risk tier', () => {
    for (const { action: a } of actions) {
      assert.ok(a.title.trim().length > 0, `${a.id}: empty title`);
      assert.ok(a.description.trim().length >= 20, `${a.id}: description too short`);
      assert.ok(['read', 'change', 'destructive'].includes(a.risk), `${a.id}: risk ${a.risk}`);
    }
  });

  test('every action has bounded limits, below the built-in maxima', () => {
    const problems: string[] = [];
    for (const { action: a } of actions) {
      const t = a.limits.timeout_s;
      const o = a.limits.output_bytes;
      const allowance = LONG_RUNNING[a.id];
      const tMax = allowance?.max ?? MAX_TIMEOUT_S;
      if (t.max > tMax) problems.push(`${a.id}: timeout_s max ${t.max} > ${tMax}`);
      if (allowance === undefined && t.max >= BUILTIN_LIMITS.timeout_s.max)
        problems.push(`${a.id}: timeout_s max is the built-in maximum`);
      if (o.max > MAX_OUTPUT_BYTES) problems.push(`${a.id}: output_bytes max ${o.max} > ${MAX_OUTPUT_BYTES}`);
      if (o.max >= BUILTIN_LIMITS.output_bytes.max) problems.push(`${a.id}: output_bytes max is the built-in maximum`);
      if (!(t.min <= t.default && t.default <= t.max)) problems.push(`${a.id}: timeout_s default outside its bounds`);
      if (!(o.min <= o.default && o.default <= o.max))
        problems.push(`${a.id}: output_bytes default outside its bounds`);
    }
    // An allowance for an action that no longer needs it (or no longer exists) is stale.
    for (const [id, { max }] of Object.entries(LONG_RUNNING)) {
      const found = actions.find((a) => a.action.id === id);
      if (found === undefined) problems.push(`LONG_RUNNING names ${id}, which no pack declares`);
      else if (found.action.limits.timeout_s.max <= MAX_TIMEOUT_S)
        problems.push(`LONG_RUNNING entry for ${id} is not needed`);
      else if (found.action.limits.timeout_s.max !== max)
        problems.push(`LONG_RUNNING ${id}: pack says ${found.action.limits.timeout_s.max}, table ${max}`);
    }
    assert.deepEqual(problems, []);
  });

  test('every example validates and renders', () => {
    const problems: string[] = [];
    let count = 0;
    for (const { action: a } of actions) {
      a.examples.forEach((ex, i) => {
        count++;
        const v = validateArgs(a, ex.args, { resolvePath: tolerantResolve });
        if (!v.ok) {
          problems.push(`${a.id} examples[${i}]: ${v.errors.map((e) => `${e.field}: ${e.message}`).join('; ')}`);
          return;
        }
        const r = renderArgv(a, v.values);
        if (!r.ok) {
          problems.push(`${a.id} examples[${i}] render: ${r.errors.map((e) => `${e.field}: ${e.message}`).join('; ')}`);
          return;
        }
        if (a.kind === 'exec' && r.argv[0] !== a.argv[0])
          problems.push(`${a.id} examples[${i}]: argv[0] ${String(r.argv[0])}`);
        if (r.argv.some((el) => el.includes('\0'))) problems.push(`${a.id} examples[${i}]: NUL in argv`);
      });
    }
    assert.deepEqual(problems, []);
    assert.ok(count >= 60, `only ${count} examples in the catalog`);
  });
});

describe('packs without a service here: argv and binary_not_found', () => {
  let catalog: Catalog;
  let r: TestRunner;
  let emptyPath: ReturnType<typeof tempDir>;

  before(() => {
    catalog = loadCatalog([packsDir]);
    emptyPath = tempDir('airlock-empty-path-');
    r = testRunner([packsDir], { path: emptyPath.dir });
  });
  after(() => {
    r.cleanup();
    emptyPath.cleanup();
  });

  for (const [packName, bin] of Object.entries(NO_SERVICE_HERE)) {
    test(`${packName}: every example renders with ${bin} as argv[0] and is refused with binary_not_found without it`, async () => {
      const loaded = catalog.findPack(packName);
      assert.ok(loaded !== undefined, `pack ${packName} not loaded`);
      assert.ok(loaded.pack.actions.length > 0);
      let runs = 0;
      for (const a of loaded.pack.actions) {
        assert.ok(a.requires.includes(bin), `${a.id}: ${bin} is not in requires (${a.requires.join(', ')})`);
        const argsList = a.examples.length > 0 ? a.examples.map((e) => e.args) : [{}];
        for (const args of argsList) {
          const v = validateArgs(a, args, { resolvePath: tolerantResolve });
          assert.ok(v.ok, `${a.id} ${JSON.stringify(args)}: ${v.ok ? '' : v.errors.map((e) => e.message).join('; ')}`);
          const rendered = renderArgv(a, v.values);
          assert.ok(rendered.ok, `${a.id}: render failed`);
          if (a.kind === 'exec') assert.equal(rendered.argv[0], bin, `${a.id}: argv[0]`);
          else assert.ok(a.script !== undefined, `${a.id}: script action without script`);

          const ran = await runAction(r, a.id, args);
          assert.equal(ran.res.status, 'error', describeRun(ran));
          assert.equal(ran.res.error?.code, 'binary_not_found', describeRun(ran));
          assert.equal(ran.res.exitCode, null);
          assert.equal(ran.lines.length, 0, `${a.id}: no process may run`);
          runs++;
        }
      }
      assert.ok(runs >= loaded.pack.actions.length);
    });
  }

  test('every refusal above is in the security log, and the log verifies', () => {
    const v = verifyLogFile(r.config.logPath);
    assert.equal(v.ok, true, JSON.stringify(v));
  });
});
