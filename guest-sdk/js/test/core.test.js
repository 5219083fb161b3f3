// Unit tests of the SDK's WASI-free core, in plain Node.js: `npm test` (node --test).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FunctionError, NnError, Outputs, Request, Response, Tensor, describeError } from '../src/core.js';

test('Request: path, query, headers, body', () => {
  const req = new Request({
    method: 'POST',
    pathWithQuery: '/a/b?x=1&y=two',
    headers: [['Content-Type', 'application/json']],
    body: '{"k":[1]}',
  });
  assert.equal(req.path, '/a/b');
  assert.equal(req.query, 'x=1&y=two');
  assert.equal(req.searchParams.get('y'), 'two');
  assert.equal(req.header('content-type'), 'application/json');
  assert.equal(req.header('missing'), undefined);
  assert.deepEqual(req.json(), { k: [1] });
  assert.equal(new Request().path, '/');
});

test('Response: text, json, error shape, headers', () => {
  assert.equal(Response.text(200, 'hi').header('content-type'), 'text/plain; charset=utf-8');
  const r = Response.error(400, 'bad', 'no');
  assert.equal(r.status, 400);
  assert.deepEqual(JSON.parse(r.text()), { error: { code: 'bad', message: 'no' } });
  assert.equal(new Response(204).withHeader('x-a', 'b').header('X-A'), 'b');
  assert.throws(() => new Response(42), RangeError);
  assert.throws(() => new Response(200, 12), TypeError);
});

test('typed errors', () => {
  assert.deepEqual(describeError(new FunctionError('Nope', 'why')), { errorType: 'Nope', message: 'why' });
  assert.deepEqual(describeError(new TypeError('t')), { errorType: 'TypeError', message: 't' });
  assert.deepEqual(describeError('plain'), { errorType: 'Error', message: 'plain' });
  assert.equal(new FunctionError('A', 'b', { status: 409 }).status, 409);
});

test('Tensor: typed arrays are viewed, not copied', () => {
  const values = new Float32Array([1.5, -2, 3.25, 4]);
  const t = Tensor.fromFloat32([2, 2], values);
  assert.equal(t.data.buffer, values.buffer);
  assert.equal(t.type, 'FP32');
  const back = t.toFloat32();
  assert.equal(back.buffer, values.buffer);
  assert.deepEqual(Array.from(back), [1.5, -2, 3.25, 4]);
});

test('Tensor: plain arrays, every type, checks', () => {
  assert.deepEqual(Tensor.fromInt64([3], [1, 2, -3]).toArray(), [1n, 2n, -3n]);
  assert.deepEqual(Tensor.fromInt32([2], [7, -7]).toArray(), [7, -7]);
  assert.deepEqual(Tensor.fromUint8([2], [0, 255]).toArray(), [0, 255]);
  assert.deepEqual(Tensor.fromFloat64([1], [0.1]).toArray(), [0.1]);
  assert.equal(Tensor.from('fp16', [1], new Uint16Array([0x3c00])).type, 'FP16');
  // Little-endian bytes.
  assert.deepEqual(Array.from(Tensor.fromInt32([1], [1]).data), [1, 0, 0, 0]);
  assert.throws(() => Tensor.fromFloat32([3], [1, 2]), (e) => e instanceof NnError && e.code === 'invalid-argument');
  assert.throws(() => Tensor.fromFloat32([1], [1]).toInt32(), /FP32, not I32/);
  assert.throws(() => Tensor.from('f8', [1], [1]), /unknown tensor type/);
  // An unaligned view is copied, not misread.
  const bytes = new Uint8Array(9);
  new DataView(bytes.buffer).setFloat32(1, 2.5, true);
  assert.deepEqual(Array.from(new Tensor('FP32', [1], bytes.subarray(1, 5)).toFloat32()), [2.5]);
});

test('Outputs: by name, a clear error otherwise', () => {
  const out = new Outputs([['logits', Tensor.fromFloat32([1], [1])]]);
  assert.equal(out.get('logits').length, 1);
  assert.throws(() => out.get('nope'), (e) => e.code === 'not-found' && /outputs: logits/.test(e.message));
});
