// CommonJS: require('helixflow') loads the CommonJS build, with the same surface.
const assert = require('node:assert/strict');
const { test } = require('node:test');
const HelixFlow = require('helixflow');

function env(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run these tests through tests/e2e/sdk_js.rs (scripts/test.sh)`);
  return v;
}

test("require('helixflow') works against the node", async () => {
  assert.match(require.resolve('helixflow'), /dist[\\/]cjs[\\/]index\.js$/);
  assert.equal(typeof HelixFlow.Client, 'function');
  assert.equal(HelixFlow.default, HelixFlow.Client);
  const client = new HelixFlow.Client({
    apiKey: env('HELIXFLOW_TEST_KEY'),
    baseURL: env('HELIXFLOW_BASE_URL'),
    tenant: env('HELIXFLOW_TEST_TENANT'),
  });
  assert.equal((await client.health()).status, 'ok');
  assert.ok(Array.isArray(await client.functions.list()));
  const err = await client.functions.get('js-cjs-missing').catch((e) => e);
  assert.ok(err instanceof HelixFlow.NotFoundError && err instanceof HelixFlow.APIError, `${err}`);
  assert.equal(err.code, 'not_found');
  assert.equal(typeof client.chat.completions.create, 'function');
  assert.equal(typeof client.embeddings.create, 'function');
});
