// Test support for the API security suite (packages/server/src/security/*.test.ts): requests
// from a chosen loopback source address, raw sockets for slow clients, sample bodies derived
// from each route's schema, and the fuzzing budget. Not part of the package surface.
import { randomUUID } from 'node:crypto';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { z } from 'zod';
import type { RouteSpec } from '../http/routes.js';

/**
 * Fuzzing budget: a fixed seed and a small number of runs in `npm test`; `npm run fuzz`
 * (scripts/fuzz.mjs) raises AIRLOCK_FUZZ_SCALE and may set AIRLOCK_FUZZ_SEED.
 */
export function fuzzOptions(baseRuns: number): { numRuns: number; seed: number } {
  const scale = Number(process.env['AIRLOCK_FUZZ_SCALE'] ?? 1);
  const seed = Number(process.env['AIRLOCK_FUZZ_SEED'] ?? 20260425);
  return { numRuns: Math.max(1, Math.round(baseRuns * (Number.isFinite(scale) && scale > 0 ? scale : 1))), seed };
}

export interface RawResult {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly text: string;
  // biome-ignore lint/suspicious/noExplicitAny: parsed JSON, inspected by assertions
  readonly body: any;
}

/**
 * One HTTP request from a chosen local address (any 127.0.0.0/8 address works on Linux
 * loopback), so tests can act as several clients. Redirects are not followed.
 */
export function requestFrom(
  base: string,
  method: string,
  path: string,
  opts: {
    from?: string;
    body?: unknown;
    form?: Record<string, string>;
    headers?: Record<string, string>;
  } = {},
): Promise<RawResult> {
  const u = new URL(path, base);
  let payload: string | undefined;
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.form !== undefined) {
    payload = new URLSearchParams(opts.form).toString();
    headers['content-type'] = 'application/x-www-form-urlencoded';
  } else if (opts.body !== undefined) {
    payload = JSON.stringify(opts.body);
    headers['content-type'] = 'application/json';
  }
  return new Promise((resolve, reject) => {
    const req = request(
      u,
      { method, headers, ...(opts.from === undefined ? {} : { localAddress: opts.from }), timeout: 15_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown;
          try {
            body = text === '' ? undefined : JSON.parse(text);
          } catch {
            body = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, body });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end(payload);
  });
}

/** A raw TCP connection to the server; resolves when connected. */
export function rawSocket(base: string): Promise<Socket> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const s = connect({ host: u.hostname, port: Number(u.port) }, () => resolve(s));
    s.on('error', reject);
  });
}

/** Resolves with the milliseconds until the peer closed the socket (or rejects after `maxMs`). */
export function closedWithin(s: Socket, maxMs: number): Promise<{ ms: number; received: string }> {
  const start = Date.now();
  let received = '';
  s.on('data', (d: Buffer) => {
    received += d.toString('latin1');
  });
  return new Promise((resolve, reject) => {
    if (s.destroyed) return resolve({ ms: 0, received });
    const timer = setTimeout(() => reject(new Error(`socket still open after ${maxMs} ms`)), maxMs);
    s.on('close', () => {
      clearTimeout(timer);
      resolve({ ms: Date.now() - start, received });
    });
    s.on('error', () => {});
  });
}

// ---- sample values from a route's zod schema (through its JSON Schema) ----

// biome-ignore lint/suspicious/noExplicitAny: JSON Schema nodes, walked loosely
type Js = Record<string, any>;

function sampleString(s: Js): string {
  if (s.format === 'uuid') return randomUUID();
  if (s.format === 'date-time') return new Date().toISOString();
  if (s.format === 'email') return 'a@example.com';
  if (s.format === 'uri' || s.format === 'url') return 'https://example.com/';
  const min = Math.max(1, Number(s.minLength ?? 1));
  const candidates = ['a', 'a.b', 'abc', 'a-b', 'a_b', 'a1', 'a.b.c', 'x'.repeat(min), 'a security test'];
  if (typeof s.pattern === 'string') {
    const re = new RegExp(s.pattern);
    const hit = candidates.find((c) => re.test(c) && c.length >= min && c.length <= (s.maxLength ?? Infinity));
    if (hit !== undefined) return hit;
  }
  return 'a'.repeat(min).padEnd(Math.min(Number(s.maxLength ?? 12), 12), 'a');
}

