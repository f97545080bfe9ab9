// Acceptance: every nginx.* action runs through the engine against a real nginx started
// here on a loopback port. The pack only accepts configuration files under /etc/nginx and
// logs under /var/log/nginx, so the test's configuration lives in a fresh folder
// /etc/nginx/airlock-test-XXXX/ and its logs in /var/log/nginx/airlock-test-XXXX/ (both
// removed afterwards); everything else nginx writes (pid, temp files) is in a temp prefix.
// The Debian default configuration is also tested and dumped (the actions' examples).
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { basename, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { verifyLogFile } from '../security-log.js';
import { type TestRunner, tempDir, testRunner } from '../testing/fixture.js';
import { freePort } from '../testing/free-port.js';
import {
  captureOutput,
  describeRun,
  packsDir,
  pollUntil,
  type Ran,
  requireBinaries,
  runAction,
  stopChild,
} from './support.js';

const DEBIAN_CONF = '/etc/nginx/nginx.conf';

function httpGet(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = get({ host: '127.0.0.1', port, path, headers: { 'user-agent': 'airlock-catalog-test' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.setTimeout(3000, () => req.destroy(new Error('timeout')));
  });
}

describe('nginx pack against a real nginx', () => {
  let r: TestRunner;
  let prefix: ReturnType<typeof tempDir> | undefined;
  let confDir = '';
  let logDir = '';
  let conf = '';
  let marker = '';
  let port = 0;
  let server: ChildProcess | undefined;
  let serverLog: () => string = () => '';
  let attempts = 0;
  const covered = new Set<string>();

  const run = async (action: string, args: Record<string, unknown> = {}): Promise<Ran> => {
    const ran = await runAction(r, action, args);
    attempts++;
    covered.add(action);
    assert.equal(ran.res.status, 'success', `${describeRun(ran)}\n--- nginx ---\n${serverLog()}`);
    assert.equal(ran.res.exitCode, 0);
    return ran;
  };
  const errorLog = (): string =>
    existsSync(join(logDir, 'error.log')) ? readFileSync(join(logDir, 'error.log'), 'utf8') : '';

  before(async () => {
    if (process.getuid?.() !== 0)
      throw new Error('nginx tests write under /etc/nginx and /var/log/nginx and need root');
    requireBinaries('nginx pack test', ['nginx', '/etc/nginx', '/var/log/nginx', DEBIAN_CONF]);
    prefix = tempDir('airlock-nginx-');
    confDir = mkdtempSync('/etc/nginx/airlock-test-');
    logDir = mkdtempSync('/var/log/nginx/airlock-test-');
    chmodSync(logDir, 0o755);
    port = await freePort();
    marker = `airlock-marker-${basename(confDir)}`;
    conf = join(confDir, 'nginx.conf');
    const p = prefix.dir;
    writeFileSync(
      conf,
      [
        `# ${marker}`,
        'worker_processes 1;',
        `pid ${p}/nginx.pid;`,
        `error_log ${logDir}/error.log notice;`,
        'events { worker_connections 64; }',
        'http {',
        `  access_log ${logDir}/access.log;`,
        `  client_body_temp_path ${p}/client_body;`,
        `  proxy_temp_path ${p}/proxy;`,
        `  fastcgi_temp_path ${p}/fastcgi;`,
        `  uwsgi_temp_path ${p}/uwsgi;`,
        `  scgi_temp_path ${p}/scgi;`,
        '  server {',
        `    listen 127.0.0.1:${port};`,
        '    location / { return 200 "airlock-ok\\n"; }',
        '  }',
        '}',
        '',
      ].join('\n'),
    );
    server = spawn('nginx', ['-p', `${p}/`, '-c', conf, '-g', 'daemon off;'], { stdio: ['ignore', 'pipe', 'pipe'] });
    serverLog = captureOutput(server);
    await pollUntil(
      async () => {
        if (server?.exitCode !== null) throw new Error(`nginx exited: ${serverLog()}${errorLog()}`);
        return (await httpGet(port, '/')).status === 200;
      },
      10_000,
      'nginx to answer',
    );
    r = testRunner([packsDir]);
  });

  after(async () => {
    await stopChild(server, 'SIGQUIT', 5000); // graceful shutdown; SIGKILL after 5 s
    r?.cleanup();
    if (confDir !== '') rmSync(confDir, { recursive: true, force: true });
    if (logDir !== '') rmSync(logDir, { recursive: true, force: true });
    prefix?.cleanup();
  });

  test('version', async () => {
    const ran = await run('nginx.version');
    assert.match(ran.all, /nginx version: nginx\/\d+\.\d+/); // nginx -V writes to stderr
    assert.match(ran.all, /configure arguments:/);
  });

  test('config_test: the Debian default configuration and the test one', async () => {
    let ran = await run('nginx.config_test', {});
    assert.match(ran.all, new RegExp(`configuration file ${DEBIAN_CONF} test is successful`));
    ran = await run('nginx.config_test', { config: conf });
    assert.match(ran.all, new RegExp(`configuration file ${conf} test is successful`));
  });

  test('config_test: a broken configuration is a failure with nginx’s reason', async () => {
    const broken = join(confDir, 'broken.conf');
    writeFileSync(
      broken,
      'events { worker_connections 64; }\nhttp { server { listen 127.0.0.1:1; bogus_directive on; } }\n',
    );
    const ran = await runAction(r, 'nginx.config_test', { config: broken });
    attempts++;
    assert.equal(ran.res.status, 'failure', describeRun(ran));
    assert.match(ran.all, /unknown directive "bogus_directive"/);
  });

  test('config_dump: the test configuration and the Debian default', async () => {
    let ran = await run('nginx.config_dump', { config: conf });
    assert.match(ran.stdout, new RegExp(`# configuration file ${conf}:`));
    assert.match(ran.stdout, new RegExp(marker));
    ran = await run('nginx.config_dump', {});
    assert.match(ran.stdout, new RegExp(`# configuration file ${DEBIAN_CONF}:`));
  });

  test('access_log: the request made to the server is in the tail', async () => {
    const res = await httpGet(port, '/airlock-probe?x=1');
    assert.equal(res.status, 200);
    assert.equal(res.body, 'airlock-ok\n');
    const logPath = join(logDir, 'access.log');
    await pollUntil(() => readFileSync(logPath, 'utf8').includes('/airlock-probe'), 5000, 'the access log line');
    const ran = await run('nginx.access_log', { path: logPath, lines: 10 });
    assert.match(
      ran.stdout,
      /^127\.0\.0\.1 - - \[.+\] "GET \/airlock-probe\?x=1 HTTP\/1\.1" 200 11 "-" "airlock-catalog-test"$/m,
    );
  });

  test('reload: the master re-reads the configuration, the error log shows it', async () => {
    const masterPid = server!.pid!;
    const ran = await run('nginx.reload', { config: conf });
    assert.equal(ran.res.exitCode, 0);
    await pollUntil(() => /reconfiguring/.test(errorLog()), 5000, 'nginx to log the reload');
    assert.equal(server!.exitCode, null, 'the master is still running');
    assert.equal(Number(readFileSync(join(prefix!.dir, 'nginx.pid'), 'utf8').trim()), masterPid);
    assert.equal((await httpGet(port, '/')).status, 200);

    const tail = await run('nginx.error_log', { path: join(logDir, 'error.log'), lines: 50 });
    assert.match(tail.stdout, /\[notice\] \d+#\d+: signal 1 \(SIGHUP\) received/);
    assert.match(tail.stdout, /reconfiguring/);
  });

  test('every nginx.* action ran, and the security log verifies', () => {
    const all = r.catalog.findPack('nginx')!.pack.actions.map((a) => a.id);
    assert.deepEqual(
      all.filter((id) => !covered.has(id)),
      [],
    );
    const v = verifyLogFile(r.config.logPath);
    assert.equal(v.ok, true, JSON.stringify(v));
    assert.equal(readFileSync(r.config.logPath, 'utf8').trim().split('\n').length, attempts);
  });
});
