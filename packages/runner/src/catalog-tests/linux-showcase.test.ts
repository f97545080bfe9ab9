// Acceptance: every linux.* and showcase.* action runs for real through the engine on
// this machine, or is listed with the reason it cannot (decided by probing the
// condition at run time, so the same test passes on a host where it can run), in which
// case the engine must still behave: a clean `failure` or `error`, never a refusal of
// valid arguments. The security log written along the way must verify.
import assert from 'node:assert/strict';
import { Resolver } from 'node:dns/promises';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { ActionSpec } from '@airlock/core';
import type { RunStatus } from '../engine.js';
import { verifyLogFile } from '../security-log.js';
import { type TestRunner, testRunner } from '../testing/fixture.js';
import { describeRun, packsDir, type Ran, runAction } from './support.js';

/** What this machine offers, probed once before the tests. */
interface Probes {
  /** systemd is PID 1 (systemctl can talk to it). */
  readonly systemd: boolean;
  /** The journal has at least one file. */
  readonly journalFiles: boolean;
  /** The kernel ring buffer is readable by this user. */
  readonly dmesgReadable: boolean;
  /** /var/log/wtmp exists (last reads it). */
  readonly wtmp: boolean;
  /** Result of asking the configured DNS server for example.com. */
  readonly dns: 'answers' | 'no-records' | 'unreachable';
  /** A readable, non-empty regular file under /var/log, or undefined. */
  readonly logFile: string | undefined;
  /** Address family with routes in the main table ('4', '6') or undefined. */
  readonly routeFamily: '4' | '6' | undefined;
  /** Block devices are visible in /sys/block. */
  readonly blockDevices: boolean;
}

/** How one action is run here and what is expected. */
interface Plan {
  readonly args: Readonly<Record<string, unknown>>;
  /**
   * Undefined when the action runs for real here; otherwise why it cannot, and the run
   * must then end as `failure` or `error` (never `validation_failed`).
   */
  readonly cannot?: string;
  /** Stdout may legitimately be empty (the command printed nothing to report). */
  readonly mayBeEmpty?: string;
  /** Extra assertions on a successful run. */
  readonly check?: (ran: Ran) => void;
  /** Skip entirely (with the reason), only for an action a test must never perform here. */
  readonly skip?: string;
}

const matches = (re: RegExp) => (ran: Ran) => assert.match(ran.stdout, re, describeRun(ran));

