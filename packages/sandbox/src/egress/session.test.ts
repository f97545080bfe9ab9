// The egress session's connection rate limit, driven through the same stream callbacks the
// guest channel calls (onOpen per guest connection). The channel here records what the session
// tells the guest; no guest is needed to see which connections were served and which closed.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { GuestChannel } from '../guest/channel.js';
import { EgressPolicy } from './policy.js';
import { EgressResolver } from './resolver.js';
import { EGRESS_CONNECT_BURST, EGRESS_CONNECTS_PER_S, EgressSession } from './session.js';

function recordingChannel(): { channel: GuestChannel; closed: number[] } {
  const closed: number[] = [];
  const channel = {
    setNetHandler: () => {},
    netClose: (id: number) => closed.push(id),
    netAck: () => {},
    netData: async () => {},
  } as unknown as GuestChannel;
  return { channel, closed };
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
    assert.match(events[0]?.reason ?? '', new RegExp(`rate limit: ${closed.length} connection attempt\\(s\\)`));
    // Tokens come back at the configured rate.
    const before = closed.length;
    session.onOpen(attempts + 1);
    assert.equal(closed.length, before, `a new connection is served after a second (${EGRESS_CONNECTS_PER_S}/s)`);
  } finally {
    session.close();
  }
});
