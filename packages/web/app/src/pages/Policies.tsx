import { useState } from 'react';
import {
  ApiError,
  type ApproverGroup,
  api,
  type Explanation,
  type Grant,
  type PolicyRule,
  type PolicySettings,
  type RuleDecision,
  type Runner,
  type User,
} from '../api';
import { FormError, formatPairs, lines, messagesUnder, parsePairs, SelectField, TextField, useAction } from '../forms';
import {
  Badge,
  DataTable,
  describedBy,
  Empty,
  ErrorBox,
  Field,
  Loading,
  PageHeader,
  RowButton,
  Time,
  usePoll,
  useSession,
} from '../lib';

const DECISION_TONE: Record<RuleDecision, string> = { allow: 'success', require_approval: 'pending', deny: 'failure' };
function DecisionBadge({ d }: { d: RuleDecision | null }) {
  if (d === null) return <span className="muted">bounds only</span>;
  return <Badge value={DECISION_TONE[d]} label={d.replace('_', ' ')} />;
}

/** Labels and hints of the rule and grant form fields (ids are `<form>-<name>`). */
const TEXTS: Record<string, { label: string; hint?: string; numeric?: boolean }> = {
  action: { label: 'Action or pattern', hint: 'e.g. docker.restart, showcase.* or docker.*' },
  selector: { label: 'Runners (label selector)', hint: 'key=value, comma-separated; empty = every runner; * globs' },
  pins: { label: 'Pinned arguments', hint: 'arg=regex the value must fully match, e.g. container=web-.*' },
  args: { label: 'Argument constraints', hint: 'arg=regex, e.g. unit=nginx|redis' },
  uses: { label: 'Maximum uses', hint: 'empty = unlimited', numeric: true },
  hours: { label: 'Expires in (hours)', hint: 'empty = until revoked', numeric: true },
  approvers: { label: 'Approvers needed', numeric: true },
  priority: { label: 'Priority', hint: 'lower is checked first', numeric: true },
  comment: { label: 'Comment' },
};

function PolicyText(props: {
  form: 'rule' | 'grant';
  name: string;
  value: string;
  onChange: (v: string) => void;
  error?: string | undefined;
}) {
  const t = TEXTS[props.name] ?? { label: props.name };
  return (
    <TextField
      id={`${props.form}-${props.name}`}
      label={t.label}
      hint={t.hint}
      inputMode={t.numeric === true ? 'numeric' : undefined}
      value={props.value}
      onChange={props.onChange}
      error={props.error}
    />
  );
}

const ROLES = [
  ['admin', 'admin'],
  ['operator', 'operator'],
  ['owner', 'owner'],
] as const;

/** Local checks before anything is sent: each names its field. */
function pairsOrError(text: string, field: string, errors: Record<string, string>): Record<string, string> | undefined {
  const p = parsePairs(text);
  if (p.error !== undefined) {
    errors[field] = p.error;
    return undefined;
  }
  return p.pairs;
}

