// Unit tests of the handler, in plain Node.js: `npm test` (node --test).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Request } from '@helixflow/guest/core';
import { handle } from '../src/handler.js';

test('GET greets by name and echoes the path', () => {
  const resp = handle(new Request({ method: 'GET', pathWithQuery: '/x?name=Ada' }));
  assert.equal(resp.status, 200);
  assert.equal(resp.text(), 'hello, Ada, from {{name}} at /x\n');
});

test('POST echoes a JSON body', () => {
  const resp = handle(new Request({ method: 'POST', body: '{"n":1}' }));
  assert.equal(resp.status, 200);
  assert.deepEqual(JSON.parse(resp.text()), { received: { n: 1 } });
});

test('POST with a body that is not JSON is a 400', () => {
  const resp = handle(new Request({ method: 'POST', body: 'nope' }));
  assert.equal(resp.status, 400);
  assert.equal(JSON.parse(resp.text()).error.code, 'invalid_json');
});
