import { randomUUID } from 'node:crypto';
import {
  createRedactor,
  egressEntryCovers,
  MAX_SANDBOX_OUTPUT_BYTES,
  type SandboxEgressMessage,
  type SandboxEgressSpec,
  type SandboxReplyMessage,
  sha256Digest,
} from '@airlock/core';
import { type Kysely, sql } from 'kysely';
import { type Principal, principalRecord } from '../auth/principal.js';
import type { ServerContext } from '../context.js';
import type { Database, RunnersTable } from '../db/schema.js';
import { ApiError } from '../http/api-error.js';
import { isPackTrusted } from '../packs/pack-store.js';
import { roleAtLeast, scopeCovers } from '../policy/engine.js';
import { decideSandboxCreate, execQuotaProblem, type SandboxUsage } from '../policy/sandbox-policy.js';
import { loadSandboxPolicy } from '../policy/sandbox-policy-store.js';
import { loadScope } from '../policy/store.js';
import type { SandboxHost, SandboxHostRegistry } from './host-registry.js';
import type { SandboxesTable, SandboxTables } from './tables.js';

/** Name under which a guest image is trusted (a pseudo-pack with no actions, see docs/wire-protocol.md). */
export function imagePackName(pack: string): string {
  return `sandbox-image:${pack}`;
}

/** Default guest memory when neither the request nor policy says otherwise (small: TCG hosts). */
const DEFAULT_MEMORY_MB = 256;
/** Default output kept per stream through the control plane. */
const DEFAULT_OUTPUT_BYTES = 64 * 1024;
/** Longest code, output or file text an audit event keeps (the digest covers the whole). */
const AUDIT_TEXT_MAX = 4096;

const LIVE: SandboxesTable['state'][] = ['creating', 'running'];

const redactor = createRedactor();

/** A sandbox as the API shows it. */
export function sandboxView(row: SandboxesTable, hostName?: string) {
  const by = JSON.parse(row.created_by) as { type: string; id: string; name?: string };
  return {
    id: row.id,
    state: row.state,
    language_pack: row.language_pack,
    image_hash: row.image_hash,
    host: { id: row.host_id, ...(hostName === undefined ? {} : { name: hostName }) },
    owner_user_id: row.owner_user_id,
    created_by: by,
    limits: { memory_mb: row.memory_mb, vcpus: row.vcpus, lifetime_s: row.lifetime_s },
    created_at: row.created_at,
    expires_at: row.expires_at,
    ended_at: row.ended_at,
    end_reason: row.end_reason,
    exec_count: Number(row.exec_count),
    cpu_seconds: Math.round(Number(row.cpu_ms) / 100) / 10,
    // Names and bound hosts only: the column never holds a secret value.
    egress: row.egress === null ? null : (JSON.parse(row.egress) as EgressSummary),
  };
}

export type SandboxView = ReturnType<typeof sandboxView>;

/** What a create asks for. */
export interface CreateSandboxRequest {
  readonly language_pack: string;
  readonly memory_mb?: number | undefined;
  readonly vcpus?: number | undefined;
  readonly lifetime_s?: number | undefined;
  readonly env?: Record<string, string> | undefined;
  /** Opt-in egress; secret values go to the host only, never to storage, logs or answers. */
  readonly egress?: SandboxEgressSpec | undefined;
  /** Only hosts with these labels (within the caller's scope). */
  readonly labels?: Record<string, string> | undefined;
}

/** What an exec asks for. */
export interface ExecSandboxRequest {
  readonly code?: string | undefined;
  readonly argv?: string[] | undefined;
  readonly timeout_ms?: number | undefined;
  readonly stdin?: string | undefined;
  readonly env?: Record<string, string> | undefined;
  readonly max_output_bytes?: number | undefined;
}

/** The outcome of an exec, as the API and MCP show it. */
export interface ExecOutcome {
  readonly stdout: string;
  readonly stderr: string;
  readonly exit_code: number;
  readonly signal: number | null;
  readonly duration_ms: number;
  readonly timed_out: boolean;
  readonly truncated: boolean;
  readonly redactions: readonly string[];
  readonly audit_hash: string;
}

/** What may be recorded and shown of a sandbox's egress: the allowlist, secret NAMES and bound hosts, never values. */
export interface EgressSummary {
  readonly allow: string[];
  readonly secrets: { readonly name: string; readonly hosts: string[] }[];
}

/** The egress summary of an ask (null: no egress); what the `sandboxes.egress` column and audit events hold. */
export function egressSummary(e: SandboxEgressSpec | undefined): EgressSummary | null {
  if (e === undefined) return null;
  return {
    allow: [...e.allow],
    secrets: (e.secrets ?? []).map((x) => ({ name: x.name, hosts: [...x.hosts] })),
  };
}

/** Why placement skipped a host that offers no egress (matched when explaining a refusal). */
const NO_EGRESS = 'does not offer egress';

/** How long a create waits for its host's answer. */
const CREATE_TIMEOUT_MS = 5 * 60_000;

