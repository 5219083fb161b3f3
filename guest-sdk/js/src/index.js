// @helixflow/guest: write HelixFlow functions in JavaScript (componentize-js).
//
// HTTP:   export const incomingHandler = httpHandler((req) => Response.text(200, 'hi'));
// Event:  export const eventHandler = jsonEventHandler((event, ctx) => ({ ok: true }));
// Models: Graph.loadByName(name).context().compute({ input: Tensor.fromFloat32(dims, data) })
// LLMs:   Sequence.open(model).feed(tokenIds)
//
// Everything without a WASI import is also in '@helixflow/guest/core' (plain Node.js can
// load it, for unit tests).

export * from './core.js';
export { httpHandler, errorResponse, MAX_BUFFERED_BODY } from './http.js';
export { eventHandler, jsonEventHandler } from './event.js';
export { Graph, Context } from './nn.js';
export { Sequence } from './llm.js';
