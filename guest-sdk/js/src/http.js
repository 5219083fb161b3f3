// HTTP functions over `wasi:http/incoming-handler@0.2.x`, with buffered requests and
// responses. A handler is a plain (synchronous) function `(Request) => Response`:
//
//   import { httpHandler, Response } from '@helixflow/guest';
//   export const incomingHandler = httpHandler((req) => Response.text(200, `hello from ${req.path}`));
//
// The component is a standard `wasi:http/proxy` component (the raw export, not
// StarlingMonkey's fetch-event shim): it answers through the same WASI 0.2 version the
// HelixFlow host binds, and status, headers and body are exactly what the handler returns.

import { Fields, OutgoingBody, OutgoingResponse, ResponseOutparam } from 'wasi:http/types@0.2.12';
import { Request, Response, FunctionError, describeError } from './core.js';

/** Largest request body the buffered API reads (bigger bodies get a 413). */
export const MAX_BUFFERED_BODY = 16 * 1024 * 1024;

class HttpError extends Error {
  constructor(response) {
    super('http error');
    this.response = response;
  }
}

function methodName(m) {
  return m.tag === 'other' ? m.val : m.tag.toUpperCase();
}

function readBody(incoming) {
  const stream = incoming.stream();
  const chunks = [];
  let total = 0;
  try {
    for (;;) {
      let chunk;
      try {
        chunk = stream.blockingRead(65536n);
      } catch (e) {
        if (e?.payload?.tag === 'closed') break;
        throw new HttpError(Response.error(400, 'bad_request', `reading the request body: ${e?.payload?.tag ?? e}`));
      }
      total += chunk.byteLength;
      if (total > MAX_BUFFERED_BODY) {
        throw new HttpError(Response.error(413, 'payload_too_large', `request body over ${MAX_BUFFERED_BODY} bytes`));
      }
      chunks.push(chunk);
    }
  } finally {
    stream[Symbol.dispose]();
  }
  if (chunks.length === 1) return chunks[0];
  const body = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    body.set(c, at);
    at += c.byteLength;
  }
  return body;
}

function readRequest(req) {
  const method = methodName(req.method());
  const pathWithQuery = req.pathWithQuery() ?? '/';
  const headers = req.headers().entries();
  const incoming = req.consume();
  try {
    const body = readBody(incoming);
    return new Request({ method, pathWithQuery, headers, body });
  } finally {
    incoming[Symbol.dispose]();
  }
}

function writeResponse(resp, out) {
  const entries = [];
  for (const [k, v] of resp.headers) entries.push([k.toLowerCase(), v]);
  let fields;
  try {
    fields = Fields.fromList(entries);
  } catch {
    // An invalid or forbidden header: keep the valid ones rather than fail the response.
    fields = new Fields();
    for (const [k, v] of entries) {
      try {
        fields.append(k, v);
      } catch {
        /* dropped */
      }
    }
  }
  const outgoing = new OutgoingResponse(fields);
  outgoing.setStatusCode(resp.status);
  const body = outgoing.body();
  ResponseOutparam.set(out, { tag: 'ok', val: outgoing });
  const stream = body.write();
  try {
    const bytes = resp.body;
    for (let at = 0; at < bytes.byteLength; at += 4096) {
      stream.blockingWriteAndFlush(bytes.subarray(at, Math.min(at + 4096, bytes.byteLength)));
    }
  } catch {
    // The client went away: nothing more to send.
  } finally {
    stream[Symbol.dispose]();
  }
  OutgoingBody.finish(body, undefined);
}

/** The JSON 500 (or the FunctionError's status) for an exception thrown by a handler. */
export function errorResponse(e) {
  const { errorType, message } = describeError(e);
  const status = e instanceof FunctionError ? e.status : 500;
  return Response.json(status, { error: { code: 'function_error', error_type: errorType, message } });
}

/**
 * Wraps `handler` (`(Request) => Response`) as the `wasi:http/incoming-handler` export:
 * `export const incomingHandler = httpHandler(handler);`. A thrown error becomes a JSON
 * 500 `{"error": {"code": "function_error", "error_type", "message"}}` (a `FunctionError`'s
 * own status when it has one) and is logged to stderr.
 */
export function httpHandler(handler) {
  if (typeof handler !== 'function') throw new TypeError('httpHandler takes a function (Request) => Response');
  return {
    handle(request, responseOut) {
      let resp;
      try {
        const req = readRequest(request);
        resp = handler(req);
        if (resp && typeof resp.then === 'function') {
          throw new TypeError('the handler returned a Promise: HelixFlow JS handlers are synchronous');
        }
        if (!(resp instanceof Response)) {
          throw new TypeError(`the handler must return a Response, not ${resp === null ? 'null' : typeof resp}`);
        }
      } catch (e) {
        if (e instanceof HttpError) {
          resp = e.response;
        } else {
          console.error(`handler failed: ${e?.stack ?? e}`);
          resp = errorResponse(e);
        }
      }
      writeResponse(resp, responseOut);
    },
  };
}
