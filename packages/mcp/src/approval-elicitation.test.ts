import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { McpServer, ServerContext } from '@modelcontextprotocol/server';
import {
  approvalElicitation,
  approvalStateCodec,
  randomStateKey,
  resumedApproval,
  supportsUrlElicitation,
} from './approval-elicitation.js';

/** The parts of a request context these functions read. */
function ctxFor(opts: {
  clientId?: string;
  envelope?: Record<string, unknown>;
  state?: unknown;
  responses?: Record<string, unknown>;
}): ServerContext {
  return {
    mcpReq: {
      method: 'tools/call',
      envelope: opts.envelope,
      inputResponses: opts.responses,
      requestState: () => opts.state,
    },
    http: opts.clientId === undefined ? undefined : { authInfo: { token: 't', clientId: opts.clientId, scopes: [] } },
  } as unknown as ServerContext;
}
const serverWith = (caps: unknown): McpServer =>
  ({ server: { getClientCapabilities: () => caps } }) as unknown as McpServer;

describe('approval elicitation', () => {
  test('URL elicitation is offered only to clients that declared it (per request, or at initialize)', () => {
    const caps = 'io.modelcontextprotocol/clientCapabilities';
    assert.equal(
      supportsUrlElicitation(ctxFor({ envelope: { [caps]: { elicitation: { url: {} } } } }), serverWith(undefined)),
      true,
    );
    assert.equal(
      supportsUrlElicitation(ctxFor({ envelope: { [caps]: { elicitation: {} } } }), serverWith(undefined)),
      false,
    );
    assert.equal(
      supportsUrlElicitation(ctxFor({ envelope: { [caps]: {} } }), serverWith({ elicitation: { url: {} } })),
      false,
    );
    assert.equal(supportsUrlElicitation(ctxFor({}), serverWith({ elicitation: { url: {} } })), true);
    assert.equal(supportsUrlElicitation(ctxFor({}), serverWith({ elicitation: { form: {} } })), false);
    assert.equal(supportsUrlElicitation(ctxFor({}), serverWith(undefined)), false);
  });

  test('the state names the run, is sealed, and is bound to the client', async () => {
    const codec = approvalStateCodec(randomStateKey());
    const mine = ctxFor({ clientId: 'client-a' });
    const result = await approvalElicitation(codec, mine, { id: 'run-1', action: 'ops.wipe' }, 'https://x/runs/run-1');
    const req = (result as { inputRequests?: Record<string, { params?: { mode?: string; url?: string } }> })
      .inputRequests?.['approval'];
    assert.equal(req?.params?.mode, 'url');
    assert.equal(req?.params?.url, 'https://x/runs/run-1');
    const state = (result as { requestState?: string }).requestState!;
    assert.deepEqual(await codec.verify(state, mine), { run: 'run-1' });
    await assert.rejects(codec.verify(state, ctxFor({ clientId: 'client-b' })), 'another client cannot use it');
    const [head, body, mac] = state.split('.');
    const forged = `${head}.${Buffer.from(JSON.stringify({ p: { run: 'run-2' }, exp: 9e9 })).toString('base64url')}.${mac}`;
    assert.notEqual(body, forged.split('.')[1]);
    await assert.rejects(codec.verify(forged, mine), 'a changed run id fails the MAC');
    await assert.rejects(approvalStateCodec(randomStateKey()).verify(state, mine), 'another key fails');
  });

  test('a retried call reads the run and what the person did', () => {
    assert.equal(resumedApproval(ctxFor({})), undefined);
    assert.equal(resumedApproval(ctxFor({ state: 'raw-unverified' })), undefined);
    assert.deepEqual(resumedApproval(ctxFor({ state: { run: 'r1' }, responses: { approval: { action: 'accept' } } })), {
      run: 'r1',
      action: 'accept',
    });
    assert.deepEqual(
      resumedApproval(ctxFor({ state: { run: 'r1' }, responses: { approval: { action: 'decline' } } })),
      {
        run: 'r1',
        action: 'decline',
      },
    );
    assert.deepEqual(resumedApproval(ctxFor({ state: { run: 'r1' } })), { run: 'r1', action: 'missing' });
  });
});