/** Most egress events GET /sandboxes/:id/egress answers with. */
const EGRESS_EVENTS_MAX = 1000;

function clip(text: string, max = AUDIT_TEXT_MAX): string {
  return text.length <= max ? text : `${text.slice(0, max)}…[${text.length - max} more characters]`;
}

/** Host error codes as HTTP statuses (the rest are upstream failures). */
function hostError(e: NonNullable<SandboxReplyMessage['error']>): ApiError {
  const status: Record<string, number> = {
    capacity_exceeded: 429,
    image_untrusted: 409,
    unknown_language_pack: 409,
    not_found: 410,
    sandbox_not_running: 409,
    file_not_found: 404,
    payload_too_large: 413,
    invalid_request: 400,
  };
  return new ApiError(status[e.code] ?? 502, e.code, `sandbox host: ${e.message}`);
}

/**
 * Sandboxes under the control plane: policy decides, placement picks a host within the
 * caller's scope, the host does the work over its outbound connection, the audit log
 * records each step. Only the creator (any of their keys or sessions) and the
 * organisation's admins and owners see a sandbox; to anyone else it does not exist.
 */
export class SandboxService {
  private readonly db: Kysely<Database & SandboxTables>;

  constructor(
    private readonly ctx: ServerContext,
    private readonly registry: SandboxHostRegistry,
  ) {
    this.db = ctx.db.kysely.withTables<SandboxTables>();
  }

  // ---- visibility

  /** Who may see and use a sandbox: its owner, and admins/owners of the organisation. */
  static canSee(p: Principal, row: Pick<SandboxesTable, 'org_id' | 'owner_user_id'>): boolean {
    return row.org_id === p.orgId && (row.owner_user_id === p.userId || roleAtLeast(p.role, 'admin'));
  }

  private async load(p: Principal, id: string): Promise<SandboxesTable> {
    const row = await this.db.selectFrom('sandboxes').selectAll().where('id', '=', id).executeTakeFirst();
    // Someone else's sandbox answers exactly like a missing one: its existence is not revealed.
    if (row === undefined || !SandboxService.canSee(p, row)) throw ApiError.notFound(`sandbox ${id}`);
    return row;
  }

  private async hostNames(orgId: string): Promise<Map<string, string>> {
    const rows = await this.ctx.db.kysely
      .selectFrom('runners')
      .select(['id', 'name'])
      .where('org_id', '=', orgId)
      .execute();
    return new Map(rows.map((r) => [r.id, r.name]));
  }

  async get(p: Principal, id: string): Promise<SandboxView> {
    const row = await this.load(p, id);
    return sandboxView(row, (await this.hostNames(p.orgId)).get(row.host_id));
  }

  async list(p: Principal, state?: SandboxesTable['state']): Promise<SandboxView[]> {
    let q = this.db.selectFrom('sandboxes').selectAll().where('org_id', '=', p.orgId);
    if (!roleAtLeast(p.role, 'admin')) q = q.where('owner_user_id', '=', p.userId);
    if (state !== undefined) q = q.where('state', '=', state);
    const rows = await q.orderBy('created_at', 'desc').limit(500).execute();
    const names = await this.hostNames(p.orgId);
    return rows.map((r) => sandboxView(r, names.get(r.host_id)));
  }

  /** Whether the organisation has a sandbox host connected (MCP offers the tools only then). */
  async hostsConnected(orgId: string): Promise<boolean> {
    return this.registry.hostsOf(orgId).length > 0;
  }

  // ---- usage and policy

  private async usage(orgId: string, userId: string): Promise<SandboxUsage> {
    const day = `${new Date().toISOString().slice(0, 10)}T00:00:00.000Z`;
    const live = await this.db
      .selectFrom('sandboxes')
      .select(['owner_user_id'])
      .where('org_id', '=', orgId)
      .where('state', 'in', LIVE)
      .execute();
    const cpu = await this.db
      .selectFrom('sandbox_execs')
      .select(['user_id', 'cpu_ms'])
      .where('org_id', '=', orgId)
      .where('started_at', '>=', day)
      .execute();
    return {
      userConcurrent: live.filter((r) => r.owner_user_id === userId).length,
      orgConcurrent: live.length,
      userCpuMsToday: cpu.filter((r) => r.user_id === userId).reduce((a, r) => a + Number(r.cpu_ms), 0),
      orgCpuMsToday: cpu.reduce((a, r) => a + Number(r.cpu_ms), 0),
    };
  }

  /** The policy decision for a create by `p`, without side effects (also used by explain). */
  async decide(p: Pick<Principal, 'orgId' | 'userId' | 'username' | 'role'>, ask: CreateSandboxRequest) {
    const [policy, usage] = await Promise.all([loadSandboxPolicy(this.ctx.db, p.orgId), this.usage(p.orgId, p.userId)]);
    const decision = decideSandboxCreate({
      subject: { username: p.username, role: p.role },
      ask,
      policy,
      usage,
      defaultMemoryMb: DEFAULT_MEMORY_MB,
    });
    return { decision, policy, usage };
  }

