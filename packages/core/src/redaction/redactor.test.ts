import assert from 'node:assert/strict';
import { test } from 'node:test';

import { AirlockError } from '../errors.js';
import { BUILTIN_RULES, createRedactor, type RedactionRuleSpec, redactValue } from './index.js';
import { literalPrefix } from './redactor.js';

test('the built-in rule names are pinned (change deliberately)', () => {
  assert.deepEqual(BUILTIN_RULES.map((r) => r.name).sort(), [
    'age_secret_key',
    'alibaba_access_key',
    'anthropic_api_key',
    'api_key_header',
    'atlassian_api_token',
    'authorization_header',
    'aws_access_key',
    'aws_mws_key',
    'aws_secret_key',
    'aws_session_token',
    'azure_ad_client_secret',
    'azure_devops_pat',
    'azure_sas_token',
    'azure_shared_access_key',
    'azure_storage_account_key',
    'basic_auth_header',
    'bearer_token',
    'buildkite_token',
    'circleci_token',
    'clojars_token',
    'cloudflare_api_token',
    'connection_string_password',
    'cookie_header',
    'curl_user_password',
    'databricks_token',
    'datadog_api_key',
    'db_password_env',
    'digitalocean_token',
    'discord_webhook',
    'docker_config_auth',
    'dockerhub_pat',
    'doppler_token',
    'dynatrace_token',
    'firebase_fcm_server_key',
    'fly_io_token',
    'gcp_service_account_key_id',
    'github_app_token',
    'github_fine_grained_pat',
    'github_oauth_token',
    'github_pat',
    'github_refresh_token',
    'gitlab_pat',
    'gitlab_runner_token',
    'gitlab_token',
    'google_api_key',
    'google_oauth_access_token',
    'google_oauth_client_secret',
    'google_oauth_refresh_token',
    'grafana_token',
    'groq_api_key',
    'heroku_api_key',
    'hubspot_token',
    'huggingface_token',
    'jfrog_token',
    'jwt',
    'kubeconfig_client_key_data',
    'kubernetes_bootstrap_token',
    'kubernetes_dockerconfigjson',
    'kubernetes_tls_key',
    'langsmith_api_key',
    'ldap_bind_password',
    'linear_api_key',
    'login_password_flag',
    'mailchimp_api_key',
    'mailgun_api_key',
    'mysql_password_flag',
    'newrelic_key',
    'notion_token',
    'npm_token',
    'npmrc_auth',
    'nuget_api_key',
    'okta_api_token',
    'onepassword_service_account_token',
    'openai_api_key',
    'openssh_private_key',
    'openssl_pass_arg',
    'password_assignment',
    'password_cli_flag',
    'password_hash',
    'perplexity_api_key',
    'pgp_private_key_block',
    'planetscale_token',
    'postman_api_key',
    'private_key_block',
    'pulumi_token',
    'putty_private_key',
    'pypi_token',
    'redis_cli_password',
    'replicate_api_token',
    'rubygems_api_key',
    'secret_assignment',
    'secret_json',
    'secret_xml',
    'secret_yaml',
    'sendgrid_api_key',
    'sentry_auth_token',
    'sentry_dsn_secret',
    'set_cookie_header',
    'shopify_token',
    'slack_token',
    'slack_webhook',
    'sonarqube_token',
    'square_token',
    'sshpass_password',
    'stripe_key',
    'stripe_webhook_secret',
    'supabase_token',
    'telegram_bot_token',
    'terraform_cloud_token',
    'twilio_credentials',
    'twitter_bearer_token',
    'url_password',
    'vault_token',
    'wireguard_private_key',
    'xai_api_key',
  ]);
});

test('every built-in rule is well formed: snake_case, compiles, lowercase keywords, a description', () => {
  assert.ok(BUILTIN_RULES.length >= 70);
  for (const r of BUILTIN_RULES) {
    assert.match(r.name, /^[a-z][a-z0-9_]+$/, r.name);
    assert.ok(r.description.length > 10, r.name);
    assert.ok(r.keywords.length > 0, `${r.name} has no keyword`);
    for (const k of r.keywords) assert.equal(k, k.toLowerCase(), `${r.name}: keyword ${k} not lowercase`);
    assert.doesNotThrow(() => new RegExp(r.pattern, `${r.flags ?? ''}gd`), r.name);
    assert.equal(new RegExp(r.pattern, r.flags ?? '').test(''), false, `${r.name} matches the empty string`);
  }
  assert.ok(Object.isFrozen(BUILTIN_RULES) && BUILTIN_RULES.every((r) => Object.isFrozen(r)));
});

