/**
 * HelixFlow's JavaScript / TypeScript client.
 *
 * ```js
 * const HelixFlow = require('helixflow');            // or: import { Client } from 'helixflow'
 * const client = new HelixFlow.Client({ apiKey: 'your-key' });
 * ```
 */

import { OpenAI } from 'openai';
import { Client } from './client.js';

export { Client, type ClientOptions } from './client.js';
export {
  APIConnectionError,
  APIError,
  APITimeoutError,
  AuthenticationError,
  BadRequestError,
  ConflictError,
  FunctionError,
  HelixFlowError,
  InternalServerError,
  InvalidArgumentError,
  NotFoundError,
  PayloadTooLargeError,
  PermissionDeniedError,
  RateLimitError,
} from './errors.js';
export { type CallOptions, type ProgressCallback, type UploadSource, VERSION } from './core.js';
export type * from './resources.js';
export type * from './types.js';
/** The official `openai` package this client builds chat and embeddings on (its error classes too). */
export { OpenAI };
export default Client;
