// The egress session's connection rate limit, driven through the same stream callbacks the
// guest channel calls (onOpen per guest connection). The channel here records what the session
// tells the guest; no guest is needed to see which connections were served and which closed.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { GuestChannel } from '../guest/channel.js';
import { EgressPolicy } from './policy.js';
import { EgressResolver } from './resolver.js';
import { EGRESS_CONNECT_BURST, EGRESS_CONNECTS_PER_S, EgressSession } from './session.js';

function recordingChannel(): { channel: GuestChannel; closed: number[]; sent: Map<number, string> } {
  const closed: number[] = [];
  const sent = new Map<number, string>();
  const channel = {
    setNetHandler: () => {},
    netClose: (id: number) => closed.push(id),
    netAck: () => {},
    netData: async (id: number, data: Buffer) => {
      sent.set(id, (sent.get(id) ?? '') + data.toString('latin1'));
    },
  } as unknown as GuestChannel;
  return { channel, closed, sent };
}

test('a guest opening connections in a loop is limited, and the refusals are one event per second', async () => {
  const session = await EgressSession.create('sb_rate', EgressPolicy.parse(['ok.test:80']), [], {
    resolver: new EgressResolver([]),
    upstreamCa: [],
  });
  const { channel, closed } = recordingChannel();
  session.attach(channel);
  try {
    const attempts = 200;
    for (let id = 1; id <= attempts; id++) session.onOpen(id);
    // The burst is served (each waits for its proxy request); the rest are closed unread.
    assert.ok(session.openStreams >= EGRESS_CONNECT_BURST && session.openStreams <= EGRESS_CONNECT_BURST + 1);
    assert.equal(closed.length, attempts - session.openStreams);
    assert.equal(session.log.list().length, 0, 'reported once a second, not per attempt');
    await new Promise((r) => setTimeout(r, 1100));
    const events = session.log.list();
    assert.equal(events.length, 1);
    assert.equal(events[0]?.decision, 'refused');
    assert.match(
      events[0]?.reason ?? '',
      new RegExp(`^rate limit .*: ${closed.length} connection attempt\\(s\\) closed unread`),
    );
    // Tokens come back at the configured rate.
    const before = closed.length;
    session.onOpen(attempts + 1);
    assert.equal(closed.length, before, `a new connection is served after a second (${EGRESS_CONNECTS_PER_S}/s)`);
  } finally {
    session.close();
  }
});

test('a refused request gives its stream back at once; 64 held streams are reported, not silently dropped', async () => {
  const session = await EgressSession.create('sb_release', EgressPolicy.parse(['ok.test:80']), [], {
    resolver: new EgressResolver([]),
    upstreamCa: [],
  });
  const { channel, closed, sent } = recordingChannel();
  session.attach(channel);
  try {
    // 30 refused CONNECTs, one after the other (well under the rate limit): none may linger.
    for (let id = 1; id <= 30; id++) {
      session.onOpen(id);
      session.onData(id, Buffer.from('CONNECT evil.test:443 HTTP/1.1\r\n\r\n'));
    }
    for (let i = 0; i < 100 && session.openStreams > 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(session.openStreams, 0, 'every refused stream was released');
    assert.equal(closed.length, 30);
    assert.match(sent.get(1) ?? '', /^HTTP\/1\.1 403 /);
    // Streams that say nothing are held (up to the head timeout); past 64 the guest is told no, and it is logged.
    await new Promise((r) => setTimeout(r, 2100)); // refill the token bucket
    for (let id = 100; id < 100 + 70; id++) session.onOpen(id);
    assert.equal(session.openStreams, 40, 'the burst');
    await new Promise((r) => setTimeout(r, 1500));
    for (let id = 200; id < 200 + 30; id++) session.onOpen(id);
    assert.equal(session.openStreams, 64);
    await new Promise((r) => setTimeout(r, 1100));
    const reasons = session.log
      .list()
      .map((e) => e.reason)
      .filter((r) => /closed unread/.test(r));
    assert.ok(
      reasons.some((r) => /^rate limit/.test(r)),
      reasons.join(' | '),
    );
    assert.ok(
      reasons.some((r) => /^more than 64 connections open at once/.test(r)),
      reasons.join(' | '),
    );
  } finally {
    session.close();
  }
});
