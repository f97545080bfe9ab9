// OWASP API4 (resource consumption) by slow clients: a connection that trickles its headers
// (plain HTTP or a WebSocket upgrade) or its body is closed once the headers or request timeout
// passes, a WebSocket that completes the handshake and then says nothing is dropped by the
// runner hub after three heartbeats, and all the while other clients are served. The limits
// are set small here (the defaults are in http/limits.ts) so the test is short.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ROLE_PERMISSIONS } from '../auth/permissions.js';
import { type TestDb, testDatabases } from '../testing/databases.js';
import { mintTestKey, ownerId } from '../testing/keys.js';
import { startTestServer, type TestServer } from '../testing/server.js';
import { closedWithin, rawSocket, requestFrom } from './support.js';

const LIMITS = { headersTimeoutMs: 1000, requestTimeoutMs: 2000, timeoutCheckIntervalMs: 200 };
/** Generous upper bound for "closed by the timeout" on a loaded machine (never a speed claim). */
const CLOSED_WITHIN_MS = 15_000;

/** Write `text` one byte at a time, every `everyMs`, until the socket closes. */
function trickle(s: Socket, text: string, everyMs = 250): void {
  let i = 0;
  const timer = setInterval(() => {
    if (s.destroyed || i >= text.length) {
      clearInterval(timer);
      return;
    }
    s.write(text[i++]!);
  }, everyMs);
  s.on('close', () => clearInterval(timer));
}

for (const { name, create } of testDatabases()) {
  describe(`slow clients on the HTTP and WebSocket servers (${name})`, () => {
    let t: TestDb;
    let srv: TestServer;
    let key: string;
    before(async () => {
      t = await create();
      srv = await startTestServer(t.url, undefined, { httpLimits: LIMITS, heartbeatSeconds: 1 });
      const { db } = srv.server.ctx;
      const org = srv.server.bootstrap.orgId;
      key = await mintTestKey(db, org, await ownerId(db, org), ROLE_PERMISSIONS.owner);
    });
    after(async () => {
      await srv?.stop();
      await t?.drop();
    });

    /** Other clients keep being served while `attack` runs. */
    async function servedDuring(attack: Promise<unknown>): Promise<number> {
      let served = 0;
      let done = false;
      const attackDone = attack.finally(() => {
        done = true;
      });
      while (!done) {
        const r = await requestFrom(srv.url, 'GET', '/api/v1/auth/me', { headers: { authorization: `Bearer ${key}` } });
        assert.equal(r.status, 200);
        served++;
        await sleep(100);
      }
      await attackDone;
      return served;
    }

    test('trickled headers (HTTP and WebSocket upgrades) are cut off; other clients are served meanwhile', async () => {
      const sockets = await Promise.all(Array.from({ length: 20 }, () => rawSocket(srv.url)));
      const closed = sockets.map((s, i) => {
        const upgrade = i % 2 === 1;
        trickle(
          s,
          upgrade
            ? 'GET /api/v1/runners/connect HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n'
            : 'GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n',
        );
        return closedWithin(s, CLOSED_WITHIN_MS);
      });
      const served = await servedDuring(Promise.all(closed));
      const results = await Promise.all(closed);
      for (const r of results) assert.ok(!/^HTTP\/1\.1 [23]/.test(r.received), r.received.slice(0, 100));
      assert.ok(served >= 1);
    });

    test('a trickled body is cut off by the request timeout', async () => {
      const s = await rawSocket(srv.url);
      s.write(
        'POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n',
      );
      trickle(s, `{"username":"admin","password":"${'x'.repeat(480)}"}`);
      const served = await servedDuring(closedWithin(s, CLOSED_WITHIN_MS));
      assert.ok(served >= 1);
    });

    test('a runner WebSocket that completes the handshake and stays silent is dropped', async () => {
      const auth = { headers: { authorization: `Bearer ${key}` } };
      const runner = await requestFrom(srv.url, 'POST', '/api/v1/runners', { ...auth, body: { name: 'silent' } });
      assert.equal(runner.status, 201, runner.text);
      const reg = await requestFrom(srv.url, 'POST', '/api/v1/runners/register', {
        body: { bootstrap_key: runner.body.bootstrap_key },
      });
      assert.equal(reg.status, 200, reg.text);
      const upgrade = (token: string) =>
        'GET /api/v1/runners/connect HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\n` +
        `Authorization: Bearer ${token}\r\n\r\n`;
      // Without a valid token there is no socket at all.
      const anon = await rawSocket(srv.url);
      let anonReceived = '';
      anon.on('data', (d: Buffer) => {
        anonReceived += d.toString('latin1');
      });
      anon.write(upgrade('alr_0000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'));
      for (let i = 0; i < 250 && anonReceived === ''; i++) await sleep(20);
      anon.destroy();
      assert.match(anonReceived, /^HTTP\/1\.1 401/);
      const s = await rawSocket(srv.url);
      s.write(upgrade(reg.body.token));
      const silent = closedWithin(s, CLOSED_WITHIN_MS);
      const served = await servedDuring(silent);
      const r = await silent;
      assert.match(r.received, /^HTTP\/1\.1 101/, 'the handshake completed');
      assert.ok(served >= 1);
    });
  });
}
