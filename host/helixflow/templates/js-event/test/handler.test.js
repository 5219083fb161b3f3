// Unit tests of the handler, in plain Node.js: `npm test` (node --test).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FunctionError } from '@helixflow/guest/core';
import { handle } from '../src/handler.js';

const context = { requestId: 'req-1', tenant: 't', functionName: '{{name}}', functionVersion: 1 };

test('greets by name', () => {
  assert.deepEqual(handle({ name: 'Ada' }, context), { greeting: 'hello, Ada', requestId: 'req-1' });
});

test('an event without a name is a ValidationError', () => {
  assert.throws(
    () => handle({}, context),
    (e) => e instanceof FunctionError && e.errorType === 'ValidationError',
  );
});
