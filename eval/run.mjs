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

/** @typedef {{ client: SandboxClient, manager: SandboxManager, stateDir: string, py: string, sh: string, bystander: string, create: (body: object) => Promise<any> }} Ctx */
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
  const manager = await SandboxManager.open({
    imageDir,
    stateDir,
    buildImages: true,
    maxSandboxes: MAX_SANDBOXES,
    defaultMemoryMb: 192,
    ...(process.env.AIRLOCK_EVAL_ACCEL ? { accel: process.env.AIRLOCK_EVAL_ACCEL } : {}),
    progress: (s, n, m) => process.stderr.write(`[images ${s}/${n}] ${m}\n`),
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
  const selected = cases.filter((c) => (only.length ? only.includes(c.name) : !short || c.short));
  const results = [];
  try {
    const bystander = (await client.create({ language_pack: 'shell' })).id;
    const sh = (await client.create({ language_pack: 'shell', max_procs: 64, rw_mb: 16 })).id;
    const py = (await client.create({ language_pack: 'python' })).id;
    for (const c of selected) {
      const started = Date.now();
      let r;
      try {
        r = await c.run({ client, manager, stateDir, py, sh, bystander, create });
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
