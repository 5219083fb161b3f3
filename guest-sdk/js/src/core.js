// The parts of the SDK that touch no WASI import: requests, responses, typed errors and
// tensors. Plain Node.js can import this module (`@helixflow/guest/core`), so a function's
// logic is unit-testable with `node --test` outside the component.

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Bytes of a body given as a string, bytes, a typed array or an ArrayBuffer. */
export function toBytes(body) {
  if (body === undefined || body === null) return new Uint8Array(0);
  if (typeof body === 'string') return encoder.encode(body);
  if (body instanceof Uint8Array) return body;
  if (ArrayBuffer.isView(body)) return new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
  if (body instanceof ArrayBuffer) return new Uint8Array(body);
  throw new TypeError(`a body must be a string, Uint8Array, typed array or ArrayBuffer, not ${typeof body}`);
}

/** A buffered HTTP request, as the function sees it (the host strips `/{tenant}/{function}`). */
export class Request {
  /**
   * @param {{method?: string, pathWithQuery?: string, headers?: Array<[string, Uint8Array|string]>, body?: any}} init
   */
  constructor({ method = 'GET', pathWithQuery = '/', headers = [], body } = {}) {
    /** The method, e.g. `"GET"`. */
    this.method = method;
    /** Path and query, e.g. `"/items?id=3"`. */
    this.pathWithQuery = pathWithQuery;
    /** All headers in arrival order: `[name, value bytes]`. */
    this.headers = headers.map(([k, v]) => [k, toBytes(v)]);
    /** The request body. */
    this.body = toBytes(body);
  }
  /** The path without the query. */
  get path() {
    const i = this.pathWithQuery.indexOf('?');
    return i < 0 ? this.pathWithQuery : this.pathWithQuery.slice(0, i);
  }
  /** The raw query string (without `?`), or `undefined`. */
  get query() {
    const i = this.pathWithQuery.indexOf('?');
    return i < 0 ? undefined : this.pathWithQuery.slice(i + 1);
  }
  /** The query parsed, as `URLSearchParams`. */
  get searchParams() {
    return new URLSearchParams(this.query ?? '');
  }
  /** First value of a header (case-insensitive) as text, or `undefined`. */
  header(name) {
    const lower = name.toLowerCase();
    const found = this.headers.find(([k]) => k.toLowerCase() === lower);
    return found ? decoder.decode(found[1]) : undefined;
  }
  /** The body as UTF-8 text. */
  text() {
    return decoder.decode(this.body);
  }
  /** The body parsed as JSON (a `SyntaxError` when it is not JSON). */
  json() {
    return JSON.parse(this.text());
  }
}

/** A buffered HTTP response. */
export class Response {
  /**
   * @param {number} status
   * @param {any} [body] string, bytes, typed array or ArrayBuffer
   * @param {Array<[string, string|Uint8Array]>} [headers]
   */
  constructor(status, body, headers = []) {
    if (!Number.isInteger(status) || status < 100 || status > 999) {
      throw new RangeError(`HTTP status must be an integer 100-999, not ${status}`);
    }
    this.status = status;
    this.headers = headers.map(([k, v]) => [k, toBytes(v)]);
    this.body = toBytes(body);
  }
  /** A `text/plain; charset=utf-8` response. */
  static text(status, text) {
    return new Response(status, String(text), [['content-type', 'text/plain; charset=utf-8']]);
  }
  /** An `application/json` response; `value` is serialised with `JSON.stringify`. */
  static json(status, value) {
    return new Response(status, JSON.stringify(value), [['content-type', 'application/json']]);
  }
  /** HelixFlow's error shape: `{"error": {"code", "message"}}`. */
  static error(status, code, message) {
    return Response.json(status, { error: { code, message } });
  }
  /** Adds a header; returns this response. */
  withHeader(name, value) {
    this.headers.push([name, toBytes(value)]);
    return this;
  }
  /** First value of a header (case-insensitive) as text, or `undefined`. */
  header(name) {
    const lower = name.toLowerCase();
    const found = this.headers.find(([k]) => k.toLowerCase() === lower);
    return found ? decoder.decode(found[1]) : undefined;
  }
  /** The body as UTF-8 text. */
  text() {
    return decoder.decode(this.body);
  }
}

/**
 * A handled error: the function ran and decided to fail. The host reports it to the
 * caller as a function error (`errorType` / `errorMessage`), not as a host failure.
 * Throw it from an event handler; from an HTTP handler it becomes a JSON 500 (or the
 * `status` you give it).
 */
export class FunctionError extends Error {
  /**
   * @param {string} errorType e.g. `"ValidationError"`
   * @param {string} message
   * @param {{status?: number}} [options] the HTTP status when thrown from an HTTP handler
   */
  constructor(errorType, message, { status = 500 } = {}) {
    super(message);
    this.name = 'FunctionError';
    this.errorType = errorType;
    this.status = status;
  }
}

/**
 * An error from wasi:nn or helixflow:llm: the host's code (`"not-found"`,
 * `"invalid-argument"`, `"too-large"`, `"runtime-error"`, ...) and message.
 */