function RuleForm({ groups, onSaved }: { groups: ApproverGroup[]; onSaved: () => void }) {
  const [kind, setKind] = useState<'tier' | 'override'>('tier');
  const [tier, setTier] = useState<'read' | 'change' | 'destructive' | '*'>('destructive');
  const [action, setAction] = useState('');
  const [selector, setSelector] = useState('');
  const [decision, setDecision] = useState<RuleDecision>('require_approval');
  const [approvers, setApprovers] = useState('1');
  const [role, setRole] = useState<'admin' | 'operator' | 'owner'>('admin');
  const [group, setGroup] = useState('');
  const [pins, setPins] = useState('');
  const [priority, setPriority] = useState('100');
  const [comment, setComment] = useState('');
  const [local, setLocal] = useState<Record<string, string>>({});
  const act = useAction(async () => {
    const errs: Record<string, string> = {};
    const sel = pairsOrError(selector, 'selector', errs);
    const pin = kind === 'override' ? pairsOrError(pins, 'pin_args', errs) : {};
    if (kind === 'override' && !/^[a-z0-9_.*]{1,256}$/.test(action))
      errs['action'] = 'an action id or pattern such as docker.* or docker.restart';
    if (!/^\d+$/.test(priority)) errs['priority'] = 'a whole number; lower is checked first';
    setLocal(errs);
    if (Object.keys(errs).length > 0) return;
    await api('POST', '/api/v1/policy/rules', {
      kind,
      priority: Number(priority),
      ...(kind === 'tier' ? { tier } : { action }),
      selector: sel,
      decision,
      ...(decision === 'require_approval'
        ? { approvers: Number(approvers), approver_role: role, ...(group === '' ? {} : { approver_group: group }) }
        : {}),
      ...(pin !== undefined && Object.keys(pin).length > 0 ? { pin_args: pin } : {}),
      ...(comment.trim() === '' ? {} : { comment: comment.trim() }),
    });
    setAction('');
    setComment('');
    onSaved();
  });
  const err = (f: string) => local[f] ?? act.field(f);
  return (
    <form className="panel" onSubmit={act.submit} noValidate aria-labelledby="rule-h">
      <h3 id="rule-h">Add a rule</h3>
      <FormError
        error={act.error}
        title="Rule not added"
        fields={['kind', 'tier', 'action', 'selector', 'decision', 'approvers', 'approver_group', 'pin_args']}
      />
      <div className="form-row">
        <SelectField
          id="rule-kind"
          label="Kind"
          value={kind}
          onChange={setKind}
          options={[
            ['tier', 'tier rule — a risk tier'],
            ['override', 'override — one action or pattern'],
          ]}
          error={err('kind')}
        />
        {kind === 'tier' ? (
          <SelectField
            id="rule-tier"
            label="Tier"
            value={tier}
            onChange={setTier}
            options={[
              ['read', 'read'],
              ['change', 'change'],
              ['destructive', 'destructive'],
              ['*', 'every tier'],
            ]}
            error={err('tier')}
          />
        ) : (
          <PolicyText form="rule" name="action" value={action} onChange={setAction} error={err('action')} />
        )}
        <PolicyText form="rule" name="selector" value={selector} onChange={setSelector} error={err('selector')} />
      </div>
      <div className="form-row">
        <SelectField
          id="rule-decision"
          label="Decision"
          value={decision}
          onChange={setDecision}
          options={[
            ['allow', 'allow'],
            ['require_approval', 'require approval'],
            ['deny', 'deny (always wins)'],
          ]}
          error={err('decision')}
        />
        {decision === 'require_approval' && (
          <>
            <PolicyText
              form="rule"
              name="approvers"
              value={approvers}
              onChange={setApprovers}
              error={err('approvers')}
            />
            <SelectField
              id="rule-role"
              label="Approver role (at least)"
              value={role}
              onChange={setRole}
              options={ROLES}
            />
            <SelectField
              id="rule-group"
              label="Approver group"
              value={group}
              onChange={setGroup}
              options={[['', 'any (role decides)'] as const, ...groups.map((g) => [g.name, g.name] as const)]}
              error={err('approver_group')}
            />
          </>
        )}
      </div>
      <div className="form-row">
        {kind === 'override' && (
          <PolicyText form="rule" name="pins" value={pins} onChange={setPins} error={err('pin_args')} />
        )}
        <PolicyText form="rule" name="priority" value={priority} onChange={setPriority} error={err('priority')} />
        <PolicyText form="rule" name="comment" value={comment} onChange={setComment} />
      </div>
      <button type="submit" className="btn btn-primary" disabled={act.busy}>
        Add rule
      </button>
    </form>
  );
}

