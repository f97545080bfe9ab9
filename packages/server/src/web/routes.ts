import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { ServerContext } from '../context.js';
import type { ModuleHandle } from '../modules.js';

/**
 * Where the built dashboard is: `AIRLOCK_WEB_DIR`, else packages/web/dist/app next to this
 * package in the repository (or in node_modules/@airlock/web when installed).
 */
export function webAssetsDir(): string {
  const env = process.env['AIRLOCK_WEB_DIR'];
  if (env !== undefined && env !== '') return resolve(env);
  const here = fileURLToPath(import.meta.url);
  const candidates = [
    resolve(here, '../../../../web/dist/app'),
    resolve(here, '../../../node_modules/@airlock/web/dist/app'),
  ];
  return candidates.find((c) => existsSync(join(c, 'index.html'))) ?? candidates[0]!;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
};

/** The Content-Security-Policy of the dashboard: only same-origin scripts, styles and connections. */
export const DASHBOARD_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "object-src 'none'",
].join('; ');

function securityHeaders(reply: FastifyReply): FastifyReply {
  return reply
    .header('content-security-policy', DASHBOARD_CSP)
    .header('x-content-type-options', 'nosniff')
    .header('x-frame-options', 'DENY')
    .header('referrer-policy', 'no-referrer')
    .header('cross-origin-opener-policy', 'same-origin')
    .header('cross-origin-resource-policy', 'same-origin')
    .header('permissions-policy', 'camera=(), microphone=(), geolocation=(), payment=()');
}

interface Asset {
  readonly body: Buffer;
  readonly etag: string;
  readonly mtimeMs: number;
}

const NOT_BUILT = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>airlock</title></head>
<body><main><h1>The airlock dashboard is not built</h1>
<p>Build it with <code>npm run build -w packages/web</code> (or <code>npm start</code>, which builds what is stale), then reload.
The API is available at <a href="/api/v1/openapi.json">/api/v1/openapi.json</a>.</p></main></body></html>`;

/** Paths that belong to the API or other modules: never answered with the SPA. */
const RESERVED = /^\/(api|mcp|healthz|oauth|\.well-known)(\/|$|\?)/;

/** The dashboard: static assets of packages/web served at `/`, with the SPA fallback for app routes. */
export async function registerWebRoutes(ctx: ServerContext, app: FastifyInstance): Promise<ModuleHandle | undefined> {
  const root = webAssetsDir();
  const cache = new Map<string, Asset>();

  const load = (file: string): Asset | undefined => {
    let st: ReturnType<typeof statSync>;
    try {
      st = statSync(file);
    } catch {
      return undefined;
    }
    if (!st.isFile()) return undefined;
    const hit = cache.get(file);
    if (hit !== undefined && hit.mtimeMs === st.mtimeMs) return hit;
    const body = readFileSync(file);
    const asset = {
      body,
      etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`,
      mtimeMs: st.mtimeMs,
    };
    cache.set(file, asset);
    return asset;
  };

  const send = (
    reply: FastifyReply,
    ifNoneMatch: string | undefined,
    file: string,
    asset: Asset,
    immutable: boolean,
  ): FastifyReply => {
    securityHeaders(reply)
      .header('content-type', TYPES[extname(file)] ?? 'application/octet-stream')
      .header('etag', asset.etag)
      .header('cache-control', immutable ? 'public, max-age=31536000, immutable' : 'no-cache');
    if (ifNoneMatch !== undefined && ifNoneMatch.split(',').some((t) => t.trim() === asset.etag))
      return reply.code(304).send();
    return reply.send(asset.body);
  };

  app.get('/*', async (req, reply) => {
    const path = decodeURIComponent(req.url.split('?')[0] ?? '/');
    if (RESERVED.test(path)) {
      return reply.code(404).send({ error: { code: 'not_found', message: `no route ${req.method} ${path}` } });
    }
    const inm = req.headers['if-none-match'];
    // A real file under the bundle (hashed assets are immutable).
    if (path !== '/' && !path.includes('\0')) {
      const file = normalize(join(root, path));
      if (file.startsWith(root + sep)) {
        const asset = load(file);
        if (asset !== undefined) return send(reply, inm, file, asset, path.startsWith('/assets/'));
      }
      // Missing asset files are 404s, not the app (a stale tab would otherwise get HTML as JS).
      if (path.startsWith('/assets/') || (extname(path) !== '.html' && TYPES[extname(path)] !== undefined)) {
        return securityHeaders(reply).code(404).type('text/plain; charset=utf-8').send('not found');
      }
    }
    // Any other path is an app route: the SPA's index.html.
    const index = join(root, 'index.html');
    const asset = load(index);
    if (asset === undefined) {
      ctx.log.warn({ dir: root }, 'dashboard requested but not built');
      return securityHeaders(reply)
        .code(503)
        .header('cache-control', 'no-store')
        .type('text/html; charset=utf-8')
        .send(NOT_BUILT);
    }
    return send(reply, inm, index, asset, false);
  });
  return undefined;
}