  /**
   * Hosts that may take this sandbox, best first: connected, offering the pack, inside the
   * caller's scope (user scope, then key scope: the same rules as runs) and the requested
   * labels, with a free slot and the memory for it. Also says why the others were left out.
   */
  async placement(
    p: Pick<Principal, 'orgId' | 'userId' | 'keyId' | 'kind'>,
    pack: string,
    memoryMb: number,
    labels: Record<string, string> = {},
    needEgress = false,
  ): Promise<{ candidates: { host: SandboxHost; hash: string }[]; skipped: { host: string; why: string }[] }> {
    const userScope = await loadScope(this.ctx.db, 'user', p.userId);
    const keyScope =
      p.kind === 'api_key' && p.keyId !== undefined ? await loadScope(this.ctx.db, 'api_key', p.keyId) : null;
    const candidates: { host: SandboxHost; hash: string; free: number; mem: number }[] = [];
    const skipped: { host: string; why: string }[] = [];
    for (const host of this.registry.hostsOf(p.orgId)) {
      const r = host.runner;
      const hostLabels = JSON.parse(r.labels) as Record<string, string>;
      const target = { id: r.id, name: r.name, labels: hostLabels };
      const name = r.name;
      if (!scopeCovers(userScope, target)) {
        skipped.push({ host: name, why: 'outside the scope of the requesting user' });
        continue;
      }
      if (keyScope !== null && !scopeCovers(keyScope, target)) {
        skipped.push({ host: name, why: 'outside the scope of this API key' });
        continue;
      }
      if (Object.entries(labels).some(([k, v]) => hostLabels[k] !== v)) {
        skipped.push({ host: name, why: 'labels do not match' });
        continue;
      }
      if (needEgress && host.advert.egress !== true) {
        skipped.push({ host: name, why: NO_EGRESS });
        continue;
      }
      const image = host.advert.images.find((i) => i.pack === pack);
      if (image === undefined) {
        skipped.push({ host: name, why: `no ${pack} image` });
        continue;
      }
      if (!(await isPackTrusted(this.ctx.db, p.orgId, imagePackName(pack), image.hash))) {
        skipped.push({ host: name, why: `image_untrusted: ${pack} image ${image.hash} is not trusted` });
        continue;
      }
      const free = host.advert.capacity.slots_free - host.inflight;
      // The VM monitor needs the guest's memory plus about 128 MiB of its own.
      const mem = host.advert.capacity.memory_free_mb - host.inflightMemoryMb;
      if (free <= 0) {
        skipped.push({ host: name, why: 'no free sandbox slot' });
        continue;
      }
      if (mem < memoryMb + 128) {
        skipped.push({ host: name, why: `not enough free memory (${mem} MiB)` });
        continue;
      }
      candidates.push({ host, hash: image.hash, free, mem });
    }
    // Spread by capacity: most free slots first, then most free memory, then name (stable).
    candidates.sort((a, b) => b.free - a.free || b.mem - a.mem || (a.host.runner.name < b.host.runner.name ? -1 : 1));
    return { candidates: candidates.map(({ host, hash }) => ({ host, hash })), skipped };
  }

  private async denied(p: Principal, ask: CreateSandboxRequest, rule: string, code: string, message: string) {
    await this.ctx.audit.record({
      orgId: p.orgId,
      kind: 'sandbox.denied',
      actor: principalRecord(p),
      action: 'sandbox.create',
      status: 'validation_failed',
      error: { code, message },
      data: { rule, language_pack: ask.language_pack, egress: egressSummary(ask.egress) },
    });
  }

  // ---- lifecycle

