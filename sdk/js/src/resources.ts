/**
 * The control plane (`/api/v1/...`) and the invoke routes, one class per resource.
 * Every method checks its required arguments before sending anything, and takes the
 * tenant from its options (`{ tenant }`), else from the client (named, or its key's own).
 */

import { HelixFlowError, InvalidArgumentError } from './errors.js';
import {
  type CallOptions,
  type ProgressCallback,
  type RawResponse,
  type Transport,
  type UploadSource,
  Upload,
  required,
  seg,
} from './core.js';
import type {
  AccessKey,
  Alias,
  ApiKey,
  AsyncInvocation,
  Dashboard,
  DashboardSpec,
  DeployResult,
  EventRecord,
  FunctionConfig,
  FunctionDetails,
  FunctionInfo,
  LogEntry,
  Model,
  ModelConfig,
  Role,
  Tenant,
  TenantLimits,
  UsageQuery,
  UsageResult,
  Version,
} from './types.js';

/** Options of a tenant-scoped call. */
export interface TenantOptions extends CallOptions {
  /** The tenant (default: the client's). */
  tenant?: string;
}

/** What a resource needs from the client. */
export interface ClientContext {
  readonly transport: Transport;
  /**
   * The tenant for `call`: named, else the key's own (asked once with `whoami`); rejects
   * with a clear error, before anything tenant-scoped is sent, when there is none.
   */
  tenantFor(options: TenantOptions | undefined, call: string): Promise<string>;
}

const API = '/api/v1';

abstract class Resource {
  constructor(protected readonly ctx: ClientContext) {}

  protected get http(): Transport {
    return this.ctx.transport;
  }

  /** `/api/v1/tenants/{tenant}` for `call`. */
  protected async base(options: TenantOptions | undefined, call: string): Promise<string> {
    return `${API}/tenants/${seg(await this.ctx.tenantFor(options, call))}`;
  }
}

function call(opts: CallOptions | undefined): CallOptions {
  return { signal: opts?.signal, timeout: opts?.timeout, maxRetries: opts?.maxRetries };
}

/** A payload as a request body: bytes as they are, anything else as JSON. */
function payloadBody(payload: unknown): { body?: Uint8Array | string; headers: Record<string, string> } {
  if (payload === undefined) return { headers: {} };
  if (payload instanceof Uint8Array) return { body: payload, headers: { 'content-type': 'application/octet-stream' } };
  if (payload instanceof ArrayBuffer)
    return { body: new Uint8Array(payload), headers: { 'content-type': 'application/octet-stream' } };
  return { body: JSON.stringify(payload), headers: { 'content-type': 'application/json' } };
}

/** A function's output: parsed JSON when it is JSON, else the bytes. */
function output(r: RawResponse): unknown {
  const ct = r.headers.get('content-type') ?? '';
  if (ct.includes('json')) {
    const text = new TextDecoder().decode(r.body);
    try {
      return JSON.parse(text);
    } catch {
      return text;
    }
  }
  return r.body;
}

function versionNumber(v: number, what: string): number {
  if (!Number.isInteger(v) || v < 1) throw new InvalidArgumentError(`${what} must be a version number (1, 2, ...)`);
  return v;
}

export interface DeployOptions extends TenantOptions {
  /** Point this alias (e.g. `live`) at the new version. */
  alias?: string;
  description?: string;
  /** Memory, timeout, env, async settings... (capped by the tenant's limits). */
  config?: FunctionConfig;
  /** Called as the component uploads: `(sentBytes, totalBytes)`. */
  onProgress?: ProgressCallback;
}

export interface InvokeOptions extends TenantOptions {
  /** A version number or alias (default: `live`, else the latest version). */
  qualifier?: string | number;
  /** A JSON object the function sees as its client context. */
  clientContext?: Record<string, unknown>;
}

