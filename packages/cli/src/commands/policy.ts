// `airlock policy …`, `airlock grant …`, `airlock approve RUN [--sign]`, `airlock deny RUN`:
// talk to the control plane at $AIRLOCK_SERVER with $AIRLOCK_API_KEY.
import { randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import {
  AirlockError,
  type ApproverCert,
  certBytes,
  type DispatchEnvelope,
  dispatchBytes,
  MAX_CERT_VALIDITY_MS,
  type SignedApproverCert,
} from '@airlock/core';
import { generateSigningKey, signRaw } from '@airlock/runner';
import type { Command } from 'commander';
import { collectKeyValue, emit, positiveInt } from '../options.js';

interface KeyFile {
  readonly public_key: string;
  readonly private_key: string;
}

/** An error answered by the control plane, shown as `airlock: <code>: <message>`. */
class ApiFailure extends AirlockError {}

async function api(method: string, path: string, body?: unknown): Promise<any> {
  const server = process.env['AIRLOCK_SERVER'] ?? 'http://127.0.0.1:7700';
  const key = process.env['AIRLOCK_API_KEY'];
  if (key === undefined || key === '')
    throw new AirlockError('invalid_config', 'set AIRLOCK_API_KEY to an API key of the control plane');
  let res: Response;
  try {
    res = await fetch(new URL(path, server), {
      method,
      headers: {
        authorization: `Bearer ${key}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  } catch (e) {
    throw new AirlockError(
      'invalid_config',
      `cannot reach the control plane at ${server} (AIRLOCK_SERVER): ${(e as Error).message}`,
    );
  }
  const text = await res.text();
  const data = text === '' ? undefined : (JSON.parse(text) as any);
  if (!res.ok)
    throw new ApiFailure('invalid_args', `${res.status} ${data?.error?.code ?? ''}: ${data?.error?.message ?? text}`);
  return data;
}

function readKeyFile(file: string): KeyFile {
  let v: Partial<KeyFile>;
  try {
    v = JSON.parse(readFileSync(file, 'utf8')) as Partial<KeyFile>;
  } catch (e) {
    throw new AirlockError('invalid_config', `${file}: cannot read the key file: ${(e as Error).message}`);
  }
  if (typeof v.public_key !== 'string' || typeof v.private_key !== 'string')
    throw new AirlockError('invalid_config', `${file}: expected {public_key, private_key}`);
  return { public_key: v.public_key, private_key: v.private_key };
}

const list = (v: string, prev: string[] = []): string[] => [...prev, v];
const json = (o: unknown): string => `${JSON.stringify(o, null, 2)}\n`;

export function registerPolicyCommands(program: Command): void {
  const policy = program
    .command('policy')
    .description(
      'risk-tier policy, overrides, scopes, explain, signing keys (control plane: $AIRLOCK_SERVER, $AIRLOCK_API_KEY)',
    );

  policy
    .command('show')
    .description('print the organisation policy: rules, overrides and settings')
    .option('--json', 'print JSON')
    .action(async (o: { json?: boolean }) => {
      const p = await api('GET', '/api/v1/policy');
      emit(o.json === true, p, () =>
        [
          `signed tiers: ${p.settings.signed_tiers.join(', ') || '(none)'}   approval expiry: ${p.settings.approval_ttl_s}s   webhook: ${p.settings.webhook_url ?? '(none)'}`,
          ...p.rules.map(
            (r: any) =>
              `${r.id.padEnd(14)} ${r.kind.padEnd(8)} p${String(r.priority).padEnd(5)} ${(r.tier ?? r.action ?? '').padEnd(20)} ${JSON.stringify(r.selector).padEnd(24)} ${r.decision ?? 'bounds only'}${r.decision === 'require_approval' ? ` (${r.approvers ?? 1} × ${r.approver_role ?? 'admin'})` : ''}`,
          ),
          `defaults: read allow, change allow, destructive require_approval (1 admin), unknown as destructive`,
          '',
        ].join('\n'),
      );
    });

  const rule = policy.command('rule').description('add or remove tier rules and action overrides');
  rule
    .command('add')
    .description(
      'add a rule: --kind tier --tier destructive --selector env=prod --decision deny, or --kind override --action docker.restart …',
    )
    .requiredOption('--kind <kind>', 'tier | override')
    .option('--tier <tier>', 'read | change | destructive | *')
    .option('--action <pattern>', 'action id or pattern (overrides)')
    .option('--selector <k=v>', 'runner label selector (repeatable)', collectKeyValue('--selector'))
    .option('--decision <d>', 'allow | require_approval | deny')
    .option('--approvers <n>', 'approvals needed', positiveInt('--approvers', 10))
    .option('--approver-role <role>', 'admin | owner | operator')
    .option('--limit <name=max>', 'upper bound for a limit (overrides; repeatable)', collectKeyValue('--limit'))
    .option('--pin <arg=regex>', 'argument value must fully match (overrides; repeatable)', collectKeyValue('--pin'))
    .option('--priority <n>', 'lower first', positiveInt('--priority', 1_000_000))
    .option('--comment <text>')
    .action(async (o: Record<string, any>) => {
      const body = {
        kind: o['kind'],
        ...(o['tier'] === undefined ? {} : { tier: o['tier'] }),
        ...(o['action'] === undefined ? {} : { action: o['action'] }),
        selector: o['selector'] ?? {},
        decision: o['decision'] ?? null,
        ...(o['approvers'] === undefined ? {} : { approvers: o['approvers'] }),
        ...(o['approverRole'] === undefined ? {} : { approver_role: o['approverRole'] }),
        ...(o['limit'] === undefined
          ? {}
          : {
              limits: Object.fromEntries(
                Object.entries(o['limit'] as Record<string, string>).map(([k, v]) => [k, Number(v)]),
              ),
            }),
        ...(o['pin'] === undefined ? {} : { pin_args: o['pin'] }),
        ...(o['priority'] === undefined ? {} : { priority: o['priority'] }),
        ...(o['comment'] === undefined ? {} : { comment: o['comment'] }),
      };
      const r = await api('POST', '/api/v1/policy/rules', body);
      process.stdout.write(`added ${r.id}\n`);
    });
  rule
    .command('rm <id>')
    .description('delete a rule')
    .action(async (id: string) => {
      await api('DELETE', `/api/v1/policy/rules/${encodeURIComponent(id)}`);
      process.stdout.write(`deleted ${id}\n`);
    });

  policy
    .command('settings')
    .description('signed tiers, organisation root public key, approval expiry, webhook')
    .option('--signed-tiers <list>', 'comma-separated tiers that need an approver signature ("" for none)')
    .option('--root-key <public key>', 'organisation root public key (base64url, from "airlock policy keygen")')
    .option('--ttl <seconds>', 'approval expiry', positiveInt('--ttl', 23 * 3600))
    .option('--webhook <url>', 'notification webhook ("" to remove)')
    .option('--webhook-secret <secret>', 'HMAC-SHA256 secret for the webhook signature')
    .action(async (o: Record<string, any>) => {
      const body: Record<string, unknown> = {};
      if (o['signedTiers'] !== undefined)
        body['signed_tiers'] = String(o['signedTiers'])
          .split(',')
          .map((s) => s.trim())
          .filter((s) => s !== '');
      if (o['rootKey'] !== undefined) body['root_public_key'] = o['rootKey'];
      if (o['ttl'] !== undefined) body['approval_ttl_s'] = o['ttl'];
      if (o['webhook'] !== undefined) body['webhook_url'] = o['webhook'] === '' ? null : o['webhook'];
      if (o['webhookSecret'] !== undefined) body['webhook_secret'] = o['webhookSecret'];
      process.stdout.write(json(await api('PUT', '/api/v1/policy/settings', body)));
    });

  policy
    .command('scope <user>')
    .description("set a user's runner scope (label selector and/or runners); every key they minted follows at once")
    .option('--selector <k=v>', 'label selector (repeatable)', collectKeyValue('--selector'))
    .option('--runner <id or name>', 'an explicit runner (repeatable)', list)
    .option('--clear', 'remove the restriction (every runner)')
    .action(async (user: string, o: { selector?: Record<string, string>; runner?: string[]; clear?: boolean }) => {
      if (o.clear === true) {
        await api('DELETE', `/api/v1/policy/scopes/users/${encodeURIComponent(user)}`);
        process.stdout.write(`${user}: every runner\n`);
        return;
      }
      const r = await api('PUT', `/api/v1/policy/scopes/users/${encodeURIComponent(user)}`, {
        selector: o.selector ?? null,
        runners: o.runner ?? null,
      });
      process.stdout.write(json(r));
    });

  policy
    .command('explain')
    .description('what would happen if USER asked for ACTION with ARGS on RUNNER (runs nothing)')
    .requiredOption('--runner <id or name>')
    .requiredOption('--action <id>')
    .option('--user <id or name>', 'default: you')
    .option('--key <key id>', 'an API key of that user')
    .option('--arg <k=v>', 'argument (repeatable; numbers and booleans are converted)', collectKeyValue('--arg'))
    .option('--json', 'print JSON')
    .action(
      async (o: {
        runner: string;
        action: string;
        user?: string;
        key?: string;
        arg?: Record<string, string>;
        json?: boolean;
      }) => {
        const args = Object.fromEntries(
          Object.entries(o.arg ?? {}).map(([k, v]) => [
            k,
            /^-?\d+$/.test(v) ? Number(v) : v === 'true' ? true : v === 'false' ? false : v,
          ]),
        );
        const q = new URLSearchParams({ runner: o.runner, action: o.action, args: JSON.stringify(args) });
        if (o.user !== undefined) q.set('user', o.user);
        if (o.key !== undefined) q.set('key', o.key);
        const r = await api('GET', `/api/v1/policy/explain?${q}`);
        emit(
          o.json === true,
          r,
          () =>
            `${r.decision} (rule ${r.rule}; risk ${r.risk})${r.message ? `: ${r.message}` : ''}\n${r.trace.map((t: string) => `  ${t}`).join('\n')}\n`,
        );
      },
    );

  policy
    .command('keygen')
    .description('create an Ed25519 key pair (organisation root or approver key) as a JSON file (mode 0600)')
    .requiredOption('--out <file>')
    .action((o: { out: string }) => {
      const k = generateSigningKey();
      writeFileSync(o.out, json({ public_key: k.publicKey, private_key: k.privateKey }), { mode: 0o600, flag: 'wx' });
      process.stdout.write(`public key: ${k.publicKey}\n`);
    });

  policy
    .command('certify')
    .description(
      'certify an approver public key with the organisation root key, for at most 24 hours (run this offline)',
    )
    .requiredOption('--root-key <file>', 'root key file from keygen')
    .requiredOption('--public-key <key>', "the approver's public key")
    .requiredOption('--subject <who>', 'who holds the key')
    .option('--hours <n>', 'validity (≤ 24)', positiveInt('--hours', 24))
    .option('--key-id <id>')
    .requiredOption('--out <file>')
    .action(
      (o: { rootKey: string; publicKey: string; subject: string; hours?: number; keyId?: string; out: string }) => {
        const rootKey = readKeyFile(o.rootKey);
        const now = Date.now();
        const cert: ApproverCert = {
          v: 1,
          key_id: o.keyId ?? `ak_${randomUUID().slice(0, 8)}`,
          public_key: o.publicKey,
          subject: o.subject,
          not_before: new Date(now - 60_000).toISOString(),
          not_after: new Date(
            Math.min(now + (o.hours ?? 8) * 3_600_000, now - 60_000 + MAX_CERT_VALIDITY_MS),
          ).toISOString(),
        };
        const signed: SignedApproverCert = {
          cert,
          signature: signRaw(rootKey.private_key, rootKey.public_key, certBytes(cert)),
        };
        writeFileSync(o.out, json(signed), { mode: 0o600 });
        process.stdout.write(`certificate ${cert.key_id} for ${cert.subject} valid until ${cert.not_after}\n`);
      },
    );

  const grant = program
    .command('grant')
    .description('standing grants: run an action pattern without asking (never overrides a deny)');
  grant
    .command('add')
    .description('grant a user (--user) or API key (--key) an action pattern on a selector')
    .option('--user <id or name>')
    .option('--key <key id>')
    .requiredOption('--action <pattern>')
    .option('--selector <k=v>', 'runner label selector (repeatable)', collectKeyValue('--selector'))
    .option('--arg-match <arg=regex>', 'argument constraint (repeatable)', collectKeyValue('--arg-match'))
    .option('--max-uses <n>', '', positiveInt('--max-uses', 1_000_000))
    .option('--expires-in <seconds>', '', positiveInt('--expires-in', 366 * 24 * 3600))
    .option('--comment <text>')
    .action(async (o: Record<string, any>) => {
      if ((o['user'] === undefined) === (o['key'] === undefined))
        throw new AirlockError('invalid_args', 'give exactly one of --user or --key');
      const r = await api('POST', '/api/v1/policy/grants', {
        subject: o['user'] !== undefined ? { type: 'user', id: o['user'] } : { type: 'api_key', id: o['key'] },
        action: o['action'],
        selector: o['selector'] ?? {},
        arg_constraints: o['argMatch'] ?? {},
        ...(o['maxUses'] === undefined ? {} : { max_uses: o['maxUses'] }),
        ...(o['expiresIn'] === undefined ? {} : { expires_in_s: o['expiresIn'] }),
        ...(o['comment'] === undefined ? {} : { comment: o['comment'] }),
      });
      process.stdout.write(`granted ${r.id}\n`);
    });
  grant
    .command('list')
    .description('grants with use counts')
    .option('--active', 'only usable ones')
    .option('--json', 'print JSON')
    .action(async (o: { active?: boolean; json?: boolean }) => {
      const r = await api('GET', `/api/v1/policy/grants${o.active === true ? '?active=true' : ''}`);
      emit(
        o.json === true,
        r,
        () =>
          `${r.grants
            .map(
              (g: any) =>
                `${g.id.padEnd(15)} ${`${g.subject.type}:${g.subject.id}`.padEnd(46)} ${g.action.padEnd(20)} uses ${g.uses}/${g.max_uses ?? '∞'}  ${g.revoked_at !== null ? 'revoked' : g.expires_at !== null ? `until ${g.expires_at}` : ''}`,
            )
            .join('\n')}\n`,
      );
    });
  grant
    .command('revoke <id>')
    .description('revoke a grant at once')
    .option('--reason <text>')
    .action(async (id: string, o: { reason?: string }) => {
      await api(
        'POST',
        `/api/v1/policy/grants/${encodeURIComponent(id)}/revoke`,
        o.reason === undefined ? {} : { reason: o.reason },
      );
      process.stdout.write(`revoked ${id}\n`);
    });

  program
    .command('approve <run>')
    .description('approve a run waiting for approval; --sign signs its dispatch envelope with your local key')
    .option('--comment <text>', '', '')
    .option('--sign', 'sign the envelope (needs --key and --cert, or $AIRLOCK_SIGNING_KEY and $AIRLOCK_SIGNING_CERT)')
    .option('--key <file>', 'your approver key file (from "airlock policy keygen")')
    .option('--cert <file>', 'your certificate (from "airlock policy certify")')
    .action(async (runId: string, o: { comment: string; sign?: boolean; key?: string; cert?: string }) => {
      const body: Record<string, unknown> = { comment: o.comment };
      if (o.sign === true) {
        const keyFile = o.key ?? process.env['AIRLOCK_SIGNING_KEY'];
        const certFile = o.cert ?? process.env['AIRLOCK_SIGNING_CERT'];
        if (keyFile === undefined || certFile === undefined)
          throw new AirlockError(
            'invalid_args',
            '--sign needs --key and --cert (or $AIRLOCK_SIGNING_KEY and $AIRLOCK_SIGNING_CERT)',
          );
        const key = readKeyFile(keyFile);
        const cert = JSON.parse(readFileSync(certFile, 'utf8')) as SignedApproverCert;
        if (cert.cert.public_key !== key.public_key)
          throw new AirlockError('invalid_args', `${certFile} certifies another key than ${keyFile}`);
        const view = await api('GET', `/api/v1/runs/${encodeURIComponent(runId)}/approval`);
        const envelope = view.envelope as DispatchEnvelope;
        process.stderr.write(
          `signing: ${envelope.action} on ${envelope.runner} args ${JSON.stringify(envelope.args)} limits ${JSON.stringify(envelope.limits)} until ${envelope.expires_at}\n`,
        );
        body['signature'] = signRaw(key.private_key, key.public_key, dispatchBytes(envelope));
        body['cert'] = cert;
      }
      const r = await api('POST', `/api/v1/runs/${encodeURIComponent(runId)}/approve`, body);
      process.stdout.write(
        `run ${runId}: ${r.run.status} (${r.approval.votes.filter((v: any) => v.vote === 'approve').length}/${r.approval.approvers_required} approvals)\n`,
      );
    });

  program
    .command('deny <run>')
    .description('deny a run waiting for approval; it never runs')
    .requiredOption('--comment <text>', 'why')
    .action(async (runId: string, o: { comment: string }) => {
      const r = await api('POST', `/api/v1/runs/${encodeURIComponent(runId)}/deny`, { comment: o.comment });
      process.stdout.write(`run ${runId}: ${r.run.status}\n`);
    });
}
