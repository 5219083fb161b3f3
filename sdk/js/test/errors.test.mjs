// Errors and retries: typed API errors from the real node; bad input refused before any
// request; 429/503 with Retry-After and network failures retried for idempotent calls
// only (against a small local HTTP server that misbehaves on purpose); timeouts.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { test } from 'node:test';
import {
  APIConnectionError,
  APIError,
  APITimeoutError,
  Client,
  HelixFlowError,
  InternalServerError,
  InvalidArgumentError,
  NotFoundError,
  RateLimitError,
} from 'helixflow';
import { client, tenant } from './helpers.mjs';

test('a 404 from the node is a NotFoundError with status, code, message and request id', async () => {
  const err = await client().functions.get('js-no-such-function').catch((e) => e);
  assert.ok(err instanceof NotFoundError && err instanceof APIError && err instanceof HelixFlowError, `${err}`);
  assert.equal(err.status, 404);
  assert.equal(err.code, 'not_found');
  assert.match(err.message, /js-no-such-function/);
  assert.match(err.requestId, /^[0-9a-f]+$/);
  // The Invoke API's AWS-shaped errors map the same way.
  const aws = await client().functions.invokeAsync('js-no-such-function', {}).catch((e) => e);
  assert.ok(aws instanceof NotFoundError, `${aws}`);
  assert.equal(aws.code, 'ResourceNotFoundException');
});

test('missing arguments fail before any request, with a clear message', async () => {
  let requests = 0;
  const counting = (...args) => {
    requests++;
    return fetch(...args);
  };
  const c = client({ fetch: counting });
  const cases = [
    [() => c.functions.deploy(), /functions\.deploy: name .* is required/],
    [() => c.functions.deploy('x'), /functions\.deploy: source .* is required/],
    [() => c.functions.deploy('x', '/no/such/file.wasm'), /cannot read "\/no\/such\/file\.wasm"/],
    [() => c.functions.deploy('x', 42), /expected a file path, a Uint8Array/],
    [() => c.functions.invoke(''), /functions\.invoke: name is required/],
    [() => c.functions.getVersion('x', 0), /version must be a version number/],
    [() => c.models.push('m'), /models\.push: source .* is required/],
    [() => c.keys.create({ name: 'k' }), /keys\.create: role .* is required/],
    [() => c.keys.create(), /keys\.create: \{ name, role \} is required/],
    [() => c.aliases.set('f', 'live'), /aliases\.set: version is required/],
    [() => c.events.replay(), /events\.replay: id is required/],
    [() => c.analytics.createDashboard({ metrics: [] }), /metrics is required/],
    [() => c.functions.invokeAsync('f', new Uint8Array(1)), /JSON-serialisable/],
    // Dot segments would be resolved away by URL parsing: '..' would turn an alias
    // delete into a delete of the function.
    [() => c.aliases.delete('f', '..'), /not a valid name or id/],
    [() => c.functions.get('.'), /not a valid name or id/],
  ];
  for (const [call, message] of cases) {
    const err = await call().then(
      () => null,
      (e) => e,
    );
    assert.ok(err instanceof InvalidArgumentError, `${call}: ${err}`);
    assert.match(err.message, message);
  }
  assert.throws(() => new Client({ apiKey: '' }), /apiKey is required/);
  assert.throws(() => new Client({ apiKey: 'k', baseURL: 'localhost:8080' }), /not an http\(s\) URL/);
  assert.equal(requests, 0, 'no request was sent');
  // A JWT's tenant claim names the tenant.
  const jwt = ['e30', Buffer.from(JSON.stringify({ tenant: 'acme' })).toString('base64url'), 'sig'].join('.');
  assert.equal(new Client({ apiKey: jwt }).tenant, 'acme');
  assert.equal(new Client({ apiKey: jwt, tenant: tenant() }).tenant, tenant());
});