function Rules() {
  const s = useSession();
  const policy = usePoll(
    () =>
      api<{ rules: PolicyRule[]; settings: PolicySettings; defaults: Record<string, string> }>('GET', '/api/v1/policy'),
    [],
    10000,
  );
  const groups = usePoll(() => api<{ groups: ApproverGroup[] }>('GET', '/api/v1/policy/approver-groups'), [], 10000);
  const del = useAction(async (id: string) => {
    await api('DELETE', `/api/v1/policy/rules/${encodeURIComponent(id)}`);
    policy.reload();
  });
  const rules = policy.data?.rules ?? [];
  const groupName = (id: string | null) => groups.data?.groups.find((g) => g.id === id)?.name ?? id;
  return (
    <section className="panel" aria-labelledby="rules-h">
      <h2 id="rules-h">Rules</h2>
      <p className="muted">
        Checked per request: any matching <strong>deny</strong> wins; then the first matching override, then the first
        tier rule, else the defaults (
        {Object.entries(policy.data?.defaults ?? {})
          .map(([k, v]) => `${k}: ${v}`)
          .join('; ')}
        ).
        {policy.data !== undefined && policy.data.settings.signed_tiers.length > 0 && (
          <> Signed tiers: {policy.data.settings.signed_tiers.join(', ')}.</>
        )}
      </p>
      <ErrorBox error={policy.error ?? del.error} title="Rules" />
      {policy.loading ? (
        <Loading what="rules" />
      ) : rules.length === 0 ? (
        <Empty title="No rules: the defaults decide">
          <p>Add a rule to allow, gate or deny a tier or an action on some runners.</p>
        </Empty>
      ) : (
        <DataTable
          label="Policy rules"
          columns={['Rule', 'Applies to', 'Runners', 'Decision', 'Approvers', 'Bounds']}
          buttons="Delete"
        >
          {rules.map((r) => (
            <tr key={r.id} data-rule={r.id}>
              <td>
                <code>{r.id}</code>
                <div className="small muted">
                  {r.kind} · priority {r.priority}
                  {r.comment !== null && <> · {r.comment}</>}
                </div>
              </td>
              <td>{r.kind === 'tier' ? `tier ${r.tier}` : <code>{r.action}</code>}</td>
              <td>{formatPairs(r.selector) || <span className="muted">every runner</span>}</td>
              <td>
                <DecisionBadge d={r.decision} />
              </td>
              <td className="small">
                {r.decision === 'require_approval'
                  ? `${r.approvers ?? 1} × ${r.approver_role ?? 'admin'}${r.approver_group === null ? '' : ` in ${groupName(r.approver_group)}`}`
                  : '—'}
              </td>
              <td className="small">{formatPairs({ ...(r.limits ?? {}), ...(r.pin_args ?? {}) }) || '—'}</td>
              <td>
                {s.can('users:write') && (
                  <RowButton label="Delete" what={`rule ${r.id}`} onClick={() => void del.run(r.id)} />
                )}
              </td>
            </tr>
          ))}
        </DataTable>
      )}
      {s.can('users:write') && <RuleForm groups={groups.data?.groups ?? []} onSaved={policy.reload} />}
    </section>
  );
}

function grantState(g: Grant): { value: string; label: string } {
  if (g.revoked_at !== null) return { value: 'revoked', label: 'revoked' };
  if (g.expires_at !== null && g.expires_at <= new Date().toISOString())
    return { value: 'cancelled', label: 'expired' };
  if (g.max_uses !== null && g.uses >= g.max_uses) return { value: 'cancelled', label: 'used up' };
  return { value: 'success', label: 'active' };
}

