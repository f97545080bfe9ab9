// 2025-era MCP clients over HTTP (`initialize` handshake) get a session, so the server can push
// `notifications/tools/list_changed` to them on their GET stream, as 2026-era clients get it
// through `subscriptions/listen`. Every request of a session is authenticated afresh, must come
// from the same principal that opened it, and runs with that principal as resolved now (role,
// scopes, disabled user); sessions are bounded in number and closed when idle.
import { randomUUID } from 'node:crypto';
import { NodeStreamableHTTPServerTransport } from '@modelcontextprotocol/node';
import type { AuthInfo, McpServer } from '@modelcontextprotocol/server';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Principal } from '../auth/principal.js';

interface Session {
  readonly transport: NodeStreamableHTTPServerTransport;
  readonly server: McpServer;
  readonly owner: string;
  /** The caller of the latest request: the tools act as them (re-resolved per request). */
  readonly holder: { principal: Principal };
  lastUsed: number;
}

/** Builds the MCP server of a session; `principal()` is the caller of the current request. */
export type SessionServerFactory = (principal: () => Principal, actionTools: boolean) => Promise<McpServer>;

const ownerOf = (p: Principal): string => `${p.orgId}\u0000${p.userId}\u0000${p.keyId ?? ''}`;

function isInitialize(body: unknown): boolean {
  return typeof body === 'object' && body !== null && (body as { method?: unknown }).method === 'initialize';
}

export class LegacySessions {
  private readonly sessions = new Map<string, Session>();
  private readonly sweep: ReturnType<typeof setInterval>;

  constructor(
    private readonly make: SessionServerFactory,
    private readonly maxSessions = 1000,
    private readonly idleMs = 30 * 60_000,
  ) {
    this.sweep = setInterval(() => this.closeIdle(), Math.min(60_000, this.idleMs));
    this.sweep.unref();
  }

  get size(): number {
    return this.sessions.size;
  }

  /**
   * Serve the request when it opens a 2025-era session (`initialize`) or belongs to one;
   * false leaves it to the stateless handler (2026-era traffic, unknown session ids).
   */
  async handle(
    req: FastifyRequest,
    reply: FastifyReply,
    principal: Principal,
    auth: AuthInfo,
    actionTools: boolean,
  ): Promise<boolean> {
    const sid = req.headers['mcp-session-id'];
    if (typeof sid === 'string' && sid !== '') {
      const s = this.sessions.get(sid);
      if (s === undefined) return false;
      if (s.owner !== ownerOf(principal)) {
        // Another caller's session: answered as if it did not exist.
        await reply.code(404).send({ error: { code: 'not_found', message: 'no such MCP session' } });
        return true;
      }
      s.holder.principal = principal;
      s.lastUsed = Date.now();
      await this.serve(s.transport, req, reply, auth);
      return true;
    }
    if (req.method !== 'POST' || !isInitialize(req.body)) return false;
    if (this.sessions.size >= this.maxSessions) this.closeIdle(0);
    if (this.sessions.size >= this.maxSessions) {
      await reply.code(503).send({ error: { code: 'unavailable', message: 'too many MCP sessions; retry later' } });
      return true;
    }
    const holder = { principal };
    const server = await this.make(() => holder.principal, actionTools);
    const transport: NodeStreamableHTTPServerTransport = new NodeStreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (id: string) => {
        this.sessions.set(id, { transport, server, owner: ownerOf(principal), holder, lastUsed: Date.now() });
      },
    });
    transport.onclose = () => {
      if (transport.sessionId !== undefined) this.sessions.delete(transport.sessionId);
    };
    await server.connect(transport);
    await this.serve(transport, req, reply, auth);
    return true;
  }

  /** Tell every session's client that its tool list changed. */
  notifyToolsChanged(): void {
    for (const s of this.sessions.values()) s.server.sendToolListChanged();
  }

  async close(): Promise<void> {
    clearInterval(this.sweep);
    await Promise.all([...this.sessions.values()].map((s) => s.transport.close().catch(() => {})));
    this.sessions.clear();
  }

  private closeIdle(idleMs = this.idleMs): void {
    const cutoff = Date.now() - idleMs;
    for (const [id, s] of this.sessions) {
      if (s.lastUsed <= cutoff) {
        this.sessions.delete(id);
        void s.transport.close().catch(() => {});
      }
    }
  }

  private async serve(
    transport: NodeStreamableHTTPServerTransport,
    req: FastifyRequest,
    reply: FastifyReply,
    auth: AuthInfo,
  ): Promise<void> {
    reply.hijack();
    (req.raw as typeof req.raw & { auth?: AuthInfo }).auth = auth;
    await transport.handleRequest(req.raw, reply.raw, req.body);
  }
}
