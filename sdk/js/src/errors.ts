/**
 * Errors thrown by the HelixFlow client.
 *
 * Every error is a {@link HelixFlowError}. An error answered by the API is an
 * {@link APIError} carrying the HTTP status, HelixFlow's stable error `code`, its
 * message and the request id; the common statuses have their own subclass so they can
 * be caught with `instanceof`. Chat completions and embeddings go through the official
 * `openai` package and throw its error classes (re-exported as `OpenAI`).
 */

/** The base class of every error this package throws. */
export class HelixFlowError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A call was made with a missing or invalid argument; no request was sent. */
export class InvalidArgumentError extends HelixFlowError {}

/** An error response of the HelixFlow API. */
export class APIError extends HelixFlowError {
  /** The HTTP status, e.g. 404. */
  readonly status: number;
  /** HelixFlow's machine-readable code, e.g. `not_found` (AWS's error type for the Invoke API). */
  readonly code: string;
  /** The request id the node gave the request (`x-helixflow-request-id`), if any. */
  readonly requestId: string | undefined;
  /** The response headers. */
  readonly headers: Headers;
  /** The parsed error body (or its text when it was not JSON). */
  readonly body: unknown;

  constructor(
    status: number,
    code: string,
    message: string,
    requestId: string | undefined,
    headers: Headers,
    body: unknown,
  ) {
    super(message);
    this.status = status;
    this.code = code;
    this.requestId = requestId;
    this.headers = headers;
    this.body = body;
  }

  override toString(): string {
    return `${this.name}: ${this.status} ${this.code}: ${this.message}`;
  }

  /** The error class for a response: a subclass for the common statuses. */
  static from(
    status: number,
    code: string,
    message: string,
    requestId: string | undefined,
    headers: Headers,
    body: unknown,
  ): APIError {
    const Cls = errorClass(status, code);
    return new Cls(status, code, message, requestId, headers, body);
  }
}

/** 400: the request was malformed or invalid. */
export class BadRequestError extends APIError {}
/** 401: no credential, or one the node does not accept. */
export class AuthenticationError extends APIError {}
/** 403: the credential may not do this. */
export class PermissionDeniedError extends APIError {}
/** 404: no such tenant, function, model, key, event or route. */
export class NotFoundError extends APIError {}
/** 409: the state does not allow it (e.g. `already_replayed`, an existing tenant). */
export class ConflictError extends APIError {}
/** 413: the body is larger than the node accepts. */
export class PayloadTooLargeError extends APIError {}
/** 422 `function_error`: the function ran and returned a handled error. */
export class FunctionError extends APIError {
  /** The error type the function reported. */
  get errorType(): string | undefined {
    const b = this.body as { error?: { error_type?: string } } | undefined;
    return b?.error?.error_type;
  }
}
/** 429: a rate, concurrency or budget limit; `retryAfter` says when to try again. */
export class RateLimitError extends APIError {
  /** Seconds from `Retry-After`, when the node sent it. */
  get retryAfter(): number | undefined {
    const s = parseRetryAfter(this.headers.get('retry-after'));
    return s === undefined ? undefined : s / 1000;
  }
}
/** 5xx: the node failed (or, 503, is out of capacity / its store is unavailable). */
export class InternalServerError extends APIError {}

/** The node could not be reached, or the connection failed mid-request. */
export class APIConnectionError extends HelixFlowError {}
/** The request took longer than the client's `timeout`. */
export class APITimeoutError extends APIConnectionError {}

function errorClass(status: number, code: string): typeof APIError {
  switch (status) {
    case 400:
      return BadRequestError;
    case 401:
      return AuthenticationError;
    case 403:
      return PermissionDeniedError;
    case 404:
      return NotFoundError;
    case 409:
      return ConflictError;
    case 413:
      return PayloadTooLargeError;
    case 422:
      return code === 'function_error' ? FunctionError : APIError;
    case 429:
      return RateLimitError;
    default:
      return status >= 500 ? InternalServerError : APIError;
  }
}

/** `Retry-After` (seconds or an HTTP date) in milliseconds; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | null): number | undefined {
  if (value === null || value.trim() === '') return undefined;
  const secs = Number(value);
  if (Number.isFinite(secs) && secs >= 0) return secs * 1000;
  const at = Date.parse(value);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - Date.now());
}
