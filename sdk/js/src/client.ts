/**
 * `Client`: one object for everything a HelixFlow node serves.
 *
 * `client.chat.completions` and `client.embeddings` are the official `openai`
 * package's own resources pointed at `{baseURL}/v1`, so they behave exactly like it
 * (streaming, errors, retries); the rest is HelixFlow's control plane.
 */

import { OpenAI } from 'openai';
import { Transport, VERSION } from './core.js';
import { HelixFlowError, InvalidArgumentError } from './errors.js';
import {
  AccessKeys,
  Aliases,
  Analytics,
  type ClientContext,
  Events,
  Functions,
  Keys,
  Models,
  type TenantOptions,
  Tenants,
  Usage,
} from './resources.js';
import type { WhoAmI } from './types.js';

export interface ClientOptions {
  /** An API key (`hfk_...`), a JWT or the platform admin key (default: `HELIXFLOW_API_KEY`). */
  apiKey?: string;
  /** The node (default: `HELIXFLOW_BASE_URL`, else `http://127.0.0.1:8080`). */
  baseURL?: string;
  /**
   * The tenant of control-plane calls (default: `HELIXFLOW_TENANT`, else the `tenant`
   * claim of a JWT `apiKey`). Without one, the key's own tenant is asked of the node
   * once, on the first tenant-scoped call (`client.whoami()`); the platform admin key
   * has none, so it names the tenant (here, or per call with `{ tenant }`).
   */
  tenant?: string;
  /** Milliseconds per attempt of a request (default 60000). */
  timeout?: number;
  /** Retries of idempotent calls after a 429, 503 or network failure (default 2). */
  maxRetries?: number;
  /** Headers sent with every request. */
  defaultHeaders?: Record<string, string>;
  /** A `fetch` implementation (default: the global one). */
  fetch?: typeof fetch;
}

const DEFAULT_BASE_URL = 'http://127.0.0.1:8080';

/** The `tenant` claim of a JWT (not verified: the node does that), if `key` is one. */
function tenantOfJwt(key: string): string | undefined {
  const parts = key.split('.');
  if (parts.length !== 3) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8'));
    return typeof claims?.tenant === 'string' && claims.tenant ? claims.tenant : undefined;
  } catch {
    return undefined;
  }
}

function env(name: string): string | undefined {
  const v = typeof process !== 'undefined' ? process.env?.[name] : undefined;
  return v === undefined || v === '' ? undefined : v;
}

export class Client {
  readonly apiKey: string;
  readonly baseURL: string;
  readonly tenant: string | undefined;
  readonly timeout: number;
  readonly maxRetries: number;

  /** The official OpenAI client for this node's `/v1` (models, embeddings, chat). */
  readonly openai: OpenAI;
  /** `client.chat.completions.create({...})`, streaming too: the `openai` package's own. */
  readonly chat: OpenAI['chat'];
  /** `client.embeddings.create({...})`: the `openai` package's own. */
  readonly embeddings: OpenAI['embeddings'];

  readonly functions: Functions;
  readonly aliases: Aliases;
  readonly models: Models;
  readonly keys: Keys;
  readonly accessKeys: AccessKeys;
  readonly events: Events;
  readonly tenants: Tenants;
  readonly usage: Usage;
  readonly analytics: Analytics;

  /** @internal */
  readonly transport: Transport;
  private readonly options: ClientOptions;
  private me: Promise<WhoAmI> | undefined;