function GrantForm({ users, onSaved }: { users: User[]; onSaved: () => void }) {
  const [subject, setSubject] = useState('');
  const [action, setAction] = useState('');
  const [selector, setSelector] = useState('');
  const [args, setArgs] = useState('');
  const [maxUses, setMaxUses] = useState('');
  const [hours, setHours] = useState('');
  const [comment, setComment] = useState('');
  const [local, setLocal] = useState<Record<string, string>>({});
  const act = useAction(async () => {
    const errs: Record<string, string> = {};
    const sel = pairsOrError(selector, 'selector', errs);
    const constraints = pairsOrError(args, 'arg_constraints', errs);
    if (subject.trim() === '') errs['subject'] = 'choose who gets the grant';
    if (!/^[a-z0-9_.*]{1,256}$/.test(action)) errs['action'] = 'an action id or pattern such as docker.*';
    if (maxUses !== '' && !/^[1-9]\d*$/.test(maxUses)) errs['max_uses'] = 'a whole number from 1, or empty';
    if (hours !== '' && !/^[1-9]\d*$/.test(hours)) errs['expires_in_s'] = 'whole hours from 1, or empty';
    setLocal(errs);
    if (Object.keys(errs).length > 0) return;
    const isKey = subject.startsWith('key:');
    await api('POST', '/api/v1/policy/grants', {
      subject: { type: isKey ? 'api_key' : 'user', id: isKey ? subject.slice(4) : subject.trim() },
      action,
      selector: sel,
      arg_constraints: constraints,
      ...(maxUses === '' ? {} : { max_uses: Number(maxUses) }),
      ...(hours === '' ? {} : { expires_in_s: Number(hours) * 3600 }),
      ...(comment.trim() === '' ? {} : { comment: comment.trim() }),
    });
    setAction('');
    setComment('');
    onSaved();
  });
  const err = (f: string) => local[f] ?? act.field(f);
  return (
    <form className="panel" onSubmit={act.submit} noValidate aria-labelledby="grant-h">
      <h3 id="grant-h">Grant a standing right</h3>
      <FormError
        error={act.error}
        title="Grant not made"
        fields={['subject', 'action', 'selector', 'arg_constraints', 'max_uses', 'expires_in_s']}
      />
      <div className="form-row">
        <SelectField
          id="grant-subject"
          label="Who"
          value={subject}
          onChange={setSubject}
          options={[['', 'choose a user'] as const, ...users.map((u) => [u.username, u.username] as const)]}
          hint="An API key instead: use the CLI (airlock grant add --key)."
          error={err('subject')}
        />
        <PolicyText form="grant" name="action" value={action} onChange={setAction} error={err('action')} />
        <PolicyText form="grant" name="selector" value={selector} onChange={setSelector} error={err('selector')} />
      </div>
      <div className="form-row">
        <PolicyText form="grant" name="args" value={args} onChange={setArgs} error={err('arg_constraints')} />
        <PolicyText form="grant" name="uses" value={maxUses} onChange={setMaxUses} error={err('max_uses')} />
        <PolicyText form="grant" name="hours" value={hours} onChange={setHours} error={err('expires_in_s')} />
      </div>
      <PolicyText form="grant" name="comment" value={comment} onChange={setComment} />
      <button type="submit" className="btn btn-primary" disabled={act.busy}>
        Grant
      </button>
    </form>
  );
}

function Grants() {
  const s = useSession();
  const grants = usePoll(() => api<{ grants: Grant[] }>('GET', '/api/v1/policy/grants'), [], 5000);
  const users = usePoll(
    () => (s.can('users:read') ? api<{ users: User[] }>('GET', '/api/v1/users') : Promise.resolve({ users: [] })),
    [],
    0,
  );
  const names = new Map((users.data?.users ?? []).map((u) => [u.id, u.username]));
  const revoke = useAction(async (id: string) => {
    await api('POST', `/api/v1/policy/grants/${encodeURIComponent(id)}/revoke`, { reason: 'revoked in the dashboard' });
    grants.reload();
  });
  const list = grants.data?.grants ?? [];
  return (
    <section className="panel" aria-labelledby="grants-h">
      <h2 id="grants-h">Standing grants</h2>
      <p className="muted">
        A grant lets someone run an action without asking, where a rule would ask for approval. It never lifts a deny
        and never stands in for a signature. Revoking takes effect on the next request.
      </p>
      <ErrorBox error={grants.error ?? revoke.error} title="Grants" />
      {grants.loading ? (
        <Loading what="grants" />
      ) : list.length === 0 ? (
        <Empty title="No grants">
          <p>Grant a user a standing right below; their runs of that action then skip approval.</p>
        </Empty>
      ) : (
        <DataTable
          label="Grants"
          columns={['Who', 'Action', 'Runners', 'Arguments', 'Uses', 'Expires', 'State']}
          buttons="Revoke"
        >
          {list.map((g) => {
            const st = grantState(g);
            return (
              <tr key={g.id} data-grant={g.id} data-state={st.label}>
                <td>
                  {g.subject.type === 'user' ? (names.get(g.subject.id) ?? g.subject.id) : `key ${g.subject.id}`}
                  <div className="small muted">
                    <code>{g.id}</code> by {g.created_by}
                  </div>
                </td>
                <td>
                  <code>{g.action}</code>
                </td>
                <td>{formatPairs(g.selector) || <span className="muted">every runner</span>}</td>
                <td className="small">{formatPairs(g.arg_constraints) || '—'}</td>
                <td>
                  {g.uses}
                  {g.max_uses === null ? '' : ` of ${g.max_uses}`}
                </td>
                <td>{g.expires_at === null ? 'never' : <Time iso={g.expires_at} />}</td>
                <td>
                  <Badge value={st.value} label={st.label} />
                </td>
                <td>
                  {s.can('users:write') && g.revoked_at === null && (
                    <RowButton label="Revoke" what={`grant ${g.id}`} onClick={() => void revoke.run(g.id)} />
                  )}
                </td>
              </tr>
            );
          })}
        </DataTable>
      )}
      {s.can('users:write') && <GrantForm users={users.data?.users ?? []} onSaved={grants.reload} />}
    </section>
  );
}