/** Functions: deploy, list, get, delete, invoke (sync and as an Event), logs, config. */
export class Functions extends Resource {
  /**
   * Deploys a component (a `.wasm` file path, or its bytes) as a new version of
   * `name`. Not retried.
   */
  async deploy(name: string, source: UploadSource, options?: DeployOptions): Promise<DeployResult> {
    required(name, 'functions.deploy: name (the function)');
    required(source, 'functions.deploy: source (a .wasm path or the component bytes)');
    const base = await this.base(options, 'functions.deploy');
    const upload = await Upload.of(source, 'functions.deploy', options?.onProgress);
    const headers: Record<string, string> = {};
    if (options?.config) headers['x-helixflow-config'] = JSON.stringify(options.config);
    return this.http.json('POST', `${base}/functions/${seg(name)}/versions`, {
      ...call(options),
      query: { alias: options?.alias, description: options?.description },
      headers,
      body: upload,
    });
  }

  async list(options?: TenantOptions): Promise<FunctionInfo[]> {
    const r = await this.http.json('GET', `${await this.base(options, 'functions.list')}/functions`, call(options));
    return r.functions;
  }

  /** The function with its versions and aliases. */
  async get(name: string, options?: TenantOptions): Promise<FunctionDetails> {
    required(name, 'functions.get: name');
    return this.http.json('GET', `${await this.base(options, 'functions.get')}/functions/${seg(name)}`, call(options));
  }

  async delete(name: string, options?: TenantOptions): Promise<{ deleted: boolean; versions: number }> {
    required(name, 'functions.delete: name');
    return this.http.json('DELETE', `${await this.base(options, 'functions.delete')}/functions/${seg(name)}`, call(options));
  }

  async versions(name: string, options?: TenantOptions): Promise<Version[]> {
    required(name, 'functions.versions: name');
    const r = await this.http.json(
      'GET',
      `${await this.base(options, 'functions.versions')}/functions/${seg(name)}/versions`,
      call(options),
    );
    return r.versions;
  }

  async getVersion(name: string, version: number, options?: TenantOptions): Promise<Version> {
    required(name, 'functions.getVersion: name');
    versionNumber(required(version, 'functions.getVersion: version'), 'functions.getVersion: version');
    return this.http.json(
      'GET',
      `${await this.base(options, 'functions.getVersion')}/functions/${seg(name)}/versions/${version}`,
      call(options),
    );
  }

  async deleteVersion(name: string, version: number, options?: TenantOptions): Promise<{ deleted: boolean }> {
    required(name, 'functions.deleteVersion: name');
    versionNumber(required(version, 'functions.deleteVersion: version'), 'functions.deleteVersion: version');
    return this.http.json(
      'DELETE',
      `${await this.base(options, 'functions.deleteVersion')}/functions/${seg(name)}/versions/${version}`,
      call(options),
    );
  }

  async getConfig(name: string, options?: TenantOptions): Promise<FunctionConfig> {
    required(name, 'functions.getConfig: name');
    return this.http.json('GET', `${await this.base(options, 'functions.getConfig')}/functions/${seg(name)}/config`, call(options));
  }

  /** Replaces the function's config (memory, timeout, env, async_invoke, schedules...). */
  async setConfig(name: string, config: FunctionConfig, options?: TenantOptions): Promise<FunctionInfo> {
    required(name, 'functions.setConfig: name');
    required(config, 'functions.setConfig: config');
    return this.http.json('PUT', `${await this.base(options, 'functions.setConfig')}/functions/${seg(name)}/config`, {
      ...call(options),
      json: config,
    });
  }

  /**
   * Runs the function's event handler with `payload` and returns its output (parsed
   * when it is JSON, else the bytes). `payload` is sent as JSON unless it is a
   * Uint8Array / ArrayBuffer (sent as is). A handled error is a `FunctionError` (422).
   * Not retried.
   */
  async invoke(name: string, payload?: unknown, options?: InvokeOptions): Promise<unknown> {
    required(name, 'functions.invoke: name');
    const tenant = await this.ctx.tenantFor(options, 'functions.invoke');
    const q = options?.qualifier;
    const target = q === undefined ? seg(name) : `${seg(name)}@${seg(String(q))}`;
    const { body, headers } = payloadBody(payload);
    if (options?.clientContext) headers['x-helixflow-client-context'] = JSON.stringify(options.clientContext);
    const r = await this.http.request('POST', `/invoke/${seg(tenant)}/${target}`, { ...call(options), body, headers });
    return output(r);
  }

