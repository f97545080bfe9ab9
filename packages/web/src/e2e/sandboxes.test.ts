// End-to-end: the Sandboxes page in headless Chromium against a real control plane (SQLite)
// with a sandbox host that speaks the wire protocol over a real WebSocket. The host here is
// scripted (it answers without booting VMs); real guests through the control plane are
// covered by packages/cli/src/sandbox-control-plane.test.ts.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { encodeMessage, parseMessage, type WireMessage } from '@airlock/core';
import { apiClient, mintTestKey, ownerId, startTestServer, type TestServer } from '@airlock/server/testing';
import type { Page } from 'playwright-core';
import WebSocket from 'ws';
import { WEB_ASSETS_DIR, webAssetsBuilt } from '../index.js';
import { type Browser, launchBrowser, screenshot, seriousViolations } from './browser.js';

const HASH = `sha256:${'7'.repeat(64)}`;

/** Connect a scripted sandbox host offering the python pack; it echoes code back as output. */
async function scriptedHost(url: string, token: string): Promise<WebSocket> {
  const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/api/v1/runners/connect`, {
    headers: { authorization: `Bearer ${token}` },
  });
  const live = new Set<string>();
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
  return ws;
}

describe('dashboard: sandboxes page (headless Chromium)', { timeout: 180_000 }, () => {
  let srv: TestServer;
  let browser: Browser;
  let page: Page;
  let work: string;
  let host: WebSocket | undefined;

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
    host?.terminate();
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
    await page.getByTestId('sandbox-hosts').getByText('sbx-web: qemu (microvm)').waitFor();
    await page.getByText('No sandboxes yet').waitFor();

    await page.getByRole('button', { name: 'Create sandbox' }).click();
    await page.getByRole('heading', { name: /Console/ }).waitFor();
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
});
