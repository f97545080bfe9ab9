// OAuth endpoints under attack: open redirects (the authorization endpoint redirects only to
// a redirect_uri that exactly matches one the client registered; anything else is an error
// page, never a redirect), dangerous redirect URIs refused at registration, and fuzzing of the
// authorize, token and register parameters (fast-check, fixed seed): never 5xx, always an
// OAuth-shaped error, never a redirect anywhere but the consent page or a registered URI.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { isInternalAddress } from '../mcp/client-metadata.js';
import { type TestDb, testDatabases } from '../testing/databases.js';
import { startTestServer, type TestServer } from '../testing/server.js';
import { fuzzOptions, isServerFault, requestFrom } from './support.js';

const REGISTERED = ['http://127.0.0.1:9/cb', 'https://client.example/cb', 'com.example.app:/oauth'];
const CHALLENGE = 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM';
const unlimited = { limit: 1_000_000, windowMs: 60_000 };

/** Redirect URIs an attacker might try instead of a registered one. */
const NEAR_MISSES = [
  'http://127.0.0.1:9/cb/extra',
  'http://127.0.0.1:9/cb?next=https://evil.example',
  'http://127.0.0.1:9/cb#frag',
  'http://127.0.0.1:10/cb',
  'http://localhost:9/cb',
  'http://127.0.0.1:9/CB',
  'http://127.0.0.1:9/cb/',
  'http://127.0.0.1:9/cb ',
  ' http://127.0.0.1:9/cb',
  'https://client.example/cb/../../evil',
  'https://client.example/cb%2F..%2Fevil',
  'https://client.example.evil.example/cb',
  'https://client.example@evil.example/cb',
  'https://evil.example/?u=https://client.example/cb',
  'https://evil.example/https://client.example/cb',
  '//evil.example/cb',
  'https:client.example/cb',
  'https://client.example:443/cb',
  'https://CLIENT.example/cb',
  'https%3A%2F%2Fclient.example%2Fcb',
  'javascript:alert(1)//https://client.example/cb',
  'com.example.app:/oauth/../evil',
  'com.example.app://oauth',
  '',
];