  /**
   * Queues an Event (asynchronous) invocation: stored durably by the node, run at least
   * once, retried and dead-lettered per the function's `async_invoke` config. `payload`
   * must be JSON-serialisable (the Invoke API's rule). Returns the event id; follow it
   * with `client.events.get(id)`. Not retried.
   */
  async invokeAsync(name: string, payload?: unknown, options?: InvokeOptions): Promise<AsyncInvocation> {
    required(name, 'functions.invokeAsync: name');
    if (payload instanceof Uint8Array || payload instanceof ArrayBuffer) {
      throw new InvalidArgumentError('functions.invokeAsync: payload must be JSON-serialisable (not bytes)');
    }
    const tenant = await this.ctx.tenantFor(options, 'functions.invokeAsync');
    const { body, headers } = payloadBody(payload);
    headers['x-amz-invocation-type'] = 'Event';
    if (options?.clientContext) {
      headers['x-amz-client-context'] = Buffer.from(JSON.stringify(options.clientContext)).toString('base64');
    }
    const r = await this.http.request('POST', `/2015-03-31/functions/${seg(`${tenant}:function:${name}`)}/invocations`, {
      ...call(options),
      query: { Qualifier: options?.qualifier === undefined ? undefined : String(options.qualifier) },
      body,
      headers,
    });
    const id = r.headers.get('x-amzn-requestid');
    if (!id) throw new HelixFlowError(`functions.invokeAsync: the node answered ${r.status} without an event id`);
    const v = r.headers.get('x-amz-executed-version');
    return { id, version: v === null ? undefined : Number(v) };
  }

  /** Recent invocations with their captured stdout/stderr (newest first). */
  async logs(name: string, options?: TenantOptions & { limit?: number }): Promise<LogEntry[]> {
    required(name, 'functions.logs: name');
    const r = await this.http.json('GET', `${await this.base(options, 'functions.logs')}/functions/${seg(name)}/logs`, {
      ...call(options),
      query: { limit: options?.limit },
    });
    return r.logs;
  }
}

/** A function's aliases (e.g. `live`): names for versions, with rollback. */
export class Aliases extends Resource {
  async list(fn: string, options?: TenantOptions): Promise<Alias[]> {
    required(fn, 'aliases.list: function');
    const r = await this.http.json('GET', `${await this.base(options, 'aliases.list')}/functions/${seg(fn)}/aliases`, call(options));
    return r.aliases;
  }

  async get(fn: string, alias: string, options?: TenantOptions): Promise<Alias> {
    required(fn, 'aliases.get: function');
    required(alias, 'aliases.get: alias');
    return this.http.json(
      'GET',
      `${await this.base(options, 'aliases.get')}/functions/${seg(fn)}/aliases/${seg(alias)}`,
      call(options),
    );
  }

  /** Points `alias` at `version`. */
  async set(fn: string, alias: string, version: number, options?: TenantOptions): Promise<Alias> {
    required(fn, 'aliases.set: function');
    required(alias, 'aliases.set: alias');
    versionNumber(required(version, 'aliases.set: version'), 'aliases.set: version');
    return this.http.json('PUT', `${await this.base(options, 'aliases.set')}/functions/${seg(fn)}/aliases/${seg(alias)}`, {
      ...call(options),
      json: { version },
    });
  }

  /** Points `alias` back at the version it named before. */
  async rollback(fn: string, alias: string, options?: TenantOptions): Promise<Alias> {
    required(fn, 'aliases.rollback: function');
    required(alias, 'aliases.rollback: alias');
    return this.http.json(
      'POST',
      `${await this.base(options, 'aliases.rollback')}/functions/${seg(fn)}/aliases/${seg(alias)}/rollback`,
      call(options),
    );
  }