export class NnError extends Error {
  constructor(code, message) {
    super(`${code}: ${message}`);
    this.name = 'NnError';
    this.code = code;
    this.detail = message;
  }
}

/** The `{errorType, message}` of anything thrown by a handler. */
export function describeError(e) {
  if (e instanceof FunctionError) return { errorType: e.errorType, message: e.message };
  if (e instanceof Error) return { errorType: e.name || 'Error', message: e.message };
  return { errorType: 'Error', message: String(e) };
}

// wasi:nn element types: name -> [typed-array constructor, bytes per element].
const TYPES = {
  FP16: [Uint16Array, 2], // IEEE half bit patterns
  BF16: [Uint16Array, 2], // bfloat16 bit patterns
  FP32: [Float32Array, 4],
  FP64: [Float64Array, 8],
  U8: [Uint8Array, 1],
  I32: [Int32Array, 4],
  I64: [BigInt64Array, 8],
};

/** The element types, as wasi:nn names them. */
export const TensorType = Object.freeze(Object.fromEntries(Object.keys(TYPES).map((k) => [k, k])));

function checkType(type) {
  const t = String(type).toUpperCase();
  if (!(t in TYPES)) {
    throw new NnError('invalid-argument', `unknown tensor type ${type}: one of ${Object.keys(TYPES).join(', ')}`);
  }
  return t;
}

/**
 * A tensor on the guest side: element type, dimensions and row-major little-endian bytes
 * (WebAssembly is little-endian, so typed arrays are viewed, not copied).
 */
export class Tensor {
  /**
   * @param {string} type one of `TensorType`
   * @param {ArrayLike<number>} dims
   * @param {Uint8Array} data row-major little-endian element bytes
   */
  constructor(type, dims, data) {
    this.type = checkType(type);
    this.dims = Array.from(dims, (d) => {
      if (!Number.isInteger(d) || d < 0 || d > 0xffffffff) {
        throw new NnError('invalid-argument', `tensor dimension ${d} is not a u32`);
      }
      return d;
    });
    this.data = toBytes(data);
    const want = this.dims.reduce((a, b) => a * b, 1) * TYPES[this.type][1];
    if (this.data.byteLength !== want) {
      throw new NnError(
        'invalid-argument',
        `a ${this.type} tensor of dims [${this.dims}] needs ${want} bytes, got ${this.data.byteLength}`,
      );
    }
  }

  /**
   * A tensor from a typed array (viewed, not copied, when its type matches) or a plain
   * array of numbers (copied into one).
   */
  static from(type, dims, values) {
    const t = checkType(type);
    const Ctor = TYPES[t][0];
    let typed;
    if (values instanceof Ctor) typed = values;
    else if (t === 'I64') typed = BigInt64Array.from(values, (v) => BigInt(v));
    else typed = Ctor.from(values);
    return new Tensor(t, dims, new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength));
  }
  static fromFloat32(dims, values) {
    return Tensor.from('FP32', dims, values);
  }
  static fromFloat64(dims, values) {
    return Tensor.from('FP64', dims, values);
  }
  static fromInt32(dims, values) {
    return Tensor.from('I32', dims, values);
  }
  static fromInt64(dims, values) {
    return Tensor.from('I64', dims, values);
  }
  static fromUint8(dims, values) {
    return Tensor.from('U8', dims, values);
  }

  /** Number of elements. */
  get length() {
    return this.dims.reduce((a, b) => a * b, 1);
  }

  /**
   * The elements as the typed array of `type` (checked against the tensor's type): a view
   * of `data` when it is aligned, else one copy.
   */
  as(type) {
    const t = checkType(type);
    if (t !== this.type) throw new NnError('invalid-argument', `tensor is ${this.type}, not ${t}`);
    const [Ctor, size] = TYPES[t];
    const d = this.data;
    if (d.byteOffset % size === 0) return new Ctor(d.buffer, d.byteOffset, d.byteLength / size);
    return new Ctor(d.slice().buffer);
  }
  toFloat32() {
    return this.as('FP32');
  }
  toFloat64() {
    return this.as('FP64');
  }
  toInt32() {
    return this.as('I32');
  }
  toInt64() {
    return this.as('I64');
  }
  toUint8() {
    return this.as('U8');
  }
  /** The elements as a plain array of numbers (I64 as BigInts). */
  toArray() {
    return Array.from(this.as(this.type));
  }
}

/** Named outputs of one compute. */
export class Outputs {
  /** @param {Array<[string, Tensor]>} entries */
  constructor(entries) {
    this.entries = entries;
  }
  /** The output called `name` (an `NnError` `not-found` when there is none). */
  get(name) {
    const found = this.entries.find(([n]) => n === name);
    if (!found) {
      throw new NnError('not-found', `no output named ${JSON.stringify(name)} (outputs: ${this.names().join(', ')})`);
    }
    return found[1];
  }
  names() {
    return this.entries.map(([n]) => n);
  }
}