/** A local server answering from `script` (one handler per request, the last repeating). */
async function scripted(script) {
  const seen = [];
  const server = createServer((req, res) => {
    seen.push({ method: req.method, url: req.url, at: Date.now() });
    req.resume();
    req.on('end', () => script[Math.min(seen.length, script.length) - 1](req, res));
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${server.address().port}`;
  const close = () => {
    server.closeAllConnections();
    return new Promise((r) => server.close(r));
  };
  return { url, seen, close };
}

const json = (status, body, headers = {}) => (req, res) => {
  res.writeHead(status, { 'content-type': 'application/json', 'x-helixflow-request-id': 'req-1', ...headers });
  res.end(JSON.stringify(body));
};
const limited = (after) => json(429, { error: { code: 'rate_limited', message: 'slow down' } }, { 'retry-after': after });
const unavailable = (after) =>
  json(503, { error: { code: 'capacity_exhausted', message: 'busy' } }, after ? { 'retry-after': after } : {});
const ok = json(200, { functions: [{ name: 'f' }] });

test('429 and 503 with Retry-After are retried for idempotent calls, honouring the wait', async () => {
  const s = await scripted([limited('1'), unavailable('0'), ok]);
  try {
    const c = new Client({ apiKey: 'k', baseURL: s.url, tenant: 't', maxRetries: 3 });
    const started = Date.now();
    const fns = await c.functions.list();
    assert.deepEqual(fns, [{ name: 'f' }]);
    assert.equal(s.seen.length, 3, 'two retries');
    assert.ok(s.seen[1].at - s.seen[0].at >= 950, `waited Retry-After: 1 (${s.seen[1].at - s.seen[0].at} ms)`);
    assert.ok(Date.now() - started < 5000);
    assert.equal(s.seen[0].url, '/api/v1/tenants/t/functions');
  } finally {
    await s.close();
  }
});

test('retries stop at maxRetries and surface the typed error', async () => {
  const s = await scripted([limited('0')]);
  try {
    const c = new Client({ apiKey: 'k', baseURL: s.url, tenant: 't', maxRetries: 2 });
    const err = await c.keys.list().catch((e) => e);
    assert.ok(err instanceof RateLimitError, `${err}`);
    assert.equal(err.status, 429);
    assert.equal(err.code, 'rate_limited');
    assert.equal(err.message, 'slow down');
    assert.equal(err.requestId, 'req-1');
    assert.equal(err.retryAfter, 0);
    assert.equal(s.seen.length, 3, '1 + maxRetries attempts');
  } finally {
    await s.close();
  }
});

test('a 503 without Retry-After backs off exponentially (with jitter)', async () => {
  const s = await scripted([unavailable(), unavailable(), ok]);
  try {
    const c = new Client({ apiKey: 'k', baseURL: s.url, tenant: 't' });
    await c.functions.list();
    const waits = [s.seen[1].at - s.seen[0].at, s.seen[2].at - s.seen[1].at];
    // Lower bounds exact (the waits happened and doubled); upper bounds leave room for a busy machine.
    assert.ok(waits[0] >= 240 && waits[0] <= 2000, `first backoff in [250, 500] ms: ${waits}`);
    assert.ok(waits[1] >= 490 && waits[1] <= 3000, `second backoff in [500, 1000] ms: ${waits}`);
  } finally {
    await s.close();
  }
});

test('non-idempotent calls are sent once', async () => {
  const s = await scripted([unavailable('0')]);
  try {
    const c = new Client({ apiKey: 'k', baseURL: s.url, tenant: 't', maxRetries: 3 });
    const err = await c.functions.invoke('f', { x: 1 }).catch((e) => e);
    assert.ok(err instanceof InternalServerError, `${err}`);
    assert.equal(err.status, 503);
    assert.equal(err.code, 'capacity_exhausted');
    assert.equal(s.seen.length, 1, 'an invocation is not retried');
    await assert.rejects(c.events.replay('e'), InternalServerError);
    assert.equal(s.seen.length, 2, 'nor is a replay');
  } finally {
    await s.close();
  }
});

test('a network failure is retried for idempotent calls only', async () => {
  const drop = (req, res) => res.socket.destroy();
  const s = await scripted([drop, ok, drop]);
  try {
    const c = new Client({ apiKey: 'k', baseURL: s.url, tenant: 't', maxRetries: 2 });
    assert.deepEqual(await c.functions.list(), [{ name: 'f' }]);
    assert.equal(s.seen.length, 2, 'retried after the dropped connection');
    const err = await c.functions.invoke('f', {}).catch((e) => e);
    assert.ok(err instanceof APIConnectionError, `${err}`);
    assert.equal(s.seen.length, 3, 'an invocation is not retried');
  } finally {
    await s.close();
  }
  const closed = new Client({ apiKey: 'k', baseURL: s.url, tenant: 't', maxRetries: 0 });
  const err = await closed.functions.list().catch((e) => e);
  assert.ok(err instanceof APIConnectionError, `${err}`);
  assert.match(err.message, /ECONNREFUSED|fetch failed/);
});

test('a request slower than the timeout is an APITimeoutError', async () => {
  const s = await scripted([(req, res) => setTimeout(() => ok(req, res), 2000)]);
  try {
    const c = new Client({ apiKey: 'k', baseURL: s.url, tenant: 't', timeout: 200, maxRetries: 0 });
    const started = Date.now();
    const err = await c.functions.list().catch((e) => e);
    assert.ok(err instanceof APITimeoutError && err instanceof APIConnectionError, `${err}`);
    assert.ok(Date.now() - started < 1900, 'gave up at the timeout, before the answer');
  } finally {
    await s.close();
  }
});