  async delete(fn: string, alias: string, options?: TenantOptions): Promise<{ deleted: boolean }> {
    required(fn, 'aliases.delete: function');
    required(alias, 'aliases.delete: alias');
    return this.http.json(
      'DELETE',
      `${await this.base(options, 'aliases.delete')}/functions/${seg(fn)}/aliases/${seg(alias)}`,
      call(options),
    );
  }
}

export interface PushOptions extends TenantOptions {
  /** Providers, fallback, batching, `serve` (embeddings / chat through a function). */
  config?: ModelConfig;
  description?: string;
  /** Called as the model uploads: `(sentBytes, totalBytes)`. */
  onProgress?: ProgressCallback;
}

/** The model registry (tenant `public` for models every tenant can load). */
export class Models extends Resource {
  /** Uploads an ONNX model (a path or its bytes) as a new version of `name`. Not retried. */
  async push(name: string, source: UploadSource, options?: PushOptions): Promise<Record<string, unknown>> {
    required(name, 'models.push: name (the model)');
    required(source, 'models.push: source (an .onnx path or the model bytes)');
    const base = await this.base(options, 'models.push');
    const upload = await Upload.of(source, 'models.push', options?.onProgress);
    const headers: Record<string, string> = {};
    if (options?.config) headers['x-helixflow-model-config'] = JSON.stringify(options.config);
    return this.http.json('POST', `${base}/models/${seg(name)}/versions`, {
      ...call(options),
      query: { description: options?.description },
      headers,
      body: upload,
    });
  }

  async list(options?: TenantOptions): Promise<Model[]> {
    const r = await this.http.json('GET', `${await this.base(options, 'models.list')}/models`, call(options));
    return r.models;
  }

  /** The model, its versions and this node's sessions of its latest version. */
  async get(
    name: string,
    options?: TenantOptions,
  ): Promise<{ model: Model; versions: Record<string, unknown>[]; sessions: unknown[] }> {
    required(name, 'models.get: name');
    return this.http.json('GET', `${await this.base(options, 'models.get')}/models/${seg(name)}`, call(options));
  }

  async getVersion(name: string, version: number, options?: TenantOptions): Promise<Record<string, unknown>> {
    required(name, 'models.getVersion: name');
    versionNumber(required(version, 'models.getVersion: version'), 'models.getVersion: version');
    return this.http.json(
      'GET',
      `${await this.base(options, 'models.getVersion')}/models/${seg(name)}/versions/${version}`,
      call(options),
    );
  }

  /** Replaces the model's config. */
  async config(name: string, config: ModelConfig, options?: TenantOptions): Promise<{ model: Model }> {
    required(name, 'models.config: name');
    required(config, 'models.config: config');
    return this.http.json('PUT', `${await this.base(options, 'models.config')}/models/${seg(name)}/config`, {
      ...call(options),
      json: config,
    });
  }

  async delete(name: string, options?: TenantOptions): Promise<{ deleted_versions: number }> {
    required(name, 'models.delete: name');
    return this.http.json('DELETE', `${await this.base(options, 'models.delete')}/models/${seg(name)}`, call(options));
  }

  /** Creates this node's inference session for the model now. */
  async preload(name: string, options?: TenantOptions): Promise<Record<string, unknown>> {
    required(name, 'models.preload: name');
    return this.http.json('POST', `${await this.base(options, 'models.preload')}/models/${seg(name)}/preload`, {
      ...call(options),
      idempotent: true,
    });
  }
}

export interface CreateKeyParams extends TenantOptions {
  /** A label (1-100 printable characters). */
  name: string;
  role: Role;
  expiresInSecs?: number;
}

/** API keys of a tenant (`hfk_...`); the key itself is in `create`'s answer only. */
export class Keys extends Resource {
  async create(params: CreateKeyParams): Promise<ApiKey & { key: string }> {
    required(params, 'keys.create: { name, role }');
    required(params.name, 'keys.create: name');
    required(params.role, 'keys.create: role (admin, developer, invoker or viewer)');
    return this.http.json('POST', `${await this.base(params, 'keys.create')}/keys`, {
      ...call(params),
      json: { name: params.name, role: params.role, expires_in_secs: params.expiresInSecs },
    });
  }