  async create(p: Principal, ask: CreateSandboxRequest): Promise<SandboxView> {
    const { decision, policy } = await this.decide(p, ask);
    if (decision.kind === 'deny') {
      await this.denied(p, ask, decision.rule, decision.code, decision.message);
      // Egress refusals also name the field (like a 400), so a form can put them on its input:
      // each allowlist entry outside the organisation's cap, or the egress ask as a whole.
      const fields =
        decision.rule === 'sandbox:egress_allow' && ask.egress !== undefined
          ? ask.egress.allow.flatMap((a, i) =>
              policy.egress_allow.some((pat) => egressEntryCovers(pat, a))
                ? []
                : [
                    {
                      field: `body.egress.allow.${i}`,
                      message: `not allowed in this organisation (allowed: ${policy.egress_allow.join(', ')})`,
                    },
                  ],
            )
          : decision.rule === 'sandbox:egress'
            ? [{ field: 'body.egress', message: decision.message }]
            : undefined;
      throw new ApiError(
        decision.code === 'quota_exceeded' ? 429 : 403,
        decision.code,
        `${decision.message} (rule: ${decision.rule})`,
        fields,
      );
    }
    const { limits } = decision;
    const { candidates, skipped } = await this.placement(
      p,
      ask.language_pack,
      limits.memory_mb,
      ask.labels,
      ask.egress !== undefined,
    );
    const chosen = candidates[0];
    if (
      chosen === undefined &&
      skipped.some((s) => s.why === NO_EGRESS) &&
      skipped.every((s) => s.why === NO_EGRESS || s.why.startsWith('outside') || s.why === 'labels do not match')
    ) {
      // Hosts exist where the caller may go, but none of them can give a sandbox egress.
      const message = `egress was requested, but no sandbox host you may use offers egress (${skipped.map((s) => `${s.host}: ${s.why}`).join('; ')}); hosts need a build with egress and no AIRLOCK_SANDBOX_EGRESS=off`;
      await this.denied(p, ask, 'placement:egress_unavailable', 'egress_unavailable', message);
      // The whole explanation on the field too: the form shows it by the allowlist it is about.
      throw new ApiError(409, 'egress_unavailable', message, [{ field: 'body.egress', message }]);
    }
    if (chosen === undefined) {
      const untrusted = skipped.find((s) => s.why.startsWith('image_untrusted'));
      const [status, code, message] =
        skipped.length === 0
          ? ([409, 'no_sandbox_host', 'no sandbox host is connected in this organisation'] as const)
          : untrusted !== undefined &&
              skipped.every((s) => s.why.startsWith('image_untrusted') || s.why.startsWith('no '))
            ? ([
                409,
                'image_untrusted',
                `${untrusted.why.slice('image_untrusted: '.length)} on host ${untrusted.host}; an admin must trust it (packs, name ${imagePackName(ask.language_pack)})`,
              ] as const)
            : skipped.every((s) => s.why.startsWith('outside'))
              ? ([
                  403,
                  'policy_denied',
                  `no sandbox host inside your scope (${skipped.map((s) => `${s.host}: ${s.why}`).join('; ')})`,
                ] as const)
              : ([
                  429,
                  'capacity_exceeded',
                  `no sandbox host can take it: ${skipped.map((s) => `${s.host}: ${s.why}`).join('; ')}`,
                ] as const);
      await this.denied(p, ask, `placement:${code}`, code, message);
      throw new ApiError(status, code, message);
    }
    const host = chosen.host;
    const now = new Date();
    const row: SandboxesTable = {
      id: `sbx_${randomUUID().replace(/-/g, '').slice(0, 20)}`,
      org_id: p.orgId,
      host_id: host.runner.id,
      host_sandbox_id: null,
      owner_user_id: p.userId,
      created_by: JSON.stringify(principalRecord(p)),
      language_pack: ask.language_pack,
      image_hash: chosen.hash,
      memory_mb: limits.memory_mb,
      vcpus: limits.vcpus,
      lifetime_s: limits.lifetime_s,
      state: 'creating',
      created_at: now.toISOString(),
      expires_at: new Date(now.getTime() + limits.lifetime_s * 1000).toISOString(),
      ended_at: null,
      end_reason: null,
      exec_count: 0,
      cpu_ms: 0,
      egress: ask.egress === undefined ? null : JSON.stringify(egressSummary(ask.egress)),
    };
    await this.db.insertInto('sandboxes').values(row).execute();
    host.inflight++;
    host.inflightMemoryMb += limits.memory_mb + 128;
    let reply: SandboxReplyMessage;
    try {
      reply = await this.registry.request(
        host.runner.id,
        {
          type: 'sandbox_create',
          language_pack: ask.language_pack,
          image_hash: chosen.hash,
          memory_mb: limits.memory_mb,
          vcpus: limits.vcpus,
          lifetime_s: limits.lifetime_s,
          ...(ask.env === undefined ? {} : { env: ask.env }),
          ...(ask.egress === undefined ? {} : { egress: ask.egress }),
        },
        CREATE_TIMEOUT_MS,
      );
    } catch (e) {
      await this.endCreate(p, row, host, e instanceof ApiError ? e.apiCode : 'internal', (e as Error).message);
      throw e;
    } finally {
      host.inflight--;
      host.inflightMemoryMb -= limits.memory_mb + 128;
    }
    if (reply.error !== undefined || reply.sandbox === undefined) {
      const err = reply.error ?? { code: 'guest_protocol', message: 'the host answered a create without a sandbox' };
      await this.endCreate(p, row, host, err.code, err.message);
      throw hostError(err);
    }
    const res = await this.db
      .updateTable('sandboxes')
      .set({ state: 'running', host_sandbox_id: reply.sandbox.id })
      .where('id', '=', row.id)
      .where('state', '=', 'creating')
      .executeTakeFirst();
    const fresh: SandboxesTable = { ...row, state: 'running', host_sandbox_id: reply.sandbox.id };
    if (Number(res.numUpdatedRows) !== 1) {
      // The host left while the reply was on its way; the host's next advert reconciles.
      throw new ApiError(502, 'host_disconnected', 'the sandbox host disconnected while the sandbox was created');
    }
    await this.ctx.audit.record({
      orgId: p.orgId,
      id: row.id,
      kind: 'sandbox.created',
      actor: principalRecord(p),
      runner: host.runner.id,
      action: 'sandbox.create',
      packHash: chosen.hash,
      status: 'success',
      durationMs: Math.round(reply.sandbox.boot_ms ?? 0),
      data: {
        sandbox: row.id,
        host: host.runner.name,
        host_sandbox: reply.sandbox.id,
        language_pack: ask.language_pack,
        image_hash: chosen.hash,
        limits,
        rule: decision.rule,
        trace: decision.trace,
        backend: host.advert.backend,
        isolation: host.advert.isolation,
        egress: egressSummary(ask.egress),
      },
    });
    return sandboxView(fresh, host.runner.name);
  }

