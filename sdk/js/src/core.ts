/**
 * The HTTP transport of the control plane and the data plane: global `fetch` (uploads:
 * `node:http`, see {@link upload}), a
 * timeout per attempt (AbortController), retries with exponential backoff and jitter
 * that honour `Retry-After`, and API errors turned into typed exceptions.
 *
 * Retries: a call marked idempotent (GET, PUT, DELETE) is tried again after a 429, a
 * 503 or a network failure, at most `maxRetries` times. Every other call (deploys,
 * pushes, invocations, creations, replays) is sent exactly once: a lost response
 * cannot tell whether it ran.
 */

import { createReadStream } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import {
  APIConnectionError,
  APIError,
  APITimeoutError,
  HelixFlowError,
  InvalidArgumentError,
  parseRetryAfter,
} from './errors.js';

/** Upload progress: bytes sent so far and the total (when known). */
export type ProgressCallback = (sent: number, total: number) => void;

/** Bytes to upload: a file path, or the bytes themselves. */
export type UploadSource = string | Uint8Array | ArrayBuffer | Blob;

/** Options every call accepts. */
export interface CallOptions {
  /** Abort the call. */
  signal?: AbortSignal;
  /** Milliseconds per attempt (default: the client's `timeout`). */
  timeout?: number;
  /** Retries for this call (default: the client's `maxRetries`; only idempotent calls retry). */
  maxRetries?: number;
}

export type QueryValue = string | number | boolean | string[] | undefined | null;

export interface RequestSpec extends CallOptions {
  query?: Record<string, QueryValue>;
  json?: unknown;
  body?: Uint8Array | string | Upload;
  headers?: Record<string, string>;
  /** Whether the call may be retried (default: GET, PUT and DELETE). */
  idempotent?: boolean;
}

/** A response, fully read. */
export interface RawResponse {
  status: number;
  headers: Headers;
  body: Uint8Array;
}

export interface TransportOptions {
  apiKey: string;
  baseURL: string;
  timeout: number;
  maxRetries: number;
  fetch: typeof fetch;
  defaultHeaders: Record<string, string>;
}

/** Retries never wait longer than this (a longer `Retry-After` is surfaced instead). */
const MAX_RETRY_WAIT_MS = 60_000;
const INITIAL_BACKOFF_MS = 500;
const MAX_BACKOFF_MS = 8_000;

/** An upload body that can be opened (again) as a stream, with its size. */
export class Upload {
  constructor(
    readonly size: number,
    private readonly open: () => ReadableStream<Uint8Array>,
    readonly onProgress?: ProgressCallback,
  ) {}

  /** From a file path, bytes or a Blob. */
  static async of(source: UploadSource, what: string, onProgress?: ProgressCallback): Promise<Upload> {
    if (typeof source === 'string') {
      let size: number;
      try {
        const st = await stat(source);
        if (!st.isFile()) throw new Error('not a regular file');
        size = st.size;
      } catch (e) {
        throw new InvalidArgumentError(`${what}: cannot read ${JSON.stringify(source)}: ${(e as Error).message}`);
      }
      return new Upload(
        size,
        () => Readable.toWeb(createReadStream(source, { highWaterMark: 256 << 10 })) as ReadableStream<Uint8Array>,
        onProgress,
      );
    }
    if (typeof Blob !== 'undefined' && source instanceof Blob) {
      return new Upload(source.size, () => source.stream() as ReadableStream<Uint8Array>, onProgress);
    }
    let bytes: Uint8Array;
    if (source instanceof Uint8Array) bytes = source;
    else if (source instanceof ArrayBuffer) bytes = new Uint8Array(source);
    else throw new InvalidArgumentError(`${what}: expected a file path, a Uint8Array, an ArrayBuffer or a Blob`);
    const CHUNK = 64 << 10;
    return new Upload(
      bytes.byteLength,
      () => {
        let at = 0;
        return new ReadableStream<Uint8Array>({
          pull(controller) {
            if (at >= bytes.byteLength) {
              controller.close();
              return;
            }
            const end = Math.min(at + CHUNK, bytes.byteLength);
            controller.enqueue(bytes.subarray(at, end));
            at = end;
          },
        });
      },
      onProgress,
    );
  }

  /** The body, from the start. */
  stream(): ReadableStream<Uint8Array> {
    return this.open();
  }
}