const PLANS: Readonly<Record<string, (p: Probes) => Plan>> = {
  // ---- linux-core ----
  'linux.block_devices': (p) =>
    p.blockDevices
      ? { args: {}, check: matches(/NAME\s+TYPE\s+SIZE/) }
      : { args: {}, mayBeEmpty: 'no block devices in /sys/block (lsblk prints nothing)' },
  'linux.cpu_info': () => ({ args: {}, check: matches(/Architecture:/) }),
  'linux.datetime': () => ({ args: { utc: true }, check: matches(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d,\d+\+00:00$/) }),
  'linux.disk_inodes': () => ({ args: { path: '/var' }, check: matches(/Inodes/) }),
  'linux.disk_usage': () => ({ args: {}, check: matches(/Filesystem\s+1024-blocks/) }),
  'linux.dmesg': (p) =>
    p.dmesgReadable
      ? { args: { lines: 50 }, mayBeEmpty: 'the ring buffer may be empty' }
      : { args: { lines: 50 }, cannot: 'kernel.dmesg_restrict=1 and not root: dmesg cannot read the ring buffer' },
  'linux.dns_lookup': () => ({ args: { name: 'localhost' }, check: matches(/(127\.0\.0\.1|::1)\s+STREAM/) }),
  'linux.dns_query': (p) =>
    p.dns === 'unreachable'
      ? { args: { name: 'example.com', type: 'A' }, cannot: 'no DNS server answers from this machine: dig times out' }
      : p.dns === 'no-records'
        ? {
            args: { name: 'example.com', type: 'A' },
            mayBeEmpty:
              'the DNS server here answers but has no records for example.com (NXDOMAIN); dig +short prints nothing',
          }
        : { args: { name: 'example.com', type: 'A' }, check: matches(/^[0-9.]+$/m) },
  'linux.failed_units': (p) =>
    p.systemd
      ? { args: {}, check: matches(/loaded units listed|UNIT/) }
      : { args: {}, cannot: 'no systemd on this machine: systemctl cannot talk to PID 1' },
  'linux.file_stat': () => ({ args: { path: '/etc/hosts' }, check: matches(/File: \/etc\/hosts/) }),
  'linux.file_tail': (p) =>
    p.logFile === undefined
      ? {
          args: { path: '/var/log', lines: 5 },
          cannot: 'no readable, non-empty log file under /var/log (tail of a directory fails)',
        }
      : { args: { path: p.logFile, lines: 5 } },
  'linux.hostname': () => ({ args: {} }),
  'linux.ip_addresses': () => ({ args: {}, check: matches(/^lo\s+UNKNOWN/m) }),
  'linux.journal': (p) => ({
    args: { unit: 'nginx.service', lines: 100 },
    // journalctl exits 0 and prints "-- No entries --" when there is nothing to show.
    ...(p.journalFiles ? {} : { check: matches(/No entries/) }),
  }),
  'linux.kernel': () => ({ args: {}, check: matches(/^Linux /) }),
  'linux.last_logins': (p) =>
    p.wtmp
      ? { args: { count: 10 }, check: matches(/wtmp begins/) }
      : { args: { count: 10 }, cannot: '/var/log/wtmp does not exist' },
  'linux.listeners': () => ({ args: { protocol: 'tcp' }, check: matches(/Local Address:Port/) }),
  'linux.load': () => ({ args: {}, check: matches(/^\d+\.\d+ \d+\.\d+ \d+\.\d+ \d+\/\d+ \d+$/) }),
  'linux.memory': () => ({ args: {}, check: matches(/^Mem:/m) }),
  'linux.mounts': () => ({ args: {}, check: matches(/^TARGET\s+SOURCE/) }),
  'linux.os_release': () => ({ args: {}, check: matches(/^ID=/m) }),
  'linux.ping': () => ({ args: { host: '127.0.0.1', count: 1 }, check: matches(/1 packets transmitted, 1 received/) }),
  'linux.processes': () => ({ args: { count: 10 }, check: matches(/PID/) }),
  'linux.routes': (p) =>
    p.routeFamily === undefined
      ? { args: { family: '4' }, mayBeEmpty: 'no routes in the main table' }
      : { args: { family: p.routeFamily } },
  'linux.service_restart': (p) =>
    // Never restart a real service from a test. The unit is one from the allowlist that
    // this machine does not have, so even on a systemd host the restart fails cleanly.
    p.systemd && unitLoaded('cassandra.service')
      ? { args: { unit: 'cassandra.service' }, skip: 'cassandra.service exists here and a test must not restart it' }
      : {
          args: { unit: 'cassandra.service' },
          cannot: p.systemd
            ? 'a test never restarts a real service: cassandra.service (from the allowlist) is not installed, systemctl refuses'
            : 'no systemd on this machine: systemctl cannot talk to PID 1',
        },
  'linux.service_status': (p) =>
    p.systemd
      ? { args: { unit: 'init.scope', lines: 0 }, check: matches(/init\.scope/) }
      : {
          args: { unit: 'nginx.service', lines: 0 },
          cannot: 'no systemd on this machine: systemctl cannot talk to PID 1',
        },
  'linux.socket_summary': () => ({ args: {}, check: matches(/^Total:/m) }),
  'linux.uptime': () => ({ args: {}, check: matches(/load average/) }),
  'linux.vmstat': () => ({ args: { interval: 1, samples: 2 }, check: matches(/procs/) }),
  'linux.who': () => ({ args: {}, check: matches(/USER\s+TTY/) }),

  // ---- showcase ----
  'showcase.big_output': () => ({
    args: { kb: 16 },
    check: (ran) => {
      assert.equal(ran.lines.filter((l) => l.stream === 'stdout').length, 16 * 8);
      assert.equal(ran.res.outputBytes, 16 * 1024);
    },
  }),
  'showcase.count': () => ({
    args: { n: 3, delay_ms: 20 },
    check: (ran) => assert.deepEqual(ran.stdout.split('\n'), ['1 of 3', '2 of 3', '3 of 3']),
  }),
  'showcase.date': () => ({ args: {}, check: matches(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$/) }),
  'showcase.echo': () => ({
    args: { message: '$(id); echo pwned | cat /etc/shadow' },
    check: (ran) => assert.equal(ran.stdout, '$(id); echo pwned | cat /etc/shadow'),
  }),
  'showcase.env': () => ({
    args: {},
    check: (ran) => {
      const names = ran.stdout
        .split('\n')
        .map((l) => l.split('=')[0])
        .sort();
      // The test runner's engine gets an empty environment, so TZ is not passed.
      assert.deepEqual(names, ['AIRLOCK_DEMO', 'LANG', 'PATH'], ran.stdout);
      assert.match(ran.stdout, /^LANG=C\.UTF-8$/m);
    },
  }),
  'showcase.exit_code': () => ({ args: { code: 0 }, check: matches(/about to exit with code 0/) }),
  'showcase.fake_secret': () => ({
    args: {},
    check: (ran) => {
      assert.match(ran.stdout, /REDACTED/);
      for (const secret of ['wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY', 'hunter2-airlock-demo', 's3cr3t-demo']) {
        assert.ok(!ran.stdout.includes(secret), `${secret} leaked:\n${ran.stdout}`);
      }
      assert.match(ran.stdout, /this line holds no secret and is left as is/);
    },
  }),
  'showcase.host_summary': () => ({ args: {}, check: matches(/^Linux \S+ \S+$/) }),
  'showcase.list_tmp': () => ({ args: {}, check: matches(/^total \d+/) }),
  'showcase.sleep': () => ({ args: { seconds: 1 }, mayBeEmpty: 'sleep prints nothing' }),
  'showcase.whoami': () => ({ args: {}, check: (ran) => assert.equal(ran.stdout, userInfo().username) }),
};

