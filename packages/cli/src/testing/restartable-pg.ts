// Test support: a PostgreSQL cluster of the test's own (scripts/pg-cluster.mjs) that the test
// can stop and start again on the same port and data directory, to restart Postgres under a
// running control plane.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { repoRoot } from './processes.js';

interface Started {
  url: string;
  port: number;
  dir: string;
  bin: string;
  proc: ChildProcess;
}

export interface RestartablePg {
  readonly url: string;
  /** Fast shutdown (SIGINT), wait for it to exit. */
  stop(): Promise<void>;
  /** Start again on the same port and data directory; resolves when it accepts connections. */
  start(): Promise<void>;
  /** Stop for good and delete the cluster. */
  destroy(): Promise<void>;
}

export async function startRestartablePg(): Promise<RestartablePg> {
  const mod = (await import(pathToFileURL(join(repoRoot, 'scripts', 'pg-cluster.mjs')).href)) as {
    startPgCluster(): Promise<Started>;
  };
  const first = await mod.startPgCluster();
  let proc: ChildProcess | undefined = first.proc;
  const asRoot = process.getuid?.() === 0;
  const stop = async (): Promise<void> => {
    const p = proc;
    proc = undefined;
    if (p === undefined || p.exitCode !== null) return;
    const exited = new Promise<void>((r) => p.once('exit', () => r()));
    // runuser does not forward signals: ask the postmaster itself for a fast shutdown.
    const ctl = [join(first.bin, 'pg_ctl'), 'stop', '-D', join(first.dir, 'data'), '-m', 'fast', '-w'];
    const r = asRoot
      ? spawnSync('runuser', ['-u', 'postgres', '--', ...ctl], { encoding: 'utf8' })
      : spawnSync(ctl[0]!, ctl.slice(1), { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`pg_ctl stop failed: ${r.stderr}`);
    await exited;
  };
  return {
    url: first.url,
    stop,
    async start() {
      const args = [
        '-D',
        join(first.dir, 'data'),
        '-k',
        first.dir,
        '-p',
        String(first.port),
        '-c',
        'listen_addresses=127.0.0.1',
        '-c',
        'fsync=off',
        '-c',
        'max_connections=200',
      ];
      const cmd = join(first.bin, 'postgres');
      proc = asRoot
        ? spawn('runuser', ['-u', 'postgres', '--', cmd, ...args], { stdio: 'ignore' })
        : spawn(cmd, args, { stdio: 'ignore' });
      const end = Date.now() + 30_000;
      for (;;) {
        const r = spawnSync(join(first.bin, 'pg_isready'), ['-h', '127.0.0.1', '-p', String(first.port)], {
          stdio: 'ignore',
        });
        if (r.status === 0) return;
        if (Date.now() > end) throw new Error('postgres did not come back');
        await new Promise((res) => setTimeout(res, 100));
      }
    },
    async destroy() {
      await stop();
      rmSync(first.dir, { recursive: true, force: true });
    },
  };
}
