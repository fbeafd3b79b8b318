// The stats API client (CONTRACT §4, plus /api/sites, /api/monitors and /api/pipeline).
// Every request carries `Authorization: Bearer KEY`; failures become an ApiError with the
// HTTP status (0 when the server could not be reached), so callers can tell 401 and 404 apart.

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
  }
}

/** Joins the configured base ("" = this page's origin) and a path. */
export function endpoint(base, path, params) {
  const root = (base || '').replace(/\/+$/, '');
  const url = new URL(root + path, window.location.href);
  if (params) url.search = params.toString();
  return url;
}

/**
 * The common stats query: site, from, to, tz and one `filter[DIM]=VALUE` per filter,
 * plus `extra` ({interval: 'day'}, {dim: 'page', limit: 10}, ...).
 */
export function statsQuery({ site, from, to, tz, filters }, extra = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries({ site, from, to, tz })) if (v) q.set(k, v);
  for (const [dim, value] of filters || []) q.append(`filter[${dim}]`, value);
  for (const [k, v] of Object.entries(extra)) if (v != null) q.set(k, String(v));
  return q;
}

export function createClient({ base, key }) {
  async function request(path, params, { signal } = {}) {
    const url = endpoint(base, path, params);
    let res;
    try {
      res = await fetch(url, {
        headers: { Authorization: `Bearer ${key}`, Accept: 'application/json, text/csv' },
        signal,
        credentials: 'omit',
        cache: 'no-store',
      });
    } catch (err) {
      if (err.name === 'AbortError') throw err;
      throw new ApiError(0, `Could not reach the server at ${url.origin}`);
    }
    if (!res.ok) throw new ApiError(res.status, await describe(res));
    return res;
  }

  return {
    base,
    /** GET a JSON document. */
    async get(path, params, opts) {
      const res = await request(path, params, opts);
      try {
        return await res.json();
      } catch {
        throw new ApiError(res.status, `The server sent something that is not JSON for ${path}`);
      }
    },
    /** GET a file (the CSV export) as a Blob. */
    async blob(path, params, opts) {
      const res = await request(path, params, opts);
      return res.blob();
    },
  };
}

async function describe(res) {
  if (res.status === 401) return 'The API key was not accepted.';
  if (res.status === 404) return 'Not found.';
  if (res.status >= 500) return `The server had a problem (HTTP ${res.status}).`;
  try {
    const body = await res.json();
    if (body && typeof body.error === 'string') return body.error;
  } catch {
    // fall through to the generic message
  }
  return `The request failed (HTTP ${res.status}).`;
}