function Groups() {
  const s = useSession();
  const groups = usePoll(() => api<{ groups: ApproverGroup[] }>('GET', '/api/v1/policy/approver-groups'), [], 10000);
  const [name, setName] = useState('');
  const [members, setMembers] = useState('');
  const split = (t: string) =>
    t
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean);
  const create = useAction(async () => {
    await api('POST', '/api/v1/policy/approver-groups', { name: name.trim(), members: split(members) });
    setName('');
    setMembers('');
    groups.reload();
  });
  const remove = useAction(async (id: string) => {
    await api('DELETE', `/api/v1/policy/approver-groups/${encodeURIComponent(id)}`);
    groups.reload();
  });
  const list = groups.data?.groups ?? [];
  return (
    <section className="panel" aria-labelledby="groups-h">
      <h2 id="groups-h">Approver groups</h2>
      <p className="muted">
        A rule may ask for approvers from a group (for example the database team), on top of a role.
      </p>
      <ErrorBox error={groups.error ?? remove.error} title="Approver groups" />
      {list.length === 0 ? (
        <p className="muted">No approver groups.</p>
      ) : (
        <ul className="plain-list">
          {list.map((g) => (
            <li key={g.id}>
              <strong>{g.name}</strong>: {g.members.map((m) => m.username ?? m.id).join(', ') || 'no members'}{' '}
              {s.can('users:write') && (
                <button type="button" className="btn btn-small" onClick={() => void remove.run(g.id)}>
                  Delete<span className="sr-only"> group {g.name}</span>
                </button>
              )}
            </li>
          ))}
        </ul>
      )}
      {s.can('users:write') && (
        <form onSubmit={create.submit} noValidate aria-label="Create an approver group" className="form-row">
          <TextField id="group-name" label="Group name" value={name} onChange={setName} error={create.field('name')} />
          <TextField
            id="group-members"
            label="Members"
            hint="usernames, comma-separated"
            value={members}
            onChange={setMembers}
            error={create.error?.fields.find((f) => f.field.startsWith('body.members'))?.message}
          />
          <div className="button-row align-end">
            <button type="submit" className="btn" disabled={create.busy}>
              Create group
            </button>
          </div>
          <FormError error={create.error} title="Group not created" fields={['name', 'members']} />
        </form>
      )}
    </section>
  );
}