  async list(options?: TenantOptions): Promise<ApiKey[]> {
    const r = await this.http.json('GET', `${await this.base(options, 'keys.list')}/keys`, call(options));
    return r.keys;
  }

  /** Revokes the key with this prefix (the 12 hex digits after `hfk_`, or the whole key). */
  async revoke(prefix: string, options?: TenantOptions): Promise<ApiKey> {
    required(prefix, 'keys.revoke: prefix');
    const p = /^hfk_([0-9a-f]{12})_/.exec(prefix)?.[1] ?? prefix;
    return this.http.json('DELETE', `${await this.base(options, 'keys.revoke')}/keys/${seg(p)}`, call(options));
  }
}

export interface CreateAccessKeyParams extends TenantOptions {
  name: string;
  /** Default: invoker. */
  role?: Role;
  expiresInSecs?: number;
}

/** SigV4 access key pairs for the Lambda Invoke API; the secret is in `create`'s answer only. */
export class AccessKeys extends Resource {
  async create(params: CreateAccessKeyParams): Promise<AccessKey & { secret_access_key: string }> {
    required(params, 'accessKeys.create: { name }');
    required(params.name, 'accessKeys.create: name');
    return this.http.json('POST', `${await this.base(params, 'accessKeys.create')}/access-keys`, {
      ...call(params),
      json: { name: params.name, role: params.role, expires_in_secs: params.expiresInSecs },
    });
  }

  async list(options?: TenantOptions): Promise<AccessKey[]> {
    const r = await this.http.json('GET', `${await this.base(options, 'accessKeys.list')}/access-keys`, call(options));
    return r.access_keys;
  }

  async revoke(accessKeyId: string, options?: TenantOptions): Promise<AccessKey> {
    required(accessKeyId, 'accessKeys.revoke: accessKeyId');
    return this.http.json('DELETE', `${await this.base(options, 'accessKeys.revoke')}/access-keys/${seg(accessKeyId)}`, call(options));
  }
}

export interface ListEventsOptions extends TenantOptions {
  status?: 'pending' | 'failed';
  function?: string;
  /** At most this many (default 100, at most 1000). */
  limit?: number;
}

/** Event (asynchronous) invocations that are pending or failed; replaying failures. */
export class Events extends Resource {
  async list(options?: ListEventsOptions): Promise<EventRecord[]> {
    const r = await this.http.json('GET', `${await this.base(options, 'events.list')}/events`, {
      ...call(options),
      query: { status: options?.status, function: options?.function, limit: options?.limit },
    });
    return r.events;
  }

  /** A pending or failed event (a `NotFoundError` once it succeeded or its record expired). */
  async get(id: string, options?: TenantOptions): Promise<EventRecord> {
    required(id, 'events.get: id');
    return this.http.json('GET', `${await this.base(options, 'events.get')}/events/${seg(id)}`, call(options));
  }

  /** Runs a failed event again as a new event; a second replay is a `ConflictError`. */
  async replay(id: string, options?: TenantOptions): Promise<{ id: string; replay_of: string }> {
    required(id, 'events.replay: id');
    return this.http.json('POST', `${await this.base(options, 'events.replay')}/events/${seg(id)}/replay`, call(options));
  }
}

/** Tenants (platform admin), and a tenant's audit log. */
export class Tenants extends Resource {
  async create(name: string, options?: CallOptions & { limits?: TenantLimits }): Promise<Tenant> {
    required(name, 'tenants.create: name');
    return this.http.json('POST', `${API}/tenants`, {
      ...call(options),
      json: options?.limits ? { name, limits: options.limits } : { name },
    });
  }

  async list(options?: CallOptions): Promise<Tenant[]> {
    const r = await this.http.json('GET', `${API}/tenants`, call(options));
    return r.tenants;
  }

  async get(name: string, options?: CallOptions): Promise<Tenant> {
    required(name, 'tenants.get: name');
    return this.http.json('GET', `${API}/tenants/${seg(name)}`, call(options));
  }