  private async endCreate(p: Principal, row: SandboxesTable, host: SandboxHost, code: string, message: string) {
    await this.db
      .updateTable('sandboxes')
      .set({ state: 'failed', ended_at: new Date().toISOString(), end_reason: `${code}: ${message}`.slice(0, 2000) })
      .where('id', '=', row.id)
      .where('state', '=', 'creating')
      .execute();
    await this.ctx.audit.record({
      orgId: p.orgId,
      id: row.id,
      kind: 'sandbox.create_failed',
      actor: principalRecord(p),
      runner: host.runner.id,
      action: 'sandbox.create',
      packHash: row.image_hash,
      status: 'error',
      error: { code, message: message.slice(0, 4000) },
      data: { sandbox: row.id, host: host.runner.name, language_pack: row.language_pack },
    });
  }

  /** A running sandbox the caller may use, with its host connected. */
  private async usable(p: Principal, id: string): Promise<{ row: SandboxesTable; hostId: string; sid: string }> {
    const row = await this.load(p, id);
    if (row.state !== 'running' || row.host_sandbox_id === null)
      throw new ApiError(
        409,
        'sandbox_not_running',
        `sandbox ${id} is ${row.state}${row.end_reason === null ? '' : ` (${row.end_reason})`}`,
      );
    if (this.registry.host(row.host_id) === undefined)
      throw new ApiError(503, 'host_offline', `the host of sandbox ${id} is not connected`);
    return { row, hostId: row.host_id, sid: row.host_sandbox_id };
  }

  async exec(
    p: Principal,
    id: string,
    req: ExecSandboxRequest,
    onOutput?: (stream: 'stdout' | 'stderr', data: string) => void,
  ): Promise<ExecOutcome> {
    const { row, hostId, sid } = await this.usable(p, id);
    const code = req.code ?? JSON.stringify(req.argv ?? []);
    const codeDigest = sha256Digest(code);
    const redactedCode = clip(redactor.redactText(code));
    const policy = await loadSandboxPolicy(this.ctx.db, p.orgId);
    const problem = execQuotaProblem(policy, await this.usage(p.orgId, p.userId), p.username);
    if (problem !== undefined) {
      await this.ctx.audit.record({
        orgId: p.orgId,
        kind: 'sandbox.exec',
        actor: principalRecord(p),
        runner: hostId,
        action: 'sandbox.exec',
        argsDigest: codeDigest,
        args: { code: redactedCode },
        status: 'validation_failed',
        error: { code: 'quota_exceeded', message: problem },
        data: { sandbox: row.id },
      });
      throw new ApiError(429, 'quota_exceeded', problem);
    }
    const timeoutMs = Math.min(req.timeout_ms ?? 30_000, policy.max_exec_timeout_ms);
    const started = new Date();
    let reply: SandboxReplyMessage;
    try {
      reply = await this.registry.request(
        hostId,
        {
          type: 'sandbox_exec',
          sandbox: sid,
          ...(req.code === undefined ? {} : { code: req.code }),
          ...(req.argv === undefined ? {} : { argv: req.argv }),
          timeout_ms: timeoutMs,
          ...(req.stdin === undefined ? {} : { stdin: req.stdin }),
          ...(req.env === undefined ? {} : { env: req.env }),
          max_output_bytes: Math.min(req.max_output_bytes ?? DEFAULT_OUTPUT_BYTES, MAX_SANDBOX_OUTPUT_BYTES),
        },
        timeoutMs + 60_000,
        // Output is redacted on the host; redacting again here costs little and covers a host bug.
        onOutput === undefined ? undefined : (stream, data) => onOutput(stream, redactor.redactText(data)),
      );
    } catch (e) {
      await this.recordExecError(p, row, hostId, codeDigest, redactedCode, started, {
        code: e instanceof ApiError ? e.apiCode : 'internal',
        message: (e as Error).message,
      });
      throw e;
    }
    if (reply.error !== undefined || reply.exec === undefined) {
      const err = reply.error ?? { code: 'guest_protocol', message: 'the host answered an exec without a result' };
      await this.recordExecError(p, row, hostId, codeDigest, redactedCode, started, err);
      throw hostError(err);
    }
    const x = reply.exec;
    const stdout = redactor.redactText(x.stdout);
    const stderr = redactor.redactText(x.stderr);
    const cpuMs = Math.round(x.duration_ms) * row.vcpus;
    await this.db
      .insertInto('sandbox_execs')
      .values({
        id: randomUUID(),
        sandbox_id: row.id,
        org_id: p.orgId,
        user_id: p.userId,
        started_at: started.toISOString(),
        duration_ms: Math.round(x.duration_ms),
        cpu_ms: cpuMs,
        exit_code: x.exit_code,
        status: x.timed_out ? 'timeout' : x.exit_code === 0 ? 'success' : 'failure',
      })
      .execute();
    await this.db
      .updateTable('sandboxes')
      .set((eb) => ({ exec_count: eb('exec_count', '+', 1), cpu_ms: eb('cpu_ms', '+', cpuMs) }))
      .where('id', '=', row.id)
      .execute();
    const event = await this.ctx.audit.record({
      orgId: p.orgId,
      kind: 'sandbox.exec',
      actor: principalRecord(p),
      runner: hostId,
      action: 'sandbox.exec',
      packHash: row.image_hash,
      argsDigest: codeDigest,
      args: { code: redactedCode, ...(req.argv === undefined ? {} : { argv: true }) },
      status: x.timed_out ? 'timeout' : x.exit_code === 0 ? 'success' : 'failure',
      exitCode: x.exit_code,
      durationMs: Math.round(x.duration_ms),
      data: {
        sandbox: row.id,
        language_pack: row.language_pack,
        stdout: clip(stdout),
        stderr: clip(stderr),
        output_digest: sha256Digest(`${stdout}\u0000${stderr}`),
        output_bytes: Buffer.byteLength(stdout) + Buffer.byteLength(stderr),
        timed_out: x.timed_out,
        truncated: x.truncated,
        redactions: x.redactions,
        cpu_ms: cpuMs,
      },
    });
    return {
      stdout,
      stderr,
      exit_code: x.exit_code,
      signal: x.signal,
      duration_ms: x.duration_ms,
      timed_out: x.timed_out,
      truncated: x.truncated,
      redactions: x.redactions,
      audit_hash: event.hash,
    };
  }

