// The HTTP API of PROTOCOL.md section 2. Every call returns parsed JSON or throws an ApiError
// whose `code` is the server's machine code (or "network" when the server was not reached).

export class ApiError extends Error {
  constructor(status, code, message, retryAfter = null) {
    super(message || code);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

async function request(method, path, body) {
  let res;
  try {
    res = await fetch(path, {
      method,
      credentials: 'same-origin',
      headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, 'network', 'network error');
  }
  if (res.status === 204) return null;
  let data = null;
  try {
    data = await res.json();
  } catch {
    // A proxy's HTML error page, say: fall through with the status alone.
  }
  if (!res.ok) {
    const retry = Number(res.headers.get('Retry-After')) || null;
    const code = (data && data.error) || (res.status === 503 ? 'unavailable' : `http_${res.status}`);
    throw new ApiError(res.status, code, data && data.message, retry);
  }
  return data;
}

export const api = {
  register: (username, password, displayName) =>
    request('POST', '/api/register', displayName ? { username, password, displayName } : { username, password }),
  login: (username, password) => request('POST', '/api/login', { username, password }),
  logout: () => request('POST', '/api/logout'),
  me: () => request('GET', '/api/me'),
  /** The contact list (PROTOCOL.md 2.1), with presence and unread counts. */
  users: () => request('GET', '/api/users'),
  /** Up to `limit` accounts of the whole directory whose name contains `q`. */
  searchUsers: (q, { limit = 20 } = {}) => request('GET', `/api/users?${new URLSearchParams({ q, limit: String(limit) })}`),
  addContact: (id) => request('PUT', `/api/contacts/${encodeURIComponent(id)}`),
  removeContact: (id) => request('DELETE', `/api/contacts/${encodeURIComponent(id)}`),
  messages: (withId, { limit = 50, before } = {}) => {
    const q = new URLSearchParams({ with: String(withId), limit: String(limit) });
    if (before) q.set('before', String(before));
    return request('GET', `/api/messages?${q}`);
  },
  calls: ({ limit = 30, before } = {}) => {
    const q = new URLSearchParams({ limit: String(limit) });
    if (before) q.set('before', before);
    return request('GET', `/api/calls?${q}`);
  },
  call: (id) => request('GET', `/api/calls/${encodeURIComponent(id)}`),
  iceServers: () => request('GET', '/api/ice-servers'),
};
