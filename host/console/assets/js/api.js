// The console's API client: the same API and the same credentials as every other client.
// The credential (an API key or a JWT) lives in sessionStorage only: never in a URL, a
// cookie or localStorage; it is sent as `Authorization: Bearer ...`.

const CREDENTIAL = 'helixflow.credential';
const TENANT = 'helixflow.tenant';

export class ApiError extends Error {
  constructor(status, code, message, requestId, body) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.requestId = requestId;
    this.body = body;
  }
}

export const session = {
  get credential() { return sessionStorage.getItem(CREDENTIAL); },
  set credential(v) {
    if (v) sessionStorage.setItem(CREDENTIAL, v); else sessionStorage.removeItem(CREDENTIAL);
  },
  // The tenant the console shows: the key's own, or the one a platform admin picked.
  get tenant() { return sessionStorage.getItem(TENANT); },
  set tenant(v) {
    if (v) sessionStorage.setItem(TENANT, v); else sessionStorage.removeItem(TENANT);
  },
  // Who the credential is (GET /api/v1/whoami), set by the app after login.
  who: null,
  // The platform admin's tenant list (GET /api/v1/tenants), fetched once per session for
  // the tenant picker; set to null to refetch it (after creating a tenant).
  tenantsCache: null,
  clear() {
    sessionStorage.removeItem(CREDENTIAL);
    sessionStorage.removeItem(TENANT);
    this.who = null;
    this.tenantsCache = null;
  },
};

// What a role may do; mirrors the API's RBAC (helixflow-auth's Role::can). The API
// enforces it either way: this only keeps the UI from offering what would be refused.
const ROLES = {
  admin: ['read', 'invoke', 'deploy', 'manage'],
  developer: ['read', 'invoke', 'deploy'],
  invoker: ['invoke'],
  viewer: ['read'],
};

/** Whether the signed-in identity may `action` (read | invoke | deploy | manage) in the shown tenant. */
export function can(action) {
  const who = session.who;
  if (!who) return false;
  if (who.tenant == null) return who.role === 'admin';
  return (ROLES[who.role] || []).includes(action);
}

export function isPlatformAdmin() {
  return !!session.who && session.who.tenant == null && session.who.role === 'admin';
}

/**
 * One path segment, percent-encoded. Refuses empty, `.` and `..`: fetch resolves dot
 * segments, so `functions/..` would silently address the parent resource.
 */
export function enc(segment) {
  const s = String(segment ?? '');
  if (s === '' || s === '.' || s === '..') throw new Error(`not a valid name: "${s}"`);
  return encodeURIComponent(s);
}

/**
 * A JSON value for an HTTP header (x-helixflow-config, the model config): header values
 * must be ASCII (fetch/XHR refuse others), so every non-ASCII character is sent as a
 * JSON \uXXXX escape; the server's JSON parser reads the same value back.
 */