  constructor(options: ClientOptions = {}) {
    const apiKey = options.apiKey ?? env('HELIXFLOW_API_KEY');
    if (!apiKey) {
      throw new InvalidArgumentError(
        'apiKey is required: pass new Client({ apiKey }) or set HELIXFLOW_API_KEY (an hfk_ key, a JWT or the admin key)',
      );
    }
    const baseURL = (options.baseURL ?? env('HELIXFLOW_BASE_URL') ?? DEFAULT_BASE_URL).replace(/\/+$/, '');
    if (!/^https?:\/\/[^/]+/.test(baseURL)) {
      throw new InvalidArgumentError(`baseURL ${JSON.stringify(baseURL)} is not an http(s) URL`);
    }
    const timeout = options.timeout ?? 60_000;
    const maxRetries = options.maxRetries ?? 2;
    if (!(timeout > 0)) throw new InvalidArgumentError('timeout must be a positive number of milliseconds');
    if (!Number.isInteger(maxRetries) || maxRetries < 0) {
      throw new InvalidArgumentError('maxRetries must be a whole number >= 0');
    }
    const fetchImpl = options.fetch ?? globalThis.fetch;
    if (typeof fetchImpl !== 'function') {
      throw new HelixFlowError('no fetch: use Node.js 20 or later, or pass { fetch }');
    }
    this.options = options;
    this.apiKey = apiKey;
    this.baseURL = baseURL;
    this.tenant = options.tenant ?? env('HELIXFLOW_TENANT') ?? tenantOfJwt(apiKey);
    this.timeout = timeout;
    this.maxRetries = maxRetries;
    this.transport = new Transport({
      apiKey,
      baseURL,
      timeout,
      maxRetries,
      fetch: fetchImpl.bind(globalThis),
      defaultHeaders: options.defaultHeaders ?? {},
    });
    this.openai = new OpenAI({
      apiKey,
      baseURL: `${baseURL}/v1`,
      // The platform admin key names the tenant as the OpenAI organization.
      organization: this.tenant ?? null,
      timeout,
      maxRetries,
      defaultHeaders: { 'user-agent': `helixflow-js/${VERSION}`, ...options.defaultHeaders },
      ...(options.fetch ? { fetch: options.fetch } : {}),
    });
    this.chat = this.openai.chat;
    this.embeddings = this.openai.embeddings;
    const ctx: ClientContext = {
      transport: this.transport,
      tenantFor: (opts: TenantOptions | undefined, call: string) => this.tenantFor(opts, call),
    };
    this.functions = new Functions(ctx);
    this.aliases = new Aliases(ctx);
    this.models = new Models(ctx);
    this.keys = new Keys(ctx);
    this.accessKeys = new AccessKeys(ctx);
    this.events = new Events(ctx);
    this.tenants = new Tenants(ctx);
    this.usage = new Usage(ctx);
    this.analytics = new Analytics(ctx);
  }

  /** A client like this one with some options changed (e.g. `{ tenant: 'acme' }`). */
  withOptions(options: ClientOptions): Client {
    return new Client({
      ...this.options,
      apiKey: this.apiKey,
      baseURL: this.baseURL,
      tenant: this.tenant,
      timeout: this.timeout,
      maxRetries: this.maxRetries,
      ...options,
    });
  }

  /** `GET /healthz`: `{ status: "ok", location }`. */
  async health(): Promise<{ status: string; location: string }> {
    return this.transport.json('GET', '/healthz');
  }

  /**
   * `GET /api/v1/whoami`: the key's tenant (`null` for the platform admin key), role,
   * subject and kind. Asked once per client and kept (concurrent callers share the one
   * request; a failure is not kept).
   */
  whoami(): Promise<WhoAmI> {
    if (!this.me) {
      const me: Promise<WhoAmI> = this.transport.json('GET', '/api/v1/whoami');
      this.me = me;
      me.catch(() => {
        if (this.me === me) this.me = undefined;
      });
    }
    return this.me;
  }

  private async tenantFor(options: TenantOptions | undefined, call: string): Promise<string> {
    const named = options?.tenant ?? this.tenant;
    if (named) return named;
    const { tenant } = await this.whoami();
    if (!tenant) {
      throw new InvalidArgumentError(
        `${call} needs a tenant and the platform admin key has none of its own: pass { tenant } to the ` +
          'Client (or to this call) or set HELIXFLOW_TENANT',
      );
    }
    return tenant;
  }
}