  private async recordExecError(
    p: Principal,
    row: SandboxesTable,
    hostId: string,
    codeDigest: string,
    redactedCode: string,
    started: Date,
    error: { code: string; message: string },
  ): Promise<void> {
    await this.ctx.audit.record({
      orgId: p.orgId,
      kind: 'sandbox.exec',
      actor: principalRecord(p),
      runner: hostId,
      action: 'sandbox.exec',
      packHash: row.image_hash,
      argsDigest: codeDigest,
      args: { code: redactedCode },
      status: 'error',
      durationMs: Date.now() - started.getTime(),
      error: { code: error.code.slice(0, 64), message: error.message.slice(0, 4000) },
      data: { sandbox: row.id },
    });
  }

  async writeFile(p: Principal, id: string, path: string, contentB64: string, mode?: number) {
    const { row, hostId, sid } = await this.usable(p, id);
    const bytes = Buffer.from(contentB64, 'base64');
    const reply = await this.registry.request(
      hostId,
      {
        type: 'sandbox_write_file',
        sandbox: sid,
        path,
        content_b64: contentB64,
        ...(mode === undefined ? {} : { mode }),
      },
      60_000,
    );
    await this.ctx.audit.record({
      orgId: p.orgId,
      kind: 'sandbox.file_written',
      actor: principalRecord(p),
      runner: hostId,
      action: 'sandbox.write_file',
      argsDigest: sha256Digest(bytes),
      args: { path },
      status: reply.error === undefined ? 'success' : 'error',
      error: reply.error ?? null,
      data: { sandbox: row.id, size: bytes.length },
    });
    if (reply.error !== undefined) throw hostError(reply.error);
    return { path, size: reply.file?.size ?? bytes.length };
  }

  async readFile(p: Principal, id: string, path: string, maxBytes: number) {
    const { row, hostId, sid } = await this.usable(p, id);
    const reply = await this.registry.request(
      hostId,
      { type: 'sandbox_read_file', sandbox: sid, path, max_bytes: maxBytes },
      60_000,
    );
    const bytes = Buffer.from(reply.file?.content_b64 ?? '', 'base64');
    await this.ctx.audit.record({
      orgId: p.orgId,
      kind: 'sandbox.file_read',
      actor: principalRecord(p),
      runner: hostId,
      action: 'sandbox.read_file',
      argsDigest: sha256Digest(path),
      args: { path },
      status: reply.error === undefined ? 'success' : 'error',
      error: reply.error ?? null,
      data: { sandbox: row.id, size: bytes.length, content_digest: sha256Digest(bytes) },
    });
    if (reply.error !== undefined) throw hostError(reply.error);
    let text: string | null = null;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch {
      text = null;
    }
    return { path, size: reply.file?.size ?? bytes.length, content_b64: bytes.toString('base64'), text };
  }