function unitLoaded(unit: string): boolean {
  return ['/etc/systemd/system', '/lib/systemd/system', '/usr/lib/systemd/system', '/run/systemd/system'].some((d) =>
    existsSync(join(d, unit)),
  );
}

function hasJournalFiles(dir: string, depth = 0): boolean {
  if (depth > 3 || !existsSync(dir)) return false;
  try {
    for (const name of readdirSync(dir)) {
      const full = join(dir, name);
      if (name.endsWith('.journal')) return true;
      if (statSync(full).isDirectory() && hasJournalFiles(full, depth + 1)) return true;
    }
  } catch {
    return false;
  }
  return false;
}

function readable(file: string): boolean {
  try {
    const st = statSync(file);
    if (!st.isFile() || st.size === 0) return false;
    readFileSync(file, { flag: 'r' }).subarray(0, 1);
    return true;
  } catch {
    return false;
  }
}

function findLogFile(): string | undefined {
  const candidates = ['syslog', 'messages', 'dpkg.log', 'alternatives.log', 'kern.log', 'auth.log', 'bootstrap.log'];
  for (const c of candidates) if (readable(join('/var/log', c))) return join('/var/log', c);
  try {
    for (const name of readdirSync('/var/log').sort())
      if (readable(join('/var/log', name))) return join('/var/log', name);
  } catch {
    // no /var/log
  }
  return undefined;
}

function routeFamily(): '4' | '6' | undefined {
  const lines = (f: string): number => {
    try {
      return readFileSync(f, 'utf8').trim().split('\n').filter(Boolean).length;
    } catch {
      return 0;
    }
  };
  if (lines('/proc/net/route') > 1) return '4';
  if (lines('/proc/net/ipv6_route') > 0) return '6';
  return undefined;
}

async function probeDns(): Promise<Probes['dns']> {
  const r = new Resolver({ timeout: 2500, tries: 1 });
  try {
    const a = await r.resolve4('example.com');
    return a.length > 0 ? 'answers' : 'no-records';
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return code === 'ENOTFOUND' || code === 'ENODATA' || code === 'NXDOMAIN' ? 'no-records' : 'unreachable';
  }
}

async function probe(): Promise<Probes> {
  let dmesgRestrict = '1';
  try {
    dmesgRestrict = readFileSync('/proc/sys/kernel/dmesg_restrict', 'utf8').trim();
  } catch {
    // unknown: assume restricted
  }
  let blockDevices = false;
  try {
    blockDevices = readdirSync('/sys/block').length > 0;
  } catch {
    blockDevices = false;
  }
  return {
    systemd: existsSync('/run/systemd/system'),
    journalFiles: hasJournalFiles('/var/log/journal') || hasJournalFiles('/run/log/journal'),
    dmesgReadable: process.getuid?.() === 0 || dmesgRestrict === '0',
    wtmp: existsSync('/var/log/wtmp'),
    dns: await probeDns(),
    logFile: findLogFile(),
    routeFamily: routeFamily(),
    blockDevices,
  };
}

