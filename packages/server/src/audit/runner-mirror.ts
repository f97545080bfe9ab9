import type { ServerContext } from '../context.js';

/**
 * Mirror one runner security-log event (from a `result`): check its hash and its link to
 * the last event seen from that runner, store it, and raise an alert event on a gap or fork.
 */
export async function mirrorRunnerEvent(ctx: ServerContext, orgId: string, runnerId: string, event: Readonly<Record<string, unknown>>): Promise<void> {
  void ctx;
  void orgId;
  void runnerId;
  void event;
}

/** On `hello`: a runner whose log head is behind what the server already mirrored was truncated. */
export async function checkRunnerLogHead(
  ctx: ServerContext,
  orgId: string,
  runnerId: string,
  head: { seq: number; hash: string } | null | undefined,
): Promise<void> {
  void ctx;
  void orgId;
  void runnerId;
  void head;
}