  async destroy(p: Principal, id: string, reason = 'destroyed by request'): Promise<SandboxView> {
    const row = await this.load(p, id);
    if (row.state === 'destroyed' || row.state === 'failed') return sandboxView(row);
    let hostNote: string | null = null;
    if (row.host_sandbox_id !== null && this.registry.host(row.host_id) !== undefined) {
      const reply = await this.registry.request(
        row.host_id,
        { type: 'sandbox_destroy', sandbox: row.host_sandbox_id },
        60_000,
      );
      if (reply.error !== undefined) throw hostError(reply.error);
    } else hostNote = 'host not connected: nothing to stop';
    const now = new Date().toISOString();
    await this.db
      .updateTable('sandboxes')
      .set({ state: 'destroyed', ended_at: now, end_reason: reason.slice(0, 2000) })
      .where('id', '=', row.id)
      .where('state', 'in', ['creating', 'running', 'lost'])
      .execute();
    await this.ctx.audit.record({
      orgId: p.orgId,
      id: row.id,
      kind: 'sandbox.destroyed',
      actor: principalRecord(p),
      runner: row.host_id,
      action: 'sandbox.destroy',
      packHash: row.image_hash,
      reason,
      status: 'success',
      data: {
        sandbox: row.id,
        was: row.state,
        exec_count: Number(row.exec_count),
        cpu_ms: Number(row.cpu_ms),
        ...(hostNote === null ? {} : { note: hostNote }),
      },
    });
    return sandboxView({ ...row, state: 'destroyed', ended_at: now, end_reason: reason });
  }

  // ---- egress

  /**
   * One egress attempt reported by a host: a `sandbox.egress` audit event in the chain, its
   * actor the sandbox's creator (the one who asked for that egress), its data the event.
   * An event about a sandbox this host does not hold for the control plane is dropped.
   */
  /**
   * Record one egress event as a `sandbox.egress` audit event of the sandbox's creator. An
   * event with an id is recorded once per host: the id is stored in the same transaction, so
   * a copy the host sends again (its acknowledgement was lost) changes nothing. Resolves once
   * the event is durable (or was already recorded, or is about an unknown sandbox and dropped):
   * then the host may forget it.
   */
  async recordEgress(runner: RunnersTable, msg: SandboxEgressMessage): Promise<void> {
    const row = await this.db
      .selectFrom('sandboxes')
      .selectAll()
      .where('host_id', '=', runner.id)
      .where('host_sandbox_id', '=', msg.sandbox)
      .executeTakeFirst();
    if (row === undefined) {
      this.ctx.log.warn({ host: runner.id, sandbox: msg.sandbox }, 'egress event for an unknown sandbox dropped');
      return;
    }
    const e = msg.event;
    const input = {
      orgId: row.org_id,
      kind: 'sandbox.egress',
      actor: JSON.parse(row.created_by) as { type: string; id: string; name?: string },
      runner: runner.id,
      action: 'sandbox.egress',
      packHash: row.image_hash,
      argsDigest: sha256Digest(`${e.method} ${e.host}:${e.port}`),
      args: { method: e.method, target: `${e.host}:${e.port}` },
      status: e.decision === 'allowed' ? (e.reason === 'ok' ? 'success' : 'error') : 'validation_failed',
      durationMs: Math.round(e.duration_ms),
      ...(e.decision === 'refused' ? { reason: e.reason } : {}),
      data: { sandbox: row.id, host_sandbox: msg.sandbox, ...(msg.id === undefined ? {} : { event_id: msg.id }), ...e },
    } as const;
    const id = msg.id;
    if (id === undefined) {
      await this.ctx.audit.record(input);
      return;
    }
    await this.ctx.db.kysely.transaction().execute(async (trx) => {
      const seen = await trx
        .withTables<SandboxTables>()
        .insertInto('egress_seen')
        .values({ host_id: runner.id, event_id: id, recorded_at: new Date().toISOString() })
        .onConflict((oc) => oc.columns(['host_id', 'event_id']).doNothing())
        .executeTakeFirst();
      if (Number(seen.numInsertedOrUpdatedRows ?? 0n) === 0) return; // recorded before
      await this.ctx.audit.record(input, trx);
    });
  }

