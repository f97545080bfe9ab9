// Test support for the accounts tests (sessions, CSRF, keys): a small HTTP client that can
// speak as a session (cookie + CSRF header) or as an API key. Not part of the package surface.

export interface Caller {
  readonly cookie?: string;
  readonly csrf?: string;
  readonly bearer?: string;
}

export interface HttpResult {
  readonly status: number;
  // biome-ignore lint/suspicious/noExplicitAny: parsed JSON, inspected by assertions
  readonly body: any;
  readonly text: string;
  readonly headers: Headers;
}

/** One request. `raw` sends a string body as is (for malformed-input tests). */
export async function call(
  base: string,
  method: string,
  path: string,
  opts: Caller & { body?: unknown; raw?: string | Buffer; contentType?: string; timeoutMs?: number } = {},
): Promise<HttpResult> {
  const headers: Record<string, string> = {};
  if (opts.cookie !== undefined) headers['cookie'] = opts.cookie;
  if (opts.csrf !== undefined) headers['x-csrf-token'] = opts.csrf;
  if (opts.bearer !== undefined) headers['authorization'] = `Bearer ${opts.bearer}`;
  let body: string | Buffer | undefined;
  if (opts.raw !== undefined) body = opts.raw;
  else if (opts.body !== undefined) body = JSON.stringify(opts.body);
  if (body !== undefined) headers['content-type'] = opts.contentType ?? 'application/json';
  const res = await fetch(new URL(path, base), {
    method,
    headers,
    ...(body === undefined ? {} : { body }),
    signal: AbortSignal.timeout(opts.timeoutMs ?? 15_000),
  });
  let text = '';
  if ((res.headers.get('content-type') ?? '').includes('text/event-stream')) await res.body?.cancel();
  else text = await res.text();
  let parsed: unknown;
  try {
    parsed = text === '' ? undefined : JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return { status: res.status, body: parsed, text, headers: res.headers };
}

/** Log in; returns the session caller (cookie + CSRF token) and the response. */
export async function login(
  base: string,
  username: string,
  password: string,
  org?: string,
): Promise<{ caller: Caller & { cookie: string; csrf: string }; res: HttpResult; setCookie: string }> {
  const res = await call(base, 'POST', '/api/v1/auth/login', {
    body: { username, password, ...(org === undefined ? {} : { org }) },
  });
  if (res.status !== 200) throw new Error(`login ${username} failed: ${res.status} ${res.text}`);
  const setCookie = res.headers.get('set-cookie') ?? '';
  const m = /airlock_session=([^;]+)/.exec(setCookie);
  if (m?.[1] === undefined) throw new Error(`login ${username}: no session cookie in ${setCookie}`);
  return { caller: { cookie: `airlock_session=${m[1]}`, csrf: String(res.body.csrf_token) }, res, setCookie };
}
