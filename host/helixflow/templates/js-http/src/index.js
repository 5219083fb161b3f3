// The component's entry: exports src/handler.js as wasi:http/incoming-handler.
import { httpHandler } from '@helixflow/guest';
import { handle } from './handler.js';

export const incomingHandler = httpHandler(handle);
