/**
 * The built-in redaction rules.
 *
 * Conventions the engine relies on:
 * - `keywords` are lowercase literals; a rule is only tried on a line whose lowercased text contains
 *   one of them. They must be a sound over-approximation: every possible match contains a keyword.
 * - When a pattern has named groups whose name starts with `secret`, only the first one that took
 *   part in the match is replaced, so keys, schemes, users and hosts stay readable.
 * - Order matters: specific token formats run first and leave `[REDACTED:…]` markers that the generic
 *   key/value rules refuse to match (every value pattern starts with a negative lookahead), which also
 *   keeps redaction idempotent.
 * - Patterns avoid nested quantifiers and unbounded lazy scans so that matching stays linear.
 */

/** One built-in rule. */
export interface RedactionRule {
  readonly name: string;
  readonly description: string;
  /** A RegExp source string. */
  readonly pattern: string;
  /** RegExp flags besides the `g`/`d` the engine adds (`i`, `s`, `m`, `u`). */
  readonly flags?: string;
  /** Lowercase literals, at least one of which occurs in any line the pattern can match. */
  readonly keywords: readonly string[];
}

const r = String.raw;

/**
 * Values that are already masked or are references/literals rather than secret material. Shared by the
 * generic key/value rules; requires the `i` flag. Kept in one place so negatives stay consistent.
 */
const NOT_MASK = r`(?!\\?["']?(?:\[REDACTED|-----BEGIN|\((?:sensitive|hidden|redacted)|[^\s"'*]{0,12}\*{4,}|\[(?:hidden|filtered|masked|secret|sensitive|omitted)\]|<[^>\s]*>|\*{3,}|x{6,}(?![\w-])|\$\{|\$\(|\$[a-z_]|\{\{|%\(|%[a-z_]+%|(?:null|nil|none|true|false|undefined|redacted|hidden|masked|filtered|sensitive|omitted|unset|n\/a)(?![\w.+\/=-])|\/[\w.-]+\/|~\/|\.\.?\/|\d+ bytes))`;

/** Key endings that name a password. `pass`/`pwd` alone are too common (`pass=3 fail=0`, `PWD=/home`). */
const PASSWORD_KEY = r`(?:pass(?:word|wd|phrase)|[_.-]pwd|[_.-]pass)`;
/** Key endings that name another kind of secret. */
const SECRET_KEY = r`(?:secret|token|api[_.-]?key|apikey|(?:access|secret|private|signing|encryption|master|client|app|account|session|license)[_.-]?key|_auth)`;
const ANY_SECRET_KEY = r`(?:${PASSWORD_KEY}|${SECRET_KEY})`;

/** Value of a `key=value` pair: quoted (quotes kept), escaped-quoted, or a bare token up to space, quote or `&`. */
const ASSIGN_VALUE = r`${NOT_MASK}(?:"(?<secret_dq>[^"\r\n]+)"|'(?<secret_sq>[^'\r\n]+)'|\\"(?<secret_eq>[^"\\\r\n]+)\\"|(?<secret>[^\s"'\x60&\\][^\s"'\x60&]*)|["'](?<secret_uq>[^\s"'\x60&]+))`;
/** `=` (not `==`) with optional spaces, or a colon glued to the value (`password:hunter2`). */
const ASSIGN_SEP = r`["']?(?:\s*=(?!=)\s*|:(?![\s:\/=]))`;

const HEX = '[0-9a-fA-F]';
const UUID = r`${HEX}{8}-${HEX}{4}-${HEX}{4}-${HEX}{4}-${HEX}{12}`;

/** Start of a PEM-style private key header, any algorithm (RSA, EC, DSA, ENCRYPTED, PKCS#8, …). */
const PEM_PRIVATE = r`-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----`;

