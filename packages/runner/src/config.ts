import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, isAbsolute, resolve } from 'node:path';
import { AirlockError } from '@airlock/core';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { bundledPacksDir, DEFAULT_ACTION_PATH, defaultSecurityLogPath } from './paths.js';
import type { SigningConfig } from './signing/verify.js';

const digest = z.string().regex(/^sha256:[0-9a-f]{64}$/, 'must be sha256:<64 hex digits>');

const ConfigSchema = z
  .object({
    name: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, 'must be 1-63 letters, digits, dot, dash or underscore')
      .optional(),
    server: z.string().url('must be a URL such as wss://airlock.example.com').optional(),
    token_file: z.string().min(1).optional(),
    labels: z
      .record(z.string().regex(/^[a-z][a-z0-9_.-]{0,62}$/, 'label names are lowercase'), z.string().max(128))
      .optional(),
    packs: z.array(z.string().min(1)).min(1, 'list at least one pack directory').optional(),
    trusted: z.record(z.string(), digest).optional(),
    path: z
      .string()
      .refine((p) => p.split(':').every((d) => isAbsolute(d)), 'every PATH entry must be an absolute directory')
      .optional(),
    log: z.string().min(1).optional(),
    concurrency: z.number().int().min(1).max(64).optional(),
    signing: z
      .strictObject({
        root_public_key: z
          .string()
          .regex(/^[A-Za-z0-9_-]{43}$/, 'must be a raw Ed25519 public key in base64url (43 characters)'),
        require_tiers: z
          .array(z.enum(['read', 'change', 'destructive']))
          .min(1)
          .default(['destructive']),
      })
      .optional(),
  })
  .strict();

/** A runner's configuration after defaults are applied. Frozen. */
export interface RunnerConfig {
  readonly name: string;
  readonly server: string | undefined;
  readonly tokenFile: string | undefined;
  readonly labels: Readonly<Record<string, string>>;
  readonly packDirs: readonly string[];
  /** Pack name → trusted hash. In local mode, a loaded pack missing here is trusted as loaded. */
  readonly trusted: Readonly<Record<string, string>>;
  readonly path: string;
  readonly logPath: string;
  readonly concurrency: number;
  /** Signed dispatch: the organisation root key and the tiers that need an approver signature. */
  readonly signing?: SigningConfig | undefined;
}

/** Defaults: the bundled packs, `$AIRLOCK_HOME/runner/events.jsonl`, the system PATH. */
export function defaultRunnerConfig(env: NodeJS.ProcessEnv = process.env): RunnerConfig {
  return Object.freeze({
    name: hostname().split('.')[0] || 'runner',
    server: undefined,
    tokenFile: undefined,
    labels: Object.freeze({}),
    packDirs: Object.freeze([bundledPacksDir()]),
    trusted: Object.freeze({}),
    path: DEFAULT_ACTION_PATH,
    logPath: defaultSecurityLogPath(env),
    concurrency: 4,
  });
}

/** Parse a runner config file's text. Errors name the file and the key. */
export function parseRunnerConfig(text: string, file: string, env: NodeJS.ProcessEnv = process.env): RunnerConfig {
  const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    throw new AirlockError('invalid_config', `${file}: ${e.message}`);
  }
  const raw: unknown = doc.toJS() ?? {};
  const parsed = ConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `${file}: ${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new AirlockError('invalid_config', lines.join('\n'), { issues: lines });
  }
  const c = parsed.data;
  const base = dirname(resolve(file));
  const d = defaultRunnerConfig(env);
  return Object.freeze({
    name: c.name ?? d.name,
    server: c.server,
    tokenFile: c.token_file === undefined ? undefined : resolve(base, c.token_file),
    labels: Object.freeze({ ...(c.labels ?? {}) }),
    packDirs: Object.freeze((c.packs ?? d.packDirs).map((p) => resolve(base, p))),
    trusted: Object.freeze({ ...(c.trusted ?? {}) }),
    path: c.path ?? d.path,
    logPath: c.log === undefined ? d.logPath : resolve(base, c.log),
    concurrency: c.concurrency ?? d.concurrency,
    signing:
      c.signing === undefined
        ? undefined
        : Object.freeze({
            rootPublicKey: c.signing.root_public_key,
            requireTiers: Object.freeze([...c.signing.require_tiers]),
          }),
  });
}

/** Read and parse a config file, or return the defaults when `file` is undefined. */
export function loadRunnerConfig(file: string | undefined, env: NodeJS.ProcessEnv = process.env): RunnerConfig {
  if (file === undefined) return defaultRunnerConfig(env);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new AirlockError('invalid_config', `${file}: cannot read config: ${(e as Error).message}`);
  }
  return parseRunnerConfig(text, file, env);
}
