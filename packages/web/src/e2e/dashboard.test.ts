// End-to-end: the dashboard in headless Debian Chromium against a real control plane
// (SQLite), a real runner in this process with the bundled showcase pack, and the built
// bundle served by the server. Screenshots go to docs/screenshots/.
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { certBytes } from '@airlock/core';
import {
  defaultRunnerConfig,
  generateSigningKey,
  type RunningRunner,
  redeemBootstrapKey,
  signRaw,
  startRunner,
} from '@airlock/runner';
import { apiClient, mintTestKey, ownerId, startTestServer, type TestServer } from '@airlock/server/testing';
import type { Page } from 'playwright-core';
import { WEB_ASSETS_DIR, webAssetsBuilt } from '../index.js';
import { type Browser, launchBrowser, repoRoot, screenshot, seriousViolations } from './browser.js';

describe('dashboard end to end (headless Chromium)', { timeout: 240_000 }, () => {
  let srv: TestServer;
  let browser: Browser;
  let page: Page;
  let work: string;
  let packDir: string;
  let runner: RunningRunner | undefined;
  let runnerToken: string;
  const a11y: Record<string, string[]> = {};

  const url = (p: string): string => new URL(p, srv.url).toString();
  const go = async (p: string): Promise<void> => {
    await page.goto(url(p));
    await page.locator('#page-title').waitFor();
  };
  const checkA11y = async (name: string): Promise<void> => {
    const v = await seriousViolations(page);
    a11y[name] = v.map((x) => `${x.id} (${x.impact}): ${x.help} at ${x.nodes.join(', ')}`);
  };
  const startLocalRunner = (): RunningRunner =>
    startRunner({
      config: { ...defaultRunnerConfig({}), name: 'web-1', packDirs: [packDir], logPath: join(work, 'events.jsonl') },
      serverUrl: srv.url,
      token: runnerToken,
      backoff: { minMs: 50, maxMs: 500 },
    });

  before(async () => {
    assert.ok(webAssetsBuilt(), `the dashboard is not built (${WEB_ASSETS_DIR}); run "node packages/web/build.mjs"`);
    work = mkdtempSync(join(tmpdir(), 'airlock-web-e2e-'));
    packDir = join(work, 'showcase');
    cpSync(join(repoRoot, 'packs', 'showcase'), packDir, { recursive: true });
    srv = await startTestServer(join(work, 'airlock.db'));
    browser = await launchBrowser();
    page = browser.page;
  });

  after(async () => {
    runner?.stop();
    await browser?.close();
    await srv?.stop();
    if (work !== undefined) rmSync(work, { recursive: true, force: true });
  });

  test('the server serves the bundle with a strict CSP, and API 404s stay JSON', async () => {
    const res = await fetch(url('/runs/some-id'));
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/html/);
    const csp = res.headers.get('content-security-policy') ?? '';
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'self'(;|$)/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    assert.equal(res.headers.get('cache-control'), 'no-cache');
    const html = await res.text();
    const js = /src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    assert.ok(js !== undefined, 'index.html references a hashed script');
    const asset = await fetch(url(js));
    assert.match(asset.headers.get('content-type') ?? '', /^text\/javascript/);
    assert.match(asset.headers.get('cache-control') ?? '', /immutable/);
    const again = await fetch(url(js), { headers: { 'if-none-match': asset.headers.get('etag') ?? '' } });
    assert.equal(again.status, 304);
    const api404 = await fetch(url('/api/v1/no-such-thing'));
    assert.equal(api404.status, 404);
    assert.equal(((await api404.json()) as { error: { code: string } }).error.code, 'not_found');
    assert.equal((await fetch(url('/assets/missing-1234.js'))).status, 404);
  });

  test('sign in (a wrong password is explained, then the right one works)', async () => {
    await page.goto(url('/'));
    await page.locator('#username').waitFor();
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.getByText('enter your username').waitFor();
    await screenshot(page, 'sign-in');
    await checkA11y('sign-in');
    await page.fill('#username', 'admin');
    await page.fill('#password', 'not-the-password');
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.getByText('The username or password is not right').waitFor();
    const password = srv.server.bootstrap.password;
    assert.ok(password !== undefined, 'the bootstrap owner has a one-time password');
    await page.fill('#password', password);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.getByRole('heading', { name: 'Overview', level: 1 }).waitFor();
    await page.getByText('No runners yet').waitFor();
  });

  test('create a runner: the one-time command is shown, and the runner comes online live', async () => {
    await page.getByRole('navigation', { name: 'Primary' }).getByRole('link', { name: 'Runners' }).click();
    await page.getByRole('heading', { name: 'Runners', level: 1 }).waitFor();
    await page.getByRole('button', { name: 'New runner' }).click();
    // A bad name is explained at the field before anything is sent.
    await page.fill('#runner-name', 'bad name!');
    await page.getByRole('button', { name: 'Create runner' }).click();
    await page.locator('#runner-name-error').waitFor();
    await page.fill('#runner-name', 'web-1');
    await page.fill('#runner-labels', 'env=test, role=demo');
    await page.getByRole('button', { name: 'Create runner' }).click();
    const command = (await page.getByTestId('bootstrap-command').textContent()) ?? '';
    const key = /--bootstrap-key (alb_\S+)/.exec(command)?.[1];
    assert.ok(key !== undefined, `bootstrap command: ${command}`);
    await page.getByRole('button', { name: 'Copy command' }).waitFor();
    await screenshot(page, 'runner-created');
    const row = page.locator('tr[data-runner="web-1"]');
    await row.getByText('pending').waitFor();
    const reg = await redeemBootstrapKey(srv.url, key);
    runnerToken = reg.token;
    runner = startLocalRunner();
    await row.getByText('online').waitFor(); // no reload: the list refreshes itself
    await page.getByRole('button', { name: 'Done' }).click();
    await screenshot(page, 'runners');
    await checkA11y('runners');
    await row.getByRole('link', { name: 'web-1' }).click();
    await page.getByRole('heading', { name: 'Runner web-1' }).waitFor();
    await page.getByRole('cell', { name: 'showcase' }).waitFor();
    await page.getByText('awaiting trust').or(page.getByText('pending')).first().waitFor();
    await screenshot(page, 'runner-detail');
    await checkA11y('runner-detail');
  });

  test('trust a pack, then review and trust a changed version with its old/new hash and diff', async () => {
    await go('/packs');
    await page.locator('tr[data-pack="showcase"][data-status="pending"]').getByRole('link').click();
    await page.getByRole('heading', { name: /^Pack showcase/ }).waitFor();
    await page.getByText('none — this pack was never trusted here').waitFor();
    await page.locator('.diff').first().waitFor({ state: 'attached', timeout: 20_000 }); // contents arrive from the runner
    await page.fill('#decision-comment', 'initial review');
    await page.getByRole('button', { name: 'Trust this hash' }).click();
    await page.locator('.facts').getByText('trusted', { exact: true }).waitFor();
    const firstHash = (await page.getByTestId('new-hash').textContent())?.trim();

    // Change the pack on the host: the runner reconnects and advertises a new hash.
    runner?.stop();
    await runner?.stopped;
    const packYaml = join(packDir, 'pack.yaml');
    writeFileSync(packYaml, `${readFileSync(packYaml, 'utf8').trimEnd()}\n# reviewed change for the e2e test\n`);
    runner = startLocalRunner();

    await go('/packs');
    const pendingRow = page.locator('tr[data-pack="showcase"][data-status="pending"]');
    await pendingRow.waitFor({ timeout: 20_000 });
    await screenshot(page, 'packs');
    await checkA11y('packs');
    await pendingRow.getByRole('link').click();
    await page.getByTestId('old-hash').waitFor();
    assert.equal((await page.getByTestId('old-hash').textContent())?.trim(), firstHash);
    const newHash = (await page.getByTestId('new-hash').textContent())?.trim();
    assert.notEqual(newHash, firstHash);
    await page.locator('.diff-add', { hasText: 'reviewed change for the e2e test' }).waitFor({ timeout: 20_000 });
    await screenshot(page, 'pack-diff', true);
    await checkA11y('pack-diff');
    await page.fill('#decision-comment', 'description change only');
    await page.getByRole('button', { name: 'Trust this hash' }).click();
    await page.getByText('“description change only”').waitFor();
  });

  test('run an action from the catalog and watch its output stream live', async () => {
    await go('/actions');
    await page.fill('#action-search', 'showcase.co');
    await page.getByRole('link', { name: /showcase\.count/ }).click();
    await page.getByRole('heading', { name: 'Run showcase.count' }).waitFor();
    await screenshot(page, 'actions');
    await checkA11y('actions');
    // Errors are shown at the field: no reason given.
    await page.getByRole('button', { name: 'Run', exact: true }).click();
    await page.locator('#run-reason-error').waitFor();
    await page.getByRole('button', { name: 'Add argument' }).click();
    await page.getByRole('button', { name: 'Add argument' }).click();
    const names = page.locator('input[id^="arg-name-"]');
    const types = page.locator('select[id^="arg-type-"]');
    const values = page.locator('input[id^="arg-value-"]');
    await names.nth(0).fill('n');
    await types.nth(0).selectOption('number');
    await values.nth(0).fill('6');
    await names.nth(1).fill('delay_ms');
    await types.nth(1).selectOption('number');
    await values.nth(1).fill('400');
    await page.fill('#run-reason', 'e2e: watch the output stream');
    await page.getByRole('button', { name: 'Run', exact: true }).click();
    await page.getByRole('heading', { name: 'showcase.count', level: 1 }).waitFor();
    const output = page.getByTestId('run-output');
    await output.getByText('1 of 6').waitFor();
    // The first line is on screen while the run is still going: it streamed.
    const statusWhenFirstLine = await page.locator('.status-line .badge').textContent();
    assert.notEqual(statusWhenFirstLine, 'success', 'output arrived before the run finished');
    await output.getByText('6 of 6').waitFor({ timeout: 20_000 });
    await page.locator('.status-line .badge', { hasText: 'success' }).waitFor();
    await page.getByText('admin', { exact: true }).first().waitFor(); // who asked
    await screenshot(page, 'run-detail');
    await checkA11y('run-detail');
  });

  test('cancel a running action from its page', async () => {
    await go('/actions/showcase.sleep');
    await page.getByRole('button', { name: 'Add argument' }).click();
    await page.locator('input[id^="arg-name-"]').first().fill('seconds');
    await page.locator('select[id^="arg-type-"]').first().selectOption('number');
    await page.locator('input[id^="arg-value-"]').first().fill('60');
    await page.fill('#run-reason', 'e2e: to be cancelled');
    await page.getByRole('button', { name: 'Run', exact: true }).click();
    await page.locator('.status-line .badge', { hasText: 'running' }).waitFor({ timeout: 20_000 });
    await page.getByRole('button', { name: 'Cancel run' }).click();
    await page.locator('.status-line .badge', { hasText: 'cancelled' }).waitFor({ timeout: 20_000 });
  });

  test('runs list, overview, audit search and export, settings', async () => {
    await go('/runs');
    await page.getByRole('link', { name: 'showcase.count' }).first().waitFor();
    await screenshot(page, 'runs');
    await checkA11y('runs');
    await go('/');
    await page.getByText('runs in flight').waitFor();
    await page.getByRole('link', { name: 'showcase.count' }).first().waitFor();
    await screenshot(page, 'overview');
    await checkA11y('overview');

    await go('/audit');
    await page.getByTestId('chain-status').waitFor();
    await page.fill('#audit-kind', 'pack.trusted');
    await page.getByRole('button', { name: 'Search', exact: true }).click();
    await page.locator('tbody tr').first().getByText('pack.trusted').waitFor();
    const kinds = await page.locator('tbody tr td:nth-child(3) code').allTextContents();
    assert.ok(kinds.length >= 2 && kinds.every((k) => k === 'pack.trusted'), `kinds: ${kinds.join(',')}`);
    await screenshot(page, 'audit');
    await checkA11y('audit');
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('button', { name: 'Export NDJSON' }).click(),
    ]);
    const file = await download.path();
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    assert.ok(lines.length > 5, 'the export has events');
    assert.ok(lines.some((l) => l.includes('pack.trusted')));

    await go('/settings');
    await page.fill('#key-name', 'ci');
    await page.getByRole('button', { name: 'Create key' }).click();
    const token = (await page.getByTestId('new-api-key').textContent()) ?? '';
    assert.match(token, /^alk_/);
    await screenshot(page, 'settings');
    await checkA11y('settings');
    await page.getByRole('button', { name: 'I have saved it' }).click();
    assert.equal(await page.getByTestId('new-api-key').count(), 0, 'the key is shown once');
  });

  // ---- policy, approvals, grants, signing, consent ----

  /** Sign out (when signed in) and sign in as someone else through the sign-in page. */
  const signInAs = async (username: string, password: string): Promise<void> => {
    await go('/');
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.locator('#username').waitFor();
    await page.fill('#username', username);
    await page.fill('#password', password);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.getByRole('heading', { name: 'Overview', level: 1 }).waitFor();
  };
  let adminApi: ReturnType<typeof apiClient>;
  const BOB = { username: 'bob', password: 'bob-approves-1234' };

  test('policy: a rule gates an action; self-approval is refused; a second user approves', async () => {
    const { db } = srv.server.ctx;
    const orgId = srv.server.bootstrap.orgId;
    adminApi = apiClient(
      srv.url,
      await mintTestKey(db, orgId, await ownerId(db, orgId), [
        'runs:read',
        'runs:write',
        'runners:read',
        'users:read',
        'users:write',
      ]),
    );
    const bob = await adminApi('POST', '/api/v1/users', { ...BOB, role: 'admin' });
    assert.equal(bob.status, 201, JSON.stringify(bob.body));

    await go('/policies');
    // A bad pattern is explained at the field before anything is sent.
    await page.locator('#rule-kind').selectOption('override');
    await page.fill('#rule-action', 'Not An Action!');
    await page.getByRole('button', { name: 'Add rule' }).click();
    await page.locator('#rule-action-error').waitFor();
    await page.fill('#rule-action', 'showcase.echo');
    await page.fill('#rule-comment', 'echo needs a second pair of eyes');
    await page.getByRole('button', { name: 'Add rule' }).click();
    await page.locator('tr[data-rule]', { hasText: 'showcase.echo' }).waitFor();

    const run = await adminApi('POST', '/api/v1/runs', {
      runner: 'web-1',
      action: 'showcase.echo',
      args: { message: 'approved by bob' },
      reason: 'e2e: needs approval',
    });
    assert.equal(run.status, 201, JSON.stringify(run.body));
    assert.equal(run.body.status, 'pending_approval');
    const runId = run.body.id as string;

    await go('/approvals');
    const card = page.locator(`article[data-run="${runId}"]`);
    await card.getByText('You asked for this run').waitFor();
    await card.getByRole('button', { name: 'Approve' }).click();
    await card.getByText('the requester cannot approve their own run').waitFor();
    await screenshot(page, 'approvals');
    await checkA11y('approvals');

    await signInAs(BOB.username, BOB.password);
    await page.getByRole('navigation', { name: 'Primary' }).getByRole('link', { name: 'Approvals' }).click();
    const bobCard = page.locator(`article[data-run="${runId}"]`);
    await bobCard.locator('input[id$="-comment"]').fill('looked at it: harmless echo');
    await bobCard.getByRole('button', { name: 'Approve' }).click();
    await page.getByTestId('decided').getByText('Approved: showcase.echo').waitFor();
    await go(`/runs/${runId}`);
    await page.locator('.status-line .badge', { hasText: 'success' }).waitFor({ timeout: 20_000 });
    await page.getByTestId('run-output').getByText('approved by bob').waitFor();
    const approval = await adminApi('GET', `/api/v1/runs/${runId}/approval`);
    assert.equal(approval.body.state, 'approved');
    assert.deepEqual(
      approval.body.votes.map((v: { approver: { name: string } }) => v.approver.name),
      ['bob'],
    );
  });

  test('grants: a grant lets the run through; after revoking it in the dashboard the next run needs approval again', async () => {
    await go('/policies');
    await page.locator('#grant-subject').selectOption('bob');
    await page.fill('#grant-action', 'showcase.echo');
    await page.fill('#grant-uses', '5');
    await page.getByRole('button', { name: 'Grant', exact: true }).click();
    const row = page.locator('tr[data-grant][data-state="active"]', { hasText: 'showcase.echo' }).first();
    await row.waitFor();
    const grantId = (await row.getAttribute('data-grant')) ?? '';
    const grantRow = page.locator(`tr[data-grant="${grantId}"]`);

    const { db } = srv.server.ctx;
    const orgId = srv.server.bootstrap.orgId;
    const bobId = (
      await db.kysely.selectFrom('users').select('id').where('username', '=', 'bob').executeTakeFirstOrThrow()
    ).id;
    const bobApi = apiClient(srv.url, await mintTestKey(db, orgId, bobId, ['runs:read', 'runs:write']));
    const ask = () =>
      bobApi('POST', '/api/v1/runs', {
        runner: 'web-1',
        action: 'showcase.echo',
        args: { message: 'hi' },
        reason: 'e2e grant',
      });
    const first = await ask();
    assert.equal(first.status, 201, JSON.stringify(first.body));
    assert.notEqual(first.body.status, 'pending_approval', 'the grant lets it through');
    await grantRow.getByText('1 of 5').waitFor();

    // Explain says the same, naming the grant.
    await page.fill('#explain-user', 'bob');
    await page.locator('#explain-runner').selectOption('web-1');
    await page.fill('#explain-action', 'showcase.echo');
    await page.fill('#explain-args', '{"message": "hi"}');
    await page.getByRole('button', { name: 'Explain', exact: true }).click();
    await page.getByTestId('explain-result').getByText(`grant:${grantId}`).first().waitFor();

    await grantRow.getByRole('button', { name: /^Revoke/ }).click();
    await page.locator(`tr[data-grant="${grantId}"][data-state="revoked"]`).waitFor();
    const second = await ask();
    assert.equal(second.status, 201, JSON.stringify(second.body));
    assert.equal(second.body.status, 'pending_approval', 'without the grant the rule asks again');
    await page.getByRole('button', { name: 'Explain', exact: true }).click();
    await page.getByTestId('explain-result').getByText('require approval').waitFor();
    await page.evaluate(() => window.scrollTo(0, 0));
    await screenshot(page, 'policies');
    await checkA11y('policies');
  });

  test('signed dispatch: an approver key made in the browser (WebCrypto Ed25519) signs the approval', async () => {
    // The organisation root key is offline in real life; here the test holds it.
    const root = generateSigningKey();
    const set = await adminApi('PUT', '/api/v1/policy/settings', {
      root_public_key: root.publicKey,
      signed_tiers: ['read'],
    });
    assert.equal(set.status, 200, JSON.stringify(set.body));
    try {
      await go('/settings');
      await page.getByRole('button', { name: 'Make a signing key in this browser' }).click();
      const publicKey = ((await page.getByTestId('browser-public-key').textContent()) ?? '').trim();
      assert.match(publicKey, /^[A-Za-z0-9_-]{43}$/);
      const now = Date.now();
      const cert = {
        v: 1 as const,
        key_id: 'ak_browser1',
        public_key: publicKey,
        subject: 'bob',
        not_before: new Date(now - 60_000).toISOString(),
        not_after: new Date(now + 8 * 3_600_000).toISOString(),
      };
      const signed = { cert, signature: signRaw(root.privateKey, root.publicKey, certBytes(cert)) };
      await page.fill('#approver-cert', JSON.stringify(signed, null, 2));
      await page.getByRole('button', { name: 'Enroll key' }).click();
      const keyRow = page.locator('tr[data-approver-key="ak_browser1"]');
      await keyRow.getByText('active').waitFor();
      await screenshot(page, 'approver-keys');
      await checkA11y('settings-approver-keys');

      const run = await adminApi('POST', '/api/v1/runs', {
        runner: 'web-1',
        action: 'showcase.date',
        args: {},
        reason: 'e2e: signed tier',
      });
      assert.equal(run.body.status, 'pending_approval', JSON.stringify(run.body));
      await go('/approvals');
      const card = page.locator(`article[data-run="${run.body.id}"]`);
      await card.locator('select[id$="-key"]').waitFor(); // the browser's keys are loaded
      await card.getByRole('button', { name: 'Sign and approve' }).click();
      await page.getByTestId('decided').getByText('Approved: showcase.date').waitFor();
      await go(`/runs/${run.body.id}`);
      await page.locator('.status-line .badge', { hasText: 'success' }).waitFor({ timeout: 20_000 });
      const approval = await adminApi('GET', `/api/v1/runs/${run.body.id}/approval`);
      assert.equal(approval.body.votes[0].signed, true, 'the vote carries the browser signature');

      // Revoked at once: the same key cannot sign the next one.
      await go('/settings');
      await keyRow.getByRole('button', { name: /^Revoke/ }).click();
      await keyRow.getByText('revoked').waitFor();
    } finally {
      await adminApi('PUT', '/api/v1/policy/settings', { signed_tiers: [] });
    }
  });

  test('OAuth consent for an MCP client is a dashboard page; approving returns a code to the client', async () => {
    const callback = 'http://127.0.0.1:9/callback';
    const reg = await fetch(url('/oauth/register'), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ client_name: 'e2e agent', redirect_uris: [callback] }),
    });
    assert.equal(reg.status, 201);
    const clientId = ((await reg.json()) as { client_id: string }).client_id;
    const authorize = new URL(url('/oauth/authorize'));
    for (const [k, v] of Object.entries({
      response_type: 'code',
      client_id: clientId,
      redirect_uri: callback,
      code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
      code_challenge_method: 'S256',
      state: 'st-1',
      scope: 'runs:read runners:read',
    }))
      authorize.searchParams.set(k, v);
    const seen: string[] = [];
    await page.route('http://127.0.0.1:9/**', async (route) => {
      seen.push(route.request().url());
      await route.fulfill({ status: 200, contentType: 'text/plain', body: 'back at the client' });
    });
    await page.goto(authorize.toString());
    await page.getByRole('heading', { name: 'Authorize an MCP client' }).waitFor();
    await page.getByTestId('consent-client').getByText('e2e agent').waitFor();
    await page.getByTestId('consent-scopes').getByText('runners:read').waitFor();
    await screenshot(page, 'consent');
    await checkA11y('consent');
    await page.getByRole('button', { name: 'Approve' }).click();
    await page.getByText('back at the client').waitFor();
    const back = new URL(seen[0] ?? '');
    assert.equal(back.searchParams.get('state'), 'st-1');
    assert.match(back.searchParams.get('code') ?? '', /^[A-Za-z0-9_-]{20,}$/);
    assert.equal(back.searchParams.get('iss'), new URL(srv.url).origin);
    await page.unroute('http://127.0.0.1:9/**');
  });

  test('dark theme, phone width, keyboard navigation', async () => {
    await go('/');
    await page.getByRole('button', { name: 'Switch to dark theme' }).click();
    assert.equal(await page.evaluate(() => document.documentElement.dataset['theme']), 'dark');
    await screenshot(page, 'overview-dark');
    await checkA11y('overview-dark');
    await go('/runs');
    await screenshot(page, 'runs-dark');
    await page.getByRole('button', { name: 'Switch to light theme' }).click();

    await page.setViewportSize({ width: 390, height: 844 });
    await go('/');
    const nav = page.getByRole('navigation', { name: 'Primary' });
    assert.equal(await nav.isVisible(), false, 'the menu is folded on a phone');
    await page.getByRole('button', { name: 'Menu' }).click();
    await nav.getByRole('link', { name: 'Runs' }).click();
    await page.getByRole('heading', { name: 'Runs', level: 1 }).waitFor();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 1, `no horizontal page scroll at phone width (overflow ${overflow}px)`);
    await screenshot(page, 'runs-phone');
    await checkA11y('runs-phone');
    await page.setViewportSize({ width: 1280, height: 860 });

    // Keyboard: the first Tab reaches the skip link, which moves focus into the main region.
    await go('/');
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement?.textContent), 'Skip to content');
    await page.keyboard.press('Enter');
    await page.keyboard.press('Tab');
    assert.ok(await page.evaluate(() => document.activeElement?.closest('main') !== null), 'focus moved into main');
  });

  test('accessibility: no serious or critical axe-core violations on the main pages', () => {
    const bad = Object.entries(a11y).filter(([, v]) => v.length > 0);
    assert.ok(Object.keys(a11y).length >= 10, `pages checked: ${Object.keys(a11y).join(', ')}`);
    assert.deepEqual(bad, [], bad.map(([p, v]) => `${p}:\n  ${v.join('\n  ')}`).join('\n'));
  });
});

// Keep the compiled test self-describing when the bundle is missing.
if (!existsSync(WEB_ASSETS_DIR)) console.warn(`dashboard bundle missing at ${WEB_ASSETS_DIR}`);