export function headerJson(v) {
  return JSON.stringify(v).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * A 401 on a request made with the session's credential: it expired or was revoked.
 * Forgets the session and tells the app (which shows the sign-in page).
 */
function signedOut(err) {
  session.clear();
  window.dispatchEvent(new CustomEvent('helixflow:signed-out', { detail: err.message }));
}

/** `/api/v1/tenants/{tenant}{rest}` for the tenant the console shows. */
export function tenantPath(rest = '') {
  return `/api/v1/tenants/${enc(session.tenant || '')}${rest}`;
}

export function authHeaders(extra = {}) {
  const h = { ...extra };
  const c = session.credential;
  if (c) h.authorization = `Bearer ${c}`;
  return h;
}

function withQuery(path, query) {
  if (!query) return path;
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `${path}${path.includes('?') ? '&' : '?'}${s}` : path;
}

/** Turns a non-2xx response into an ApiError (HelixFlow's `{"error": {code, message}}` or OpenAI's). */
export async function errorOf(resp) {
  let body = null;
  const text = await resp.text().catch(() => '');
  try { body = JSON.parse(text); } catch (_) { body = null; }
  const e = body && body.error;
  const code = (e && (e.code || e.type)) || `http_${resp.status}`;
  const message = (e && e.message) || text || resp.statusText || `HTTP ${resp.status}`;
  return new ApiError(resp.status, code, message, resp.headers.get('x-helixflow-request-id'), body);
}

/**
 * One API request. `json` is sent as a JSON body; `body` as is. Returns the parsed JSON
 * (or text), or the Response itself with `raw: true`. Non-2xx answers throw ApiError.
 */
export async function request(method, path, opts = {}) {
  const headers = authHeaders(opts.headers || {});
  let body = opts.body;
  if (opts.json !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(opts.json);
  }
  const resp = await fetch(withQuery(path, opts.query), {
    method, headers, body, signal: opts.signal, cache: 'no-store', credentials: 'omit', redirect: 'error',
  });
  if (resp.status === 401 && !opts.signingIn && session.credential) {
    if (!opts.raw) {
      const err = await errorOf(resp);
      signedOut(err);
      throw err;
    }
    // A raw answer may come from a tenant's function (which may answer 401 itself):
    // sign out only if the node refuses the credential too.
    const check = await fetch('/api/v1/whoami', { headers: authHeaders(), cache: 'no-store', credentials: 'omit' }).catch(() => null);
    if (check && check.status === 401) signedOut(await errorOf(check));
  }
  if (opts.raw) return resp;
  if (!resp.ok) throw await errorOf(resp);
  const type = resp.headers.get('content-type') || '';
  if (resp.status === 204) return null;
  return type.includes('json') ? resp.json() : resp.text();
}

export const api = {
  get: (path, opts) => request('GET', path, opts),
  post: (path, json, opts = {}) => request('POST', path, { ...opts, json }),
  put: (path, json, opts = {}) => request('PUT', path, { ...opts, json }),
  del: (path, opts) => request('DELETE', path, opts),
};

/**
 * Uploads bytes with progress (XMLHttpRequest: fetch has no upload progress).
 * `onProgress(sent, total)`; resolves to the parsed JSON answer, rejects with ApiError.
 */
export function upload(method, path, bytes, { headers = {}, query, onProgress } = {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, withQuery(path, query));
    for (const [k, v] of Object.entries(authHeaders(headers))) xhr.setRequestHeader(k, v);
    xhr.responseType = 'text';
    if (onProgress) xhr.upload.onprogress = (e) => onProgress(e.loaded, e.lengthComputable ? e.total : bytes.size || bytes.byteLength);
    xhr.onerror = () => reject(new ApiError(0, 'network_error', 'the upload failed (network error)', null, null));
    xhr.onload = () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch (_) { body = null; }
      if (xhr.status >= 200 && xhr.status < 300) {
        if (onProgress) onProgress(1, 1);
        resolve(body);
      } else {
        const e = body && body.error;
        const err = new ApiError(xhr.status, (e && e.code) || `http_${xhr.status}`,
          (e && e.message) || xhr.responseText || `HTTP ${xhr.status}`,
          xhr.getResponseHeader('x-helixflow-request-id'), body);
        if (xhr.status === 401 && session.credential) signedOut(err);
        reject(err);
      }
    };
    xhr.send(bytes);
  });
}

/**
 * Reads a server-sent-events response (OpenAI streaming): calls `onData(json)` per
 * `data:` event until `[DONE]` or the end of the stream. Lines may end in CRLF, LF or
 * CR; a last event not followed by a blank line is still delivered.
 */
export async function readSse(resp, onData) {
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  // One event's lines -> false when it was `[DONE]`.
  const dispatch = (event) => {
    const data = event.split('\n').filter((l) => l.startsWith('data:'))
      .map((l) => (l[5] === ' ' ? l.slice(6) : l.slice(5))).join('\n');
    if (!data) return true;
    if (data === '[DONE]') return false;
    onData(JSON.parse(data));
    return true;
  };
  for (;;) {
    const { value, done } = await reader.read();
    buf += done ? decoder.decode() : decoder.decode(value, { stream: true });
    // Normalise line ends; a trailing CR may be half of a CRLF split across chunks.
    const keep = !done && buf.endsWith('\r');
    if (keep) buf = buf.slice(0, -1);
    buf = buf.replace(/\r\n?/g, '\n');
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const event = buf.slice(0, i);
      buf = buf.slice(i + 2);
      if (!dispatch(event)) return;
    }
    if (keep) buf += '\r';
    if (done) {
      if (buf.trim()) dispatch(buf);
      return;
    }
  }
}

/** The node's own origin, for snippets (curl/Python/JS). */
export function origin() {
  return window.location.origin;
}