/** "What would happen if …": asks the server's explain endpoint; runs nothing. */
function Explain() {
  const s = useSession();
  const runners = usePoll(() => api<{ runners: Runner[] }>('GET', '/api/v1/runners'), [], 0);
  const [user, setUser] = useState('');
  const [runner, setRunner] = useState('');
  const [action, setAction] = useState('');
  const [args, setArgs] = useState('{}');
  const [result, setResult] = useState<Explanation>();
  const [local, setLocal] = useState<Record<string, string>>({});
  const act = useAction(async () => {
    const errs: Record<string, string> = {};
    if (runner === '') errs['runner'] = 'choose a runner';
    if (!/^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$/.test(action)) errs['action'] = 'expected namespace.action';
    try {
      const v: unknown = JSON.parse(args);
      if (typeof v !== 'object' || v === null || Array.isArray(v)) errs['args'] = 'a JSON object, e.g. {"n": 3}';
    } catch {
      errs['args'] = 'not valid JSON';
    }
    setLocal(errs);
    setResult(undefined);
    if (Object.keys(errs).length > 0) return;
    const q = new URLSearchParams({ runner, action, args });
    if (user.trim() !== '') q.set('user', user.trim());
    setResult(await api<Explanation>('GET', `/api/v1/policy/explain?${q}`));
  });
  const err = (f: string) =>
    local[f] ?? act.field(f) ?? act.error?.fields.find((x) => x.field === `query.${f}`)?.message;
  const actions = [
    ...new Set(
      (runners.data?.runners ?? [])
        .filter((r) => r.name === runner || r.id === runner)
        .flatMap((r) => r.packs.flatMap((p) => p.actions.map((a) => (typeof a === 'string' ? a : a.id)))),
    ),
  ].sort();
  return (
    <section className="panel" aria-labelledby="explain-h">
      <h2 id="explain-h">Explain a decision</h2>
      <p className="muted">What would happen if someone asked for an action on a runner — without running anything.</p>
      <form onSubmit={act.submit} noValidate aria-label="Explain a decision">
        <div className="form-row">
          {s.can('users:read') && (
            <TextField
              id="explain-user"
              label="As user"
              hint="username; empty = you"
              value={user}
              onChange={setUser}
              error={err('user')}
            />
          )}
          <SelectField
            id="explain-runner"
            label="Runner"
            value={runner}
            onChange={setRunner}
            options={[
              ['', 'choose a runner'] as const,
              ...(runners.data?.runners ?? []).map((r) => [r.name, r.name] as const),
            ]}
            error={err('runner')}
          />
          <TextField
            id="explain-action"
            label="Action"
            hint={
              actions.length > 0
                ? `offered: ${actions.slice(0, 6).join(', ')}${actions.length > 6 ? '…' : ''}`
                : undefined
            }
            value={action}
            onChange={setAction}
            error={err('action')}
          />
        </div>
        <TextField id="explain-args" label="Arguments (JSON)" value={args} onChange={setArgs} error={err('args')} />
        <button type="submit" className="btn btn-primary" disabled={act.busy}>
          Explain
        </button>
      </form>
      {act.error !== undefined && !(act.error instanceof ApiError && act.error.fields.length > 0) && (
        <ErrorBox error={act.error} title="Cannot explain" />
      )}
      {result !== undefined && (
        <div className="panel" role="status" data-testid="explain-result">
          <p>
            <DecisionBadge d={result.decision} /> by <code>{result.rule}</code> (risk {result.risk}
            {result.offered ? '' : ', not offered by this runner'})
          </p>
          {result.message !== undefined && <p>{result.message}</p>}
          {result.decision === 'require_approval' && (
            <p>
              Needs {result.approvers} approval{result.approvers === 1 ? '' : 's'} from {result.approver_role} or above
              {result.signature_required === true ? ', signed by an enrolled approver key' : ''}.
            </p>
          )}
          {result.grant !== undefined && (
            <p>
              Allowed by standing grant <code>{result.grant}</code>.
            </p>
          )}
          {(result.trace?.length ?? 0) > 0 && (
            <ol className="small">
              {result.trace?.map((t) => (
                <li key={t}>{t}</li>
              ))}
            </ol>
          )}
        </div>
      )}
    </section>
  );
}

/** The organisation's sandbox policy, as `GET /api/v1/policy/sandboxes` returns it (and PUT takes it whole). */
interface SandboxPolicy {
  enabled: boolean;
  min_role: string;
  packs: string[];
  max_memory_mb: number;
  max_vcpus: number;
  max_lifetime_s: number;
  default_lifetime_s: number;
  max_exec_timeout_ms: number;
  allow_egress: boolean;
  egress_allow: string[];
  quotas: Record<'user' | 'org', { concurrent: number | null; cpu_seconds_per_day: number | null }>;
}

/**
 * The egress part of the sandbox policy. PUT replaces the whole policy, so the form sends the
 * policy it was opened with, changed only in `allow_egress` and `egress_allow`.
 */
