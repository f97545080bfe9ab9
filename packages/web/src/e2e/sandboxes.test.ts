// End-to-end: the Sandboxes page in headless Chromium against a real control plane (SQLite)
// with a sandbox host that speaks the wire protocol over a real WebSocket. The host here is
// scripted (it answers without booting VMs); real guests through the control plane are
// covered by packages/cli/src/sandbox-control-plane.test.ts. The host advertises egress and
// reports egress events (sandbox_egress frames) when the test tells it to, like a real
// host's proxy would for connections its guests open.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { encodeMessage, parseMessage, type SandboxEgressEvent, type WireMessage } from '@airlock/core';
import { apiClient, mintTestKey, ownerId, startTestServer, type TestServer } from '@airlock/server/testing';
import type { Page } from 'playwright-core';
import WebSocket from 'ws';
import { WEB_ASSETS_DIR, webAssetsBuilt } from '../index.js';
import { type Browser, launchBrowser, screenshot, seriousViolations } from './browser.js';

const HASH = `sha256:${'7'.repeat(64)}`;

interface ScriptedHost {
  readonly ws: WebSocket;
  /** The `sandbox_create` frames received (with secret values: the host is where they go). */
  readonly creates: Extract<WireMessage, { type: 'sandbox_create' }>[];
  /** Host-local ids of the sandboxes made, in order. */
  readonly made: string[];
  /** Report one egress attempt of a sandbox, as the host's proxy would. */
  egress(sandbox: string, event: SandboxEgressEvent): void;
}