/** The built-in rule set, in application order. */
export const BUILTIN_RULES: readonly RedactionRule[] = Object.freeze(
  (
    [
      // ---- private keys -------------------------------------------------------------------------
      {
        name: 'openssh_private_key',
        description: 'Body of an OpenSSH private key written on one line (escaped newlines, JSON, env).',
        pattern: r`-----BEGIN OPENSSH PRIVATE KEY-----(?<secret>[^-"'\r\n]+)`,
        keywords: ['-----begin openssh private key'],
      },
      {
        name: 'pgp_private_key_block',
        description: 'Body of an armored PGP private key block written on one line.',
        pattern: r`-----BEGIN PGP PRIVATE KEY BLOCK-----(?<secret>[^-"'\r\n]+)`,
        keywords: ['-----begin pgp private key block'],
      },
      {
        name: 'private_key_block',
        description: 'Body of a PEM private key (RSA, EC, DSA, PKCS#8, encrypted) written on one line.',
        pattern: r`${PEM_PRIVATE}(?<secret>[^-"'\r\n]+)`,
        keywords: ['private key'],
      },
      {
        name: 'putty_private_key',
        description: 'Private lines of a PuTTY .ppk key written on one line.',
        pattern: r`Private-Lines:\s*\d+(?<secret>(?:\\r)?\\n[A-Za-z0-9+\/=\\]+?)(?=\\r|\\nPrivate-MAC|["']|$)`,
        keywords: ['private-lines'],
      },
      {
        name: 'age_secret_key',
        description: 'age encryption secret key.',
        pattern: r`\bAGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}\b`,
        keywords: ['age-secret-key-1'],
      },
      {
        name: 'wireguard_private_key',
        description: 'WireGuard PrivateKey / PresharedKey in wg showconf or wg-quick config.',
        pattern: r`\b(?:PrivateKey|PresharedKey)\s*=\s*(?<secret>[A-Za-z0-9+\/]{42,43}=)`,
        keywords: ['privatekey', 'presharedkey'],
      },
      {
        name: 'kubeconfig_client_key_data',
        description: 'Base64 client key embedded in a kubeconfig (client-key-data).',
        pattern: r`client-key-data["']?\s*:\s*["']?(?<secret>[A-Za-z0-9+\/]{16,}={0,2})`,
        keywords: ['client-key-data'],
      },
      {
        name: 'kubernetes_tls_key',
        description: 'Base64 PEM private key in a kubernetes.io/tls Secret (tls.key).',
        pattern: r`tls\.key["']?\s*:\s*["']?(?<secret>LS0t[A-Za-z0-9+\/]{12,}={0,2})`,
        keywords: ['tls.key'],
      },
      {
        name: 'gcp_service_account_key_id',
        description: 'private_key_id of a GCP service account JSON key.',
        pattern: r`private_key_id\\?["']?\s*:\s*\\?["']?(?<secret>[a-f0-9]{40})\b`,
        keywords: ['private_key_id'],
      },
      // ---- cloud providers -------------------------------------------------------------------------
      {
        name: 'aws_access_key',
        description: 'AWS access key id (AKIA long-term, ASIA temporary, and other IAM unique-id prefixes).',
        pattern: r`\b(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z2-7]{16}\b`,
        keywords: ['akia', 'asia', 'abia', 'acca', 'a3t'],
      },
      {
        name: 'aws_secret_key',
        description: 'AWS secret access key assigned to its usual names (env, credentials file, JSON).',
        pattern: r`(?:aws_?secret_?access_?key|aws_?secret_?key|secretaccesskey|secret_access_key)\\?["']?\s*[:=]\s*\\?["']?(?<secret>[A-Za-z0-9\/+]{40})(?![A-Za-z0-9\/+])`,
        flags: 'i',
        keywords: ['secret_access_key', 'secretaccesskey', 'aws_secret', 'awssecret'],
      },
      {
        name: 'aws_session_token',
        description: 'AWS STS session token, by name or by its fixed base64 prefix.',
        pattern: r`(?:aws_?session_?token|sessiontoken|x-amz-security-token)\\?["']?\s*[:=]\s*\\?["']?(?!\[REDACTED)(?<secret>[A-Za-z0-9\/+=%]{16,})|\b(?:IQoJb3JpZ2luX2Vj|FwoGZXIvYXdz)[A-Za-z0-9\/+=]{40,}`,
        flags: 'i',
        keywords: ['session_token', 'sessiontoken', 'x-amz-security-token', 'iqojb3jpz2lux2vj', 'fwogzxivyxdz'],
      },
      {
        name: 'aws_mws_key',
        description: 'Amazon Marketplace Web Service auth token.',
        pattern: r`\bamzn\.mws\.${UUID}\b`,
        keywords: ['amzn.mws.'],
      },
      {
        name: 'google_api_key',
        description: 'Google API key (AIza…).',
        pattern: r`\bAIza[0-9A-Za-z_-]{35}(?![\w-])`,
        keywords: ['aiza'],
      },
      {
        name: 'google_oauth_client_secret',
        description: 'Google OAuth client secret (GOCSPX-…).',
        pattern: r`\bGOCSPX-[\w-]{28}(?![\w-])`,
        keywords: ['gocspx-'],
      },
      {
        name: 'google_oauth_access_token',
        description: 'Google OAuth access token (ya29.…).',
        pattern: r`\bya29\.[\w-]{20,}`,
        keywords: ['ya29.'],
      },
      {
        name: 'google_oauth_refresh_token',
        description: 'Google OAuth refresh token (1//0…).',
        pattern: r`\b1\/\/0[\w-]{40,}`,
        keywords: ['1//0'],
      },
      {
        name: 'firebase_fcm_server_key',
        description: 'Firebase Cloud Messaging legacy server key.',
        pattern: r`\bAAAA[\w-]{7}:APA91b[\w-]{100,}`,
        keywords: ['apa91b'],
      },
      {
        name: 'azure_storage_account_key',
        description: 'Azure storage / Cosmos DB account key in a connection string.',
        pattern: r`\bAccountKey\s*=\s*(?<secret>[A-Za-z0-9+\/]{40,}={0,2})`,
        flags: 'i',
        keywords: ['accountkey'],
      },
      {
        name: 'azure_shared_access_key',
        description: 'Azure Service Bus / Event Hubs / IoT SharedAccessKey.',
        pattern: r`\bSharedAccessKey\s*=\s*(?<secret>[A-Za-z0-9+\/]{20,}={0,2})`,
        flags: 'i',
        keywords: ['sharedaccesskey'],
      },
      {
        name: 'azure_sas_token',
        description: 'Signature of an Azure shared access signature URL or connection string (sig=).',
        pattern: r`[?&;]sig=(?<secret>[A-Za-z0-9%+\/]{20,}={0,2})`,
        keywords: ['sig='],
      },
      {
        name: 'azure_ad_client_secret',
        description: 'Microsoft Entra ID (Azure AD) application client secret (…8Q~…).',
        pattern: r`(?<![\w~.-])[\w~.-]{3}\dQ~[\w~.-]{31,34}(?![\w~.-])`,
        keywords: ['0q~', '1q~', '2q~', '3q~', '4q~', '5q~', '6q~', '7q~', '8q~', '9q~'],
      },
      {
        name: 'azure_devops_pat',
        description: 'Azure DevOps personal access token assigned to its usual names.',
        pattern: r`(?:azure_devops\w*|system_accesstoken|vsts\w*token)\\?["']?\s*[:=]\s*\\?["']?(?<secret>[A-Za-z0-9]{52,84})\b`,
        flags: 'i',
        keywords: ['azure_devops', 'system_accesstoken', 'vsts'],
      },
      {
        name: 'alibaba_access_key',
        description: 'Alibaba Cloud AccessKey id.',
        pattern: r`\bLTAI[A-Za-z0-9]{12,20}\b`,
        keywords: ['ltai'],
      },
      {
        name: 'digitalocean_token',
        description: 'DigitalOcean personal, OAuth or refresh token.',
        pattern: r`\bdo[opr]_v1_[a-f0-9]{64}\b`,
        keywords: ['dop_v1_', 'doo_v1_', 'dor_v1_'],
      },
      {
        name: 'heroku_api_key',
        description: 'Heroku API key: HRKU- tokens, or a UUID assigned to a Heroku key name.',
        pattern: r`\bHRKU-AA[\w-]{58}|heroku[\w.-]*(?:api[_-]?key|token)\\?["']?\s*[:=]\s*\\?["']?(?<secret>${UUID})`,
        flags: 'i',
        keywords: ['hrku-', 'heroku'],
      },
      {
        name: 'databricks_token',
        description: 'Databricks personal access token.',
        pattern: r`\bdapi[a-f0-9]{32}(?:-\d)?\b`,
        keywords: ['dapi'],
      },
      {
        name: 'cloudflare_api_token',
        description: 'Cloudflare API token or global API key assigned to its usual names.',
        pattern: r`(?:cloudflare|cf)[_-]?(?:api)?[_-]?(?:token|key)\\?["']?\s*[:=]\s*\\?["']?(?<secret>[\w-]{37,40})\b`,
        flags: 'i',
        keywords: ['cloudflare', 'cf_', 'cf-', 'cfapi', 'cftoken', 'cfkey'],
      },
      {
        name: 'fly_io_token',
        description: 'Fly.io access or macaroon token.',
        pattern: r`\b(?:fo1_[\w-]{43}|fm[12][ar]?_[A-Za-z0-9+\/=_-]{40,})`,
        keywords: ['fo1_', 'fm1_', 'fm2_', 'fm1a_', 'fm2a_', 'fm1r_', 'fm2r_'],
      },
      // ---- source forges, registries, CI --------------------------------------------------------------
      {
        name: 'github_pat',
        description: 'GitHub classic personal access token (ghp_).',
        pattern: r`\bghp_[A-Za-z0-9]{36}\b`,
        keywords: ['ghp_'],
      },
      {
        name: 'github_fine_grained_pat',
        description: 'GitHub fine-grained personal access token (github_pat_).',
        pattern: r`\bgithub_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59}\b`,
        keywords: ['github_pat_'],
      },
      {
        name: 'github_oauth_token',
        description: 'GitHub OAuth access token (gho_).',
        pattern: r`\bgho_[A-Za-z0-9]{36}\b`,
        keywords: ['gho_'],
      },
      {
        name: 'github_app_token',
        description: 'GitHub App user-to-server or installation token (ghu_, ghs_).',
        pattern: r`\bgh[us]_[A-Za-z0-9]{36}\b`,
        keywords: ['ghu_', 'ghs_'],
      },
      {
        name: 'github_refresh_token',
        description: 'GitHub refresh token (ghr_).',
        pattern: r`\bghr_[A-Za-z0-9]{36,76}\b`,
        keywords: ['ghr_'],
      },
      {
        name: 'gitlab_pat',
        description: 'GitLab personal, project or group access token (glpat-).',
        pattern: r`\bglpat-[\w.-]{20,}`,
        keywords: ['glpat-'],
      },
      {
        name: 'gitlab_runner_token',
        description: 'GitLab runner authentication or registration token.',
        pattern: r`\bglrt-[\w.-]{20,}|\bGR1348941[\w-]{20,}`,
        keywords: ['glrt-', 'gr1348941'],
      },
      {
        name: 'gitlab_token',
        description: 'Other GitLab tokens: pipeline trigger, deploy, feed, OAuth, CI job, incoming mail, agent.',
        pattern: r`\b(?:glptt|gldt|glft|glsoat|glcbt|glimt|glagent|gloas)-[\w.-]{20,}`,
        keywords: ['glptt-', 'gldt-', 'glft-', 'glsoat-', 'glcbt-', 'glimt-', 'glagent-', 'gloas-'],
      },
      {
        name: 'npm_token',
        description: 'npm access token (npm_).',
        pattern: r`\bnpm_[A-Za-z0-9]{36}\b`,
        keywords: ['npm_'],
      },
      {
        name: 'npmrc_auth',
        description: 'Credentials in .npmrc / .yarnrc (_authToken, _auth, _password).',
        pattern: r`:_(?:authToken|auth|password)\s*=\s*(?!\$\{)["']?(?<secret>[^\s"']+)`,
        flags: 'i',
        keywords: [':_auth', ':_password'],
      },
      {
        name: 'pypi_token',
        description: 'PyPI upload token (pypi-AgEIcHlwaS5vcmc…).',
        pattern: r`\bpypi-AgEIcHlwaS5vcmc[\w-]{50,}`,
        keywords: ['pypi-ageichlwas5vcmc'],
      },
      {
        name: 'rubygems_api_key',
        description: 'RubyGems API key.',
        pattern: r`\brubygems_[a-f0-9]{48}\b`,
        keywords: ['rubygems_'],
      },
      {
        name: 'nuget_api_key',
        description: 'NuGet.org API key.',
        pattern: r`\boy2[a-z0-9]{43}\b`,
        keywords: ['oy2'],
      },
      {
        name: 'clojars_token',
        description: 'Clojars deploy token.',
        pattern: r`\bCLOJARS_[a-z0-9]{60}\b`,
        flags: 'i',
        keywords: ['clojars_'],
      },
      {
        name: 'dockerhub_pat',
        description: 'Docker Hub personal or organization access token (dckr_pat_, dckr_oat_).',
        pattern: r`\bdckr_(?:pat|oat)_[\w-]{27,}`,
        keywords: ['dckr_pat_', 'dckr_oat_'],
      },
      {
        name: 'docker_config_auth',
        description: 'Registry credentials in a Docker config.json ("auth", "identitytoken").',
        pattern: r`\\?"(?:auth|identitytoken|registrytoken)\\?"\s*:\s*\\?"(?<secret>[A-Za-z0-9+\/._-]{8,}={0,2})\\?"`,
        flags: 'i',
        keywords: ['auth', 'identitytoken', 'registrytoken'],
      },
      {
        name: 'kubernetes_dockerconfigjson',
        description: 'Base64 .dockerconfigjson / .dockercfg payload of a Kubernetes pull secret.',
        pattern: r`\.docker(?:configjson|cfg)\\?["']?\s*:\s*\\?["']?(?<secret>[A-Za-z0-9+\/]{20,}={0,2})`,
        keywords: ['.dockerconfigjson', '.dockercfg'],
      },
      {
        name: 'jfrog_token',
        description: 'JFrog Artifactory API key or identity/reference token.',
        pattern: r`\bAKCp[A-Za-z0-9]{69}\b|\bcmVmdGtuOjAxOj[A-Za-z0-9+\/]{40,}={0,2}`,
        keywords: ['akcp', 'cmvmdgtuojaxoj'],
      },
      {
        name: 'circleci_token',
        description: 'CircleCI personal API token (CCIPAT_).',
        pattern: r`\bCCIPAT_[\w]{20,}`,
        keywords: ['ccipat_'],
      },
      {
        name: 'buildkite_token',
        description: 'Buildkite user access token (bkua_).',
        pattern: r`\bbkua_[a-f0-9]{40}\b`,
        keywords: ['bkua_'],
      },
      {
        name: 'sonarqube_token',
        description: 'SonarQube / SonarCloud token (sqp_, squ_, sqa_).',
        pattern: r`\bsq[pua]_[a-f0-9]{40}\b`,
        keywords: ['sqp_', 'squ_', 'sqa_'],
      },
      {
        name: 'terraform_cloud_token',
        description: 'Terraform Cloud / Enterprise API token (….atlasv1.…).',
        pattern: r`\b[A-Za-z0-9]{14}\.atlasv1\.[\w=-]{60,}`,
        keywords: ['.atlasv1.'],
      },
      {
        name: 'pulumi_token',
        description: 'Pulumi access token (pul-).',
        pattern: r`\bpul-[a-f0-9]{40}\b`,
        keywords: ['pul-'],
      },
      {
        name: 'atlassian_api_token',
        description: 'Atlassian (Jira, Confluence, Bitbucket) API token (ATATT3…).',
        pattern: r`\bATATT3[\w=-]{100,}`,
        keywords: ['atatt3'],
      },
      // ---- secret managers ------------------------------------------------------------------------
      {
        name: 'vault_token',
        description:
          'HashiCorp Vault service, batch or recovery token (hvs., hvb., hvr.), or a legacy s. token by name.',
        pattern: r`\bhv[sbr]\.[\w-]{24,}|vault_token\\?["']?\s*[:=]\s*\\?["']?(?<secret>s\.[A-Za-z0-9]{24})\b`,
        flags: 'i',
        keywords: ['hvs.', 'hvb.', 'hvr.', 'vault_token'],
      },
      {
        name: 'doppler_token',
        description: 'Doppler personal, service, service-account, CLI, SCIM or audit token.',
        pattern: r`\bdp\.(?:pt|st|sa|ct|scim|audit)\.[A-Za-z0-9_.-]{40,}`,
        keywords: ['dp.pt.', 'dp.st.', 'dp.sa.', 'dp.ct.', 'dp.scim.', 'dp.audit.'],
      },
      {
        name: 'onepassword_service_account_token',
        description: '1Password service account token (ops_eyJ…).',
        pattern: r`\bops_eyJ[A-Za-z0-9+\/=_-]{100,}`,
        keywords: ['ops_eyj'],
      },
      // ---- SaaS and AI APIs -------------------------------------------------------------------------
      {
        name: 'anthropic_api_key',
        description: 'Anthropic API or admin key (sk-ant-).',
        pattern: r`\bsk-ant-(?:api|admin|sid)\d{2}-[\w-]{80,}`,
        keywords: ['sk-ant-'],
      },
      {
        name: 'openai_api_key',
        description:
          'OpenAI API key (project, service account, admin, legacy; all carry T3BlbkFJ or a sk-proj- prefix).',
        pattern: r`\bsk-(?:proj|svcacct|admin)-[\w-]{40,}|\bsk-[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}\b`,
        keywords: ['sk-proj-', 'sk-svcacct-', 'sk-admin-', 't3blbkfj'],
      },
      {
        name: 'huggingface_token',
        description: 'Hugging Face user or organization token.',
        pattern: r`\b(?:hf_|api_org_)[A-Za-z]{34}\b`,
        keywords: ['hf_', 'api_org_'],
      },
      {
        name: 'groq_api_key',
        description: 'Groq API key (gsk_).',
        pattern: r`\bgsk_[A-Za-z0-9]{52}\b`,
        keywords: ['gsk_'],
      },
      {
        name: 'replicate_api_token',
        description: 'Replicate API token (r8_).',
        pattern: r`\br8_[A-Za-z0-9]{37}\b`,
        keywords: ['r8_'],
      },
      {
        name: 'perplexity_api_key',
        description: 'Perplexity API key (pplx-).',
        pattern: r`\bpplx-[A-Za-z0-9]{48}\b`,
        keywords: ['pplx-'],
      },
      {
        name: 'xai_api_key',
        description: 'xAI API key (xai-).',
        pattern: r`\bxai-[A-Za-z0-9]{80}\b`,
        keywords: ['xai-'],
      },
      {
        name: 'langsmith_api_key',
        description: 'LangSmith API key (lsv2_pt_, lsv2_sk_).',
        pattern: r`\blsv2_(?:pt|sk)_[a-f0-9]{32}_[a-f0-9]{10}\b`,
        keywords: ['lsv2_'],
      },
      {
        name: 'stripe_key',
        description: 'Stripe secret or restricted key (sk_live_, sk_test_, rk_live_, rk_test_).',
        pattern: r`\b[rs]k_(?:live|test)_[A-Za-z0-9]{24,99}\b`,
        keywords: ['sk_live_', 'sk_test_', 'rk_live_', 'rk_test_'],
      },
      {
        name: 'stripe_webhook_secret',
        description: 'Stripe webhook signing secret (whsec_).',
        pattern: r`\bwhsec_[A-Za-z0-9+\/]{32,}={0,2}`,
        keywords: ['whsec_'],
      },
      {
        name: 'square_token',
        description: 'Square access token or OAuth secret.',
        pattern: r`\bsq0(?:atp|csp)-[\w-]{22,43}|\bEAAA[\w-]{60}(?![\w-])`,
        keywords: ['sq0atp-', 'sq0csp-', 'eaaa'],
      },
      {
        name: 'shopify_token',
        description: 'Shopify access, custom-app, private-app or shared secret.',
        pattern: r`\bshp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}\b`,
        keywords: ['shpat_', 'shpca_', 'shppa_', 'shpss_'],
      },
      {
        name: 'twilio_credentials',
        description: 'Twilio API key SID with secret, or auth token (by name or in an api.twilio.com URL).',
        pattern: r`twilio[\w.-]*(?:auth[_-]?token|api[_-]?secret|secret|token)\\?["']?\s*[:=]\s*\\?["']?(?<secret>[0-9a-zA-Z]{32})\b|AC[0-9a-f]{32}:(?<secret_url>[0-9a-f]{32})@[\w.-]*twilio`,
        flags: 'i',
        keywords: ['twilio'],
      },
      {
        name: 'sendgrid_api_key',
        description: 'SendGrid API key (SG.).',
        pattern: r`\bSG\.[\w-]{22}\.[\w-]{43}(?![\w-])`,
        keywords: ['sg.'],
      },
      {
        name: 'mailgun_api_key',
        description: 'Mailgun API key (key-…, or a key assigned to a Mailgun name).',
        pattern: r`\bkey-[0-9a-f]{32}\b|mailgun[\w.-]*(?:key|token)\\?["']?\s*[:=]\s*\\?["']?(?<secret>[\w-]{20,})`,
        flags: 'i',
        keywords: ['key-', 'mailgun'],
      },
      {
        name: 'mailchimp_api_key',
        description: 'Mailchimp API key (32 hex + data-center suffix).',
        pattern: r`\b[0-9a-f]{32}-us\d{1,2}\b`,
        keywords: ['-us'],
      },
      {
        name: 'slack_token',
        description: 'Slack bot, user, app-level, config or refresh token (xox…, xapp-).',
        pattern: r`\bxox[abposr]-[0-9A-Za-z-]{10,250}|\bxapp-\d-[0-9A-Za-z-]{20,250}`,
        keywords: ['xox', 'xapp-'],
      },
      {
        name: 'slack_webhook',
        description: 'Path secret of a Slack incoming webhook URL.',
        pattern: r`hooks\.slack\.com\/(?:services|workflows|triggers)\/(?<secret>[A-Za-z0-9+\/_-]{20,})`,
        keywords: ['hooks.slack.com'],
      },
      {
        name: 'discord_webhook',
        description: 'Token part of a Discord webhook URL.',
        pattern: r`discord(?:app)?\.com\/api\/webhooks\/\d+\/(?<secret>[\w-]{60,})`,
        keywords: ['discord'],
      },
      {
        name: 'telegram_bot_token',
        description: 'Telegram bot token.',
        pattern: r`(?<!\d)\d{8,10}:AA[\w-]{33}(?![\w-])`,
        keywords: [':aa'],
      },
      {
        name: 'linear_api_key',
        description: 'Linear API key (lin_api_).',
        pattern: r`\blin_api_[A-Za-z0-9]{40}\b`,
        keywords: ['lin_api_'],
      },
      {
        name: 'notion_token',
        description: 'Notion integration token (ntn_, or legacy secret_ + 43).',
        pattern: r`\bntn_\d{11}[A-Za-z0-9]{35}\b|\bsecret_[A-Za-z0-9]{43}\b`,
        keywords: ['ntn_', 'secret_'],
      },
      {
        name: 'hubspot_token',
        description: 'HubSpot private app access token (pat-na1-, pat-eu1-).',
        pattern: r`\bpat-(?:na|eu)\d-${UUID}\b`,
        keywords: ['pat-na', 'pat-eu'],
      },
      {
        name: 'postman_api_key',
        description: 'Postman API key (PMAK-).',
        pattern: r`\bPMAK-[a-f0-9]{24}-[a-f0-9]{34}\b`,
        keywords: ['pmak-'],
      },
      {
        name: 'planetscale_token',
        description: 'PlanetScale service token, OAuth token or password (pscale_).',
        pattern: r`\bpscale_(?:tkn|oauth|pw)_[\w.-]{32,64}`,
        keywords: ['pscale_'],
      },
      {
        name: 'supabase_token',
        description: 'Supabase personal access token (sbp_) or secret API key (sb_secret_).',
        pattern: r`\bsbp_[a-f0-9]{40}\b|\bsb_secret_[\w-]{20,}`,
        keywords: ['sbp_', 'sb_secret_'],
      },
      {
        name: 'twitter_bearer_token',
        description: 'X / Twitter app bearer token (AAAAAAAAAAAAAAAAAAAAA…).',
        pattern: r`\bA{22}[A-Za-z0-9%]{50,}`,
        keywords: ['aaaaaaaaaaaaaaaaaaaaaa'],
      },
      // ---- observability ----------------------------------------------------------------------------
      {
        name: 'datadog_api_key',
        description: 'Datadog API or application key assigned to its usual names.',
        pattern: r`(?:dd|datadog)[_-]?(?:api|app|application)[_-]?key\\?["']?\s*[:=]\s*\\?["']?(?<secret>[a-f0-9]{32,40})\b`,
        flags: 'i',
        keywords: ['dd_a', 'dd-a', 'ddapi', 'ddapp', 'datadog'],
      },
      {
        name: 'newrelic_key',
        description: 'New Relic user API key, insert key, browser key or license key.',
        pattern: r`\bNRAK-[A-Z0-9]{27}\b|\bNRII-[\w-]{32}(?![\w-])|\bNRJS-[a-f0-9]{19}\b|\b[a-f0-9]{36}NRAL\b`,
        keywords: ['nrak-', 'nrii-', 'nrjs-', 'nral'],
      },
      {
        name: 'sentry_dsn_secret',
        description: 'Secret key of a legacy Sentry DSN (public:secret@host).',
        pattern: r`:\/\/[0-9a-f]{32}:(?<secret>[0-9a-f]{32})@[\w.-]*sentry`,
        keywords: ['sentry'],
      },
      {
        name: 'sentry_auth_token',
        description: 'Sentry organization or user auth token (sntrys_, sntryu_).',
        pattern: r`\bsntry[su]_[A-Za-z0-9+\/=_]{40,}`,
        keywords: ['sntrys_', 'sntryu_'],
      },
      {
        name: 'grafana_token',
        description: 'Grafana Cloud token (glc_), service account token (glsa_) or legacy API key (eyJrIjoi…).',
        pattern: r`\bglc_[A-Za-z0-9+\/]{32,}={0,2}|\bglsa_[A-Za-z0-9]{32}_[a-f0-9]{8}\b|\beyJrIjoi[A-Za-z0-9+\/]{50,}={0,2}`,
        keywords: ['glc_', 'glsa_', 'eyjrijoi'],
      },
      {
        name: 'dynatrace_token',
        description: 'Dynatrace API token (dt0c01.).',
        pattern: r`\bdt0c01\.[A-Z0-9]{24}\.[A-Z0-9]{64}\b`,
        keywords: ['dt0c01.'],
      },
      {
        name: 'okta_api_token',
        description: 'Okta API token (SSWS header or a value assigned to an Okta token name).',
        pattern: r`\bSSWS\s+(?!\[REDACTED)(?<secret>[\w-]{20,})|okta[\w.-]*(?:api[_-]?)?token\\?["']?\s*[:=]\s*\\?["']?(?<secret_kv>00[\w-]{40})\b`,
        flags: 'i',
        keywords: ['ssws', 'okta'],
      },
      // ---- generic token shapes -----------------------------------------------------------------------
      {
        name: 'kubernetes_bootstrap_token',
        description: 'kubeadm bootstrap token (abcdef.0123456789abcdef) after a token flag or key.',
        pattern: r`token\\?["']?(?:\s*[:=]\s*|\s+)\\?["']?(?<secret>[a-z0-9]{6}\.[a-z0-9]{16})\b`,
        flags: 'i',
        keywords: ['token'],
      },
      {
        name: 'password_hash',
        description: 'crypt(3)-style password hash (shadow, htpasswd, bcrypt, yescrypt).',
        pattern: r`\$(?:2[aby]|1|5|6|y|gy|7|apr1)\$[.\/A-Za-z0-9$]{20,}`,
        keywords: ['$2a$', '$2b$', '$2y$', '$1$', '$5$', '$6$', '$y$', '$gy$', '$7$', '$apr1$'],
      },
      // ---- HTTP headers -------------------------------------------------------------------------------
      {
        name: 'basic_auth_header',
        description: 'Credentials of an HTTP Basic Authorization / Proxy-Authorization header.',
        pattern: r`authorization\\?["']?\s*[:=]\s*\\?["']?basic\s+(?<secret>[A-Za-z0-9+\/]{4,}={0,2})`,
        flags: 'i',
        keywords: ['basic'],
      },
      {
        name: 'bearer_token',
        description: 'Bearer token in an Authorization header, or a long token after the word Bearer.',
        pattern: r`authorization\\?["']?\s*[:=]\s*\\?["']?bearer\s+${NOT_MASK}(?<secret>[\w.~+\/-]{6,}=*)|\bbearer\s+${NOT_MASK}(?<secret_bare>[\w.~+\/-]{16,}=*)`,
        flags: 'i',
        keywords: ['bearer'],
      },
      {
        name: 'authorization_header',
        description: 'Credentials of an Authorization header with another scheme (token, apikey, Negotiate, …).',
        pattern: r`authorization\\?["']?\s*[:=]\s*\\?["']?(?:(?!basic|bearer|digest|aws4-)[a-z][\w-]*\s+)?(?!basic|bearer|digest|aws4-)${NOT_MASK}(?<secret>[^\s"',\\]{12,})`,
        flags: 'i',
        keywords: ['authorization'],
      },
      {
        name: 'api_key_header',
        description: 'Value of an API key / token header (X-API-Key, PRIVATE-TOKEN, X-Vault-Token, …).',
        pattern: r`\b(?:x-api-key|api-key|x-apikey|apikey|x-auth-token|x-access-token|private-token|job-token|x-vault-token|x-goog-api-key|ocp-apim-subscription-key|x-functions-key|x-api-token|x-figma-token|x-shopify-access-token|x-consul-token|x-nomad-token)\\?["']?\s*:\s*${NOT_MASK}(?<secret>[^\s"',\\]{6,})`,
        flags: 'i',
        keywords: ['api-key', 'apikey', '-token', 'subscription-key', 'functions-key'],
      },
      {
        name: 'set_cookie_header',
        description: 'Value of the cookie set by a Set-Cookie header (attributes kept).',
        pattern: r`set-cookie\s*:\s*[^\s=;]+=(?!\[REDACTED)(?<secret>[^;\s]{8,})`,
        flags: 'i',
        keywords: ['set-cookie'],
      },
      {
        name: 'cookie_header',
        description: 'Whole value of a Cookie request header.',
        pattern: r`(?<![\w-])cookie\s*:\s*(?!\[REDACTED)(?<secret>[^\s=;]+=[^\r\n]+)`,
        flags: 'i',
        keywords: ['cookie'],
      },
      {
        name: 'jwt',
        description: 'JSON Web Token (header.payload.signature, base64url JSON).',
        pattern: r`\beyJ[\w-]{8,}\.eyJ[\w-]{8,}\.[\w-]*`,
        keywords: ['eyj'],
      },
      // ---- command lines ------------------------------------------------------------------------------
      {
        name: 'curl_user_password',
        description: 'Password of curl -u / --user / --proxy-user user:password.',
        pattern: r`\bcurl\b[^\r\n]{0,400}?\s(?:-u|--user|--proxy-user)[\s=]+["']?[^\s:"'[]+:(?<secret>[^\s"']+)`,
        keywords: ['curl'],
      },
      {
        name: 'sshpass_password',
        description: 'Password passed to sshpass -p.',
        pattern: r`\bsshpass\s+-p\s*(?:'(?<secret_sq>[^'\r\n]+)'|"(?<secret_dq>[^"\r\n]+)"|(?<secret>[^\s"']+))`,
        keywords: ['sshpass'],
      },
      {
        name: 'mysql_password_flag',
        description: 'Password glued to -p on a mysql / mysqldump / mysqladmin command line.',
        pattern: r`\bmysql(?:dump|admin|sh|import|check)?\b[^\r\n]{0,400}?\s-p(?:'(?<secret_sq>[^'\r\n]+)'|"(?<secret_dq>[^"\r\n]+)"|(?<secret>[^\s"'-][^\s"']*))`,
        keywords: ['mysql'],
      },
      {
        name: 'redis_cli_password',
        description: 'Password passed to redis-cli -a / --pass.',
        pattern: r`\bredis-cli\b[^\r\n]{0,400}?\s(?:-a|--pass)\s+(?<secret>[^\s"']+)`,
        keywords: ['redis-cli'],
      },
      {
        name: 'ldap_bind_password',
        description: 'Bind password passed to ldapsearch / ldapmodify / … -w.',
        pattern: r`\bldap(?:search|add|modify|delete|passwd|whoami|compare|modrdn)\b[^\r\n]{0,400}?\s-w\s+(?<secret>[^\s"']+)`,
        keywords: ['ldap'],
      },
      {
        name: 'login_password_flag',
        description: 'Password passed with -p / --password to a "login" subcommand (docker, podman, helm, az, …).',
        pattern: r`\blogin\b[^\r\n]{0,400}?\s(?:-p|--password)[\s=]+(?!-)(?<secret>[^\s"']+)`,
        keywords: ['login'],
      },
      {
        name: 'openssl_pass_arg',
        description: 'Literal password in an OpenSSL -pass / -passin / -passout pass: argument.',
        pattern: r`-pass(?:in|out)?\s+pass:(?<secret>[^\s"']+)`,
        keywords: ['-pass'],
      },
      {
        name: 'password_cli_flag',
        description: 'Value of a --password / --token / --secret style flag given as a separate argument.',
        pattern: r`(?:^|\s)--?[\w-]*(?:password|passwd|passphrase|token|secret|api-key|apikey|access-key|secret-key)\s+(?!-|(?:id|src|source|type|env)=)${NOT_MASK}(?:'(?<secret_sq>[^'\r\n]+)'|"(?<secret_dq>[^"\r\n]+)"|(?<secret>[^\s"']+))`,
        flags: 'i',
        keywords: ['pass', 'token', 'secret', 'api-key', 'apikey', 'access-key', 'secret-key'],
      },
      // ---- connection strings and env -------------------------------------------------------------------
      {
        name: 'db_password_env',
        description: 'Database password environment variables (PGPASSWORD, MYSQL_PWD, POSTGRES_PASSWORD, …).',
        pattern: r`\b(?:PGPASSWORD|MYSQL_PWD|MYSQL_PASSWORD|MYSQL_ROOT_PASSWORD|MARIADB_PASSWORD|MARIADB_ROOT_PASSWORD|POSTGRES_PASSWORD|MONGO_INITDB_ROOT_PASSWORD|REDIS_PASSWORD|RABBITMQ_DEFAULT_PASS|MSSQL_SA_PASSWORD|SA_PASSWORD|ORACLE_PASSWORD|INFLUXDB_ADMIN_PASSWORD|ELASTIC_PASSWORD)${ASSIGN_SEP}${ASSIGN_VALUE}`,
        flags: 'i',
        keywords: [
          'pgpassword',
          'mysql_pwd',
          'mysql_password',
          'mysql_root_password',
          'mariadb_',
          'postgres_password',
          'mongo_initdb_root_password',
          'redis_password',
          'rabbitmq_default_pass',
          'sa_password',
          'oracle_password',
          'influxdb_admin_password',
          'elastic_password',
        ],
      },
      {
        name: 'connection_string_password',
        description: 'Password of a semicolon-separated connection string (ADO.NET, ODBC, JDBC properties).',
        pattern: r`;\s*(?:password|pwd)\s*=\s*${NOT_MASK}(?:\{(?<secret_br>[^}\r\n]+)\}|(?<secret>[^;"'\r\n]+?))\s*(?=;|["']|$)|(?:^|["'\s])(?:password|pwd)\s*=\s*${NOT_MASK}(?:\{(?<secret_br2>[^}\r\n]+)\}|(?<secret2>[^;"'\r\n]+?))\s*;`,
        flags: 'i',
        keywords: ['password', 'pwd'],
      },
      {
        name: 'url_password',
        description: 'Password in the userinfo of a URL (scheme://user:password@host).',
        pattern: r`:\/\/[^\s:\/@[\]]*:(?!\[REDACTED)(?<secret>[^\s\/?]+)@`,
        keywords: ['://'],
      },
      {
        name: 'secret_json',
        description:
          'String value of a JSON / Python / Ruby key whose name ends like a secret (password, token, api_key, …).',
        pattern: r`(?:pass(?:word|wd|phrase)|[_."'-]pwd|[_."'-]pass|${SECRET_KEY})\\?["']\s*(?::|=>)\s*${NOT_MASK}(?:"(?<secret>(?:[^"\\\r\n]|\\.)+)"|'(?<secret_sq>(?:[^'\\\r\n]|\\.)+)'|\\"(?<secret_eq>[^"\\\r\n]+)\\")`,
        flags: 'i',
        keywords: ['pass', 'pwd', 'secret', 'token', 'key', 'auth'],
      },
      {
        name: 'secret_yaml',
        description:
          'Value of a YAML key whose name ends like a secret: quoted anywhere, or a lone unquoted token ending the line.',
        pattern: r`${ANY_SECRET_KEY}["']?\s*:\s+${NOT_MASK}(?:"(?<secret_dq>[^"\r\n]+)"|'(?<secret_sq>[^'\r\n]+)')|^(?:[\w.-]+\s*\|\s)?\s*(?:-\s+)?["']?[\w.-]*?${ANY_SECRET_KEY}["']?\s*:\s+${NOT_MASK}(?<secret>[^\s"'#|>!&*{\[%@\x60]\S*)\s*(?:\s#[^\r\n]*)?$`,
        flags: 'i',
        keywords: ['pass', 'pwd', 'secret', 'token', 'key', 'auth'],
      },
      {
        name: 'secret_xml',
        description: 'Text of an XML element whose name ends like a secret (<password>…</password>).',
        pattern: r`<(?<tag>[\w.:-]*${ANY_SECRET_KEY})>${NOT_MASK}(?<secret>[^<\r\n]+)<\/\k<tag>>`,
        flags: 'i',
        keywords: ['pass', 'pwd', 'secret', 'token', 'key', 'auth'],
      },
      {
        name: 'password_assignment',
        description: 'Value assigned to a key whose name ends like a password (env, logfmt, ini, query string, flags).',
        pattern: r`${PASSWORD_KEY}${ASSIGN_SEP}${ASSIGN_VALUE}`,
        flags: 'i',
        keywords: ['pass', 'pwd'],
      },
      {
        name: 'secret_assignment',
        description: 'Value assigned to a key whose name ends like a token, secret or API key.',
        pattern: r`${SECRET_KEY}${ASSIGN_SEP}${ASSIGN_VALUE}`,
        flags: 'i',
        keywords: ['secret', 'token', 'key', 'auth'],
      },
    ] satisfies RedactionRule[]
  ).map((rule) => Object.freeze({ ...rule, keywords: Object.freeze([...rule.keywords]) })),
);
