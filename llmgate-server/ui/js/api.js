// Talking to the gateway: the bearer key on every call, errors turned into words.
//
// Every failure becomes an ApiError whose message is the server's own `error.message`
// (OpenAI's error shape), or a plain sentence when the server could not be reached.

export class ApiError extends Error {
  constructor(message, { status = 0, type = '', code = '' } = {}) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.type = type;
    this.code = code;
  }

  /** The endpoint does not exist on this gateway (an older server, or a feature switched off). */
  get missing() {
    return this.status === 404 && this.code === 'unknown_path';
  }
}

/** The error a non-2xx response describes. */
export async function errorFrom(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // Not JSON (a proxy's HTML page, say): fall back to the status line.
  }
  const error = body && typeof body === 'object' ? body.error : null;
  const message = error && typeof error.message === 'string' && error.message
    ? error.message
    : `The gateway answered ${response.status} ${response.statusText || ''}`.trim() + '.';
  return new ApiError(message, { status: response.status, type: error?.type ?? '', code: error?.code ?? '' });
}

function unreachable(cause) {
  if (cause?.name === 'AbortError') return cause;
  return new ApiError(`Cannot reach the gateway (${cause?.message || 'network error'}).`);
}

export class Api {
  /** `key` is read through a function so that signing out takes effect at once. */
  constructor(key, { onUnauthorized } = {}) {
    this.key = key;
    this.onUnauthorized = onUnauthorized;
  }

  headers(extra) {
    return { Authorization: `Bearer ${this.key()}`, ...extra };
  }

  /** Send a request; resolve the raw Response when it is 2xx, else throw ApiError. */
  async send(path, { method = 'GET', body, headers, signal } = {}) {
    let response;
    try {
      response = await fetch(path, {
        method,
        headers: this.headers(body === undefined ? headers : { 'Content-Type': 'application/json', ...headers }),
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
        cache: 'no-store',
        credentials: 'omit',
        referrerPolicy: 'no-referrer',
      });
    } catch (cause) {
      throw unreachable(cause);
    }
    if (!response.ok) {
      const error = await errorFrom(response);
      if (response.status === 401 && this.onUnauthorized) this.onUnauthorized(error);
      throw error;
    }
    return response;
  }

  /** JSON in, JSON out. */
  async json(path, options) {
    const response = await this.send(path, options);
    if (response.status === 204) return null;
    try {
      return await response.json();
    } catch {
      throw new ApiError('The gateway sent an answer that is not JSON.', { status: response.status });
    }
  }

  get(path, options) {
    return this.json(path, options);
  }

  post(path, body, options) {
    return this.json(path, { ...options, method: 'POST', body });
  }
}

/** A list endpoint's items, whether it answers `{data: [...]}` or a bare array. */
export function items(answer) {
  if (Array.isArray(answer)) return answer;
  if (answer && Array.isArray(answer.data)) return answer.data;
  return [];
}

/** `path?name=value&...`, skipping empty values. */
export function withQuery(path, params) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== '') query.set(name, String(value));
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}