function SandboxEgressForm({ policy, onSaved }: { policy: SandboxPolicy; onSaved: () => void }) {
  const [allowEgress, setAllowEgress] = useState(policy.allow_egress);
  const [patterns, setPatterns] = useState(policy.egress_allow.join('\n'));
  const [saved, setSaved] = useState(false);
  const save = useAction(async () => {
    setSaved(false);
    await api('PUT', '/api/v1/policy/sandboxes', {
      ...policy,
      allow_egress: allowEgress,
      egress_allow: lines(patterns),
    });
    setSaved(true);
    onSaved();
  });
  const entries = lines(patterns);
  const patternsErr = messagesUnder(save.error, 'egress_allow', (rest) => {
    const e = rest[0] === undefined ? undefined : entries[Number(rest[0])];
    return e === undefined ? undefined : `"${e}"`;
  });
  const allowErr = messagesUnder(save.error, 'allow_egress');
  return (
    <form onSubmit={save.submit} noValidate aria-labelledby="sandbox-egress-h" data-testid="sandbox-egress-policy">
      <h3 id="sandbox-egress-h">Network egress</h3>
      <FormError error={save.error} title="Sandbox policy not saved" fields={['allow_egress', 'egress_allow']} />
      <div className="field">
        <label className="check" htmlFor="policy-allow-egress">
          <input
            id="policy-allow-egress"
            type="checkbox"
            checked={allowEgress}
            onChange={(e) => {
              setAllowEgress(e.target.checked);
              setSaved(false);
            }}
            {...describedBy('policy-allow-egress', false, allowErr)}
          />
          Sandboxes may ask for network egress
        </label>
        {allowErr !== undefined && (
          <p className="field-error" id="policy-allow-egress-error">
            {allowErr}
          </p>
        )}
      </div>
      <Field
        id="policy-egress-allow"
        label="Destinations a create may ask for"
        hint="host:port patterns, one per line (api.example.com:443, *.pypi.org:443); the port matches exactly; empty = any destination once egress is allowed"
        error={patternsErr}
      >
        <textarea
          id="policy-egress-allow"
          rows={4}
          value={patterns}
          spellCheck={false}
          onChange={(e) => {
            setPatterns(e.target.value);
            setSaved(false);
          }}
          {...describedBy('policy-egress-allow', true, patternsErr)}
        />
      </Field>
      <div className="button-row">
        <button type="submit" className="btn btn-primary" disabled={save.busy}>
          Save egress policy
        </button>
        {saved && (
          <span role="status" className="muted">
            Saved.
          </span>
        )}
      </div>
    </form>
  );
}

/** Sandbox policy: a summary, and the egress part editable by admins. */
function SandboxPolicySection() {
  const s = useSession();
  const pol = usePoll(() => api<SandboxPolicy>('GET', '/api/v1/policy/sandboxes'), [], 0);
  if (pol.error?.notAvailable === true) return null;
  const p = pol.data;
  const quota = (q: { concurrent: number | null; cpu_seconds_per_day: number | null }) =>
    `${q.concurrent ?? 'any number'} at once, ${q.cpu_seconds_per_day ?? 'unlimited'} CPU-s a day`;
  return (
    <section className="panel" aria-labelledby="sandbox-policy-h">
      <h2 id="sandbox-policy-h">Sandbox policy</h2>
      <ErrorBox error={pol.error} title="Sandbox policy" />
      {p === undefined ? (
        pol.loading && <Loading what="the sandbox policy" />
      ) : (
        <>
          <p className="muted" data-testid="sandbox-policy-summary">
            {p.enabled ? `Role ${p.min_role} and up may create sandboxes` : 'Nobody may create sandboxes'} (packs{' '}
            {p.packs.join(', ')}; up to {p.max_memory_mb} MiB, {p.max_vcpus} vCPU, {p.max_lifetime_s} s). Per user:{' '}
            {quota(p.quotas.user)}; organisation: {quota(p.quotas.org)}. Egress:{' '}
            {!p.allow_egress
              ? 'off'
              : p.egress_allow.length === 0
                ? 'allowed to any destination'
                : `allowed to ${p.egress_allow.join(', ')}`}
            .
          </p>
          {s.can('users:write') && (
            // The form keeps what was typed (and saved); the summary above re-reads the server.
            <SandboxEgressForm policy={p} onSaved={pol.reload} />
          )}
        </>
      )}
    </section>
  );
}

export function PoliciesPage() {
  return (
    <>
      <PageHeader
        title="Policies & grants"
        sub="Who may run what, on which runners, and who must approve. Every change is audited with before and after."
      />
      <Explain />
      <Rules />
      <Grants />
      <Groups />
      <SandboxPolicySection />
    </>
  );
}