test('assignment-like rules keep the key; URL rules keep scheme, user and host', () => {
  const r = createRedactor();
  assert.equal(r.redactLine('password=hunter2').text, 'password=[REDACTED:password_assignment]');
  assert.equal(r.redactLine('  DB_PASSWORD: "s3cr3t!"').text, '  DB_PASSWORD: "[REDACTED:secret_yaml]"');
  assert.equal(r.redactLine('{"token": "abc123def"}').text, '{"token": "[REDACTED:secret_json]"}');
  assert.equal(
    r.redactLine('postgres://app:pa55word@db.internal:5432/orders').text,
    'postgres://app:[REDACTED:url_password]@db.internal:5432/orders',
  );
  assert.equal(
    r.redactLine('> Authorization: Basic YWRtaW46c2VjcmV0').text,
    '> Authorization: Basic [REDACTED:basic_auth_header]',
  );
});

test('redactLine reports each firing rule once, in application order, and returns lines without secrets as is', () => {
  const r = createRedactor();
  const line = 'user=a password=x1 other password=y2 AWS=AKIAIOSFODNN7EXAMPLE';
  const { text, hits } = r.redactLine(line);
  assert.deepEqual(hits, ['aws_access_key', 'password_assignment']);
  assert.equal(
    text,
    'user=a password=[REDACTED:password_assignment] other password=[REDACTED:password_assignment] AWS=[REDACTED:aws_access_key]',
  );
  assert.ok(Object.isFrozen(hits));
  assert.ok(Object.isFrozen(r.redactLine(line)));
  const plain = 'GET /healthz 200 1ms';
  assert.equal(r.redactLine(plain).text, plain);
  assert.deepEqual(r.redactLine(plain).hits, []);
});

test('redactText keeps line breaks and removes multi-line private key bodies', () => {
  const r = createRedactor();
  const text = [
    'config:',
    '  key: |',
    '    -----BEGIN RSA PRIVATE KEY-----',
    '    MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun',
    '    VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK',
    '    -----END RSA PRIVATE KEY-----',
    '  password: hunter2\r',
    'done',
    '',
  ].join('\n');
  const out = r.redactText(text);
  assert.equal(
    out,
    [
      'config:',
      '  key: |',
      '    -----BEGIN RSA PRIVATE KEY-----',
      '    [REDACTED:private_key_block]',
      '    [REDACTED:private_key_block]',
      '    -----END RSA PRIVATE KEY-----',
      '  password: [REDACTED:secret_yaml]\r',
      'done',
      '',
    ].join('\n'),
  );
});

test('stream() redacts OpenSSH, PGP and PuTTY private lines across calls', () => {
  const r = createRedactor();
  const ssh = r.stream();
  const outs = [
    '-----BEGIN OPENSSH PRIVATE KEY-----',
    'b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW',
    '-----END OPENSSH PRIVATE KEY-----',
    'after',
  ].map((l) => ssh(l));
  assert.deepEqual(
    outs.map((o) => o.text),
    [
      '-----BEGIN OPENSSH PRIVATE KEY-----',
      '[REDACTED:openssh_private_key]',
      '-----END OPENSSH PRIVATE KEY-----',
      'after',
    ],
  );
  assert.deepEqual(outs[1]?.hits, ['openssh_private_key']);

  const pgp = r.stream();
  assert.equal(pgp('-----BEGIN PGP PRIVATE KEY BLOCK-----').text, '-----BEGIN PGP PRIVATE KEY BLOCK-----');
  assert.equal(pgp('').text, '');
  assert.equal(pgp('lQOYBF3xRJQBCAC9').text, '[REDACTED:pgp_private_key_block]');

  const putty = r.stream();
  const ppk = [
    'PuTTY-User-Key-File-3: ssh-ed25519',
    'Public-Lines: 1',
    'AAAAC3NzaC1lZDI1NTE5AAAAIOfA',
    'Private-Lines: 1',
    'AAAAIFk2dGhpcyBpcyBub3QgcmVhbA==',
    'Private-MAC: 00ff',
  ];
  assert.deepEqual(
    ppk.map((l) => putty(l).text),
    [
      'PuTTY-User-Key-File-3: ssh-ed25519',
      'Public-Lines: 1',
      'AAAAC3NzaC1lZDI1NTE5AAAAIOfA',
      'Private-Lines: 1',
      '[REDACTED:putty_private_key]',
      'Private-MAC: 00ff',
    ],
  );
  // Streams are independent: a fresh stream is not inside any block.
  assert.equal(r.stream()('AAAAIFk2dGhpcyBpcyBub3QgcmVhbA==').text, 'AAAAIFk2dGhpcyBpcyBub3QgcmVhbA==');
});

