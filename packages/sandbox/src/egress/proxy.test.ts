/**
 * The egress proxy over plain sockets (no guest): a local listener hands each
 * connection to a sandbox's EgressSession, as the guest channel does with its
 * streams. The far end is real (servers in a network namespace behind a veth
 * pair) and records what arrives, so every check is made where the bytes land.
 */
import assert from 'node:assert/strict';
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { FAR_PORTS, type FarEnd, startFarEnd, startTestDns, type TestDns } from '../testing/egress-far.js';
import { waitUntil } from '../testing/harness.js';
import type { EgressEvent } from './events.js';
import { EgressPolicy } from './policy.js';
import { EgressResolver } from './resolver.js';
import { EgressSession } from './session.js';

const SECRET = 'real-secret-value-42';
const isRoot = process.getuid?.() === 0;

/** Send `text`, read until the peer closes. */
function exchange(port: number, text: string | Buffer, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = netConnect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const t = setTimeout(() => {
      s.destroy();
      reject(new Error(`no close within ${timeoutMs} ms; got ${Buffer.concat(chunks).toString()}`));
    }, timeoutMs);
    s.on('data', (c) => chunks.push(c));
    s.on('close', () => {
      clearTimeout(t);
      resolve(Buffer.concat(chunks).toString('latin1'));
    });
    s.on('error', () => {});
    s.write(text);
  });
}

