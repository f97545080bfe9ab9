import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import {
  Client,
  type OAuthClientMetadata,
  type OAuthClientProvider,
  type StoredOAuthClientInformation,
  type StoredOAuthTokens,
  StreamableHTTPClientTransport,
  UnauthorizedError,
} from '@modelcontextprotocol/client';
import { testDatabases } from '../testing/databases.js';
import { type McpFixture, startMcpFixture } from './test-support.js';

const b64 = (b: Buffer): string => b.toString('base64url');

/** An MCP client's OAuth state as the SDK asks for it: in memory, with the redirect captured. */
class TestOAuthProvider implements OAuthClientProvider {
  authUrl: URL | undefined;
  saved: StoredOAuthTokens | undefined;
  private info: StoredOAuthClientInformation | undefined;
  private verifier = '';
  constructor(private readonly redirect: string) {}
  get redirectUrl(): string {
    return this.redirect;
  }
  get clientMetadata(): OAuthClientMetadata {
    return {
      client_name: 'sdk agent',
      redirect_uris: [this.redirect],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
      scope: 'runs:read runs:write runners:read',
    };
  }
  clientInformation() {
    return this.info;
  }
  saveClientInformation(i: StoredOAuthClientInformation): void {
    this.info = i;
  }
  tokens() {
    return this.saved;
  }
  saveTokens(t: StoredOAuthTokens): void {
    this.saved = t;
  }
  redirectToAuthorization(u: URL): void {
    this.authUrl = u;
  }
  saveCodeVerifier(v: string): void {
    this.verifier = v;
  }
  codeVerifier(): string {
    return this.verifier;
  }
}