/**
 * One upload over `node:http(s)`, with `Expect: 100-continue`: the body is sent once the
 * node has checked the request line and headers (credentials, route, size), so a 401,
 * 403, 404 or 413 comes back as an answer instead of a broken pipe halfway through a
 * large upload. (A server that ignores `Expect` gets the body after a second anyway.)
 * The body is written chunk by chunk with backpressure; progress is reported as each
 * chunk is handed to the socket.
 */
function upload(
  url: string,
  method: string,
  headers: Record<string, string>,
  body: Upload,
  signal: AbortSignal,
): Promise<RawResponse> {
  const send = url.startsWith('https:') ? httpsRequest : httpRequest;
  return new Promise<RawResponse>((resolve, reject) => {
    let answered = false;
    let started = false;
    let complete = false;
    const req = send(url, {
      method,
      headers: { ...headers, 'content-length': String(body.size), expect: '100-continue' },
      signal,
    });
    const fallback = setTimeout(() => pump(), 1000);
    req.on('continue', () => pump());
    req.on('response', (res) => {
      answered = true;
      clearTimeout(fallback);
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const h = new Headers();
        for (const [k, v] of Object.entries(res.headers)) {
          if (v !== undefined) h.set(k, Array.isArray(v) ? v.join(', ') : v);
        }
        resolve({ status: res.statusCode ?? 0, headers: h, body: new Uint8Array(Buffer.concat(chunks)) });
        // An upload refused before its body was sent cannot reuse the connection.
        if (!complete) req.destroy();
      });
    });
    req.on('error', (e) => {
      clearTimeout(fallback);
      // A write error after the answer arrived (an upload the node refused) is expected.
      if (!answered) reject(e);
    });
    async function pump(): Promise<void> {
      if (started || answered) return;
      started = true;
      clearTimeout(fallback);
      const reader = body.stream().getReader();
      let sent = 0;
      try {
        for (;;) {
          if (answered || req.destroyed) return;
          const { done, value } = await reader.read();
          if (done) break;
          await new Promise<void>((ok, fail) => req.write(value, (e) => (e ? fail(e) : ok())));
          sent += value.byteLength;
          body.onProgress?.(sent, body.size);
        }
        complete = true;
        req.end();
      } catch (e) {
        if (!answered) req.destroy(e as Error);
      } finally {
        reader.cancel().catch(() => {});
      }
    }
  });
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Exponential backoff with full jitter: a random wait in [base/2, base]. */
export function backoffMs(attempt: number): number {
  const base = Math.min(MAX_BACKOFF_MS, INITIAL_BACKOFF_MS * 2 ** attempt);
  return base / 2 + Math.random() * (base / 2);
}