  /** The tenant's audit log (default: the client's tenant). */
  async audit(options?: TenantOptions & { limit?: number }): Promise<Record<string, unknown>[]> {
    const r = await this.http.json('GET', `${await this.base(options, 'tenants.audit')}/audit`, {
      ...call(options),
      query: { limit: options?.limit },
    });
    return r.records;
  }
}

function timeParam(v: Date | number | string | undefined): string | undefined {
  if (v === undefined) return undefined;
  if (v instanceof Date) return String(Math.floor(v.getTime() / 1000));
  return String(v);
}

/** Metered usage, prices and the tenant's budget. */
export class Usage extends Resource {
  /** Usage over a time range, grouped by dimensions, as series of points and totals. */
  async query(params?: UsageQuery & TenantOptions): Promise<UsageResult> {
    return this.http.json('GET', `${await this.base(params, 'usage.query')}/usage`, {
      ...call(params),
      query: {
        from: timeParam(params?.from),
        to: timeParam(params?.to),
        step: params?.step,
        group_by: params?.groupBy,
        metrics: params?.metrics,
      },
    });
  }

  /** The price table that applies to the tenant. */
  async prices(options?: TenantOptions): Promise<Record<string, unknown>> {
    return this.http.json('GET', `${await this.base(options, 'usage.prices')}/prices`, call(options));
  }

  /** The budget and this month's spend. */
  async budget(options?: TenantOptions): Promise<Record<string, unknown>> {
    return this.http.json('GET', `${await this.base(options, 'usage.budget')}/budget`, call(options));
  }

  async setBudget(budget: Record<string, unknown>, options?: TenantOptions): Promise<Record<string, unknown>> {
    required(budget, 'usage.setBudget: budget');
    return this.http.json('PUT', `${await this.base(options, 'usage.setBudget')}/budget`, { ...call(options), json: budget });
  }

  async deleteBudget(options?: TenantOptions): Promise<Record<string, unknown>> {
    return this.http.json('DELETE', `${await this.base(options, 'usage.deleteBudget')}/budget`, call(options));
  }
}

/** Stored dashboards: named charts over the usage data. */
export class Analytics extends Resource {
  async createDashboard(spec: DashboardSpec, options?: TenantOptions): Promise<Dashboard> {
    required(spec, 'analytics.createDashboard: spec ({ metrics: [...] })');
    if (!Array.isArray(spec.metrics) || spec.metrics.length === 0) {
      throw new InvalidArgumentError('analytics.createDashboard: metrics is required (e.g. ["cost_per_token"])');
    }
    return this.http.json('POST', `${await this.base(options, 'analytics.createDashboard')}/dashboards`, {
      ...call(options),
      json: spec,
    });
  }

  async listDashboards(options?: TenantOptions): Promise<Dashboard[]> {
    const r = await this.http.json('GET', `${await this.base(options, 'analytics.listDashboards')}/dashboards`, call(options));
    return r.dashboards;
  }

  async getDashboard(id: string, options?: TenantOptions): Promise<Dashboard> {
    required(id, 'analytics.getDashboard: id');
    return this.http.json('GET', `${await this.base(options, 'analytics.getDashboard')}/dashboards/${seg(id)}`, call(options));
  }

  /** The dashboard's panels filled with data (`params`: from, to, step as for usage). */
  async dashboardData(
    id: string,
    params?: TenantOptions & Pick<UsageQuery, 'from' | 'to' | 'step'>,
  ): Promise<Record<string, unknown>> {
    required(id, 'analytics.dashboardData: id');
    return this.http.json('GET', `${await this.base(params, 'analytics.dashboardData')}/dashboards/${seg(id)}/data`, {
      ...call(params),
      query: { from: timeParam(params?.from), to: timeParam(params?.to), step: params?.step },
    });
  }

  async deleteDashboard(id: string, options?: TenantOptions): Promise<{ deleted: string }> {
    required(id, 'analytics.deleteDashboard: id');
    return this.http.json('DELETE', `${await this.base(options, 'analytics.deleteDashboard')}/dashboards/${seg(id)}`, call(options));
  }
}