for (const { name, create } of testDatabases()) {
  describe(`OAuth open redirects and parameter fuzzing (${name})`, () => {
    let t: TestDb;
    let srv: TestServer;
    let clientId: string;
    before(async () => {
      t = await create();
      srv = await startTestServer(t.url, undefined, {
        throttle: { tokenPerAddress: unlimited, tokenPerClient: unlimited, clientRegistrationsPerAddress: unlimited },
      });
      const r = await requestFrom(srv.url, 'POST', '/oauth/register', {
        body: { client_name: 'legit', redirect_uris: REGISTERED },
      });
      assert.equal(r.status, 201, r.text);
      clientId = r.body.client_id;
    });
    after(async () => {
      await srv?.stop();
      await t?.drop();
    });

    const authorize = (params: Record<string, string>) =>
      requestFrom(srv.url, 'GET', `/oauth/authorize?${new URLSearchParams(params).toString()}`);
    const valid = (redirect: string) => ({
      response_type: 'code',
      client_id: clientId,
      redirect_uri: redirect,
      code_challenge: CHALLENGE,
      code_challenge_method: 'S256',
      state: 's',
    });

    /** A redirect is safe when it goes to the consent page or exactly to a registered URI. */
    const safeLocation = (location: string | undefined): boolean => {
      if (location === undefined) return true;
      const u = new URL(location, srv.url);
      if (u.origin === new URL(srv.url).origin && u.pathname === '/oauth/consent') return true;
      const bare = `${u.protocol}//${u.host}${u.pathname}`.replace(/^([a-z.]+:)\/\/\//, '$1/');
      return REGISTERED.some((r) => r === bare || r === `${u.protocol}${u.pathname}`);
    };

    test('authorize: every near miss of a registered redirect_uri is an error page, never a redirect', async () => {
      for (const uri of NEAR_MISSES) {
        const r = await authorize(valid(uri));
        assert.equal(r.status, 400, `${JSON.stringify(uri)} → ${r.status} ${r.headers['location'] ?? ''}`);
        assert.equal(r.headers['location'], undefined, uri);
        assert.match(String(r.headers['content-type']), /text\/html/);
      }
      const noUri = await authorize({ ...valid(REGISTERED[0]!), redirect_uri: '' });
      assert.equal(noUri.headers['location'], undefined);
      const unknownClient = await authorize({ ...valid('https://evil.example/cb'), client_id: 'mcp_nope' });
      assert.equal(unknownClient.status, 400);
      assert.equal(unknownClient.headers['location'], undefined);
      // The exact URI works, and an error about other parameters goes back to it, not elsewhere.
      for (const uri of REGISTERED) {
        const ok = await authorize(valid(uri));
        assert.equal(ok.status, 302, uri);
        assert.ok(safeLocation(ok.headers['location'] as string), String(ok.headers['location']));
        const bad = await authorize({ ...valid(uri), code_challenge_method: 'plain' });
        assert.equal(bad.status, 302);
        assert.ok(String(bad.headers['location']).startsWith(uri), String(bad.headers['location']));
        assert.match(String(bad.headers['location']), /error=invalid_request/);
      }
    });

    test('client_id metadata URLs: unresolvable or internal hosts are an error page, never 5xx', async () => {
      // The address check itself (the fetch to an internal https service would merely fail here).
      for (const ip of ['::ffff:7f00:1', '::ffff:a9fe:a9fe', '64:ff9b::a9fe:a9fe', '127.0.0.1', 'fd00:ec2::254'])
        assert.equal(isInternalAddress(ip), true, ip);
      for (const id of [
        'https://no-such-host.invalid/client',
        'https://[::ffff:7f00:1]/client',
        'https://[::ffff:127.0.0.1]/client',
        'https://127.0.0.1/client',
        'https://2130706433/client',
        'https://[fd00:ec2::254]/client',
        'https://169.254.169.254/latest',
      ]) {
        const r = await authorize({ ...valid(REGISTERED[1]!), client_id: id });
        assert.equal(r.status, 400, `${id}: ${r.status} ${r.text.slice(0, 200)}`);
        assert.equal(r.headers['location'], undefined);
      }
    });

    test('register: dangerous redirect URIs are refused', async () => {
      for (const uri of [
        'javascript:alert(1)',
        'data:text/html,<script>alert(1)</script>',
        'vbscript:msgbox(1)',
        'file:///etc/passwd',
        'http://evil.example/cb',
        'http://10.0.0.1/cb',
        'https://client.example/cb#frag',
        'not a url',
        'ftp://client.example/cb',
      ]) {
        const r = await requestFrom(srv.url, 'POST', '/oauth/register', { body: { redirect_uris: [uri] } });
        assert.equal(r.status, 400, uri);
        assert.equal(r.body.error, 'invalid_redirect_uri', uri);
      }
    });

    const param = fc.oneof(
      fc.string({ maxLength: 60 }),
      fc.string({ unit: 'binary', maxLength: 40 }),
      fc.constantFrom(
        ...REGISTERED,
        ...NEAR_MISSES,
        'code',
        'S256',
        'plain',
        CHALLENGE,
        'runs:read users:write',
        'x y',
      ),
    );

    test('fuzz authorize: random parameters never cause 5xx or an unsafe redirect', async () => {
      const keys = fc.constantFrom(
        'response_type',
        'client_id',
        'redirect_uri',
        'code_challenge',
        'code_challenge_method',
        'state',
        'scope',
        'resource',
        '__proto__',
      );
      await fc.assert(
        fc.asyncProperty(
          fc.dictionary(keys, param, { maxKeys: 9 }),
          fc.boolean(),
          fc.boolean(),
          async (extra, realClient, realRedirect) => {
            const params: Record<string, string> = { ...extra };
            if (realClient) params['client_id'] = clientId;
            if (realRedirect) params['redirect_uri'] = REGISTERED[0]!;
            const r = await authorize(params);
            assert.ok(!isServerFault(r), `${r.status} for ${JSON.stringify(params)}`);
            if (r.status >= 300 && r.status < 400) {
              assert.ok(safeLocation(r.headers['location'] as string), `unsafe redirect ${r.headers['location']}`);
            } else assert.equal(r.headers['location'], undefined);
          },
        ),
        fuzzOptions(60),
      );
    });

    test('fuzz token and revoke: random form bodies get OAuth errors, never 5xx or a token', async () => {
      const keys = fc.constantFrom(
        'grant_type',
        'client_id',
        'code',
        'code_verifier',
        'redirect_uri',
        'refresh_token',
        'scope',
        'resource',
        'token',
      );
      const grant = fc.constantFrom('authorization_code', 'refresh_token', 'client_credentials', 'password', '');
      await fc.assert(
        fc.asyncProperty(fc.dictionary(keys, param, { maxKeys: 9 }), grant, fc.boolean(), async (form, g, real) => {
          const body: Record<string, string> = { grant_type: g, ...form };
          if (real) body['client_id'] = clientId;
          const r = await requestFrom(srv.url, 'POST', '/oauth/token', { form: body });
          assert.ok(!isServerFault(r), `${r.status} for ${JSON.stringify(body)}`);
          assert.ok(r.status === 400 || r.status === 401, `${r.status} ${r.text}`);
          assert.equal(typeof r.body?.error, 'string', r.text);
          assert.equal(r.body.access_token, undefined);
          const rv = await requestFrom(srv.url, 'POST', '/oauth/revoke', { form: body });
          assert.ok(!isServerFault(rv), `revoke ${rv.status}`);
        }),
        fuzzOptions(60),
      );
    });

    test('fuzz register: random JSON client metadata is 201 or an OAuth error, never 5xx', async () => {
      const meta = fc.record(
        {
          redirect_uris: fc.oneof(fc.array(param, { maxLength: 12 }), fc.jsonValue()),
          client_name: fc.oneof(fc.string({ maxLength: 300 }), fc.jsonValue()),
          grant_types: fc.oneof(
            fc.array(fc.constantFrom('authorization_code', 'refresh_token', 'implicit')),
            fc.jsonValue(),
          ),
          token_endpoint_auth_method: fc.oneof(fc.constantFrom('none', 'client_secret_basic'), fc.jsonValue()),
          scope: fc.jsonValue(),
          client_uri: fc.jsonValue(),
        },
        { requiredKeys: [] },
      );
      await fc.assert(
        fc.asyncProperty(fc.oneof(meta, fc.jsonValue()), async (body) => {
          const r = await requestFrom(srv.url, 'POST', '/oauth/register', { body });
          assert.ok(!isServerFault(r), `${r.status} for ${JSON.stringify(body)}`);
          if (r.status === 201) {
            for (const u of r.body.redirect_uris as string[]) assert.ok(typeof u === 'string');
          } else {
            assert.ok(r.status >= 400 && r.status < 500, `${r.status}`);
          }
        }),
        fuzzOptions(60),
      );
      const health = await requestFrom(srv.url, 'GET', '/healthz');
      assert.equal(health.status, 200);
    });
  });
}
