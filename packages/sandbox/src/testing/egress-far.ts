/**
 * Test fixtures for egress: a "far end" in its own network namespace, reached
 * from the host over a veth pair with documentation addresses (203.0.113.0/24,
 * which the egress range check does not refuse), running servers that RECORD
 * what they receive (so tests check the far end, not the guest's view), and a
 * tiny DNS server on loopback that the daemon's resolver is pointed at.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { EgressCA } from '../egress/ca.js';

/** What a far-end server saw. `accept` for every connection, then `http` / `tls` / `raw` with the data. */
export interface FarRecord {
  readonly port: number;
  readonly kind: 'accept' | 'http' | 'raw';
  readonly method?: string;
  readonly url?: string;
  readonly headers?: Record<string, string>;
  /** The body when at most 4 KiB; `body_len` and `sha256` always. */
  readonly body?: string;
  readonly body_len?: number;
  readonly sha256?: string;
  readonly data?: string;
}

export interface FarEnd {
  /** The far end's address (a /30 inside 203.0.113.0/24, unique per test process). */
  readonly address: string;
  /** CA certificate (PEM) that signed the far end's TLS certificate (for `bound.test`, `ok.test`). */
  readonly caPem: string;
  readonly records: FarRecord[];
  /** Connections accepted on a port so far. */
  accepts(port: number): number;
  /** Wait until a record matching `pred` arrives. */
  waitFor(pred: (r: FarRecord) => boolean, timeoutMs?: number): Promise<FarRecord>;
  close(): Promise<void>;
}

/** Ports the far end listens on: plain HTTP, TLS (HTTP inside), raw TCP, and one that must never be reached. */
export const FAR_PORTS = { http: 80, https: 443, raw: 9000, never: 81 } as const;

const SERVER = `
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import fs from 'node:fs';
import { createHash } from 'node:crypto';
const [cert, key] = [fs.readFileSync(process.argv[2], 'utf8'), fs.readFileSync(process.argv[3], 'utf8')];
const out = (r) => process.stdout.write(JSON.stringify(r) + '\\n');
function onHttp(port) {
  return (req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const sha256 = createHash('sha256').update(body).digest('hex');
      out({ port, kind: 'http', method: req.method, url: req.url, headers: req.headers,
        body: body.length <= 4096 ? body.toString() : undefined, body_len: body.length, sha256 });
      // /bytes/N answers N bytes of a fixed pattern (throughput and integrity through the proxy).
      const n = req.url.startsWith('/bytes/') ? Number(req.url.slice(7)) : NaN;
      if (Number.isInteger(n) && n >= 0) {
        const buf = Buffer.alloc(n);
        for (let i = 0; i + 4 <= n; i += 4) buf.writeUInt32LE(i, i);
        res.writeHead(200, { 'content-length': n, 'x-sha256': createHash('sha256').update(buf).digest('hex') });
        res.end(buf);
        return;
      }
      res.end('far:' + port + ':' + req.url);
    });
  };
}
function count(srv, port) {
  srv.on('connection', () => out({ port, kind: 'accept' }));
  srv.listen(port, '0.0.0.0');
}
count(http.createServer(onHttp(80)), 80);
count(https.createServer({ cert, key }, onHttp(443)), 443);
count(http.createServer(onHttp(81)), 81);
const raw = net.createServer((s) => {
  s.on('data', (d) => { out({ port: 9000, kind: 'raw', data: d.toString() }); s.write('echo:' + d.toString()); });
});
count(raw, 9000);
setTimeout(() => out({ port: 0, kind: 'ready' }), 200);
`;