function sample(s: Js | undefined, depth = 0): unknown {
  if (s === undefined || depth > 8) return undefined;
  if (s.const !== undefined) return s.const;
  if (Array.isArray(s.enum)) return s.enum[0];
  if (s.default !== undefined) return s.default;
  const alt = (s.anyOf ?? s.oneOf) as Js[] | undefined;
  if (Array.isArray(alt)) return sample(alt.find((a) => a.type !== 'null') ?? alt[0], depth + 1);
  if (Array.isArray(s.allOf)) return sample(s.allOf[0], depth + 1);
  const type = Array.isArray(s.type) ? s.type.find((t: string) => t !== 'null') : s.type;
  switch (type) {
    case 'object': {
      const props = (s.properties ?? {}) as Record<string, Js>;
      return Object.fromEntries(((s.required ?? []) as string[]).map((k) => [k, sample(props[k], depth + 1)]));
    }
    case 'array':
      return Array.from({ length: Number(s.minItems ?? 0) }, () => sample(s.items, depth + 1));
    case 'string':
      return sampleString(s);
    case 'integer':
    case 'number':
      return s.minimum ?? (s.exclusiveMinimum === undefined ? 1 : Number(s.exclusiveMinimum) + 1);
    case 'boolean':
      return false;
    default:
      return undefined;
  }
}

/** The body's JSON Schema (input side), or undefined when the route takes no body. */
export function bodySchema(route: RouteSpec): Js | undefined {
  if (route.body === undefined) return undefined;
  try {
    return z.toJSONSchema(route.body, { io: 'input', unrepresentable: 'any' }) as Js;
  } catch {
    return undefined;
  }
}

/** A body that passes the route's schema when one can be derived, else `{}`. */
export function sampleBody(route: RouteSpec): { body: unknown; valid: boolean } {
  if (route.body === undefined) return { body: undefined, valid: true };
  const js = bodySchema(route);
  const candidate = js === undefined ? {} : (sample(js) ?? {});
  if (route.body.safeParse(candidate).success) return { body: candidate, valid: true };
  return { body: {}, valid: route.body.safeParse({}).success };
}

/** The route's URL with every `:param` replaced by `value(name)`. */
export function fillParams(route: RouteSpec, value: (name: string) => string): string {
  return route.url.replace(/:([A-Za-z_]+)/g, (_, name: string) => encodeURIComponent(value(name)));
}

/**
 * A server fault: any 5xx except a 503 with a stable, non-`internal` code (a dependency such
 * as a sandbox host or runner is not there, which says nothing about the request).
 */
export function isServerFault(r: { status: number; body?: unknown }): boolean {
  if (r.status < 500) return false;
  const code = (r.body as { error?: { code?: unknown } } | undefined)?.error?.code;
  return !(r.status === 503 && typeof code === 'string' && code !== 'internal');
}

/**
 * Path parameter values that pass the route's params schema (a random UUID, a number, or the
 * literal prefix of the parameter's pattern plus a digit), so a request reaches the body check.
 */
export function sampleParams(route: RouteSpec): (name: string) => string {
  const js = route.params === undefined ? undefined : (z.toJSONSchema(route.params, { io: 'input' }) as Js);
  const values = new Map<string, string>();
  for (const [name, s] of Object.entries((js?.properties ?? {}) as Record<string, Js>)) {
    const prefix = typeof s.pattern === 'string' ? (/^\^([A-Za-z0-9_-]*)/.exec(s.pattern)?.[1] ?? '') : '';
    const candidates = [randomUUID(), '1', `${prefix}0`, `${prefix}a0`, sampleString(s)];
    const ok = candidates.find((c) => {
      const single = (route.params as z.ZodObject).shape?.[name] as z.ZodType | undefined;
      return single?.safeParse(c).success ?? false;
    });
    values.set(name, ok ?? randomUUID());
  }
  return (name) => values.get(name) ?? randomUUID();
}
