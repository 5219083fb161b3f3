// The function's logic: JSON event in, JSON value out, or a typed FunctionError. It
// imports only '@helixflow/guest/core', so `node --test` runs it outside the component.
import { FunctionError } from '@helixflow/guest/core';

/** {"name": "Ada"} -> {"greeting": "hello, Ada", "requestId": ...}. */
export function handle(event, context) {
  if (typeof event?.name !== 'string' || event.name === '') {
    throw new FunctionError('ValidationError', 'the event needs a non-empty "name" string');
  }
  return { greeting: `hello, ${event.name}`, requestId: context.requestId };
}