test('extra rules from packs run before the built-ins, with or without keywords', () => {
  const extra: RedactionRuleSpec[] = [
    { name: 'acme_key', pattern: 'ACME-[0-9]{8}', keywords: ['acme-'], description: 'ACME license key' },
    { name: 'acme_pin', pattern: 'pin=(?<secret>\\d{4,})' },
    { name: 'odd_token', pattern: '(?:qq|zz)[0-9]{6}', flags: 'i' },
  ];
  const r = createRedactor(extra);
  assert.deepEqual(r.ruleNames.slice(0, 3), ['acme_key', 'acme_pin', 'odd_token']);
  assert.equal(r.ruleNames.length, BUILTIN_RULES.length + 3);
  assert.equal(r.redactLine('license acme-12345678 ok').text, 'license acme-12345678 ok', 'pattern is case-sensitive');
  assert.equal(r.redactLine('license ACME-12345678 ok').text, 'license [REDACTED:acme_key] ok');
  assert.equal(r.redactLine('door pin=1234').text, 'door pin=[REDACTED:acme_pin]');
  assert.equal(r.redactLine('id ZZ123456 here').text, 'id [REDACTED:odd_token] here');
  assert.ok(Object.isFrozen(r) && Object.isFrozen(r.ruleNames));
});

test('literalPrefix derives only sound keywords', () => {
  assert.equal(literalPrefix('ACME-[0-9]{8}'), 'acme-');
  assert.equal(literalPrefix('\\bfoo\\.bar\\d+'), 'foo.bar');
  assert.equal(literalPrefix('^abc+'), 'abc');
  assert.equal(literalPrefix('abcd?e'), 'abc');
  assert.equal(literalPrefix('ab*'), '');
  assert.equal(literalPrefix('foo|bar'), '');
  assert.equal(literalPrefix('(?:foo)bar'), '');
  assert.equal(literalPrefix('\\d{4}'), '');
  assert.equal(literalPrefix('[ab]cd|x'), '');
  assert.equal(literalPrefix('pin=(?<secret>\\d+)'), 'pin=');
});

test('bad extra rules throw invalid_spec naming the rule', () => {
  const cases: [RedactionRuleSpec, string, RegExp][] = [
    [{ name: 'broken_regex', pattern: '(unclosed', keywords: ['x'] }, 'broken_regex', /invalid regular expression/],
    [{ name: 'Bad-Name', pattern: 'x{3}', keywords: ['x'] }, 'Bad-Name', /snake_case/],
    [{ name: 'jwt', pattern: 'xyz', keywords: ['xyz'] }, 'jwt', /duplicate/],
    [{ name: 'no_keywords', pattern: 'xyz', keywords: [] }, 'no_keywords', /keywords/],
    [{ name: 'empty_keyword', pattern: 'xyz', keywords: [''] }, 'empty_keyword', /keywords/],
    [{ name: 'bad_flags', pattern: 'xyz', flags: 'g' }, 'bad_flags', /flags/],
    [{ name: 'matches_nothing', pattern: 'a*' }, 'matches_nothing', /empty string/],
    [{ name: 'empty_pattern', pattern: '' }, 'empty_pattern', /pattern/],
  ];
  for (const [spec, name, why] of cases) {
    assert.throws(
      () => createRedactor([spec]),
      (e: unknown) => {
        assert.ok(e instanceof AirlockError);
        assert.equal(e.code, 'invalid_spec');
        assert.ok(e.message.includes(`"${name}"`), e.message);
        assert.match(e.message, why);
        return true;
      },
    );
  }
  assert.throws(
    () =>
      createRedactor([
        { name: 'twice', pattern: 'abc' },
        { name: 'twice', pattern: 'abd' },
      ]),
    /"twice": duplicate/,
  );
});

test('redactValue deep-copies, redacts strings and whole secret fields, and freezes the result', () => {
  const r = createRedactor();
  const input = {
    user: 'app',
    password: 'hunter2',
    dbPassword: 12345,
    nested: { apiKey: { id: 1, value: 'x' }, note: 'token=abcdef123456', list: ['ok', 'AKIAIOSFODNN7EXAMPLE'] },
    'x-api-key': 'k',
    auth: true,
    token: null,
    tokenizer: 'bpe',
    token_count: 5,
    author: 'ann',
    multi: 'a\n-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----',
  };
  const out = redactValue(input, r) as Record<string, unknown>;
  assert.deepEqual(out, {
    user: 'app',
    password: '[REDACTED:secret_field]',
    dbPassword: '[REDACTED:secret_field]',
    nested: {
      apiKey: '[REDACTED:secret_field]',
      note: 'token=[REDACTED:secret_assignment]',
      list: ['ok', '[REDACTED:aws_access_key]'],
    },
    'x-api-key': '[REDACTED:secret_field]',
    auth: true,
    token: null,
    tokenizer: 'bpe',
    token_count: 5,
    author: 'ann',
    multi: 'a\n-----BEGIN PRIVATE KEY-----\n[REDACTED:private_key_block]\n-----END PRIVATE KEY-----',
  });
  assert.ok(Object.isFrozen(out) && Object.isFrozen(out['nested']));
  assert.equal(input.password, 'hunter2', 'input untouched');
  const cyclic: Record<string, unknown> = { a: 1 };
  cyclic['self'] = cyclic;
  assert.deepEqual(redactValue(cyclic, r), { a: 1, self: '[Circular]' });
  assert.equal(redactValue('password=abc123', r), 'password=[REDACTED:password_assignment]');
  assert.equal(redactValue(42, r), 42);
});