function sh(cmd: string, args: string[]): void {
  execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Create the namespace, veth pair and servers. Needs root (ip netns). */
export async function startFarEnd(): Promise<FarEnd> {
  const k = process.pid % 60;
  const hostAddr = `203.0.113.${4 * k + 1}`;
  const farAddr = `203.0.113.${4 * k + 2}`;
  const ns = `alfar${process.pid}`;
  const vh = `alh${process.pid % 100000}`;
  const work = mkdtempSync(join(tmpdir(), 'alfar-'));
  const ca = await EgressCA.create('far end test');
  const leaf = await ca.leafFor('bound.test');
  writeFileSync(join(work, 'cert.pem'), leaf.cert);
  writeFileSync(join(work, 'key.pem'), leaf.key);
  writeFileSync(join(work, 'server.mjs'), SERVER);
  const cleanupNet = () => {
    try {
      sh('ip', ['netns', 'del', ns]);
    } catch {}
    try {
      sh('ip', ['link', 'del', vh]);
    } catch {}
  };
  cleanupNet();
  sh('ip', ['netns', 'add', ns]);
  sh('ip', ['link', 'add', vh, 'type', 'veth', 'peer', 'name', 'alfar0', 'netns', ns]);
  sh('ip', ['addr', 'add', `${hostAddr}/30`, 'dev', vh]);
  sh('ip', ['link', 'set', vh, 'up']);
  sh('ip', ['-n', ns, 'addr', 'add', `${farAddr}/30`, 'dev', 'alfar0']);
  sh('ip', ['-n', ns, 'link', 'set', 'alfar0', 'up']);
  sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  const child: ChildProcess = spawn(
    'ip',
    ['netns', 'exec', ns, process.execPath, join(work, 'server.mjs'), join(work, 'cert.pem'), join(work, 'key.pem')],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const records: FarRecord[] = [];
  const waiters = new Set<() => void>();
  let ready!: () => void;
  const isReady = new Promise<void>((r) => (ready = r));
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const r = JSON.parse(line) as FarRecord;
    if ((r.kind as string) === 'ready') return ready();
    records.push(r);
    for (const w of [...waiters]) w();
  });
  try {
    await Promise.race([
      isReady,
      new Promise((_, rej) => setTimeout(() => rej(new Error('far-end servers did not start')), 10_000)),
    ]);
  } catch (e) {
    // The caller gets no handle to close: leave no namespace or veth behind.
    child.kill('SIGKILL');
    cleanupNet();
    rmSync(work, { recursive: true, force: true });
    throw e;
  }
  return {
    address: farAddr,
    caPem: ca.certificatePem,
    records,
    accepts: (port) => records.filter((r) => r.kind === 'accept' && r.port === port).length,
    waitFor(pred, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const hit = records.find(pred);
          if (!hit) return;
          waiters.delete(check);
          clearTimeout(t);
          resolve(hit);
        };
        const t = setTimeout(() => {
          waiters.delete(check);
          reject(
            new Error(
              `far end: no matching record in ${timeoutMs} ms (have ${JSON.stringify(records).slice(0, 2000)})`,
            ),
          );
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    async close() {
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
      cleanupNet();
      rmSync(work, { recursive: true, force: true });
    },
  };
}

/** A DNS server on 127.0.0.1 answering A queries from a table (AAAA: no answers; unknown: NXDOMAIN). */
export interface TestDns {
  /** `127.0.0.1:PORT`, for the daemon's `egress.dnsServers`. */
  readonly server: string;
  close(): Promise<void>;
}

export async function startTestDns(table: Record<string, readonly string[]>): Promise<TestDns> {
  const sock: UdpSocket = createSocket('udp4');
  sock.on('message', (q, rinfo) => {
    if (q.length < 12) return;
    // Question: labels from offset 12, then qtype, qclass.
    let o = 12;
    const labels: string[] = [];
    while (o < q.length && q[o] !== 0) {
      const n = q[o] ?? 0;
      labels.push(q.toString('latin1', o + 1, o + 1 + n));
      o += 1 + n;
    }
    const qEnd = o + 5;
    if (qEnd > q.length) return;
    const qtype = q.readUInt16BE(o + 1);
    const name = labels.join('.').toLowerCase();
    const known = Object.hasOwn(table, name);
    const answers = known && qtype === 1 ? (table[name] ?? []) : [];
    const head = Buffer.alloc(12);
    head.writeUInt16BE(q.readUInt16BE(0), 0);
    head.writeUInt16BE(0x8180 | (known ? 0 : 3), 2); // response, RD+RA, NOERROR or NXDOMAIN
    head.writeUInt16BE(1, 4);
    head.writeUInt16BE(answers.length, 6);
    const rrs = answers.map((ip) => {
      const rr = Buffer.alloc(16);
      rr.writeUInt16BE(0xc00c, 0); // pointer to the question name
      rr.writeUInt16BE(1, 2);
      rr.writeUInt16BE(1, 4);
      rr.writeUInt32BE(5, 6);
      rr.writeUInt16BE(4, 10);
      for (const [i, p] of ip.split('.').entries()) rr.writeUInt8(Number(p), 12 + i);
      return rr;
    });
    sock.send(Buffer.concat([head, q.subarray(12, qEnd), ...rrs]), rinfo.port, rinfo.address);
  });
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  return {
    server: `127.0.0.1:${sock.address().port}`,
    close: () => new Promise((r) => sock.close(() => r())),
  };
}