describe('linux-core and showcase actions, run for real', () => {
  let r: TestRunner;
  let probes: Probes;
  let attempts = 0;
  const ranForReal: string[] = [];
  const cannotHere: string[] = [];

  before(async () => {
    r = testRunner([packsDir]);
    probes = await probe();
  });
  after(() => {
    if (process.env['AIRLOCK_TEST_VERBOSE'] !== undefined) {
      console.log(`ran for real: ${ranForReal.length} (${ranForReal.join(', ')})`);
      console.log(`cannot run here:\n  ${cannotHere.join('\n  ')}`);
    }
    r.cleanup();
  });

  const actions = (): ActionSpec[] =>
    r.catalog.packs
      .filter((p) => p.pack.namespace === 'linux' || p.pack.namespace === 'showcase')
      .flatMap((p) => [...p.pack.actions]);

  test('every linux.* and showcase.* action has a plan in this file', () => {
    const ids = actions().map((a) => a.id);
    assert.ok(ids.length >= 30, `only ${ids.length} actions`);
    assert.deepEqual(
      ids.filter((id) => PLANS[id] === undefined),
      [],
      'actions without a plan: add them to PLANS',
    );
    assert.deepEqual(
      Object.keys(PLANS).filter((id) => !ids.includes(id)),
      [],
      'plans for actions that no longer exist',
    );
  });

  for (const id of Object.keys(PLANS).sort()) {
    test(id, async (t) => {
      const plan = PLANS[id]!(probes);
      if (plan.skip !== undefined) {
        cannotHere.push(`${id}: ${plan.skip} (not run)`);
        t.skip(plan.skip);
        return;
      }
      const ran = await runAction(r, id, plan.args);
      attempts++;
      assert.notEqual(ran.res.status, 'validation_failed', `valid args refused: ${describeRun(ran)}`);
      if (plan.cannot !== undefined) {
        cannotHere.push(`${id}: ${plan.cannot}`);
        t.diagnostic(`cannot run here: ${plan.cannot}`);
        assert.ok(
          ran.res.status === 'failure' || ran.res.status === 'error',
          `expected failure or error: ${describeRun(ran)}`,
        );
        if (ran.res.status === 'error')
          assert.ok(ran.res.error !== null && ran.res.error.code.length > 0, describeRun(ran));
        else {
          assert.ok(ran.res.exitCode !== null && ran.res.exitCode !== 0, describeRun(ran));
          assert.ok(ran.stderr.length > 0 || ran.stdout.length > 0, `a failure should say why: ${describeRun(ran)}`);
        }
        return;
      }
      ranForReal.push(id);
      assert.equal(ran.res.status, 'success' satisfies RunStatus, describeRun(ran));
      assert.equal(ran.res.exitCode, 0);
      assert.equal(ran.res.truncated, false);
      if (plan.mayBeEmpty === undefined) assert.ok(ran.stdout.trim().length > 0, `empty stdout: ${describeRun(ran)}`);
      else if (ran.stdout.trim().length === 0) t.diagnostic(`no output: ${plan.mayBeEmpty}`);
      plan.check?.(ran);
    });
  }

  test('showcase: past the output limit the run is truncated and the process killed', async () => {
    const ran = await runAction(r, 'showcase.big_output', { kb: 1024 });
    attempts++;
    assert.equal(ran.res.status, 'failure', describeRun(ran));
    assert.equal(ran.res.truncated, true);
    assert.equal(ran.res.error?.code, 'output_truncated');
    assert.ok(ran.res.outputBytes <= 65536, `kept ${ran.res.outputBytes} bytes`);
  });

  test('showcase: a non-zero exit code is a failure with both streams', async () => {
    const ran = await runAction(r, 'showcase.exit_code', { code: 42 });
    attempts++;
    assert.equal(ran.res.status, 'failure', describeRun(ran));
    assert.equal(ran.res.exitCode, 42);
    assert.ok(ran.stdout.length > 0 && ran.stderr.length > 0, describeRun(ran));
  });

  test('showcase: the timeout limit ends a long sleep as timeout', async () => {
    const ran = await runAction(r, 'showcase.sleep', { seconds: 30 }, { timeout_s: 1 });
    attempts++;
    assert.equal(ran.res.status, 'timeout', describeRun(ran));
  });

  test('at least 25 actions ran for real, and the security log verifies', () => {
    assert.ok(ranForReal.length >= 25, `only ${ranForReal.length} ran for real: ${ranForReal.join(', ')}`);
    const v = verifyLogFile(r.config.logPath);
    assert.equal(v.ok, true, JSON.stringify(v));
    const events = readFileSync(r.config.logPath, 'utf8').trim().split('\n');
    assert.equal(events.length, attempts, 'one event per attempt');
  });
});
