import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { freemem, hostname, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { redeemBootstrapKey } from '@airlock/runner';
import {
  airlockHome,
  buildImages,
  createSandboxServer,
  defaultDaemonAddress,
  type ExecEvent,
  imageCacheDir,
  type JailProperty,
  jailReport,
  listen,
  planJail,
  readManifest,
  SandboxClient,
  SandboxError,
  SandboxHostClient,
  SandboxManager,
  verifyImages,
} from '@airlock/sandbox';
import { type Command, Option } from 'commander';
import { collectKeyValue, positiveInt } from '../options.js';

type Action<A extends unknown[]> = (...args: A) => Promise<void>;

/** Sandbox errors print as `airlock: <code>: <message>` and exit 1, like the rest of the CLI. */
function act<A extends unknown[]>(fn: Action<A>): Action<A> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (e) {
      if (!(e instanceof SandboxError)) throw e;
      process.stderr.write(`airlock: ${e.code}: ${e.message}\n`);
      process.exitCode = 1;
    }
  };
}

function out(json: boolean | undefined, data: unknown, human: () => string): void {
  process.stdout.write(json ? `${JSON.stringify(data, null, 2)}\n` : human());
}

/** A terminal progress bar for image builds (plain lines when not a TTY). */
/** Image build progress on stderr: a bar on a terminal, one line per step otherwise. */
export function progressBar(step: number, total: number, message: string): void {
  if (process.stderr.isTTY) {
    const width = 24;
    const done = Math.round((step / total) * width);
    process.stderr.write(
      `\r\x1b[K[${'#'.repeat(done)}${'.'.repeat(width - done)}] ${step}/${total} ${message}${step === total ? '' : ''}`,
    );
    if (step === total) process.stderr.write('\n');
  } else {
    process.stderr.write(`[images ${step}/${total}] ${message}\n`);
  }
}

const addrOption = () =>
  new Option('--addr <host:port>', 'sandbox daemon address').default(
    defaultDaemonAddress(),
    '$AIRLOCK_SANDBOX_ADDR or 127.0.0.1:7777',
  );

/**
 * Runner credentials for `serve --server`, like `airlock runner connect`: AIRLOCK_RUNNER_KEY,
 * else a bootstrap key exchanged once for a token (saved 0600), else the saved token.
 */
async function hostCredentials(server: string, bootstrapKey?: string): Promise<{ token: string; name?: string }> {
  const tokenFile = join(airlockHome(), 'sandbox-host', 'token');
  const env = process.env['AIRLOCK_RUNNER_KEY'];
  if (env !== undefined && env !== '') return { token: env };
  if (bootstrapKey !== undefined) {
    let reg: Awaited<ReturnType<typeof redeemBootstrapKey>>;
    try {
      reg = await redeemBootstrapKey(server, bootstrapKey);
    } catch (e) {
      throw new SandboxError('invalid_request', (e as Error).message);
    }
    mkdirSync(dirname(tokenFile), { recursive: true, mode: 0o700 });
    writeFileSync(tokenFile, `${reg.token}\n`, { mode: 0o600 });
    chmodSync(tokenFile, 0o600);
    process.stderr.write(`[sandbox] registered as ${reg.name} (${reg.runnerId}); token saved to ${tokenFile}\n`);
    return { token: reg.token, name: reg.name };
  }
  if (existsSync(tokenFile)) return { token: readFileSync(tokenFile, 'utf8').trim() };
  throw new SandboxError(
    'invalid_request',
    `--server needs credentials: pass --bootstrap-key, set AIRLOCK_RUNNER_KEY, or keep a token in ${tokenFile}`,
  );
}