function encodeQuery(query: Record<string, QueryValue> | undefined): string {
  if (!query) return '';
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v === undefined || v === null) continue;
    q.set(k, Array.isArray(v) ? v.join(',') : String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

/**
 * A path segment, percent-encoded (names the API validates pass through unchanged).
 * An empty, `.` or `..` segment is refused: URL parsing resolves dot segments, so
 * `aliases.delete('f', '..')` would otherwise become a request for the function itself.
 */
export function seg(value: string): string {
  const text = String(value);
  if (text === '' || text === '.' || text === '..') {
    throw new InvalidArgumentError(`'${text}' is not a valid name or id`);
  }
  return encodeURIComponent(text);
}

/** Throws an {@link InvalidArgumentError} when a required argument is missing or empty. */
export function required<T>(value: T | undefined | null, what: string): T {
  if (value === undefined || value === null || (typeof value === 'string' && value.trim() === '')) {
    throw new InvalidArgumentError(`${what} is required`);
  }
  return value;
}

function decodeBody(r: RawResponse): unknown {
  const text = new TextDecoder().decode(r.body);
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** An {@link APIError} from an error response: HelixFlow's `{"error":{"code","message"}}`,
 * AWS's `{"Type","message"}` with `x-amzn-ErrorType`, or whatever else came back. */
export function errorOf(r: RawResponse): APIError {
  const body = decodeBody(r);
  let code = '';
  let message = '';
  if (body && typeof body === 'object') {
    const b = body as Record<string, any>;
    if (b.error && typeof b.error === 'object') {
      code = String(b.error.code ?? b.error.type ?? '');
      message = String(b.error.message ?? '');
    } else {
      code = String(b.Type ?? b.__type ?? '');
      message = String(b.message ?? b.Message ?? '');
    }
  } else if (typeof body === 'string') {
    message = body;
  }
  const amzType = r.headers.get('x-amzn-errortype');
  if (amzType) code = amzType.split(':')[0]!;
  if (!code) code = `http_${r.status}`;
  if (!message) message = `HTTP ${r.status}`;
  const requestId = r.headers.get('x-helixflow-request-id') ?? r.headers.get('x-amzn-requestid') ?? undefined;
  return APIError.from(r.status, code, message, requestId, r.headers, body);
}

export class Transport {
  constructor(readonly options: TransportOptions) {}

  url(path: string, query?: Record<string, QueryValue>): string {
    return `${this.options.baseURL}${path}${encodeQuery(query)}`;
  }

  /** Sends a request (with retries where allowed); a non-2xx answer throws an {@link APIError}. */
  async request(method: string, path: string, init: RequestSpec = {}): Promise<RawResponse> {
    const idempotent = init.idempotent ?? ['GET', 'HEAD', 'PUT', 'DELETE'].includes(method);
    const maxRetries = idempotent ? (init.maxRetries ?? this.options.maxRetries) : 0;
    const timeout = init.timeout ?? this.options.timeout;
    const url = this.url(path, init.query);
    for (let attempt = 0; ; attempt++) {
      const headers: Record<string, string> = {
        accept: 'application/json',
        'user-agent': `helixflow-js/${VERSION}`,
        ...this.options.defaultHeaders,
        ...init.headers,
      };
      if (this.options.apiKey) headers.authorization = `Bearer ${this.options.apiKey}`;
      let body: string | Uint8Array | undefined;
      if (init.json !== undefined) {
        headers['content-type'] = 'application/json';
        body = JSON.stringify(init.json);
      } else if (init.body instanceof Upload) {
        headers['content-type'] ??= 'application/octet-stream';
      } else if (init.body !== undefined) {
        body = init.body;
      }
      const controller = new AbortController();
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        controller.abort(new APITimeoutError(`${method} ${path} timed out after ${timeout} ms`));
      }, timeout);
      const onAbort = () => controller.abort(init.signal?.reason);
      if (init.signal?.aborted) onAbort();
      init.signal?.addEventListener('abort', onAbort, { once: true });
      let response: RawResponse;
      try {
        if (init.body instanceof Upload) {
          response = await upload(url, method, headers, init.body, controller.signal);
        } else {
          // Redirects are not followed: the node never sends one, and following would
          // rewrite a POST and resend its body elsewhere.
          const r = await this.options.fetch(url, { method, headers, body, signal: controller.signal, redirect: 'manual' });
          response = { status: r.status, headers: r.headers, body: new Uint8Array(await r.arrayBuffer()) };
        }
      } catch (e) {
        if (init.signal?.aborted) throw init.signal.reason ?? e;
        const err = timedOut
          ? new APITimeoutError(`${method} ${url} timed out after ${timeout} ms`, { cause: e })
          : e instanceof HelixFlowError
            ? e
            : new APIConnectionError(`${method} ${url}: ${describe(e)}`, { cause: e });
        if (attempt < maxRetries && err instanceof APIConnectionError) {
          await sleep(backoffMs(attempt), init.signal);
          continue;
        }
        throw err;
      } finally {
        clearTimeout(timer);
        init.signal?.removeEventListener('abort', onAbort);
      }
      if (response.status >= 200 && response.status < 300) return response;
      if (attempt < maxRetries && (response.status === 429 || response.status === 503)) {
        const after = parseRetryAfter(response.headers.get('retry-after'));
        if (after === undefined || after <= MAX_RETRY_WAIT_MS) {
          // Retry-After when given (plus a little jitter so callers spread out), else backoff.
          const wait = after === undefined ? backoffMs(attempt) : after + Math.random() * 100;
          await sleep(wait, init.signal);
          continue;
        }
      }
      throw errorOf(response);
    }
  }

  /** A request whose answer is JSON. */
  async json<T = any>(method: string, path: string, init: RequestSpec = {}): Promise<T> {
    const r = await this.request(method, path, init);
    const text = new TextDecoder().decode(r.body);
    if (text === '') return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch (e) {
      throw new HelixFlowError(`${method} ${path}: the node answered ${r.status} with a body that is not JSON`, {
        cause: e,
      });
    }
  }
}

function describe(e: unknown): string {
  const err = e as { message?: string; cause?: { code?: string; message?: string } };
  const cause = err?.cause?.code ?? err?.cause?.message;
  return cause ? `${err.message} (${cause})` : String(err?.message ?? e);
}

/** This package's version (sent as the User-Agent). */
export const VERSION = '0.1.0';
