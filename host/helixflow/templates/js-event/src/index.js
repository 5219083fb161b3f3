// The component's entry: exports src/handler.js as helixflow:function/event-handler
// (JSON in and out; a thrown FunctionError is the caller's function error).
import { jsonEventHandler } from '@helixflow/guest';
import { handle } from './handler.js';

export const eventHandler = jsonEventHandler(handle);