/** `airlock sandbox …`: the sandbox daemon and its client verbs (the emberctl equivalent). */
export function registerSandboxCommands(program: Command): void {
  const sandbox = program
    .command('sandbox')
    .description('microVM sandboxes for arbitrary code: daemon, client verbs, images, checks')
    .addHelpText(
      'after',
      `
Each sandbox is a microVM (QEMU -M microvm; KVM when it works, else TCG) with no network
device and no shared host directory. The daemon's HTTP API is a superset of emberd's.

Examples:
  airlock sandbox images build
  airlock sandbox serve &
  id=$(airlock sandbox create --pack python)
  airlock sandbox exec $id 'print(6*7)'
  airlock sandbox rm $id
  airlock sandbox test

Docs: docs/sandbox.md`,
    );

  sandbox
    .command('serve')
    .description('run the sandbox daemon (HTTP API, default 127.0.0.1:7777); builds missing images first')
    .option('--listen <host:port>', 'address to listen on', '127.0.0.1:7777')
    .addOption(new Option('--backend <name>', 'VM backend').choices(['qemu', 'gvisor', 'firecracker']).default('qemu'))
    .addOption(
      new Option('--accel <kind>', 'force the QEMU accelerator instead of probing KVM').choices(['kvm', 'tcg']),
    )
    .option('--no-build', 'fail instead of building missing images')
    .option('--max-sandboxes <n>', 'most sandboxes at once', positiveInt('--max-sandboxes', 1024), 16)
    .option(
      '--warm <n>',
      'pre-booted sandboxes kept ready per pack: a create with default limits returns at once',
      positiveInt('--warm', 16),
    )
    .option('--warm-packs <names...>', 'packs the warm pool serves (default: all)')
    .option(
      '--boot-timeout <ms>',
      'how long create waits for the guest (default 60000 under TCG, 20000 with KVM)',
      positiveInt('--boot-timeout', 600_000),
    )
    .option('--server <url>', 'also connect out to this control plane as a sandbox host (like a runner)')
    .option(
      '--bootstrap-key <key>',
      'one-time key from "POST /api/v1/runners"; exchanged for a token saved in $AIRLOCK_HOME/sandbox-host/token',
    )
    .option('--name <name>', 'host name shown in the control plane (default: the registered runner name)')
    .option('-l, --label <NAME=VALUE>', 'label for placement and scopes (repeatable)', collectKeyValue('--label'))
    .addHelpText(
      'after',
      '\nEnvironment:\n  AIRLOCK_HOME         data dir; sandbox runtime state in $AIRLOCK_HOME/sandboxes\n  AIRLOCK_IMAGE_CACHE  guest images (default $AIRLOCK_HOME/images)\n  AIRLOCK_RUNNER_KEY   runner token for --server (else --bootstrap-key, else the saved token)\n\nWith --server the daemon dials out to the control plane (no inbound port is needed for it),\nadvertises the sandbox capability, its image hashes (an admin must trust each), backend,\nisolation and capacity, and serves creates, execs and files placed on it by policy.\n\nOn restart the daemon re-adopts the VMs a crashed daemon left running and reaps the rest.\nSIGINT/SIGTERM destroy every sandbox before exiting.',
    )
    .action(
      act(
        async (opts: {
          listen: string;
          backend: 'qemu' | 'gvisor' | 'firecracker';
          accel?: 'kvm' | 'tcg';
          build: boolean;
          maxSandboxes: number;
          bootTimeout?: number;
          warm?: number;
          warmPacks?: string[];
          server?: string;
          bootstrapKey?: string;
          name?: string;
          label?: Record<string, string>;
        }) => {
          const credentials =
            opts.server === undefined ? undefined : await hostCredentials(opts.server, opts.bootstrapKey);
          const manager = await SandboxManager.open({
            backend: opts.backend,
            buildImages: opts.build,
            progress: progressBar,
            maxSandboxes: opts.maxSandboxes,
            log: (l) => process.stderr.write(`[sandbox] ${l}\n`),
            ...(opts.accel ? { accel: opts.accel } : {}),
            ...(opts.bootTimeout ? { bootTimeoutMs: opts.bootTimeout } : {}),
            ...(opts.warm ? { warmPool: opts.warm } : {}),
            ...(opts.warmPacks ? { warmPacks: opts.warmPacks } : {}),
          });
          const info = manager.info();
          const server = createSandboxServer(manager);
          const a = await listen(server, opts.listen);
          process.stderr.write(
            `[sandbox] backend ${String(info['backend'])} (${String(info['isolation'])}, ${info['kvm'] ? 'KVM' : 'no KVM'}): ${String(info['backend_note'] ?? '')}\n`,
          );
          process.stdout.write(`Sandbox daemon listening on ${a.address}:${a.port}\n`);
          const host =
            opts.server === undefined || credentials === undefined
              ? undefined
              : new SandboxHostClient({
                  serverUrl: opts.server,
                  token: credentials.token,
                  name: opts.name ?? credentials.name ?? hostname(),
                  labels: opts.label ?? {},
                  manager,
                  logger: (level, msg) => process.stderr.write(`[sandbox] ${level}: ${msg}\n`),
                  onStop: (reason, detail) => {
                    process.stderr.write(`[sandbox] control plane connection stopped (${reason}): ${detail}\n`);
                    if (reason !== 'closed') process.kill(process.pid, 'SIGTERM');
                  },
                });
          host?.start();
          await new Promise<void>((resolve) => {
            const stop = () => {
              process.stderr.write('[sandbox] shutting down: destroying sandboxes\n');
              host?.stop();
              server.close();
              void manager.close().then(resolve);
            };
            process.once('SIGINT', stop);
            process.once('SIGTERM', stop);
          });
        },
      ),
    );

  sandbox
    .command('create')
    .description('boot a sandbox and print its id (returns once the guest is ready)')
    .option('-p, --pack <name>', 'language pack: python, shell, node', 'python')
    .option('--memory <mb>', 'guest memory in MiB', positiveInt('--memory', 4096))
    .option('--vcpus <n>', 'virtual CPUs', positiveInt('--vcpus', 4))
    .option('--lifetime <s>', 'destroy automatically after this many seconds', positiveInt('--lifetime', 7 * 24 * 3600))
    .option('-e, --env <NAME=VALUE>', 'environment for every exec (repeatable)', collectKeyValue('--env'))
    .option('--json', 'print the sandbox description as JSON')
    .addOption(addrOption())
    .action(
      act(
        async (opts: {
          pack: string;
          memory?: number;
          vcpus?: number;
          lifetime?: number;
          env?: Record<string, string>;
          json?: boolean;
          addr: string;
        }) => {
          const sb = await new SandboxClient(opts.addr).create({
            language_pack: opts.pack,
            ...(opts.memory ? { memory_mb: opts.memory } : {}),
            ...(opts.vcpus ? { vcpus: opts.vcpus } : {}),
            ...(opts.lifetime ? { lifetime_s: opts.lifetime } : {}),
            ...(opts.env ? { env: opts.env } : {}),
          });
          out(opts.json, sb, () => `${sb.id}\n`);
        },
      ),
    );

  sandbox
    .command('exec')
    .description(
      "run code in a sandbox with its pack's interpreter; stdout/stderr pass through, the exit code is the guest's",
    )
    .argument('<id>', 'sandbox id')
    .argument('[code]', 'code to run (omit to read it from stdin)')
    .option('--timeout <ms>', 'kill the process tree after this long', positiveInt('--timeout', 3_600_000))
    .option('--stdin <text>', 'text given to the process on stdin')
    .option('-e, --env <NAME=VALUE>', 'extra environment (repeatable)', collectKeyValue('--env'))
    .option('--no-stream', 'wait for the end instead of streaming output as it arrives')
    .option('--background', 'start in the background and print the process id')
    .option('--json', 'print the result as JSON (implies --no-stream)')
    .addOption(addrOption())
    .addHelpText('after', '\nExit status: the guest exit code; 124 when the timeout fired; 1 on a daemon error.')
    .action(
      act(
        async (
          id: string,
          code: string | undefined,
          opts: {
            timeout?: number;
            stdin?: string;
            env?: Record<string, string>;
            stream: boolean;
            background?: boolean;
            json?: boolean;
            addr: string;
          },
        ) => {
          const client = new SandboxClient(opts.addr);
          const body = {
            code: code ?? readFileSync(0, 'utf8'),
            ...(opts.timeout ? { timeout_ms: opts.timeout } : {}),
            ...(opts.stdin !== undefined ? { stdin: opts.stdin } : {}),
            ...(opts.env ? { env: opts.env } : {}),
          };
          if (opts.background) {
            const p = await client.background(id, body);
            out(opts.json, p, () => `${p.id}\n`);
            return;
          }
          if (opts.json || !opts.stream) {
            const r = await client.exec(id, body);
            if (opts.json) out(true, r, () => '');
            else {
              process.stdout.write(r.stdout);
              process.stderr.write(r.stderr);
              if (r.truncated) process.stderr.write('airlock: output truncated\n');
            }
            process.exitCode = r.timed_out ? 124 : r.exit_code;
            return;
          }
          const last = await client.execStream(id, body, (e: ExecEvent) => {
            if (e.type === 'stdout') process.stdout.write(e.data);
            else if (e.type === 'stderr') process.stderr.write(e.data);
          });
          if (last.type === 'exit') {
            if (last.timed_out) process.stderr.write('airlock: timed out\n');
            if (last.truncated) process.stderr.write('airlock: output truncated\n');
            process.exitCode = last.timed_out ? 124 : last.exit_code;
          } else if (last.type === 'error') {
            throw new SandboxError('guest_error', `${last.error.code}: ${last.error.message}`);
          }
        },
      ),
    );

  sandbox
    .command('ls')
    .description('list sandboxes: id, pack, state, uptime')
    .option('--json', 'print as JSON')
    .addOption(addrOption())
    .action(
      act(async (opts: { json?: boolean; addr: string }) => {
        const { sandboxes } = await new SandboxClient(opts.addr).list();
        out(opts.json, sandboxes, () =>
          sandboxes.length === 0
            ? 'no sandboxes\n'
            : `${['ID'.padEnd(16), 'PACK'.padEnd(8), 'STATE'.padEnd(9), 'UPTIME'].join(' ')}\n${sandboxes
                .map(
                  (s) =>
                    `${s.id.padEnd(16)} ${String(s['language_pack']).padEnd(8)} ${String(s['state']).padEnd(9)} ${String(s['uptime_s'])}s`,
                )
                .join('\n')}\n`,
        );
      }),
    );

  sandbox
    .command('inspect')
    .description('show a sandbox: state, limits, backend, VM process, boot log tail')
    .argument('<id>', 'sandbox id')
    .option('--json', 'print as JSON')
    .addOption(addrOption())
    .action(
      act(async (id: string, opts: { json?: boolean; addr: string }) => {
        const s = await new SandboxClient(opts.addr).inspect(id);
        out(opts.json, s, () => {
          const { boot_log_tail: log, ...rest } = s;
          return `${Object.entries(rest)
            .map(([k, v]) => `${k.padEnd(14)} ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`)
            .join('\n')}\n--- boot log (tail) ---\n${String(log ?? '')}\n`;
        });
      }),
    );

  sandbox
    .command('rm')
    .description('destroy sandboxes (idempotent: an unknown id is already gone)')
    .argument('<id...>', 'sandbox ids')
    .addOption(addrOption())
    .action(
      act(async (ids: string[], opts: { addr: string }) => {
        const client = new SandboxClient(opts.addr);
        for (const id of ids) {
          await client.delete(id);
          process.stdout.write(`${id} deleted\n`);
        }
      }),
    );

  sandbox
    .command('test')
    .description('full lifecycle against a running daemon: create → exec → files → delete, per pack')
    .option('-p, --pack <name...>', 'packs to test (default: every pack the daemon has)')
    .addOption(addrOption())
    .action(
      act(async (opts: { pack?: string[]; addr: string }) => {
        const client = new SandboxClient(opts.addr);
        const info = await client.info();
        const packs = opts.pack ?? (info['packs'] as { name: string }[]).map((p) => p.name);
        const programs: Record<string, string> = {
          python: 'print(6*7)',
          node: 'console.log(6*7)',
          shell: 'echo $((6*7))',
        };
        let failed = 0;
        for (const pack of packs) {
          const t0 = Date.now();
          const step = (s: string) => process.stdout.write(`  ${pack}: ${s}\n`);
          let id: string | undefined;
          try {
            id = (await client.create({ language_pack: pack })).id;
            step(`created ${id} in ${Date.now() - t0} ms`);
            const t1 = Date.now();
            const r = await client.exec(id, { code: programs[pack] ?? 'echo 42' });
            if (r.stdout !== '42\n')
              throw new Error(
                `exec printed ${JSON.stringify(r.stdout)} (stderr ${JSON.stringify(r.stderr)}), expected "42\\n"`,
              );
            step(`exec → 42 in ${Date.now() - t1} ms`);
            await client.putFile(id, '/tmp/airlock-test.txt', 'persisted');
            const back = (await client.getFile(id, '/tmp/airlock-test.txt')).toString();
            if (back !== 'persisted') throw new Error(`file round trip returned ${JSON.stringify(back)}`);
            step('file upload/download ok');
          } catch (e) {
            failed++;
            step(`FAILED: ${(e as Error).message}`);
          } finally {
            if (id) {
              await client.delete(id);
              step('deleted');
            }
          }
        }
        process.stdout.write(
          failed === 0 ? `ok: ${packs.length} pack(s) passed\n` : `${failed} of ${packs.length} pack(s) failed\n`,
        );
        if (failed) process.exitCode = 1;
      }),
    );

  sandbox
    .command('doctor')
    .description(
      'check this host for sandboxes: backend binaries, KVM, images and checksums, memory, the daemon, and which jail properties (uid, namespaces, cgroup, seccomp, no_new_privs, capabilities) are in effect',
    )
    .option('--json', 'print as JSON')
    .addOption(addrOption())
    .action(
      act(async (opts: { json?: boolean; addr: string }) => {
        const checks: { check: string; ok: boolean; detail: string }[] = [];
        const add = (check: string, ok: boolean, detail: string) => checks.push({ check, ok, detail });
        const has = (f: string) => existsSync(f);
        add(
          'qemu',
          has('/usr/bin/qemu-system-x86_64'),
          has('/usr/bin/qemu-system-x86_64')
            ? '/usr/bin/qemu-system-x86_64'
            : 'missing: apt-get install qemu-system-x86',
        );
        let kvmOk = false;
        try {
          kvmOk = existsSync('/dev/kvm');
        } catch {
          kvmOk = false;
        }
        add(
          'kvm',
          kvmOk,
          kvmOk
            ? '/dev/kvm present (the daemon confirms with a probe boot)'
            : 'no /dev/kvm: QEMU uses TCG software emulation — boot ~2–3 s, code several times slower; isolation is unchanged',
        );
        const runsc = spawnSync('runsc', ['--version'], { encoding: 'utf8' });
        add(
          'gvisor (runsc)',
          runsc.status === 0,
          runsc.status === 0
            ? `${runsc.stdout.split('\n')[0]} — a user-space kernel: weaker boundary than a VM`
            : 'not installed (optional): apt-get install runsc',
        );
        const fc = spawnSync('firecracker', ['--version'], { encoding: 'utf8' });
        add(
          'firecracker',
          fc.status === 0 && kvmOk,
          fc.status === 0
            ? kvmOk
              ? (fc.stdout.split('\n')[0] ?? '')
              : 'binary present but no KVM: unusable'
            : 'not installed (optional; needs KVM; not packaged in Debian 12)',
        );
        const dir = imageCacheDir();
        const m = readManifest(dir);
        if (!m) add('images', false, `none in ${dir}: run "airlock sandbox images build"`);
        else {
          try {
            await verifyImages(dir, m);
            add(
              'images',
              true,
              `${dir}: kernel ${m.kernel.version}, packs ${Object.keys(m.packs).join(', ')}; checksums verified`,
            );
          } catch (e) {
            add('images', false, (e as Error).message);
          }
        }
        const freeMb = Math.round(freemem() / 2 ** 20);
        add(
          'memory',
          freeMb > 512,
          `${freeMb} MiB free of ${Math.round(totalmem() / 2 ** 20)} MiB; each idle TCG sandbox needs about 220 MiB (256 MiB guest)`,
        );
        let jail: { level: string; reason: string; properties: JailProperty[] } | undefined;
        try {
          const info = await new SandboxClient(opts.addr).info();
          add(
            'daemon',
            true,
            `${opts.addr}: backend ${String(info['backend'])}, isolation ${String(info['isolation'])}, ${info['kvm'] ? 'KVM' : 'TCG'}, ${String(info['sandboxes'])} sandbox(es)`,
          );
          jail = info['jail'] as typeof jail;
        } catch (e) {
          add('daemon', false, (e as Error).message);
        }
        // The VM monitor's host-side jail: as the running daemon reports it, else what this host would give.
        if (!jail) {
          const plan = planJail(m?.jail ? join(dir, m.jail.path) : undefined);
          jail = {
            level: plan.level,
            reason: `${plan.reason} (no daemon: computed here)`,
            properties: jailReport(plan, true),
          };
        }
        add('jail', jail.level !== 'none', `level ${jail.level}: ${jail.reason}`);
        for (const p of jail.properties) add(`  ${p.property}`, p.in_effect, p.detail);
        out(
          opts.json,
          checks,
          () =>
            `${checks.map((c) => `${c.ok ? 'ok  ' : c.check.startsWith('  ') ? 'off ' : 'FAIL'} ${c.check.padEnd(30)} ${c.detail}`).join('\n')}\n`,
        );
        const required = ['qemu', 'images', 'memory'];
        if (checks.some((c) => required.includes(c.check) && !c.ok)) process.exitCode = 1;
      }),
    );

  const images = sandbox
    .command('images')
    .description('guest images: kernel, initramfs with airlock-init, one squashfs per language pack');
  images
    .command('build')
    .description('build the guest images from Debian packages (apt-get download; nothing is installed on the host)')
    .option('--force', 'rebuild even if the recipes are unchanged')
    .addOption(
      new Option('--dir <path>', 'image cache directory').default(
        imageCacheDir(),
        '$AIRLOCK_IMAGE_CACHE or $AIRLOCK_HOME/images',
      ),
    )
    .addHelpText(
      'after',
      '\nRecipes live in guest/kernel.json and guest/packs/*.json; airlock-init is compiled\nwith musl-gcc -static -Os. Checksums are written to <dir>/manifest.json.',
    )
    .option('--verify', 'then boot each pack and run its smoke program (prints ok)')
    .action(
      act(async (opts: { force?: boolean; dir: string; verify?: boolean }) => {
        const t = Date.now();
        const m = await buildImages({ cacheDir: opts.dir, force: opts.force === true, progress: progressBar });
        const sizes = Object.entries(m.packs).map(([n, p]) => `${n} ${(p.bytes / 2 ** 20).toFixed(1)} MiB`);
        process.stdout.write(
          `images ready in ${opts.dir} (${((Date.now() - t) / 1000).toFixed(1)} s): kernel ${m.kernel.version}, ${sizes.join(', ')}\n`,
        );
        if (opts.verify) {
          const manager = await SandboxManager.open({ imageDir: opts.dir });
          try {
            for (const [name, pack] of Object.entries(m.packs)) {
              const t0 = Date.now();
              const sb = await manager.create({ language_pack: name });
              const r = await sb.exec({ code: pack.smoke ?? 'echo ok', argv: undefined });
              await manager.delete(sb.id);
              const good = r.stdout === 'ok\n';
              process.stdout.write(
                `  ${good ? 'ok  ' : 'FAIL'} ${name} (${Date.now() - t0} ms)${good ? '' : `: ${JSON.stringify(r)}`}\n`,
              );
              if (!good) process.exitCode = 1;
            }
          } finally {
            await manager.close();
          }
        }
      }),
    );
}
