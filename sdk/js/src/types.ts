/**
 * Shapes of the API's JSON (what the node answers today; fields may be added, so every
 * record also allows unknown keys).
 */

export type Role = 'admin' | 'developer' | 'invoker' | 'viewer';

/** `GET /api/v1/whoami`: who the client's credentials are. */
export interface WhoAmI {
  /** The key's tenant; `null` for the platform admin key (every tenant). */
  tenant: string | null;
  role: Role;
  /** What the audit log records: the key prefix, the JWT `sub`, or `platform-admin`. */
  subject: string;
  via: 'api_key' | 'jwt' | 'admin_key';
  [key: string]: unknown;
}

export interface TenantLimits {
  max_memory_mb?: number;
  max_timeout_ms?: number;
  max_rps?: number;
  max_concurrency?: number;
}

export interface Tenant {
  name: string;
  limits: TenantLimits;
  created_at: string;
  [key: string]: unknown;
}

export interface AsyncInvokeConfig {
  max_retries?: number;
  retry_delay_ms?: number;
  max_event_age_s?: number;
  on_failure?: { object_prefix?: string; function?: string };
  on_success?: { object_prefix?: string; function?: string };
}

export interface FunctionConfig {
  memory_mb?: number;
  timeout_ms?: number;
  env?: Record<string, string>;
  public?: boolean;
  max_concurrency?: number;
  allow_outbound?: string[];
  async_invoke?: AsyncInvokeConfig;
  schedules?: { name: string; cron: string; payload?: unknown }[];
  [key: string]: unknown;
}

export interface FunctionInfo {
  tenant: string;
  name: string;
  config: FunctionConfig;
  latest_version: number;
  created_at: string;
  updated_at: string;
  [key: string]: unknown;
}

export interface Version {
  tenant: string;
  function: string;
  version: number;
  sha256: string;
  size: number;
  exports: { http: boolean; event: boolean };
  created_at: string;
  description: string;
  [key: string]: unknown;
}

export interface Alias {
  name: string;
  version: number;
  history: number[];
  updated_at: string;
  [key: string]: unknown;
}

export interface FunctionDetails {
  function: FunctionInfo;
  versions: Version[];
  aliases: Alias[];
}

export interface DeployResult {
  version: Version;
  alias: Alias | null;
}

/** One recent invocation with its captured output. */
export interface LogEntry {
  request_id: string;
  version: number;
  /** `http`, `event`, ... */
  trigger: string;
  /** `ok`, `error`, `trap`, `timeout`, ... */
  outcome: string;
  duration_us: number;
  at: string;
  stdout: string;
  stderr: string;
  truncated: boolean;
  [key: string]: unknown;
}

/** An Event (asynchronous) invocation the node accepted (202). */
export interface AsyncInvocation {
  /** The event's id: `client.events.get(id)` while it is pending or failed. */
  id: string;
  /** The version it will run. */
  version: number | undefined;
}

export interface EventRecord {
  id: string;
  status: 'pending' | 'failed';
  function: string;
  version: number;
  attempts: number;
  accepted_at_ms: number;
  last_error?: unknown;
  source?: string;
  condition?: string;
  replayed_as?: string | null;
  payload_b64?: string;
  [key: string]: unknown;
}

export interface ModelConfig {
  providers?: string[];
  fallback?: 'next' | 'refuse';
  max_batch?: number;
  max_delay_us?: number;
  trt_fp16?: boolean;
  serve?: { kind: 'embeddings' | 'chat'; function: string };
  [key: string]: unknown;
}

export interface Model {
  name: string;
  latest_version: number;
  config: ModelConfig;
  [key: string]: unknown;
}

export interface ApiKey {
  prefix: string;
  name: string;
  role: Role;
  created_at: string;
  expires_at: number | null;
  revoked: boolean;
  /** The key itself: in the creation response only. */
  key?: string;
  [key: string]: unknown;
}

export interface AccessKey {
  access_key_id: string;
  name: string;
  role: Role;
  created_at: string;
  expires_at: number | null;
  revoked: boolean;
  account_id: string;
  /** The secret: in the creation response only. */
  secret_access_key?: string;
  [key: string]: unknown;
}

export interface UsageQuery {
  /** Start: a Date, Unix seconds or RFC 3339 (default: an hour before `to`). */
  from?: Date | number | string;
  /** End: a Date, Unix seconds or RFC 3339 (default: now). */
  to?: Date | number | string;
  step?: '1m' | '1h' | '1d';
  /** Dimensions: function, version, trigger, location, key, model. */
  groupBy?: string[];
  /** Metrics, e.g. requests, errors, gb_seconds, latency_p99, cost (default: requests, errors). */
  metrics?: string[];
}

export interface UsageSeries {
  group: Record<string, string>;
  total: Record<string, number | null>;
  points: ({ time: number | string } & Record<string, number | string | null>)[];
  [key: string]: unknown;
}

export interface UsageResult {
  tenant: string;
  metrics: string[];
  group_by: string[];
  series: UsageSeries[];
  [key: string]: unknown;
}

export interface DashboardSpec {
  name?: string;
  /** Metrics or named charts: cost_per_token, latency_by_region, model_usage, error_rate. */
  metrics: string[];
  dimensions?: string[];
  alerts?: string[];
}

export interface Dashboard {
  id: string;
  [key: string]: unknown;
}