/** Connect a scripted sandbox host offering the python pack and egress; it echoes code back as output. */
async function scriptedHost(url: string, token: string): Promise<ScriptedHost> {
  const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/api/v1/runners/connect`, {
    headers: { authorization: `Bearer ${token}` },
  });
  const live = new Set<string>();
  const creates: ScriptedHost['creates'] = [];
  const made: string[] = [];
  let n = 0;
  const send = (m: WireMessage): void => ws.send(encodeMessage(m));
  const advertise = (): void =>
    send({
      type: 'sandbox_host',
      backend: 'qemu',
      isolation: 'microvm',
      kvm: false,
      images: [{ pack: 'python', hash: HASH }],
      capacity: { slots_total: 4, slots_free: 4 - live.size, memory_free_mb: 4096 },
      sandboxes: [...live],
      egress: true,
    });
  const welcomed = new Promise<void>((resolve) => {
    ws.on('message', (data: Buffer) => {
      const p = parseMessage(new Uint8Array(data));
      if (!p.ok) return;
      const m = p.value;
      if (m.type === 'welcome') {
        advertise();
        resolve();
      } else if (m.type === 'sandbox_create') {
        const id = `sb_web${++n}`;
        creates.push(m);
        made.push(id);
        live.add(id);
        send({
          type: 'sandbox_reply',
          request_id: m.request_id,
          sandbox: {
            id,
            language_pack: 'python',
            state: 'running',
            memory_mb: m.memory_mb,
            vcpus: 1,
            lifetime_s: m.lifetime_s,
            boot_ms: 1,
          },
        });
        advertise();
      } else if (m.type === 'sandbox_exec') {
        const out = `ran: ${m.code ?? ''}\n`;
        send({ type: 'sandbox_output', request_id: m.request_id, seq: 0, stream: 'stdout', data: out });
        send({
          type: 'sandbox_reply',
          request_id: m.request_id,
          exec: {
            stdout: out,
            stderr: '',
            exit_code: 0,
            signal: null,
            duration_ms: 12,
            timed_out: false,
            truncated: false,
            redactions: [],
          },
        });
      } else if (m.type === 'sandbox_destroy') {
        live.delete(m.sandbox);
        send({ type: 'sandbox_reply', request_id: m.request_id });
        advertise();
      }
    });
  });
  await new Promise((r) => ws.once('open', r));
  send({
    type: 'hello',
    protocol: 1,
    runner: { name: 'sbx-web' },
    version: '0.1.0',
    packs: [{ name: 'sandbox-image:python', version: '0.1.0', hash: HASH, actions: [] }],
    capabilities: ['sandbox'],
  });
  await welcomed;
  return {
    ws,
    creates,
    made,
    egress: (sandbox, event) => send({ type: 'sandbox_egress', sandbox, event }),
  };
}

describe('dashboard: sandboxes page (headless Chromium)', { timeout: 180_000 }, () => {
  let srv: TestServer;
  let browser: Browser;
  let page: Page;
  let work: string;
  let host: ScriptedHost | undefined;

  before(async () => {
    assert.ok(webAssetsBuilt(), `the dashboard is not built (${WEB_ASSETS_DIR}); run "node packages/web/build.mjs"`);
    work = mkdtempSync(join(tmpdir(), 'airlock-web-sbx-'));
    srv = await startTestServer(join(work, 'airlock.db'));
    const db = srv.server.ctx.db;
    const orgId = srv.server.bootstrap.orgId;
    const admin = apiClient(
      srv.url,
      await mintTestKey(db, orgId, await ownerId(db, orgId), [
        'runners:write',
        'runners:read',
        'packs:read',
        'packs:trust',
      ]),
    );
    const created = await admin('POST', '/api/v1/runners', { name: 'sbx-web', labels: {} });
    const reg = await admin('POST', '/api/v1/runners/register', { bootstrap_key: created.body.bootstrap_key });
    host = await scriptedHost(srv.url, reg.body.token);
    const pack = (await admin('GET', '/api/v1/packs')).body.packs.find(
      (p: { name: string }) => p.name === 'sandbox-image:python',
    );
    assert.equal((await admin('POST', `/api/v1/packs/${pack.id}/trust`, { comment: 'test image' })).status, 200);
    browser = await launchBrowser();
    page = browser.page;
  });

  after(async () => {
    host?.ws.terminate();
    await browser?.close();
    await srv?.stop();
    if (work !== undefined) rmSync(work, { recursive: true, force: true });
  });

  test('create a sandbox, run code in its console, see the output, destroy it', async () => {
    await page.goto(new URL('/', srv.url).toString());
    await page.locator('#username').waitFor();
    await page.fill('#username', 'admin');
    await page.fill('#password', srv.server.bootstrap.password ?? '');
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.getByRole('heading', { name: 'Overview', level: 1 }).waitFor();

    await page.getByRole('navigation', { name: 'Primary' }).getByRole('link', { name: 'Sandboxes' }).click();
    await page.getByRole('heading', { name: 'Sandboxes', level: 1 }).waitFor();
    await page.getByTestId('sandbox-hosts').getByText('sbx-web: qemu (microvm, egress)').waitFor();
    await page.getByText('No sandboxes yet').waitFor();

    await page.getByRole('button', { name: 'Create sandbox' }).click();
    await page.getByRole('heading', { name: /Console/ }).waitFor();
    // Created without egress: the detail view says there is no network at all.
    await page.getByTestId('sandbox-egress').getByText('No egress: this sandbox has no network at all.').waitFor();
    await page.fill('#sandbox-code', 'print(6*7)');
    await page.getByRole('button', { name: 'Run', exact: true }).click();
    await page.getByTestId('stdout').getByText('ran: print(6*7)').waitFor();
    await screenshot(page, 'sandboxes');
    const violations = await seriousViolations(page);
    assert.deepEqual(
      violations.map((v) => `${v.id}: ${v.help}`),
      [],
    );

    const id = (await page.locator('table code').first().textContent()) ?? '';
    assert.match(id, /^sbx_/);
    await page.getByRole('button', { name: `Destroy ${id}` }).click();
    await page.getByRole('table').getByText('destroyed by request').waitFor();
  });
  test('egress: policy allows one destination, a create with an allowlist and a secret, events in the detail view; the secret never reaches the page', async () => {
    const SECRET = 'sk-web-e2e-9f8e7d6c5b4a';
    // Every API answer the page gets from here on, to check none of them carries the secret.
    const answers: Promise<{ url: string; body: string }>[] = [];
    const onResponse = (r: import('playwright-core').Response): void => {
      if (new URL(r.url()).pathname.startsWith('/api/'))
        answers.push(
          r.text().then(
            (body) => ({ url: r.url(), body }),
            () => ({ url: r.url(), body: '' }),
          ),
        );
    };
    page.on('response', onResponse);
    const nav = page.getByRole('navigation', { name: 'Primary' });

    // Policy: egress on, capped to one destination; a bad pattern is named at its field first.
    await nav.getByRole('link', { name: 'Policies & grants' }).click();
    await page.getByRole('heading', { name: 'Sandbox policy', level: 2 }).waitFor();
    await page.getByTestId('sandbox-policy-summary').getByText('Egress: off').waitFor();
    await page.check('#policy-allow-egress');
    await page.fill('#policy-egress-allow', 'api.example.com');
    await page.getByRole('button', { name: 'Save egress policy' }).click();
    await page.locator('#policy-egress-allow-error').getByText('"api.example.com": must be "host:port"').waitFor();
    assert.equal(await page.locator('#policy-egress-allow').getAttribute('aria-invalid'), 'true');
    await page.fill('#policy-egress-allow', 'api.example.com:443');
    await page.getByRole('button', { name: 'Save egress policy' }).click();
    await page.getByTestId('sandbox-policy-summary').getByText('Egress: allowed to api.example.com:443').waitFor();
    assert.deepEqual(
      (await seriousViolations(page)).map((v) => `${v.id}: ${v.help}`),
      [],
    );

    // Create: a malformed entry (400) and a destination outside the policy (403, its structured
    // field names the entry) are shown at the allowlist, a secret bound to no allowed host at its own field.
    await nav.getByRole('link', { name: 'Sandboxes' }).click();
    await page.getByRole('heading', { name: 'Sandboxes', level: 1 }).waitFor();
    await page.getByRole('button', { name: 'Add a secret' }).click();
    const row = page.getByTestId('sandbox-secret');
    await row.getByLabel('Name').fill('API_TOKEN');
    await row.getByLabel('Value').fill(SECRET);
    await row.getByLabel('Bound hosts').fill('api.example.com');
    await page.fill('#sandbox-egress-allow', 'api.example.com');
    await page.getByRole('button', { name: 'Create sandbox' }).click();
    await page.locator('#sandbox-egress-allow-error').getByText('"api.example.com": must be "host:port"').waitFor();
    const hostsError = row.locator('.field-error');
    await hostsError.getByText('is not the host of any egress.allow entry').waitFor();
    await page.fill('#sandbox-egress-allow', 'other.example.net:443');
    await row.getByLabel('Bound hosts').fill('other.example.net');
    await page.getByRole('button', { name: 'Create sandbox' }).click();
    await page
      .locator('#sandbox-egress-allow-error')
      .getByText('"other.example.net:443": not allowed in this organisation (allowed: api.example.com:443)')
      .waitFor();
    assert.equal(host!.creates.length, 1, 'refused creates never reach the host');
    // The typed value lives only in the input's property, never in the DOM's attributes.
    assert.equal(await row.getByLabel('Value').inputValue(), SECRET);
    assert.ok(!(await page.content()).includes(SECRET), 'the typed secret value is in the page HTML');
    await page.getByTestId('sandbox-egress-form').scrollIntoViewIfNeeded();
    await screenshot(page, 'sandbox-egress-refused');

    await page.fill('#sandbox-egress-allow', 'api.example.com:443');
    await row.getByLabel('Bound hosts').fill('api.example.com');
    await page.getByRole('button', { name: 'Create sandbox' }).click();
    const panel = page.getByTestId('sandbox-egress');
    await panel.getByRole('heading', { name: /Egress/ }).waitFor();
    await panel.getByTestId('egress-allow').getByText('api.example.com:443').waitFor();
    await panel.getByTestId('egress-secrets').getByText('API_TOKEN').waitFor();
    assert.match((await panel.getByTestId('egress-secrets').textContent()) ?? '', /API_TOKEN for api\.example\.com/);
    await panel.getByText('No connection attempts yet.').waitFor();
    // The list marks it (from the sandbox's `egress` field); the earlier sandbox has none.
    const cells = page.getByTestId('sandbox-egress-cell');
    await cells.getByText('1 host, 1 secret').waitFor();
    assert.deepEqual(
      (await cells.allTextContents()).map((t) => t.replace(/\s+/g, ' ').trim()),
      ['egress 1 host, 1 secret', 'none'],
    );
    // The form is reset: no secret row (and so no value) is left in it.
    assert.equal(await page.getByTestId('sandbox-secret').count(), 0);

    // The host got the allowlist and the secret (that is where values go); it now reports two attempts.
    const create = host!.creates.at(-1);
    assert.deepEqual(create?.egress, {
      allow: ['api.example.com:443'],
      secrets: [{ name: 'API_TOKEN', value: SECRET, hosts: ['api.example.com'] }],
    });
    const local = host!.made.at(-1)!;
    const now = Date.now();
    host!.egress(local, {
      time: new Date(now - 2000).toISOString(),
      method: 'CONNECT',
      host: 'api.example.com',
      port: 443,
      addresses: ['203.0.113.7'],
      decision: 'allowed',
      reason: 'ok',
      intercepted: true,
      secrets_used: ['API_TOKEN'],
      bytes_up: 512,
      bytes_down: 2048,
      duration_ms: 42,
    });
    host!.egress(local, {
      time: new Date(now - 1000).toISOString(),
      method: 'CONNECT',
      host: 'evil.example.org',
      port: 443,
      addresses: [],
      decision: 'refused',
      reason: 'evil.example.org:443 is not on the allowlist',
      intercepted: false,
      secrets_used: [],
      bytes_up: 0,
      bytes_down: 0,
      duration_ms: 0,
    });
    const events = panel.getByTestId('egress-events');
    await events
      .locator('tr[data-decision="refused"]')
      .getByText('evil.example.org:443 is not on the allowlist')
      .waitFor();
    const allowed = events.locator('tr[data-decision="allowed"]');
    await allowed.getByText('api.example.com:443').waitFor();
    assert.match((await allowed.textContent()) ?? '', /CONNECT.*allowed.*secrets: API_TOKEN.*512 B \/ 2\.0 KiB/);
    // Newest first.
    assert.equal(await events.locator('tbody tr').first().getAttribute('data-decision'), 'refused');

    await panel.scrollIntoViewIfNeeded();
    await screenshot(page, 'sandbox-egress');
    assert.deepEqual(
      (await seriousViolations(page)).map((v) => `${v.id}: ${v.help}`),
      [],
    );

    // The secret is nowhere in the page, nor in anything the API answered it.
    assert.ok(!(await page.content()).includes(SECRET), 'the secret value is in the page');
    page.off('response', onResponse);
    const seen = await Promise.all(answers);
    assert.ok(
      seen.some((a) => a.url.includes('/egress')),
      'the page fetched the egress view',
    );
    assert.ok(
      seen.some((a) => a.url.endsWith('/api/v1/sandboxes') && a.body.includes('sbx_')),
      'the create answered',
    );
    for (const a of seen) assert.ok(!a.body.includes(SECRET), `the secret value is in the answer of ${a.url}`);

    const id =
      (await panel
        .getByRole('heading', { name: /Egress/ })
        .locator('code')
        .textContent()) ?? '';
    await page.getByRole('button', { name: `Destroy ${id}` }).click();
    await page
      .getByRole('row', { name: new RegExp(id) })
      .getByText('destroyed by request')
      .waitFor();
  });
});
