import { AIRLOCK_VERSION } from '@airlock/core';
import { z } from 'zod';
import { API_ERROR_CODES } from './api-error.js';
import type { RouteSpec } from './routes.js';

const toSchema = (s: z.ZodType, io: 'input' | 'output'): Record<string, unknown> => {
  const j = z.toJSONSchema(s, { io, unrepresentable: 'any' }) as Record<string, unknown>;
  delete j['$schema'];
  return j;
};

/** The OpenAPI 3.1 document of the JSON API, generated from the route schemas. */
export function openApiDocument(routes: readonly RouteSpec[]): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  const errorBody = {
    type: 'object',
    properties: {
      error: {
        type: 'object',
        properties: {
          code: { type: 'string', enum: Object.keys(API_ERROR_CODES) },
          message: { type: 'string' },
          fields: {
            type: 'array',
            items: { type: 'object', properties: { field: { type: 'string' }, message: { type: 'string' } } },
          },
        },
        required: ['code', 'message'],
      },
    },
  };
  for (const r of routes) {
    const path = r.url.replace(/:([A-Za-z_]+)/g, '{$1}');
    const op: Record<string, unknown> = {
      summary: r.summary,
      tags: [r.tag],
      security: r.auth === 'public' ? [] : [{ apiKey: [] }, { session: [] }],
      responses: {
        [String(r.status ?? 200)]: {
          description: 'success',
          ...(r.response === undefined
            ? {}
            : { content: { 'application/json': { schema: toSchema(r.response, 'output') } } }),
        },
        default: { description: 'error', content: { 'application/json': { schema: errorBody } } },
      },
    };
    if (typeof r.auth === 'object') op['x-permission'] = r.auth.permission;
    const parameters: unknown[] = [];
    if (r.params !== undefined) {
      const s = toSchema(r.params, 'input') as { properties?: Record<string, unknown> };
      for (const [name, schema] of Object.entries(s.properties ?? {}))
        parameters.push({ name, in: 'path', required: true, schema });
    }
    if (r.query !== undefined) {
      const s = toSchema(r.query, 'input') as { properties?: Record<string, unknown>; required?: string[] };
      for (const [name, schema] of Object.entries(s.properties ?? {})) {
        parameters.push({ name, in: 'query', required: s.required?.includes(name) ?? false, schema });
      }
    }
    if (parameters.length > 0) op['parameters'] = parameters;
    if (r.body !== undefined)
      op['requestBody'] = { required: true, content: { 'application/json': { schema: toSchema(r.body, 'input') } } };
    paths[path] = { ...(paths[path] ?? {}), [r.method.toLowerCase()]: op };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'airlock control plane API',
      version: AIRLOCK_VERSION,
      description: `Errors: ${Object.entries(API_ERROR_CODES)
        .map(([k, v]) => `\`${k}\` — ${v}`)
        .join(' ')}`,
    },
    servers: [{ url: '/' }],
    components: {
      securitySchemes: {
        apiKey: { type: 'http', scheme: 'bearer', description: 'API key (`alk_…`) in `Authorization: Bearer`' },
        session: {
          type: 'apiKey',
          in: 'cookie',
          name: 'airlock_session',
          description: 'Dashboard session; unsafe methods also need the `x-csrf-token` header',
        },
      },
    },
    paths,
  };
}
