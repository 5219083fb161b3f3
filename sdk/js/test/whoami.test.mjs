// A key's own tenant: without a named tenant, the client asks GET /api/v1/whoami once
// and works in the answer's tenant; the platform admin key (no tenant) must name one.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { test } from 'node:test';
import { AuthenticationError, Client, InvalidArgumentError } from 'helixflow';
import { admin, baseURL, env, guest, tenant, uniq } from './helpers.mjs';

/** A `fetch` that records the path of every request. */
function recording() {
  const paths = [];
  const fetchImpl = (input, init) => {
    paths.push(new URL(input instanceof Request ? input.url : String(input)).pathname);
    return fetch(input, init);
  };
  return { paths, fetch: fetchImpl };
}

test("a tenant key with no tenant named works in its own tenant, asking whoami once", async () => {
  const r = recording();
  const c = new Client({ apiKey: env('HELIXFLOW_TEST_KEY'), baseURL: baseURL(), fetch: r.fetch });
  assert.equal(c.tenant, undefined);
  const name = uniq('js-found');
  // Concurrent first calls share the one whoami request.
  const [deployed, me] = await Promise.all([c.functions.deploy(name, guest('hello')), c.whoami(), c.keys.list()]);
  assert.equal(deployed.version.function, name);
  assert.equal(me.tenant, tenant());
  assert.equal(me.role, 'admin');
  assert.equal(me.via, 'api_key');
  assert.ok(me.subject && me.subject !== 'platform-admin', me.subject);
  const names = (await c.functions.list()).map((f) => f.name);
  assert.ok(names.includes(name), `${names}`);
  assert.equal((await c.functions.get(name)).function.name, name);
  assert.deepEqual(await c.whoami(), me);
  assert.equal(r.paths.filter((p) => p === '/api/v1/whoami').length, 1, `${r.paths}`);
  assert.ok(r.paths.includes(`/api/v1/tenants/${tenant()}/functions/${name}`), `${r.paths}`);
  await c.functions.delete(name);
});

test('a named tenant wins: no whoami is sent', async () => {
  const r = recording();
  const c = new Client({ apiKey: env('HELIXFLOW_TEST_KEY'), baseURL: baseURL(), tenant: tenant(), fetch: r.fetch });
  await c.functions.list();
  assert.deepEqual(r.paths, [`/api/v1/tenants/${tenant()}/functions`]);
});

test('the platform admin with no tenant is told to name one, before anything tenant-scoped is sent', async () => {
  const r = recording();
  const c = admin({ fetch: r.fetch });
  for (const call of [() => c.functions.list(), () => c.usage.query()]) {
    const err = await call().catch((e) => e);
    assert.ok(err instanceof InvalidArgumentError, `${err}`);
    assert.match(err.message, /needs a tenant and the platform admin key has none of its own: pass \{ tenant \}/);
  }
  assert.deepEqual(await c.whoami(), { tenant: null, role: 'admin', subject: 'platform-admin', via: 'admin_key' });
  assert.deepEqual(r.paths, ['/api/v1/whoami'], 'only whoami was sent');
  // Named per call (or with withOptions), the same client works in any tenant.
  assert.ok(Array.isArray(await c.functions.list({ tenant: tenant() })));
});

test('a failed whoami is not kept: the next call asks again', async () => {
  let n = 0;
  const server = createServer((req, res) => {
    n++;
    req.resume();
    const [status, body] =
      n === 1
        ? [401, { error: { code: 'unauthorized', message: 'bad key' } }]
        : req.url === '/api/v1/whoami'
          ? [200, { tenant: 'acme', role: 'viewer', subject: 's', via: 'jwt' }]
          : [200, { functions: [{ name: 'f', path: req.url }] }];
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  try {
    const c = new Client({ apiKey: 'k', baseURL: `http://127.0.0.1:${server.address().port}`, maxRetries: 0 });
    assert.ok((await c.functions.list().catch((e) => e)) instanceof AuthenticationError);
    assert.deepEqual(await c.functions.list(), [{ name: 'f', path: '/api/v1/tenants/acme/functions' }]);
    assert.equal(n, 3);
  } finally {
    server.closeAllConnections();
    await new Promise((ok) => server.close(ok));
  }
});
