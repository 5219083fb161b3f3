// Lambda-style event functions: `helixflow:function/event-handler@0.1.0`.
//
//   import { eventHandler, FunctionError } from '@helixflow/guest';
//   export const eventHandler = jsonEventHandler((event, ctx) => ({ hello: event.name }));
//
// The context is the invocation's: { requestId, tenant, functionName, functionVersion,
// deadlineUnixMs (BigInt), memoryLimitMb, clientContext (string or undefined) }.

import { FunctionError, describeError, toBytes } from './core.js';

const decoder = new TextDecoder();

function failure(e) {
  if (!(e instanceof FunctionError)) console.error(`handler failed: ${e?.stack ?? e}`);
  const { errorType, message } = describeError(e);
  // componentize-js turns a thrown value into the `err` of the export's result; its
  // `payload` is the `function-error` record.
  const err = new Error(message);
  err.payload = { errorType, message };
  return err;
}

/**
 * Wraps `handler` (`(event: Uint8Array, context) => Uint8Array | string`) as the
 * `helixflow:function/event-handler` export. A thrown `FunctionError` is reported with
 * its type and message; any other error with its name (e.g. `TypeError`).
 */
export function eventHandler(handler) {
  if (typeof handler !== 'function') throw new TypeError('eventHandler takes a function (event, context) => bytes');
  return {
    handle(event, context) {
      try {
        const out = handler(event, context);
        if (out && typeof out.then === 'function') {
          throw new TypeError('the handler returned a Promise: HelixFlow JS handlers are synchronous');
        }
        return toBytes(out);
      } catch (e) {
        throw failure(e);
      }
    },
  };
}

/**
 * Like `eventHandler`, with JSON in and out: the event is parsed (an `InvalidJson`
 * function error when it is not JSON) and the returned value serialised.
 */
export function jsonEventHandler(handler) {
  if (typeof handler !== 'function') throw new TypeError('jsonEventHandler takes a function (event, context) => value');
  return eventHandler((bytes, context) => {
    let event;
    try {
      event = bytes.byteLength === 0 ? null : JSON.parse(decoder.decode(bytes));
    } catch (e) {
      throw new FunctionError('InvalidJson', `the event is not JSON: ${e.message}`);
    }
    const out = handler(event, context);
    if (out && typeof out.then === 'function') {
      throw new TypeError('the handler returned a Promise: HelixFlow JS handlers are synchronous');
    }
    return JSON.stringify(out ?? null);
  });
}
