import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { AirlockError, actionSpecJsonSchema, packHash, packManifestJsonSchema } from '@airlock/core';
import { loadCatalog, loadPackDir, readPackFiles } from '@airlock/runner';
import type { Command } from 'commander';
import { ExitCode } from '../exit-codes.js';
import { localPrincipal, openLocalRunner } from '../local-runner.js';
import { emit, runnerConfigFrom } from '../options.js';
import { renderPackDocs } from '../pack-docs.js';
import { scaffoldPack } from '../pack-scaffold.js';
import { parsePackTest } from '../pack-test.js';

/** `airlock pack …`: validate, hash, scaffold and document action packs. */
export function registerPackCommands(program: Command): void {
  const pack = program
    .command('pack')
    .description('validate, hash, scaffold and document action packs')
    .addHelpText('after', '\nThe pack format is described in docs/action-packs.md.');

  pack
    .command('validate')
    .description('validate a pack folder; print its hash and actions, or every error (exit 1)')
    .argument('<dir>', 'pack folder (holds pack.yaml)')
    .option('--json', 'print the result as JSON')
    .action((dir: string, opts: { json?: boolean }) => {
      const res = loadPackDir(resolve(dir));
      if (!res.ok) {
        emit(
          opts.json === true,
          { ok: false, dir, errors: res.failure.errors },
          () =>
            `${res.failure.errors.map((e) => `error: ${e}`).join('\n')}\n${dir}: ${res.failure.errors.length} error(s)\n`,
        );
        process.exitCode = ExitCode.failure;
        return;
      }
      const p = res.value.pack;
      emit(
        opts.json === true,
        {
          ok: true,
          name: p.name,
          version: p.version,
          hash: p.hash,
          actions: p.actions.map((a) => ({ id: a.id, risk: a.risk, title: a.title })),
        },
        () =>
          `${p.name} ${p.version}  ${p.hash}\n` +
          p.actions.map((a) => `  ${a.id.padEnd(32)} ${a.risk.padEnd(12)} ${a.title}`).join('\n') +
          `\n${p.actions.length} action(s), valid\n`,
      );
    });

  pack
    .command('hash')
    .description('print the content hash of a pack folder (sha256 over the sorted file listing)')
    .argument('<dir>', 'pack folder')
    .option('--json', 'print the hash and file listing as JSON')
    .action((dir: string, opts: { json?: boolean }) => {
      const files = readPackFiles(resolve(dir));
      const hash = packHash(files);
      emit(opts.json === true, { dir, hash, files: files.map((f) => f.path) }, () => `${hash}\n`);
    });

  pack
    .command('new')
    .description('scaffold a new pack with one example action and a test')
    .argument('<name>', 'pack name (lowercase letters, digits, dashes); also the folder created')
    .option('--dir <parent>', 'create the pack inside this folder', '.')
    .option('--namespace <ns>', 'action namespace (default: the name without dashes)')
    .action((name: string, opts: { dir: string; namespace?: string }) => {
      if (!/^[a-z][a-z0-9-]{0,62}$/.test(name)) {
        throw new AirlockError(
          'invalid_args',
          `name ${JSON.stringify(name)}: use lowercase letters, digits and dashes, starting with a letter`,
        );
      }
      const target = resolve(opts.dir, name);
      if (existsSync(target)) throw new AirlockError('invalid_args', `${target} already exists`);
      const ns = opts.namespace ?? name.replace(/-/g, '_');
      const files = scaffoldPack(name, ns);
      for (const [rel, text] of Object.entries(files)) {
        mkdirSync(join(target, rel, '..'), { recursive: true });
        writeFileSync(join(target, rel), text);
      }
      const res = loadPackDir(target);
      if (!res.ok) throw new AirlockError('internal', `scaffold is invalid: ${res.failure.errors.join('; ')}`);
      process.stdout.write(
        `created ${target}\n  ${Object.keys(files).join('\n  ')}\nhash ${res.value.pack.hash}\n` +
          `next: airlock pack validate ${join(opts.dir, name)} && airlock pack test ${join(opts.dir, name)}\n`,
      );
    });

  pack
    .command('test')
    .description("run the tests in a pack's tests/*.yaml for real on this host (separate scratch security log)")
    .argument('<dir>', 'pack folder')
    .option('-c, --config <file>', 'runner config file (YAML), for PATH')
    .action(async (dir: string, opts: { config?: string }) => {
      const packDir = resolve(dir);
      const testDir = join(packDir, 'tests');
      const files = existsSync(testDir)
        ? readdirSync(testDir)
            .filter((f) => f.endsWith('.yaml'))
            .sort()
        : [];
      if (files.length === 0) throw new AirlockError('invalid_args', `${dir}: no tests/*.yaml to run`);
      const scratch = mkdtempSync(join(tmpdir(), 'airlock-pack-test-'));
      const base = runnerConfigFrom(opts);
      const { engine, catalog } = openLocalRunner({
        ...base,
        packDirs: [packDir],
        logPath: join(scratch, 'events.jsonl'),
        trusted: {},
      });
      if (catalog.failures.length > 0)
        throw new AirlockError('invalid_spec', catalog.failures.flatMap((f) => f.errors).join('\n'));
      let failed = 0;
      try {
        for (const f of files) {
          const t = parsePackTest(readFileSync(join(testDir, f), 'utf8'), `tests/${f}`);
          const out: string[] = [];
          const r = await engine.run(
            { action: t.action, args: t.args, reason: `pack test ${f}`, principal: localPrincipal() },
            { onOutput: (l) => void (l.stream === 'stdout' && out.push(l.line)) },
          );
          const problems: string[] = [];
          if (r.status !== t.expect.status)
            problems.push(`status ${r.status}, expected ${t.expect.status}${r.error ? ` (${r.error.message})` : ''}`);
          const stdout = out.join('\n');
          if (t.expect.stdout_contains !== undefined && !stdout.includes(t.expect.stdout_contains)) {
            problems.push(`stdout does not contain ${JSON.stringify(t.expect.stdout_contains)}`);
          }
          if (problems.length === 0) process.stdout.write(`ok   ${f} (${t.action}, ${r.durationMs} ms)\n`);
          else {
            failed++;
            process.stdout.write(`FAIL ${f} (${t.action}): ${problems.join('; ')}\n`);
          }
        }
      } finally {
        rmSync(scratch, { recursive: true, force: true });
      }
      process.stdout.write(`${files.length - failed} passed, ${failed} failed\n`);
      if (failed > 0) process.exitCode = ExitCode.failure;
    });

  pack
    .command('schema')
    .description('print the JSON Schema of pack.yaml or of an action file (for editors)')
    .argument('<which>', '"pack" or "action"')
    .action((which: string) => {
      if (which !== 'pack' && which !== 'action')
        throw new AirlockError('invalid_args', `which: expected "pack" or "action", got ${JSON.stringify(which)}`);
      const schema = which === 'pack' ? packManifestJsonSchema() : actionSpecJsonSchema();
      process.stdout.write(`${JSON.stringify(schema, null, 2)}\n`);
    });

  pack
    .command('docs')
    .description('write a Markdown reference of every action in a catalog folder')
    .argument('<dir>', 'folder of packs (or one pack)')
    .option('--out <file>', 'write to this file instead of standard output')
    .action((dir: string, opts: { out?: string }) => {
      const catalog = loadCatalog([resolve(dir)]);
      if (catalog.failures.length > 0) {
        throw new AirlockError(
          'invalid_spec',
          catalog.failures.flatMap((f) => f.errors.map((e) => `${basename(f.dir)}: ${e}`)).join('\n'),
        );
      }
      const md = renderPackDocs(catalog);
      if (opts.out === undefined) process.stdout.write(md);
      else {
        writeFileSync(opts.out, md);
        process.stdout.write(`wrote ${opts.out} (${catalog.packs.length} packs)\n`);
      }
    });
}
