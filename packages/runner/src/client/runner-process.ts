import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { AirlockError } from '@airlock/core';
import { loadCatalog } from '../catalog.js';
import type { RunnerConfig } from '../config.js';
import { ActionEngine } from '../engine.js';
import { SecurityLog } from '../security-log.js';
import { ControlClient, type StopReason } from './control-client.js';

/** Exchange a one-time bootstrap key for a runner token at the control plane. */
export async function redeemBootstrapKey(
  serverUrl: string,
  bootstrapKey: string,
): Promise<{ runnerId: string; name: string; token: string }> {
  const url = new URL('/api/v1/runners/register', serverUrl);
  let res: Response;
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ bootstrap_key: bootstrapKey }),
    });
  } catch (e) {
    throw new AirlockError('invalid_config', `cannot reach the control plane at ${serverUrl}: ${(e as Error).message}`);
  }
  const body = (await res.json().catch(() => ({}))) as {
    runner_id?: string;
    name?: string;
    token?: string;
    error?: { message?: string };
  };
  if (!res.ok || body.token === undefined || body.runner_id === undefined) {
    throw new AirlockError(
      'invalid_config',
      `the control plane refused the bootstrap key: ${body.error?.message ?? `HTTP ${res.status}`}`,
    );
  }
  return { runnerId: body.runner_id, name: body.name ?? '', token: body.token };
}

/** A running runner process: engine, security log, control-plane client, reload on SIGHUP. */
export interface RunningRunner {
  readonly client: ControlClient;
  readonly engine: ActionEngine;
  reload(): void;
  stop(): void;
  /** Resolves when the client stops for good (revoked, unauthorized, or stop()). */
  readonly stopped: Promise<{ reason: StopReason; detail: string }>;
}

export interface StartRunnerOptions {
  readonly config: RunnerConfig;
  readonly serverUrl: string;
  readonly token: string;
  readonly logger?: (level: 'info' | 'warn' | 'error', msg: string) => void;
  /** Write a pid file and reload on SIGHUP (the CLI does; tests in-process do not). */
  readonly manageProcess?: boolean;
  readonly backoff?: { readonly minMs: number; readonly maxMs: number };
}

/** Start a runner that dials out to the control plane. */
export function startRunner(opts: StartRunnerOptions): RunningRunner {
  const { config } = opts;
  const stateDir = dirname(config.logPath);
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const log = new SecurityLog(config.logPath);
  let catalog = loadCatalog(config.packDirs);
  for (const f of catalog.failures) opts.logger?.('warn', `pack ${f.dir} not loaded: ${f.errors.join('; ')}`);
  const engine = new ActionEngine(catalog, config, log);
  let resolveStopped: (v: { reason: StopReason; detail: string }) => void = () => {};
  const stopped = new Promise<{ reason: StopReason; detail: string }>((r) => {
    resolveStopped = r;
  });
  const pidFile = join(stateDir, 'runner.pid');
  const client = new ControlClient(
    {
      serverUrl: opts.serverUrl,
      token: opts.token,
      config,
      engine,
      log,
      stateDir,
      ...(opts.logger === undefined ? {} : { logger: opts.logger }),
      ...(opts.backoff === undefined ? {} : { backoff: opts.backoff }),
      onStop: (reason, detail) => {
        if (opts.manageProcess === true) {
          process.off('SIGHUP', reload);
          if (existsSync(pidFile) && readFileSync(pidFile, 'utf8').trim() === String(process.pid))
            rmSync(pidFile, { force: true });
        }
        resolveStopped({ reason, detail });
      },
    },
    catalog,
  );
  const reload = (): void => {
    catalog = loadCatalog(config.packDirs);
    engine.setCatalog(catalog);
    client.updateCatalog(catalog);
    opts.logger?.(
      'info',
      `reloaded packs: ${catalog.packs.map((p) => `${p.pack.name}@${p.pack.hash.slice(7, 19)}`).join(', ')}`,
    );
    for (const f of catalog.failures) opts.logger?.('warn', `pack ${f.dir} not loaded: ${f.errors.join('; ')}`);
  };
  if (opts.manageProcess === true) {
    writeFileSync(pidFile, `${process.pid}\n`, { mode: 0o600 });
    process.on('SIGHUP', reload);
  }
  client.start();
  return { client, engine, reload, stop: () => client.stop('closed', 'stopped'), stopped };
}
