//! JSON wire types of the API that are not stored records, with their schemas for the
//! OpenAPI document (`openapi.rs`). Request bodies are read into these types by the
//! handlers; response wrappers describe the objects the handlers build.
//!
//! Records (tenants, functions, versions, aliases, models, budgets, prices, dashboards,
//! alert rules) are the store's and usage crate's own types, which derive `ToSchema`
//! where they are defined.

use helixflow_store::models::{Model, ModelVersion};
use helixflow_store::registry::{Alias, Function, Tenant, TenantLimits, Version};
use serde::Deserialize;
use utoipa::ToSchema;

/// `POST /api/v1/tenants`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// `[a-z][a-z0-9-]{0,62}`.
    pub name: String,
    #[serde(default)]
    pub limits: Option<TenantLimits>,
}

/// `PUT .../aliases/{alias}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetAlias {
    pub version: u32,
}

/// `PUT /api/v1/admin/tenants/{tenant}/prices`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPrices {
    /// The tenant's own table; `[]` removes it (the node's table applies).
    pub prices: Vec<helixflow_usage::Price>,
}

/// `POST .../keys` and `POST .../access-keys`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// 1-100 printable characters.
    pub name: String,
    /// `admin`, `developer`, `invoker` or `viewer` (access keys: default `invoker`).
    #[serde(default)]
    pub role: Option<String>,
    /// The key stops working this many seconds after creation.
    #[serde(default)]
    pub expires_in_secs: Option<u64>,
}

/// `GET /api/v1/whoami`: who the presented credentials are (how a client learns the
/// tenant of its key).
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct WhoAmI {
    /// The caller's tenant; `null` for the platform admin (every tenant).
    pub tenant: Option<String>,
    /// `admin`, `developer`, `invoker` or `viewer`.
    pub role: &'static str,
    /// What the audit log records: `key:{prefix}`, `jwt:{sub}`, or `platform-admin`.
    pub subject: String,
    /// `api_key`, `jwt` or `admin_key`.
    pub via: &'static str,
}

/// `GET /healthz`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Health {
    /// `ok`.
    pub status: String,
    /// This node's id.
    pub location: String,
}

/// `GET /api/v1/tenants`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TenantList {
    pub tenants: Vec<Tenant>,
}

/// `GET .../audit`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct AuditLog {
    /// Control-plane actions and refused requests, newest first.
    pub records: Vec<serde_json::Value>,
}

/// `GET .../functions`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct FunctionList {
    pub functions: Vec<Function>,
}

/// `GET .../functions/{function}`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct FunctionDetail {
    pub function: Function,
    pub versions: Vec<Version>,
    pub aliases: Vec<Alias>,
}

/// `DELETE .../functions/{function}`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct FunctionDeleted {
    pub deleted: bool,
    /// How many versions went with it.
    pub versions: u64,
}

/// `POST .../functions/{function}/versions`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Deployed {
    pub version: Version,
    /// The alias pointed at it (`?alias=`), else null.
    pub alias: Option<Alias>,
}

/// `GET .../functions/{function}/versions`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct VersionList {
    pub versions: Vec<Version>,
}

/// `DELETE .../versions/{version}`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct VersionDeleted {
    pub deleted: bool,
    pub version: u32,
}

/// `GET .../aliases`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct AliasList {
    pub aliases: Vec<Alias>,
}

/// `DELETE` of an alias.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Deleted {
    pub deleted: bool,
}

/// `DELETE` of a dashboard or an alert rule.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct IdDeleted {
    /// The id deleted.
    pub deleted: String,
}

/// `GET .../logs`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct LogList {
    /// Captured stdout/stderr lines of recent invocations, oldest first.
    pub logs: Vec<serde_json::Value>,
}

/// `GET .../models`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ModelList {
    pub models: Vec<Model>,
}

/// `GET .../models/{model}`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ModelDetail {
    pub model: Model,
    pub versions: Vec<ModelVersion>,
    /// This node's inference sessions of the latest version.
    pub sessions: serde_json::Value,
}

/// `GET .../models/{model}/versions/{version}`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ModelVersionDetail {
    pub model: Model,
    pub version: ModelVersion,
    /// This node's inference sessions of this version.
    pub sessions: serde_json::Value,
}

/// `DELETE .../models/{model}`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ModelDeleted {
    pub deleted_versions: u64,
}

/// `PUT .../models/{model}/config`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ModelResponse {
    pub model: Model,
}

/// `POST .../models/{model}/versions`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ModelPushed {
    pub version: ModelVersion,
}