  /** A sandbox's egress as the control plane knows it: its allowlist, secret names, and the audited events. */
  async egress(p: Principal, id: string, limit = EGRESS_EVENTS_MAX) {
    const row = await this.load(p, id);
    let summary: EgressSummary | null = null;
    if (row.egress !== null) summary = JSON.parse(row.egress) as EgressSummary;
    else {
      // Null: no egress, or a row from before the column (migration 1000). For those, the
      // summary the `sandbox.created` audit event recorded. That event follows the row's insert
      // by at most the create timeout, so the search is a range of the (org_id, time) index.
      const until = new Date(Date.parse(row.created_at) + CREATE_TIMEOUT_MS + 60_000).toISOString();
      const created = await this.ctx.db.kysely
        .selectFrom('audit_events')
        .select('body')
        .where('org_id', '=', row.org_id)
        .where('time', '>=', row.created_at)
        .where('time', '<=', until)
        .where('kind', '=', 'sandbox.created')
        .where('id', '=', row.id)
        .executeTakeFirst();
      summary = created
        ? ((JSON.parse(created.body) as { data?: { egress?: EgressSummary | null } }).data?.egress ?? null)
        : null;
    }
    // The id is validated (sbx_[a-z0-9]+), and bound as a parameter anyway.
    const needle = `"sandbox":"${row.id}"`;
    const rows = await this.ctx.db.kysely
      .selectFrom('audit_events')
      .select(['seq', 'body', 'hash'])
      .where('org_id', '=', row.org_id)
      // No event of this sandbox precedes its creation: a range of the (org_id, time) index
      // instead of the organisation's whole history (5 minutes of slack for clock skew between
      // instances). The events keep a random audit `id`, so the body match stays.
      .where('time', '>=', new Date(Date.parse(row.created_at) - 5 * 60_000).toISOString())
      .where('kind', '=', 'sandbox.egress')
      .where('runner', '=', row.host_id)
      .where(
        this.ctx.db.dialect === 'postgres'
          ? sql<boolean>`strpos(body, ${needle}) > 0`
          : sql<boolean>`instr(body, ${needle}) > 0`,
      )
      .orderBy('seq', 'desc')
      .limit(Math.max(1, Math.min(limit, EGRESS_EVENTS_MAX)))
      .execute();
    return {
      sandbox: row.id,
      enabled: summary !== null,
      allow: summary?.allow ?? [],
      secrets: summary?.secrets ?? [],
      // Oldest first, like the daemon's own log.
      events: rows.reverse().map((r) => {
        const {
          sandbox: _s,
          host_sandbox: _h,
          ...event
        } = (JSON.parse(r.body) as { data: Record<string, unknown> }).data;
        return { ...event, audit_hash: r.hash };
      }),
    };
  }

  // ---- reconciliation with what hosts report

  private async mark(row: SandboxesTable, state: 'lost' | 'destroyed', reason: string, kind: string): Promise<void> {
    const res = await this.db
      .updateTable('sandboxes')
      .set({ state, end_reason: reason, ...(state === 'destroyed' ? { ended_at: new Date().toISOString() } : {}) })
      .where('id', '=', row.id)
      .where('state', '=', row.state)
      .executeTakeFirst();
    if (Number(res.numUpdatedRows) !== 1) return;
    await this.ctx.audit.record({
      orgId: row.org_id,
      id: row.id,
      kind,
      actor: { type: 'runner', id: row.host_id },
      runner: row.host_id,
      action: kind,
      packHash: row.image_hash,
      reason,
      status: state === 'lost' ? 'error' : 'success',
      data: { sandbox: row.id, host_sandbox: row.host_sandbox_id },
    });
  }

  /** A host disconnected: every sandbox it held is lost (until it comes back with them). */
  async hostGone(runnerId: string): Promise<void> {
    const rows = await this.db
      .selectFrom('sandboxes')
      .selectAll()
      .where('host_id', '=', runnerId)
      .where('state', '=', 'running')
      .execute();
    for (const r of rows) await this.mark(r, 'lost', 'the sandbox host disconnected', 'sandbox.lost');
  }

  /**
   * A host's advert lists the sandboxes it really has. Known ones marked lost come back;
   * running ones it no longer has ended (lifetime reached) or are lost; ones the control plane
   * has no live record of are destroyed (a create whose reply never arrived).
   */
  async reconcile(host: SandboxHost, busy: ReadonlySet<string>): Promise<void> {
    const has = new Set(host.advert.sandboxes);
    const rows = await this.db
      .selectFrom('sandboxes')
      .selectAll()
      .where('host_id', '=', host.runner.id)
      .where('state', 'in', ['creating', 'running', 'lost'])
      .execute();
    const known = new Set(rows.map((r) => r.host_sandbox_id).filter((x): x is string => x !== null));
    for (const r of rows) {
      if (r.host_sandbox_id === null) continue;
      if (r.state === 'lost' && has.has(r.host_sandbox_id)) {
        const res = await this.db
          .updateTable('sandboxes')
          .set({ state: 'running', end_reason: null })
          .where('id', '=', r.id)
          .where('state', '=', 'lost')
          .executeTakeFirst();
        if (Number(res.numUpdatedRows) === 1)
          await this.ctx.audit.record({
            orgId: r.org_id,
            id: r.id,
            kind: 'sandbox.recovered',
            actor: { type: 'runner', id: host.runner.id, name: host.runner.name },
            runner: host.runner.id,
            action: 'sandbox.recovered',
            data: { sandbox: r.id },
          });
      } else if (r.state === 'running' && !has.has(r.host_sandbox_id) && !busy.has(r.host_sandbox_id)) {
        if (Date.parse(r.expires_at) <= Date.now() + 2000)
          await this.mark(r, 'destroyed', 'lifetime reached', 'sandbox.expired');
        else await this.mark(r, 'lost', 'the sandbox host no longer has it (its VM failed)', 'sandbox.lost');
      }
    }
    for (const sid of has) {
      if (known.has(sid) || busy.has(sid)) continue;
      this.ctx.log.warn(
        { host: host.runner.id, sandbox: sid },
        'destroying a sandbox the control plane has no record of',
      );
      void this.registry.request(host.runner.id, { type: 'sandbox_destroy', sandbox: sid }, 60_000).catch(() => {});
    }
  }
}