/** CONNECT, wait for the 200, hand back the socket. */
function connectTunnel(port: number, target: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = netConnect(port, '127.0.0.1');
    let got = '';
    const onData = (c: Buffer) => {
      got += c.toString('latin1');
      if (!got.includes('\r\n\r\n')) return;
      s.off('data', onData);
      if (/^HTTP\/1\.1 200 /.test(got)) resolve(s);
      else reject(new Error(got));
    };
    s.on('data', onData);
    s.on('error', reject);
    s.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`);
  });
}

describe('egress proxy (plain sockets, far end in a netns)', {
  skip: !isRoot && 'needs root (ip netns)',
  timeout: 120_000,
}, () => {
  let far: FarEnd;
  let dns: TestDns;
  let session: EgressSession;
  let trusting: EgressSession;
  let server: Server;
  let untrustingServer: Server;
  let port: number;
  let untrustingPort: number;
  let placeholder: string;

  const listenFor = async (s: EgressSession): Promise<[Server, number]> => {
    const srv = createServer((c) => void s.serve(c));
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    return [srv, (srv.address() as { port: number }).port];
  };

  before(async () => {
    far = await startFarEnd();
    dns = await startTestDns({
      'ok.test': [far.address],
      'bound.test': [far.address],
      'private.test': ['10.0.0.5'],
      'loop.test': ['127.0.0.1'],
      'meta.test': ['169.254.169.254'],
      'mixed.test': [far.address, '192.168.0.9'],
    });
    const allow = [
      'ok.test:80',
      'ok.test:443',
      'ok.test:9000',
      'bound.test:80',
      'bound.test:443',
      'private.test:80',
      'loop.test:80',
      'meta.test:80',
      'mixed.test:80',
      `${far.address}:9000`,
    ];
    const secrets = [{ name: 'API_TOKEN', value: SECRET, hosts: ['bound.test'] }];
    const resolver = new EgressResolver([dns.server]);
    trusting = await EgressSession.create('sb_unit', EgressPolicy.parse(allow), secrets, {
      resolver,
      upstreamCa: [far.caPem],
    });
    // The same policy without the far end's CA: upstream TLS must fail verification.
    session = await EgressSession.create('sb_unit2', EgressPolicy.parse(allow), secrets, { resolver, upstreamCa: [] });
    [server, port] = await listenFor(trusting);
    [untrustingServer, untrustingPort] = await listenFor(session);
    placeholder = trusting.guestEnv(3128)['API_TOKEN'] ?? '';
    assert.match(placeholder, /^airlock-placeholder-[0-9a-f]{32}$/);
  });

  after(async () => {
    server?.close();
    untrustingServer?.close();
    trusting?.close();
    session?.close();
    await dns?.close();
    await far?.close();
  });

  const lastEvent = (s: EgressSession, host: string, port: number): EgressEvent | undefined =>
    s.log
      .list()
      .filter((e) => e.host === host && e.port === port)
      .at(-1);
  // A connection's event is written when both directions are done, a moment after the client saw its end.
  const settledEvent = async (s: EgressSession, host: string, port: number, n: number): Promise<EgressEvent> => {
    await waitUntil(
      () => s.log.list().filter((e) => e.host === host && e.port === port).length >= n,
      5000,
      `${host}:${port} event`,
    );
    return lastEvent(s, host, port) as EgressEvent;
  };

  it('forwards an allowed plain HTTP request in origin form with connection: close, and logs it', async () => {
    const r = await exchange(
      port,
      'GET http://ok.test/hello?x=1 HTTP/1.1\r\nHost: ok.test\r\nProxy-Connection: keep-alive\r\n\r\n',
    );
    assert.match(r, /^HTTP\/1\.1 200 /);
    assert.match(r, /far:80:\/hello\?x=1/);
    const rec = await far.waitFor((x) => x.kind === 'http' && x.url === '/hello?x=1');
    assert.equal(rec.headers?.['connection'], 'close');
    assert.equal(rec.headers?.['proxy-connection'], undefined);
    const e = await settledEvent(trusting, 'ok.test', 80, 1);
    assert.equal(e?.decision, 'allowed');
    assert.deepEqual(e?.addresses, [far.address]);
    assert.ok((e?.bytes_up ?? 0) > 0 && (e?.bytes_down ?? 0) > 0);
    assert.equal(typeof e?.duration_ms, 'number');
  });

  it('tunnels an allowed CONNECT byte for byte (raw TCP), by name and by IP literal', async () => {
    for (const target of [`ok.test:${FAR_PORTS.raw}`, `${far.address}:${FAR_PORTS.raw}`]) {
      const s = await connectTunnel(port, target);
      const echoed = new Promise<string>((r) => s.once('data', (d) => r(d.toString())));
      s.write(`ping ${target}`);
      assert.equal(await echoed, `echo:ping ${target}`);
      s.end();
      await far.waitFor((x) => x.kind === 'raw' && x.data === `ping ${target}`);
    }
  });

  it('refuses a port or host not on the allowlist: the far end never sees a connection', async () => {
    const before81 = far.accepts(FAR_PORTS.never);
    const r1 = await exchange(port, `CONNECT ok.test:${FAR_PORTS.never} HTTP/1.1\r\n\r\n`);
    assert.match(r1, /^HTTP\/1\.1 403 /);
    assert.match(r1, /not on the allowlist/);
    const r2 = await exchange(port, `GET http://${far.address}:${FAR_PORTS.never}/ HTTP/1.1\r\n\r\n`);
    assert.match(r2, /^HTTP\/1\.1 403 /);
    const r3 = await exchange(port, 'GET http://evil.test/ HTTP/1.1\r\n\r\n');
    assert.match(r3, /^HTTP\/1\.1 403 /);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(far.accepts(FAR_PORTS.never), before81, 'the refused port was reached');
    const e = lastEvent(trusting, 'ok.test', FAR_PORTS.never);
    assert.equal(e?.decision, 'refused');
    assert.equal(e?.bytes_up, 0);
  });

  it('refuses allowed names that resolve to loopback, private, metadata or a mix (DNS rebinding)', async () => {
    for (const [host, why] of [
      ['private.test', /10\.0\.0\.5: private/],
      ['loop.test', /127\.0\.0\.1: loopback/],
      ['meta.test', /169\.254\.169\.254: cloud metadata/],
      ['mixed.test', /192\.168\.0\.9: private/],
    ] as const) {
      const r = await exchange(port, `GET http://${host}/ HTTP/1.1\r\n\r\n`);
      assert.match(r, /^HTTP\/1\.1 403 /, host);
      const e = lastEvent(trusting, host, 80);
      assert.equal(e?.decision, 'refused');
      assert.match(e?.reason ?? '', why);
      assert.ok((e?.addresses.length ?? 0) > 0, 'the resolved addresses are logged');
    }
  });

  it('swaps the placeholder for the secret in headers only for the bound host (plain HTTP)', async () => {
    await exchange(
      port,
      `POST http://bound.test/api HTTP/1.1\r\nAuthorization: Bearer ${placeholder}\r\nContent-Length: ${placeholder.length}\r\n\r\n${placeholder}`,
    );
    const rec = await far.waitFor((x) => x.kind === 'http' && x.url === '/api');
    assert.equal(rec.headers?.['authorization'], `Bearer ${SECRET}`);
    assert.equal(rec.body, placeholder, 'the body is not rewritten');
    assert.deepEqual((await settledEvent(trusting, 'bound.test', 80, 1)).secrets_used, ['API_TOKEN']);
    await exchange(port, `GET http://ok.test/unbound HTTP/1.1\r\nAuthorization: Bearer ${placeholder}\r\n\r\n`);
    const rec2 = await far.waitFor((x) => x.kind === 'http' && x.url === '/unbound');
    assert.equal(rec2.headers?.['authorization'], `Bearer ${placeholder}`, 'an unbound host gets the placeholder');
    assert.ok(!JSON.stringify(far.records.filter((x) => x.url === '/unbound')).includes(SECRET));
  });

  it('intercepts HTTPS to the bound host with the sandbox CA and verifies the real server', async () => {
    const s = await connectTunnel(port, `bound.test:${FAR_PORTS.https}`);
    const caPem = trusting.caCertificatePem;
    assert.ok(caPem);
    const body = await new Promise<string>((resolve, reject) => {
      const t = tlsConnect({ socket: s, servername: 'bound.test', ca: [caPem] }, () => {
        t.write(`GET /tls-secret HTTP/1.1\r\nHost: bound.test\r\nX-Api-Key: ${placeholder}\r\n\r\n`);
      });
      const chunks: Buffer[] = [];
      t.on('data', (c) => chunks.push(c));
      t.on('end', () => resolve(Buffer.concat(chunks).toString()));
      t.on('error', reject);
    });
    assert.match(body, /far:443:\/tls-secret/);
    const rec = await far.waitFor((x) => x.kind === 'http' && x.url === '/tls-secret');
    assert.equal(rec.port, 443);
    assert.equal(rec.headers?.['x-api-key'], SECRET);
    const e = await settledEvent(trusting, 'bound.test', 443, 1);
    assert.equal(e?.intercepted, true);
    assert.deepEqual(e?.secrets_used, ['API_TOKEN']);
  });

  it('never sends a bound secret to another origin through the bound host: misdirected requests get 421', async () => {
    const caPem = trusting.caCertificatePem ?? '';
    const inside = async (request: string): Promise<string> => {
      const s = await connectTunnel(port, `bound.test:${FAR_PORTS.https}`);
      return new Promise<string>((resolve, reject) => {
        const t = tlsConnect({ socket: s, servername: 'bound.test', ca: [caPem] }, () => t.write(request));
        const chunks: Buffer[] = [];
        t.on('data', (c) => chunks.push(c));
        t.on('end', () => resolve(Buffer.concat(chunks).toString()));
        t.on('close', () => resolve(Buffer.concat(chunks).toString()));
        t.on('error', reject);
      });
    };
    const auth = `Authorization: Bearer ${placeholder}\r\n`;
    const attempts = [
      `GET /fronted HTTP/1.1\r\nHost: evil.test\r\n${auth}\r\n`, // another name on the same server
      `GET https://evil.test/absolute HTTP/1.1\r\nHost: bound.test\r\n${auth}\r\n`, // absolute form wins over Host
      `GET /twohosts HTTP/1.1\r\nHost: bound.test\r\nHost: evil.test\r\n${auth}\r\n`,
      `GET /otherport HTTP/1.1\r\nHost: bound.test:8443\r\n${auth}\r\n`,
      `GET http://bound.test/scheme HTTP/1.1\r\nHost: bound.test\r\n${auth}\r\n`,
    ];
    for (const a of attempts) {
      const r = await inside(a);
      assert.match(r, /^HTTP\/1\.1 421 /, a);
    }
    // The plain-HTTP path too: a request for bound.test whose Host names another origin.
    const plain = await exchange(port, `GET http://bound.test/plainfront HTTP/1.1\r\nHost: evil.test\r\n${auth}\r\n`);
    assert.match(plain, /^HTTP\/1\.1 421 /);
    await new Promise((r) => setTimeout(r, 300));
    for (const path of ['/fronted', '/absolute', '/twohosts', '/otherport', '/scheme', '/plainfront'])
      assert.equal(far.records.filter((x) => x.url === path).length, 0, `${path} reached the far end`);
    assert.ok(!JSON.stringify(far.records).includes('evil.test'), 'no request for evil.test arrived');
    const refused = trusting.log.list().filter((e) => /misdirected request/.test(e.reason));
    assert.equal(refused.length, attempts.length + 1);
    assert.ok(refused.every((e) => e.decision === 'refused' && e.secrets_used.length === 0));
    // Origin-form and a matching absolute form still go through, with the secret.
    const ok = await inside(`GET https://bound.test/abs-ok HTTP/1.1\r\nHost: bound.test\r\n${auth}\r\n`);
    assert.match(ok, /far:443:\/abs-ok/);
    const rec = await far.waitFor((x) => x.kind === 'http' && x.url === '/abs-ok');
    assert.equal(rec.headers?.['authorization'], `Bearer ${SECRET}`);
  });

  it('tunnels HTTPS to a host without a bound secret blindly (the client sees the real certificate)', async () => {
    const s = await connectTunnel(port, `ok.test:${FAR_PORTS.https}`);
    const body = await new Promise<string>((resolve, reject) => {
      // The far end's certificate, signed by the far CA: no sandbox CA in the path.
      const t = tlsConnect({ socket: s, servername: 'bound.test', ca: [far.caPem] }, () => {
        t.write(`GET /blind HTTP/1.1\r\nHost: ok.test\r\nX-Api-Key: ${placeholder}\r\nConnection: close\r\n\r\n`);
      });
      const chunks: Buffer[] = [];
      t.on('data', (c) => chunks.push(c));
      t.on('end', () => resolve(Buffer.concat(chunks).toString()));
      t.on('error', reject);
    });
    assert.match(body, /far:443:\/blind/);
    const rec = await far.waitFor((x) => x.kind === 'http' && x.url === '/blind');
    assert.equal(rec.headers?.['x-api-key'], placeholder);
    assert.equal((await settledEvent(trusting, 'ok.test', 443, 1)).intercepted, false);
  });

  it('refuses to intercept when the upstream certificate does not verify', async () => {
    const r = await exchange(untrustingPort, `CONNECT bound.test:${FAR_PORTS.https} HTTP/1.1\r\n\r\n`);
    assert.match(r, /^HTTP\/1\.1 502 /);
    assert.match(lastEvent(session, 'bound.test', 443)?.reason ?? '', /upstream TLS/);
  });

  it('answers malformed requests with 400 and logs them', async () => {
    const r = await exchange(port, 'HELLO\r\n\r\n');
    assert.match(r, /^HTTP\/1\.1 400 /);
    const r2 = await exchange(port, 'GET https://ok.test/ HTTP/1.1\r\n\r\n');
    assert.match(r2, /CONNECT/);
    const e = trusting.log.list().at(-1);
    assert.equal(e?.decision, 'refused');
    assert.match(e?.reason ?? '', /malformed proxy request/);
  });
});
