import { BackendError, type SandboxApi, type SandboxInfo } from '@airlock/mcp';
import type { Permission } from '../auth/permissions.js';
import type { Principal } from '../auth/principal.js';
import { ApiError } from '../http/api-error.js';
import type { SandboxService } from './sandbox-service.js';

async function wrap<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof ApiError) throw new BackendError(err.apiCode, err.message, err.status, err.fields ?? []);
    throw err;
  }
}

/**
 * The MCP sandbox tools' view of the service, as one principal re-resolved per call (a
 * revoked key or demoted user stops at once), with the REST API's permissions.
 */
export function sandboxApiFor(svc: SandboxService, need: (p: Permission) => Promise<Principal>): SandboxApi {
  return {
    available: async () => svc.hostsConnected((await need('runs:read')).orgId),
    create: async (req) => wrap(async () => (await svc.create(await need('runs:write'), req)) as SandboxInfo),
    list: async () => wrap(async () => (await svc.list(await need('runs:read'))) as SandboxInfo[]),
    exec: async (id, req, onOutput) => wrap(async () => svc.exec(await need('runs:write'), id, req, onOutput)),
    writeFile: async (id, path, content) =>
      wrap(async () =>
        svc.writeFile(await need('runs:write'), id, path, Buffer.from(content, 'utf8').toString('base64')),
      ),
    readFile: async (id, path) => wrap(async () => svc.readFile(await need('runs:read'), id, path, 512 * 1024)),
    destroy: async (id) => wrap(async () => (await svc.destroy(await need('runs:write'), id)) as SandboxInfo),
  };
}