for (const { name, create } of testDatabases()) {
  describe(`MCP OAuth 2.1 flow (${name})`, () => {
    let t: Awaited<ReturnType<typeof create>>;
    let fx: McpFixture;
    let base: string;
    const redirect = 'http://127.0.0.1:33333/callback';
    let clientId: string;

    const form = (url: string, body: Record<string, string>) =>
      fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams(body).toString(),
      });

    /** Authorize with PKCE and consent (the dashboard's endpoints, with the user's API key); returns code and verifier. */
    async function authorize(
      opts: { redirectUri?: string; scope?: string } = {},
    ): Promise<{ code: string; verifier: string; iss: string | null; state: string | null }> {
      const verifier = b64(randomBytes(32));
      const challenge = b64(createHash('sha256').update(verifier).digest());
      const u = new URL('/oauth/authorize', base);
      for (const [k, v] of Object.entries({
        response_type: 'code',
        client_id: clientId,
        redirect_uri: opts.redirectUri ?? redirect,
        code_challenge: challenge,
        code_challenge_method: 'S256',
        state: 'xyz',
        resource: `${base}/mcp`,
        scope: opts.scope ?? 'runs:read runs:write runners:read',
      }))
        u.searchParams.set(k, v);
      const a = await fetch(u, { redirect: 'manual' });
      assert.equal(a.status, 302, await a.text());
      const consent = new URL(a.headers.get('location')!);
      assert.equal(consent.pathname, '/oauth/consent');
      // The consent screen is the dashboard's page (signed-in user, same CSP as the dashboard).
      const page = await fetch(consent, { redirect: 'manual' });
      assert.equal(page.status, 302);
      assert.equal(new URL(page.headers.get('location')!, base).pathname, '/consent');
      const id = consent.searchParams.get('request')!;
      const view = await fx.api('GET', `/api/v1/oauth/requests/${id}`);
      assert.equal(view.body.client.name, 'test agent');
      const d = await fx.api('POST', `/api/v1/oauth/requests/${id}/decision`, { approve: true });
      assert.equal(d.status, 200, JSON.stringify(d.body));
      const back = new URL(d.body.redirect_to);
      return {
        code: back.searchParams.get('code')!,
        verifier,
        iss: back.searchParams.get('iss'),
        state: back.searchParams.get('state'),
      };
    }

    before(async () => {
      t = await create();
      fx = await startMcpFixture(t);
      await fx.trustShowcase();
      base = fx.srv.url;
    });
    after(async () => {
      await fx?.stop();
      await t?.drop();
    });

    test('discovery: 401 points at protected resource metadata, which points at the authorization server', async () => {
      const r = await fetch(`${base}/mcp`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{}',
      });
      assert.equal(r.status, 401);
      const prmUrl = /resource_metadata="([^"]+)"/.exec(r.headers.get('www-authenticate') ?? '')?.[1];
      const prm = (await (await fetch(prmUrl!)).json()) as any;
      assert.equal(prm.resource, `${base}/mcp`);
      const as = (await (
        await fetch(`${prm.authorization_servers[0]}/.well-known/oauth-authorization-server`)
      ).json()) as any;
      assert.equal(as.issuer, base);
      assert.deepEqual(as.code_challenge_methods_supported, ['S256']);
      assert.equal(as.authorization_response_iss_parameter_supported, true);
      const reg = await fetch(as.registration_endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          client_name: 'test agent',
          redirect_uris: [redirect],
          token_endpoint_auth_method: 'none',
        }),
      });
      assert.equal(reg.status, 201);
      clientId = ((await reg.json()) as any).client_id;
      const badReg = await fetch(as.registration_endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ redirect_uris: ['http://evil.example/cb'] }),
      });
      assert.equal(badReg.status, 400);
    });

    test('code + PKCE → tokens → MCP call → refresh (rotating) → revoke', async () => {
      const { code, verifier, iss, state } = await authorize();
      assert.equal(iss, base);
      assert.equal(state, 'xyz');
      const tok = await form(`${base}/oauth/token`, {
        grant_type: 'authorization_code',
        code,
        code_verifier: verifier,
        client_id: clientId,
        redirect_uri: redirect,
        resource: `${base}/mcp`,
      });
      assert.equal(tok.status, 200);
      const tokens = (await tok.json()) as any;
      assert.match(tokens.access_token, /^alo_/);
      assert.equal(tokens.scope, 'runs:read runs:write runners:read');
      assert.ok(tokens.expires_in <= 3600);

      const client = new Client({ name: 'oauth-test', version: '1.0.0' });
      await client.connect(
        new StreamableHTTPClientTransport(new URL('/mcp', base), {
          requestInit: { headers: { authorization: `Bearer ${tokens.access_token}` } },
        }),
      );
      const names = (await client.listTools()).tools.map((x) => x.name).sort();
      assert.deepEqual(names, ['cancel_run', 'get_run', 'list_actions', 'list_runners', 'run_action']);
      const r = (await client.callTool({
        name: 'run_action',
        arguments: { runner: 'web-1', action: 'showcase.echo', args: { message: 'via oauth' }, reason: 'oauth test' },
      })) as any;
      assert.equal(r.structuredContent.output, 'via oauth');
      await client.close();

      const ref = await form(`${base}/oauth/token`, {
        grant_type: 'refresh_token',
        refresh_token: tokens.refresh_token,
        client_id: clientId,
      });
      assert.equal(ref.status, 200);
      const rotated = (await ref.json()) as any;
      assert.notEqual(rotated.refresh_token, tokens.refresh_token);
      // The old refresh token is spent; presenting it again ends the whole grant.
      const reuse = await form(`${base}/oauth/token`, {
        grant_type: 'refresh_token',
        refresh_token: tokens.refresh_token,
        client_id: clientId,
      });
      assert.equal(reuse.status, 400);
      assert.equal(((await reuse.json()) as any).error, 'invalid_grant');
      const dead = await fetch(`${base}/mcp`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${rotated.access_token}`,
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
        },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }),
      });
      assert.equal(dead.status, 401);

      // A fresh grant, then explicit revocation.
      const g = await authorize();
      const t2 = (await (
        await form(`${base}/oauth/token`, {
          grant_type: 'authorization_code',
          code: g.code,
          code_verifier: g.verifier,
          client_id: clientId,
          redirect_uri: redirect,
        })
      ).json()) as any;
      assert.equal((await form(`${base}/oauth/revoke`, { token: t2.refresh_token, client_id: clientId })).status, 200);
      const after = await fetch(`${base}/mcp`, {
        method: 'POST',
        headers: { authorization: `Bearer ${t2.access_token}`, 'content-type': 'application/json' },
        body: '{}',
      });
      assert.equal(after.status, 401);
    });

    test("the SDK's OAuth client: discovery, registration, PKCE, dashboard consent, call, refresh, revocation", async () => {
      // (The SDK offers Client ID Metadata Documents only for https URLs, which a loopback test
      // cannot serve; the next test drives that path with the server's own requests.)
      const provider = new TestOAuthProvider(redirect);
      const mcpUrl = new URL('/mcp', base);
      {
        const first = new Client({ name: 'sdk-oauth', version: '1.0.0' }, { versionNegotiation: { mode: 'auto' } });
        const t1 = new StreamableHTTPClientTransport(mcpUrl, { authProvider: provider });
        await assert.rejects(first.connect(t1), UnauthorizedError);
        const authUrl = provider.authUrl!;
        const clientIdOfSdk = authUrl.searchParams.get('client_id')!;
        assert.equal(clientIdOfSdk, provider.clientInformation()?.client_id, 'registered by the SDK (RFC 7591)');
        assert.equal(authUrl.searchParams.get('code_challenge_method'), 'S256');
        assert.equal(authUrl.searchParams.get('resource'), `${base}/mcp`);
        // The person consents in the dashboard (its JSON endpoints, as the consent page calls them).
        const a = await fetch(authUrl, { redirect: 'manual' });
        assert.equal(a.status, 302, await a.text());
        const id = new URL(a.headers.get('location')!).searchParams.get('request')!;
        const view = await fx.api('GET', `/api/v1/oauth/requests/${id}`);
        assert.equal(view.body.client.name, 'sdk agent');
        const d = await fx.api('POST', `/api/v1/oauth/requests/${id}/decision`, { approve: true });
        const back = new URL(d.body.redirect_to);
        assert.equal(back.searchParams.get('iss'), base);
        await t1.finishAuth(back.searchParams.get('code')!, back.searchParams.get('iss')!);

        const client = new Client({ name: 'sdk-oauth', version: '1.0.0' }, { versionNegotiation: { mode: 'auto' } });
        await client.connect(new StreamableHTTPClientTransport(mcpUrl, { authProvider: provider }));
        const r1 = (await client.callTool({
          name: 'run_action',
          arguments: { runner: 'web-1', action: 'showcase.echo', args: { message: 'via sdk oauth' }, reason: 'oauth' },
        })) as { structuredContent?: Record<string, unknown> };
        assert.equal(r1.structuredContent?.['output'], 'via sdk oauth');
        // The run is recorded as asked by an OAuth client of the user.
        const run = await fx.api('GET', `/api/v1/runs/${r1.structuredContent?.['run_id']}`);
        assert.equal(run.body.requested_by.type, 'oauth');
        assert.equal(run.body.requested_by.id, `oauth:${clientIdOfSdk}`);

        // The access token expires: the SDK refreshes (rotating the refresh token) and carries on.
        const firstRefresh = provider.saved?.refresh_token;
        await fx.srv.server.ctx.db.kysely
          .withTables<{ oauth_tokens: { kind: string; expires_at: string; client_id: string } }>()
          .updateTable('oauth_tokens')
          .set({ expires_at: new Date(Date.now() - 1000).toISOString() })
          .where('kind', '=', 'access')
          .where('client_id', '=', clientIdOfSdk)
          .execute();
        const r2 = (await client.callTool({ name: 'list_runners', arguments: {} })) as { isError?: boolean };
        assert.notEqual(r2.isError, true);
        assert.ok(provider.saved?.refresh_token !== undefined && provider.saved.refresh_token !== firstRefresh);

        // Revoked: the tokens stop at once and the refresh token cannot bring them back.
        const rev = await form(`${base}/oauth/revoke`, {
          token: provider.saved!.refresh_token!,
          client_id: clientIdOfSdk,
        });
        assert.equal(rev.status, 200);
        await assert.rejects(client.callTool({ name: 'list_runners', arguments: {} }));
        await client.close().catch(() => {});
      }
    });

    test('Client ID Metadata Documents: fetched, named by the URL, redeemed; internal addresses and mismatches refused', async () => {
      let docBody: Record<string, unknown> = {
        client_id: 'https://elsewhere.example/c.json',
        redirect_uris: [redirect],
      };
      const docServer = createServer((_req, res) => {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify(docBody));
      });
      await new Promise<void>((r) => docServer.listen(0, '127.0.0.1', r));
      const port = (docServer.address() as AddressInfo).port;
      const ask = (clientId: string) => {
        const u = new URL('/oauth/authorize', base);
        for (const [k, v] of Object.entries({
          response_type: 'code',
          client_id: clientId,
          redirect_uri: redirect,
          code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
          code_challenge_method: 'S256',
        }))
          u.searchParams.set(k, v);
        return fetch(u, { redirect: 'manual' });
      };
      try {
        const internal = await ask(`https://127.0.0.1:${port}/c.json`);
        assert.equal(internal.status, 400);
        assert.match(await internal.text(), /internal address/);
        const plain = await ask(`http://127.0.0.1:${port}/c.json`);
        assert.equal(plain.status, 400);
        assert.match(await plain.text(), /must use https/);
        process.env['AIRLOCK_OAUTH_CIMD_ALLOW_HOSTS'] = `127.0.0.1:${port}`;
        const mismatch = await ask(`http://127.0.0.1:${port}/c.json`);
        assert.equal(mismatch.status, 400);
        assert.match(await mismatch.text(), /does not equal the URL/);
        // A good document: the URL is the client id, the name and redirect URIs come from it, and
        // the code it gets is redeemed with that client id.
        const good = `http://127.0.0.1:${port}/good.json`;
        docBody = { client_id: good, client_name: 'metadata agent', redirect_uris: [redirect] };
        const verifier = b64(randomBytes(32));
        const u = new URL('/oauth/authorize', base);
        for (const [k, v] of Object.entries({
          response_type: 'code',
          client_id: good,
          redirect_uri: redirect,
          code_challenge: b64(createHash('sha256').update(verifier).digest()),
          code_challenge_method: 'S256',
        }))
          u.searchParams.set(k, v);
        const a = await fetch(u, { redirect: 'manual' });
        assert.equal(a.status, 302, await a.text());
        const id = new URL(a.headers.get('location')!).searchParams.get('request')!;
        assert.equal((await fx.api('GET', `/api/v1/oauth/requests/${id}`)).body.client.name, 'metadata agent');
        const d = await fx.api('POST', `/api/v1/oauth/requests/${id}/decision`, { approve: true });
        const code = new URL(d.body.redirect_to).searchParams.get('code')!;
        const tok = await form(`${base}/oauth/token`, {
          grant_type: 'authorization_code',
          code,
          redirect_uri: redirect,
          code_verifier: verifier,
          client_id: good,
          resource: `${base}/mcp`,
        });
        assert.equal(tok.status, 200, await tok.clone().text());
      } finally {
        delete process.env['AIRLOCK_OAUTH_CIMD_ALLOW_HOSTS'];
        docServer.close();
      }
    });

    test('failure cases: wrong verifier, reused code, redirect mismatch, expired token, disabled user', async () => {
      const a = await authorize();
      const wrong = await form(`${base}/oauth/token`, {
        grant_type: 'authorization_code',
        code: a.code,
        code_verifier: b64(randomBytes(32)),
        client_id: clientId,
        redirect_uri: redirect,
      });
      assert.equal(wrong.status, 400);
      assert.match(((await wrong.json()) as any).error_description, /code_verifier/);
      // The code was claimed by the failed attempt: it never works again.
      const reused = await form(`${base}/oauth/token`, {
        grant_type: 'authorization_code',
        code: a.code,
        code_verifier: a.verifier,
        client_id: clientId,
        redirect_uri: redirect,
      });
      assert.equal(reused.status, 400);
      assert.match(((await reused.json()) as any).error_description, /already used/);

      const bad = new URL('/oauth/authorize', base);
      for (const [k, v] of Object.entries({
        response_type: 'code',
        client_id: clientId,
        redirect_uri: 'http://127.0.0.1:33333/other',
        code_challenge: 'a'.repeat(43),
        code_challenge_method: 'S256',
      }))
        bad.searchParams.set(k, v);
      const mismatch = await fetch(bad, { redirect: 'manual' });
      assert.equal(mismatch.status, 400);
      assert.equal(mismatch.headers.get('location'), null);
      const b = await authorize();
      const redir = await form(`${base}/oauth/token`, {
        grant_type: 'authorization_code',
        code: b.code,
        code_verifier: b.verifier,
        client_id: clientId,
        redirect_uri: 'http://127.0.0.1:33333/other',
      });
      assert.equal(redir.status, 400);
      const plain = new URL(bad);
      plain.searchParams.set('redirect_uri', redirect);
      plain.searchParams.set('code_challenge_method', 'plain');
      const noS256 = await fetch(plain, { redirect: 'manual' });
      assert.match(noS256.headers.get('location') ?? '', /error=invalid_request.*iss=/);

      // Expired access token.
      const c = await authorize();
      const tk = (await (
        await form(`${base}/oauth/token`, {
          grant_type: 'authorization_code',
          code: c.code,
          code_verifier: c.verifier,
          client_id: clientId,
          redirect_uri: redirect,
        })
      ).json()) as any;
      const call = (token: string) =>
        fetch(`${base}/mcp`, {
          method: 'POST',
          headers: {
            authorization: `Bearer ${token}`,
            'content-type': 'application/json',
            accept: 'application/json, text/event-stream',
          },
          body: JSON.stringify({
            jsonrpc: '2.0',
            id: 1,
            method: 'initialize',
            params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'x', version: '1' } },
          }),
        });
      assert.equal((await call(tk.access_token)).status, 200);
      const db = fx.srv.server.ctx.db.kysely.withTables<{ oauth_tokens: { kind: string; expires_at: string } }>();
      await db
        .updateTable('oauth_tokens')
        .set({ expires_at: new Date(Date.now() - 1000).toISOString() })
        .where('kind', '=', 'access')
        .execute();
      const expired = await call(tk.access_token);
      assert.equal(expired.status, 401);
      assert.match(expired.headers.get('www-authenticate') ?? '', /expired/);

      // A disabled user: refresh and new access tokens stop at once.
      const ownerRow = await fx.srv.server.ctx.db.kysely
        .selectFrom('users')
        .select('id')
        .where('role', '=', 'owner')
        .executeTakeFirstOrThrow();
      const fresh = (await (
        await form(`${base}/oauth/token`, {
          grant_type: 'refresh_token',
          refresh_token: tk.refresh_token,
          client_id: clientId,
        })
      ).json()) as any;
      assert.equal((await call(fresh.access_token)).status, 200);
      await fx.srv.server.ctx.db.kysely
        .updateTable('users')
        .set({ disabled: 1 })
        .where('id', '=', ownerRow.id)
        .execute();
      assert.equal((await call(fresh.access_token)).status, 401);
      const refused = await form(`${base}/oauth/token`, {
        grant_type: 'refresh_token',
        refresh_token: fresh.refresh_token,
        client_id: clientId,
      });
      assert.equal(refused.status, 400);
      await fx.srv.server.ctx.db.kysely
        .updateTable('users')
        .set({ disabled: 0 })
        .where('id', '=', ownerRow.id)
        .execute();
    });
  });
}