/// An API key (never its secret).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Key {
    /// The key's public prefix, its id.
    pub prefix: String,
    pub name: String,
    pub role: String,
    /// RFC 3339.
    pub created_at: String,
    /// Unix seconds; null: never.
    pub expires_at: Option<u64>,
    pub revoked: bool,
}

/// A new API key: its secret `key` is shown this once.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct CreatedKey {
    pub prefix: String,
    pub name: String,
    pub role: String,
    pub created_at: String,
    pub expires_at: Option<u64>,
    pub revoked: bool,
    /// The key to send as `Authorization: Bearer` or `x-api-key`.
    pub key: String,
}

/// `GET .../keys`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct KeyList {
    pub keys: Vec<Key>,
}

/// A SigV4 access key (never its secret).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct AccessKey {
    pub access_key_id: String,
    pub name: String,
    pub role: String,
    pub created_at: String,
    pub expires_at: Option<u64>,
    pub revoked: bool,
    /// The AWS account id of the tenant in ARNs.
    pub account_id: String,
}

/// A new access key pair: `secret_access_key` is shown this once.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct CreatedAccessKey {
    pub access_key_id: String,
    pub name: String,
    pub role: String,
    pub created_at: String,
    pub expires_at: Option<u64>,
    pub revoked: bool,
    pub account_id: String,
    pub secret_access_key: String,
}

/// `GET .../access-keys`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct AccessKeyList {
    pub access_keys: Vec<AccessKey>,
}

/// `POST .../jwt-secret`: the new secret, shown this once.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct JwtSecret {
    pub hs256_secret: String,
    /// The `aud` the tenant's JWTs must carry.
    pub audience: String,
}

/// A pending or failed asynchronous invocation.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Event {
    pub id: String,
    /// `pending` or `failed`.
    pub status: String,
    pub function: String,
    pub version: u32,
    pub attempts: u32,
    pub accepted_at_ms: u64,
    pub last_error: Option<String>,
    pub source: Option<String>,
    /// Pending: failures so far.
    pub failures: Option<u32>,
    /// Pending: when the next attempt is due.
    pub due_at_ms: Option<u64>,
    /// Failed: why it failed for good.
    pub condition: Option<String>,
    /// Failed: when.
    pub finished_at_ms: Option<u64>,
    /// Failed: the id of its replay, once replayed.
    pub replayed_as: Option<String>,
    /// Failed: the event, base64.
    pub payload_b64: Option<String>,
}

/// `GET .../events`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct EventList {
    pub events: Vec<Event>,
}

/// `POST .../events/{event_id}/replay`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Replayed {
    /// The new event's id.
    pub id: String,
    pub replay_of: String,
}

/// `GET .../prices`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Prices {
    pub tenant: String,
    /// `tenant` (its own table) or `node` (the node's).
    pub source: String,
    pub prices: Vec<helixflow_usage::Price>,
}

/// `POST /api/v1/admin/gc`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct GcReport {
    pub dry_run: bool,
    pub referenced: u64,
    pub stored: u64,
    /// SHA-256 of the artifacts deleted (or that would be).
    pub deleted: Vec<String>,
    pub kept_younger_than_grace: u64,
    pub compiled_removed: u64,
}

/// A model in OpenAI's shape.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct OpenAiModel {
    pub id: String,
    /// `model`.
    pub object: String,
    /// Unix seconds.
    pub created: i64,
    /// The tenant.
    pub owned_by: String,
}

/// `GET /v1/models`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct OpenAiModelList {
    /// `list`.
    pub object: String,
    pub data: Vec<OpenAiModel>,
}

/// The error body of HelixFlow's own routes.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Error {
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ErrorDetail {
    #[schema(schema_with = error_code_ref)]
    pub code: String,
    /// For people.
    pub message: String,
}

/// The error body of the OpenAI-compatible routes (OpenAI's shape).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct OpenAiError {
    pub error: OpenAiErrorDetail,
}

/// What went wrong, as OpenAI says it.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct OpenAiErrorDetail {
    pub message: String,
    /// `invalid_request_error`, `authentication_error`, `permission_error`,
    /// `rate_limit_error` or `server_error`.
    #[schema(rename = "type")]
    pub kind: String,
    /// The request field at fault, if any.
    pub param: Option<String>,
    #[schema(schema_with = error_code_ref)]
    pub code: String,
}

/// The error body of the Lambda Invoke route (AWS's shape); the error type is the
/// `X-Amzn-ErrorType` header.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct AwsError {
    /// `User` or `Service`.
    #[schema(rename = "Type")]
    pub kind: String,
    pub message: String,
    /// Why a request was throttled, when it was.
    #[schema(rename = "Reason")]
    pub reason: Option<String>,
}

fn error_code_ref() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    utoipa::openapi::Ref::from_schema_name("ErrorCode").into()
}
