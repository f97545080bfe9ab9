import { createHash, randomUUID } from 'node:crypto';
import { readFileSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import {
  type ActionSpec,
  type ArgValue,
  type AuditEvent,
  type ClampRecord,
  canonicalJson,
  clampLimits,
  createRedactor,
  type EffectiveLimits,
  type ErrorCode,
  type Redactor,
  redactValue,
  renderArgv,
  sha256Digest,
  sha256Hex,
  validateArgs,
} from '@airlock/core';
import { findBinary } from './binary.js';
import type { Catalog, LoadedPack } from './catalog.js';
import type { RunnerConfig } from './config.js';
import { runProcess, type SpawnPlan } from './process-runner.js';
import type { SecurityLog } from './security-log.js';

/** Final status of one attempt. */
export type RunStatus = 'success' | 'failure' | 'validation_failed' | 'error' | 'timeout' | 'cancelled';

/** Who asked. For the local CLI, `{type: 'local', id: <unix user>}`. */
export interface Principal {
  readonly type: string;
  readonly id: string;
  readonly name?: string;
}

/** One request to run a declared action. */
export interface ActionRequest {
  readonly requestId?: string;
  readonly action: string;
  /** The pack hash the requester trusts. Omitted only by local callers. */
  readonly packHash?: string;
  readonly args: Readonly<Record<string, unknown>>;
  readonly limits?: Readonly<Record<string, unknown>>;
  readonly reason: string | null;
  readonly principal: Principal;
  /** CLI input arrives as strings (`--arg lines=10`); coerce them to the declared types. */
  readonly coerceStrings?: boolean;
}

/** One redacted line of output, numbered per request. */
export interface OutputLine {
  readonly seq: number;
  readonly stream: 'stdout' | 'stderr';
  readonly line: string;
  readonly partial: boolean;
}

export interface RunResult {
  readonly requestId: string;
  readonly action: string;
  readonly status: RunStatus;
  readonly exitCode: number | null;
  readonly durationMs: number;
  readonly truncated: boolean;
  readonly outputBytes: number;
  readonly clamped: readonly ClampRecord[];
  readonly auditHash: string;
  readonly auditSeq: number;
  /** The security-log event of this attempt (redacted), for mirroring by the control plane. */
  readonly auditEvent: AuditEvent;
  readonly error: { readonly code: string; readonly message: string } | null;
  readonly startedAt: string;
  readonly finishedAt: string;
}

export interface RunOptions {
  readonly onOutput?: (line: OutputLine) => void;
  readonly signal?: AbortSignal;
}

class Refusal {
  constructor(
    readonly status: 'validation_failed' | 'error',
    readonly code: ErrorCode,
    readonly message: string,
  ) {}
}

/**
 * The action engine: the one path from a request to a process. Every step can refuse, in
 * this order: action declared → pack hash trusted → args valid → limits clamped → binary
 * found → script unchanged → spawn (argv, no shell) → stream redacted output → enforce
 * timeout and output cap → append one hash-chained event (fsync) → report.
 */
export class ActionEngine {
  private readonly redactors = new Map<string, Redactor>();
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(
    private catalog: Catalog,
    private readonly config: RunnerConfig,
    private readonly log: SecurityLog,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {}

  /** Swap in a freshly loaded catalog (SIGHUP / `airlock runner reload`). Runs in flight keep theirs. */
  setCatalog(catalog: Catalog): void {
    this.catalog = catalog;
    this.redactors.clear();
  }

  get currentCatalog(): Catalog {
    return this.catalog;
  }

  async run(req: ActionRequest, opts: RunOptions = {}): Promise<RunResult> {
    await this.acquire();
    try {
      return await this.runLocked(req, opts);
    } finally {
      this.release();
    }
  }

  private async runLocked(req: ActionRequest, opts: RunOptions): Promise<RunResult> {
    const requestId = req.requestId ?? randomUUID();
    const started = Date.now();
    const startedAt = new Date(started).toISOString();
    const catalog = this.catalog;
    const argsDigest = sha256Digest(safeCanonical(req.args));
    let redactor = this.redactorFor(undefined, undefined);
    let packHash: string | null = null;
    let clamped: readonly ClampRecord[] = [];

    const record = async (
      status: RunStatus,
      extra: {
        exitCode?: number | null;
        truncated?: boolean;
        outputBytes?: number;
        outputDigest?: string | null;
        error?: { code: string; message: string } | null;
        data?: Record<string, unknown>;
      },
    ): Promise<RunResult> => {
      const finished = Date.now();
      // Group commit: fsync'd with the other events of this moment, before we report.
      const event: AuditEvent = await this.log.appendDurable({
        id: requestId,
        time: new Date(finished).toISOString(),
        kind: 'action.attempt',
        principal: { ...req.principal },
        runner: this.config.name,
        action: req.action,
        pack_hash: packHash,
        args_digest: argsDigest,
        args: redactValue(req.args, redactor) as Record<string, unknown>,
        reason: req.reason === null ? null : redactor.redactLine(req.reason).text,
        status,
        exit_code: extra.exitCode ?? null,
        duration_ms: finished - started,
        output_digest: extra.outputDigest ?? null,
        output_bytes: extra.outputBytes ?? 0,
        truncated: extra.truncated ?? false,
        clamped: clamped.map((c) => ({ ...c })),
        error: extra.error ?? null,
        ...(extra.data === undefined ? {} : { data: extra.data }),
      });
      return Object.freeze({
        requestId,
        action: req.action,
        status,
        exitCode: extra.exitCode ?? null,
        durationMs: finished - started,
        truncated: extra.truncated ?? false,
        outputBytes: extra.outputBytes ?? 0,
        clamped,
        auditHash: event.hash,
        auditSeq: event.seq,
        auditEvent: event,
        error: extra.error ?? null,
        startedAt,
        finishedAt: new Date(finished).toISOString(),
      });
    };

    try {
      // 1. The action is declared by a loaded pack.
      const found = catalog.findAction(req.action);
      if (found === undefined) {
        throw new Refusal(
          'validation_failed',
          'unknown_action',
          `action ${JSON.stringify(req.action)} is not declared by any loaded pack`,
        );
      }
      const { loaded, action } = found;
      packHash = loaded.pack.hash;
      redactor = this.redactorFor(loaded, action);

      // 2. The pack is the one the requester (or the local config) trusts.
      const trusted = this.config.trusted[loaded.pack.name];
      if (trusted !== undefined && trusted !== loaded.pack.hash) {
        throw new Refusal(
          'error',
          'pack_hash_mismatch',
          `pack ${loaded.pack.name} has hash ${loaded.pack.hash}, config trusts ${trusted}`,
        );
      }
      if (req.packHash !== undefined && req.packHash !== loaded.pack.hash) {
        throw new Refusal(
          'error',
          'pack_hash_mismatch',
          `pack ${loaded.pack.name} has hash ${loaded.pack.hash}, request trusts ${req.packHash}`,
        );
      }

      // 3. Arguments, with symlinks resolved before allow/deny.
      const args = validateArgs(action, req.args, {
        coerceStrings: req.coerceStrings === true,
        resolvePath: (p: string) => realpathSync(p),
      });
      if (!args.ok) {
        throw new Refusal(
          'validation_failed',
          'invalid_args',
          args.errors.map((e) => `${e.field}: ${e.message}`).join('; '),
        );
      }

      // 4. Limits clamped into the action's bounds.
      const lim = clampLimits(action, req.limits);
      if (!lim.ok) {
        throw new Refusal(
          'validation_failed',
          'invalid_limits',
          lim.errors.map((e) => `${e.field}: ${e.message}`).join('; '),
        );
      }
      clamped = lim.clamped;

      const rendered = renderArgv(action, args.values);
      if (!rendered.ok) {
        throw new Refusal(
          'validation_failed',
          'invalid_args',
          rendered.errors.map((e) => `${e.field}: ${e.message}`).join('; '),
        );
      }

      // 5. Binaries on the configured PATH; 6. scripts unchanged since load.
      const plan = this.plan(loaded, action, rendered.argv, lim.limits);

      // 7.–9. Spawn, stream, enforce.
      let seq = 0;
      const digest = createHash('sha256');
      // One stateful redactor per stream: multi-line secrets (PEM key bodies) span lines.
      const streams = { stdout: redactor.stream(), stderr: redactor.stream() };
      const outcome = await runProcess(
        plan,
        (stream, line, partial) => {
          const text = streams[stream](line).text;
          digest.update(`${stream}\0${text}\n`);
          opts.onOutput?.({ seq: seq++, stream, line: text, partial });
        },
        opts.signal === undefined ? {} : { signal: opts.signal },
      );
      if (outcome.spawnError !== undefined) {
        throw new Refusal('error', 'spawn_failed', `could not start ${plan.file}: ${outcome.spawnError}`);
      }
      const status: RunStatus = outcome.cancelled
        ? 'cancelled'
        : outcome.timedOut
          ? 'timeout'
          : outcome.exitCode === 0 && !outcome.truncated
            ? 'success'
            : 'failure';
      return await record(status, {
        exitCode: outcome.exitCode,
        truncated: outcome.truncated,
        outputBytes: outcome.outputBytes,
        outputDigest: `sha256:${digest.digest('hex')}`,
        error:
          outcome.lostError !== undefined
            ? { code: 'spawn_failed', message: `${outcome.lostError}; the action was killed with it` }
            : outcome.truncated
              ? {
                  code: 'output_truncated',
                  message: `output exceeded ${plan.limits.output_bytes} bytes; process killed`,
                }
              : null,
        data: {
          argv: outcome.osArgv.slice(outcome.osArgv.indexOf(plan.file)).map((a) => redactor.redactLine(a).text),
          signal: outcome.signal,
        },
      });
    } catch (e) {
      if (e instanceof Refusal) return await record(e.status, { error: { code: e.code, message: e.message } });
      // Unexpected failures are still attempts: they are recorded, then reported as errors.
      return await record('error', { error: { code: 'internal', message: (e as Error).message } });
    }
  }

  private plan(loaded: LoadedPack, action: ActionSpec, argv: readonly string[], limits: EffectiveLimits): SpawnPlan {
    const pathVar = this.config.path;
    for (const bin of action.requires) {
      if (findBinary(bin, pathVar) === undefined) {
        throw new Refusal(
          'error',
          'binary_not_found',
          `${bin} (required by ${action.id}) is not on the runner PATH ${pathVar}`,
        );
      }
    }
    const env = this.childEnv(action);
    if (action.kind === 'exec') {
      const [bin, ...rest] = argv;
      if (bin === undefined) throw new Refusal('error', 'invalid_template', `${action.id}: empty argv`);
      const file = findBinary(bin, pathVar);
      if (file === undefined)
        throw new Refusal('error', 'binary_not_found', `${bin} is not on the runner PATH ${pathVar}`);
      return { file, args: rest, env, cwd: '/', limits };
    }
    const script = action.script;
    if (script === undefined)
      throw new Refusal('error', 'invalid_spec', `${action.id}: script action without a script`);
    const scriptPath = join(loaded.dir, script.path);
    const expected = loaded.pack.scripts.get(script.path);
    let actual: string;
    try {
      actual = sha256Hex(readFileSync(scriptPath));
    } catch (e) {
      throw new Refusal('error', 'script_tampered', `${script.path}: cannot read script: ${(e as Error).message}`);
    }
    if (expected === undefined || actual !== expected) {
      throw new Refusal(
        'error',
        'script_tampered',
        `${script.path} changed on disk since the pack was loaded (sha256 ${actual})`,
      );
    }
    if (script.interpreter !== undefined) {
      const interp = findBinary(script.interpreter, pathVar);
      if (interp === undefined)
        throw new Refusal('error', 'binary_not_found', `${script.interpreter} is not on the runner PATH ${pathVar}`);
      return { file: interp, args: [scriptPath, ...argv], env, cwd: '/', limits };
    }
    return { file: scriptPath, args: [...argv], env, cwd: '/', limits };
  }

  /** Exactly: PATH, LANG, the allowlisted variables present here, then the action's fixed ones. */
  private childEnv(action: ActionSpec): Record<string, string> {
    const env: Record<string, string> = { PATH: this.config.path, LANG: 'C.UTF-8' };
    for (const name of action.env) {
      const v = this.env[name];
      if (v !== undefined) env[name] = v;
    }
    Object.assign(env, action.set_env);
    return env;
  }

  private redactorFor(loaded: LoadedPack | undefined, action: ActionSpec | undefined): Redactor {
    const key = loaded === undefined || action === undefined ? '' : `${loaded.pack.hash}/${action.id}`;
    let r = this.redactors.get(key);
    if (r === undefined) {
      r = createRedactor([...(loaded?.pack.manifest.redact ?? []), ...(action?.redact ?? [])]);
      this.redactors.set(key, r);
    }
    return r;
  }

  private async acquire(): Promise<void> {
    if (this.running < this.config.concurrency) {
      this.running++;
      return;
    }
    await new Promise<void>((r) => this.waiting.push(r));
    this.running++;
  }

  private release(): void {
    this.running--;
    this.waiting.shift()?.();
  }
}

function safeCanonical(v: unknown): string {
  try {
    return canonicalJson(v);
  } catch {
    return JSON.stringify(String(v));
  }
}

export type { ArgValue };
