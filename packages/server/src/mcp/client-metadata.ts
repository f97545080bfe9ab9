// OAuth Client ID Metadata Documents (the MCP authorization spec's way for a client to identify
// itself without registering): the client_id is an https URL, and the document served there
// names the client and its redirect URIs. The server fetches it with tight bounds, since the
// URL comes from whoever starts an authorization: https only, no redirects, a size and time
// cap, and never an address inside the host's own networks unless the operator allows that
// host (AIRLOCK_OAUTH_CIMD_ALLOW_HOSTS, host:port list, which also permits plain http for it).
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { WebhookTargets } from '../policy/webhook.js';

const WEBHOOK_DEFAULT_TARGETS = new WebhookTargets();

/** What the server keeps of a fetched document. */
export interface ClientMetadataDocument {
  readonly clientId: string;
  readonly name: string;
  readonly redirectUris: readonly string[];
  readonly metadata: Record<string, unknown>;
}

/** Why a document was refused (shown to the person on the error page, or in the token error). */
export class ClientMetadataError extends Error {}

const MAX_BYTES = 64 * 1024;
const TIMEOUT_MS = 5000;

/** Whether a client_id is a metadata-document URL rather than a registered id. */
export function isClientMetadataUrl(clientId: string): boolean {
  return /^https?:\/\//.test(clientId);
}

function allowedHosts(): Set<string> {
  return new Set(
    (process.env['AIRLOCK_OAUTH_CIMD_ALLOW_HOSTS'] ?? '')
      .split(',')
      .map((h) => h.trim().toLowerCase())
      .filter(Boolean),
  );
}

/** Loopback, private, link-local, CGNAT, unique-local and unspecified addresses. */
export function isInternalAddress(ip: string): boolean {
  // Also every other form the webhook SSRF guard refuses (hex IPv4-mapped such as
  // ::ffff:7f00:1, NAT64, 6to4, multicast, reserved), which the checks below miss.
  if (WEBHOOK_DEFAULT_TARGETS.refusal(ip) !== undefined) return true;
  if (isIP(ip) === 4) {
    const [a = 0, b = 0] = ip.split('.').map(Number);
    return (
      a === 0 ||
      a === 10 ||
      a === 127 ||
      (a === 100 && b >= 64 && b <= 127) ||
      (a === 169 && b === 254) ||
      (a === 172 && b >= 16 && b <= 31) ||
      (a === 192 && b === 168)
    );
  }
  const v6 = ip.toLowerCase();
  if (v6.startsWith('::ffff:')) return isInternalAddress(v6.slice(7));
  return v6 === '::' || v6 === '::1' || v6.startsWith('fc') || v6.startsWith('fd') || v6.startsWith('fe80');
}

/** Fetch and validate the document at `clientId`. */
export async function fetchClientMetadata(clientId: string): Promise<ClientMetadataDocument> {
  let url: URL;
  try {
    url = new URL(clientId);
  } catch {
    throw new ClientMetadataError('client_id is not a valid URL');
  }
  const allowed = allowedHosts().has(url.host.toLowerCase());
  if (url.protocol !== 'https:' && !(allowed && url.protocol === 'http:'))
    throw new ClientMetadataError('a client_id URL must use https');
  if (url.pathname === '/' || url.hash !== '' || url.username !== '' || url.password !== '')
    throw new ClientMetadataError('a client_id URL needs a path and no fragment or credentials');
  if (!allowed) {
    const host = url.hostname.replace(/^\[|\]$/g, '');
    let addrs: string[];
    try {
      addrs = isIP(host) !== 0 ? [host] : (await lookup(host, { all: true })).map((a) => a.address);
    } catch {
      // An unresolvable host is the client's problem, not a server fault (found by security/oauth.test.ts fuzzing).
      throw new ClientMetadataError(`the client_id host ${url.hostname} does not resolve`);
    }
    if (addrs.length === 0 || addrs.some(isInternalAddress))
      throw new ClientMetadataError(`the client_id host ${url.hostname} is an internal address`);
  }
  let res: Response;
  try {
    res = await fetch(url, {
      redirect: 'error',
      headers: { accept: 'application/json' },
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
  } catch {
    throw new ClientMetadataError('the client metadata document could not be fetched');
  }
  if (!res.ok) throw new ClientMetadataError(`the client metadata document answered ${res.status}`);
  const text = await readBounded(res);
  let doc: Record<string, unknown>;
  try {
    const v: unknown = JSON.parse(text);
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error();
    doc = v as Record<string, unknown>;
  } catch {
    throw new ClientMetadataError('the client metadata document is not a JSON object');
  }
  if (doc['client_id'] !== clientId)
    throw new ClientMetadataError('the document’s client_id does not equal the URL it was fetched from');
  const uris = doc['redirect_uris'];
  if (
    !Array.isArray(uris) ||
    uris.length === 0 ||
    uris.length > 10 ||
    !uris.every((u) => typeof u === 'string' && u.length <= 2000)
  )
    throw new ClientMetadataError('redirect_uris: a list of 1 to 10 URIs is required');
  const method = doc['token_endpoint_auth_method'] ?? 'none';
  if (method !== 'none')
    throw new ClientMetadataError('token_endpoint_auth_method: only "none" (public clients with PKCE) is supported');
  const name =
    typeof doc['client_name'] === 'string' && doc['client_name'].trim() !== ''
      ? doc['client_name'].trim().slice(0, 200)
      : url.host;
  return { clientId, name, redirectUris: uris as string[], metadata: doc };
}

async function readBounded(res: Response): Promise<string> {
  const reader = res.body?.getReader();
  if (reader === undefined) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_BYTES) {
      await reader.cancel();
      throw new ClientMetadataError(`the client metadata document is larger than ${MAX_BYTES} bytes`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}
