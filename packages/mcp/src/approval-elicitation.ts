// A run that waits for approval is offered to the client as a URL-mode elicitation: the
// person at the client is sent to the dashboard page of the run, and the tool call resumes
// (bounded wait) once they come back. On the 2026-07-28 revision this is a multi-round-trip
// `input_required` result; 2025-11-25 clients get the same through the SDK's legacy shim
// (a pushed `elicitation/create`). Clients that did not declare URL elicitation get the plain
// pending result with the URL, as before.
import {
  createRequestStateCodec,
  type InputRequiredResult,
  inputRequired,
  inputResponse,
  type McpServer,
  type RequestStateCodec,
  type ServerContext,
} from '@modelcontextprotocol/server';

/** What the multi-round-trip state carries: only the run to follow (never an authorization). */
export interface ApprovalState {
  readonly run: string;
}

const CAPS_KEY = 'io.modelcontextprotocol/clientCapabilities';

/** Whether the calling client declared URL-mode elicitation (per request on 2026-07-28, at initialize before). */
export function supportsUrlElicitation(ctx: ServerContext, server: McpServer): boolean {
  const perRequest = (ctx.mcpReq.envelope as Record<string, unknown> | undefined)?.[CAPS_KEY] as
    | { elicitation?: { url?: unknown } }
    | undefined;
  if (perRequest !== undefined) return perRequest.elicitation?.url !== undefined;
  return server.server.getClientCapabilities()?.elicitation?.url !== undefined;
}

/**
 * The HMAC codec for the state. The state only names a run; following it is still checked
 * against the caller's permissions on every read, so a replayed state grants nothing. It is
 * bound to the method and the client, and expires with the longest approval wait.
 */
export function approvalStateCodec(key: Uint8Array): RequestStateCodec<ApprovalState> {
  return createRequestStateCodec<ApprovalState>({
    key,
    ttlSeconds: 24 * 3600,
    bind: (ctx) => `${ctx.mcpReq.method}\u0000${ctx.http?.authInfo?.clientId ?? 'stdio'}`,
  });
}

/** A fresh random key for one process (the stdio bridge, or a server without a configured key). */
export function randomStateKey(): Uint8Array {
  return globalThis.crypto.getRandomValues(new Uint8Array(32));
}

/** The input-required result that sends the person to the run's approval page. */
export async function approvalElicitation(
  codec: RequestStateCodec<ApprovalState>,
  ctx: ServerContext,
  run: { id: string; action: string },
  url: string,
): Promise<InputRequiredResult> {
  return inputRequired({
    inputRequests: {
      approval: inputRequired.elicitUrl({
        message: `Run ${run.id} (${run.action}) needs approval by a person before it runs. Open the airlock dashboard to review it (someone other than the requester must approve).`,
        url,
      }),
    },
    requestState: await codec.mint({ run: run.id }, ctx),
  });
}

/** On a retried call: the run to follow and what the person did with the URL, or undefined on a first call. */
export function resumedApproval(
  ctx: ServerContext,
): { run: string; action: 'accept' | 'decline' | 'cancel' | 'missing' } | undefined {
  const state = ctx.mcpReq.requestState<ApprovalState>();
  if (state === undefined || typeof state !== 'object' || typeof state.run !== 'string') return undefined;
  const r = inputResponse(ctx.mcpReq.inputResponses, 'approval');
  return { run: state.run, action: r.kind === 'elicit' ? r.action : 'missing' };
}
