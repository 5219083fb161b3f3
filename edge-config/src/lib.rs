//! # helixflow-edge-config: the typed configuration of one edge node
//!
//! One TOML file per node. Every table rejects unknown keys; errors name the file, the
//! line and column, and what to do. Every field has a default, so an empty file (or no
//! file) is a working single-machine node with embedded state under `data_dir`.
//!
//! ```toml
//! [node]
//! id = "fra"
//! region = "eu-central-1"
//! # tenants = ["acme", "beta"]   (serve only these on the data plane; default: all)
//!
//! [cache]
//! # dir = "/var/cache/helixflow"  (default: data_dir)
//! artifacts_max_mb = 2048        # local copies of remote artifacts, LRU
//! compiled_max_mb = 2048         # compiled components, LRU
//!
//! [listen]
//! http = "127.0.0.1:8080"
//! tls_reload_secs = 2            # how often tls_cert/tls_key/client_ca are checked for changes
//! # https = "0.0.0.0:8443"
//! # tls_cert = "/etc/helixflow/tls/cert.pem"   (reloaded when it changes)
//! # tls_key = "/etc/helixflow/tls/key.pem"
//! # client_ca = "/etc/helixflow/tls/clients-ca.pem"   (mutual TLS required for /api)
//!
//! [state]
//! data_dir = "/var/lib/helixflow"
//! # metadata = "redb:///var/lib/helixflow/metadata.redb"   (default: under data_dir)
//! # metadata = "dynamodb://helixflow"                       (shared by a fleet)
//! # resolve_cache_ttl_ms = 1000
//! # retry_max_attempts = 4          (cloud stores: throttling/transient errors, backoff + jitter)
//! # retry_initial_backoff_ms = 50
//! # retry_max_backoff_ms = 2000
//! # artifacts = "file:///var/lib/helixflow/artifacts"     (any object_store URL)
//!
//! [runtime]
//! max_instances = 1000
//! max_memory_mb = 1024
//! epoch_tick_ms = 1
//! async_workers = 16               # Event invocations run at once (durable queue)
//!
//! [inference]
//! # ort_dylib = "/opt/onnxruntime/libonnxruntime.so.1.31.1"   (default: $ORT_DYLIB_PATH)
//! # intra_threads = 0             (0 = all CPUs; threads per intra-op pool)
//! intra_spin = "adaptive"          # each model's threads spin only while it runs; true: always (one global pool), false: never
//! session_budget_mb = 4096         # loaded ORT sessions, LRU
//! providers = ["cpu"]              # default preference, e.g. ["tensorrt", "cuda", "cpu"]
//! fallback = "next"                # or "refuse": never silently run elsewhere
//! # trt_cache_dir = "/var/cache/helixflow/trt"   (TensorRT engines survive restarts)
//! allow_guest_load = false         # guests may not ship model bytes
//! max_guest_model_mb = 64
//! max_tensor_mb = 64
//! max_calls_per_invocation = 10000  # wasi:nn calls one invocation may make
//! max_kv_cache_mb = 2048           # KV caches of open helixflow:llm sequences, all together
//! max_kv_cache_mb_per_tenant = 1024  # one tenant's share of it (capped at max_kv_cache_mb)
//! prefix_cache_mb = 64             # per chat model: prompt beginnings reused by the same tenant (0: off)
//! max_context = 8192               # longest sequence (a model's own limit applies too)
//! max_sequences_per_invocation = 4
//! # preload = ["acme/minilm", "public/efficientnet-lite0@2"]
//!
//! [auth]
//! mode = "enforce"                 # "off": every caller is the platform admin (local tinkering only)
//! # admin_key_sha256 = "..."       (default: $HELIXFLOW_ADMIN_KEY, else a key generated into data_dir/admin.key)
//! # jwks_file = "/etc/helixflow/jwks.json"   (RS256/ES256/EdDSA tokens; HS256 uses per-tenant secrets)
//! # jwks_url = "https://issuer.example/.well-known/jwks.json"   (instead of a file; refetched)
//! # jwks_refresh_secs = 300
//! # secrets_key_file = "/etc/helixflow/secrets.key"   (seals stored secrets; one per fleet;
//! #                                                     default: generated under data_dir)
//! # jwt_issuer = "https://idp.example.com/"
//! jwt_audience = "helixflow"
//! jwt_leeway_secs = 30
//!
//! [sandbox]
//! # allow_private = ["10.0.0.0/8"]   (private/loopback/link-local ranges guests may reach;
//! #                                    default none: outbound HTTP only to public addresses)
//!
//! [http]
//! header_read_timeout_ms = 10000   # a request head must arrive within this
//! idle_timeout_ms = 60000          # a keep-alive connection with no request is closed
//! max_connections = 25000          # open connections per node (more wait in the backlog)
//! max_connections_per_ip = 1024    # open connections per client address
//! h2_max_concurrent_streams = 256
//! max_header_kb = 64               # request head (HTTP/1) / header list (HTTP/2)
//!
//! [usage]
//! enabled = true                   # meter every invocation
//! flush_interval_ms = 10000        # usage totals written to the store this often
//! retention_days = 35              # usage records expire after this
//! max_series = 10000               # in-memory series per tenant between flushes (then `overflow`)
//! budget_refresh_ms = 2000         # an invoked tenant's spend and other nodes' use re-read this often
//! rollup_interval_ms = 60000       # complete hours are rolled up this often (by one node of the fleet)
//! rollup_retention_days = 400      # hourly roll-ups expire after this
//!
//! [[usage.prices]]                 # cost = usage x the entry in force (latest `from`)
//! from = 0                         # Unix seconds, a whole hour
//! per_1m_requests = 0.20
//! per_gb_second = 0.0000166667
//! per_1m_embedding_tokens = 0.02
//!
//! [alerts]
//! enabled = true                   # evaluate alert rules (one node of the fleet at a time, by lease)
//! evaluation_interval_ms = 30000   # rules are judged this often
//! webhook_timeout_ms = 10000       # each webhook attempt's limit
//! webhook_max_attempts = 4         # attempts per notification (exponential backoff between)
//! webhook_retry_initial_ms = 1000  # first backoff; doubles, at most 60 s
//!
//! [metrics]
//! max_tenant_labels = 50           # tenants with their own `tenant` label in /metrics; later ones are "other"
//!
//! [telemetry]
//! # otlp_endpoint = "http://127.0.0.1:4318"   (OTLP/HTTP collector; default "": no span export,
//! #                                              W3C traceparent is still accepted and passed on)
//! service_name = "helixflow"       # service.name of the exported spans
//! sample_ratio = 1.0               # share of new traces sampled; a caller's sampled flag wins
//! export_queue_size = 2048         # finished spans waiting for export (then dropped, never waited on)
//! export_batch_size = 512          # spans per export request
//! export_interval_ms = 5000        # queued spans are sent this often (sooner when a batch is full)
//! export_timeout_ms = 10000        # one export request, retries included
//!
//! [limits]
//! default_memory_mb = 128
//! default_timeout_ms = 10000
//! max_component_mb = 50
//! max_model_mb = 1024
//! max_request_body_mb = 6
//! max_response_mb = 64           # a function's HTTP response is cut off past this
//! max_log_kb = 64
//! ```
//!
//! Environment overrides (what operators expect): `HELIXFLOW_NODE_ID`,
//! `HELIXFLOW_LISTEN`, `HELIXFLOW_DATA_DIR`, `HELIXFLOW_METADATA_URL`,
//! `HELIXFLOW_ARTIFACTS_URL`, `HELIXFLOW_OTLP_ENDPOINT`.
//!
//! Keys whose value is one of a few words parse into enums ([`AuthMode`],
//! [`ExecutionProvider`], [`FallbackPolicy`]); another word is an error that names the
//! key, the file, line and column. Each `[section]` is a `*Section` struct that checks
//! itself (`validate`); [`NodeConfig::validate`] runs them all.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}:{line}:{column}: {message}\n  hint: {hint}")]
    Parse {
        file: String,
        line: usize,
        column: usize,
        message: String,
        hint: String,
    },
    #[error("{file}: {field}: {message}\n  hint: {hint}")]
    Invalid {
        file: String,
        field: &'static str,
        message: String,
        hint: String,
    },
}

/// The `Invalid` error of `field` in `file`.
fn invalid(file: &str, field: &'static str, message: String, hint: &str) -> ConfigError {
    ConfigError::Invalid {
        file: file.to_string(),
        field,
        message,
        hint: hint.to_string(),
    }
}

// ---------------------------------------------------------------------------------------
// Keys whose value is one of a few words.
// ---------------------------------------------------------------------------------------

/// A value that is not one of the words its key accepts. In a file it becomes a
/// [`ConfigError::Parse`] (file, line, column, this message and its hint); elsewhere
/// (an environment override) [`InvalidChoice::into_config_error`] makes it a
/// [`ConfigError::Invalid`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct InvalidChoice {
    /// The key, e.g. `auth.mode`.
    pub key: &'static str,
    pub message: String,
    pub hint: &'static str,
}

impl InvalidChoice {
    /// The error of a value from `source` (a file name, `environment`, ...).
    pub fn into_config_error(self, source: &str) -> ConfigError {
        invalid(source, self.key, self.message, self.hint)
    }
}

/// An enum a key's string value parses into: the words it accepts and what an
/// unknown word's error says.
trait Choice: Sized + Copy + PartialEq + 'static {
    /// The key, e.g. `auth.mode`.
    const KEY: &'static str;
    /// Every value, as spelled in the file.
    const WORDS: &'static [(&'static str, Self)];
    const HINT: &'static str;
    /// What the error says about `word` (not one of `WORDS`).
    fn rejection(word: &str) -> String;
}

/// The hints of the keys whose values are [`Choice`]s (the TOML parse error carries
/// only the message, which starts with the key).
const CHOICE_HINTS: [(&str, &str); 3] = [
    (AuthMode::KEY, AuthMode::HINT),
    (ExecutionProvider::KEY, ExecutionProvider::HINT),
    (FallbackPolicy::KEY, FallbackPolicy::HINT),
];

fn parse_choice<T: Choice>(word: &str) -> Result<T, InvalidChoice> {
    T::WORDS
        .iter()
        .find(|(w, _)| *w == word)
        .map(|(_, v)| *v)
        .ok_or_else(|| InvalidChoice {
            key: T::KEY,
            message: T::rejection(word),
            hint: T::HINT,
        })
}

fn choice_word<T: Choice>(value: T) -> &'static str {
    T::WORDS
        .iter()
        .find(|(_, v)| *v == value)
        .map(|(w, _)| *w)
        .expect("every value has a word")
}

fn deserialize_choice<'de, T: Choice, D: serde::Deserializer<'de>>(d: D) -> Result<T, D::Error> {
    let word = String::deserialize(d)?;
    parse_choice(&word).map_err(serde::de::Error::custom)
}

/// Implements `as_str`, `Display`, `FromStr` and `Deserialize` of a [`Choice`].
macro_rules! choice_impls {
    ($t:ty) => {
        impl $t {
            /// The word the config file spells this value with.
            pub fn as_str(self) -> &'static str {
                choice_word(self)
            }
        }
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl std::str::FromStr for $t {
            type Err = InvalidChoice;
            fn from_str(s: &str) -> Result<Self, InvalidChoice> {
                parse_choice(s)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                deserialize_choice(d)
            }
        }
    };
}

/// `[auth] mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AuthMode {
    /// `"enforce"`: every route but `/healthz` needs credentials.
    #[default]
    Enforce,
    /// `"off"`: every caller is the platform admin (local development only).
    Off,
}

impl Choice for AuthMode {
    const KEY: &'static str = "auth.mode";
    const WORDS: &'static [(&'static str, Self)] =
        &[("enforce", AuthMode::Enforce), ("off", AuthMode::Off)];
    const HINT: &'static str =
        "use \"enforce\" (default) or \"off\" (no authentication: local development only)";
    fn rejection(word: &str) -> String {
        format!("{word:?} is not an auth mode")
    }
}
choice_impls!(AuthMode);

/// One entry of `[inference] providers`: an ONNX Runtime execution provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExecutionProvider {
    /// `"tensorrt"`
    Tensorrt,
    /// `"cuda"`
    Cuda,
    /// `"cpu"`
    Cpu,
}

impl Choice for ExecutionProvider {
    const KEY: &'static str = "inference.providers";
    const WORDS: &'static [(&'static str, Self)] = &[
        ("tensorrt", ExecutionProvider::Tensorrt),
        ("cuda", ExecutionProvider::Cuda),
        ("cpu", ExecutionProvider::Cpu),
    ];
    const HINT: &'static str = "use an ordered list of \"tensorrt\", \"cuda\", \"cpu\"";
    fn rejection(word: &str) -> String {
        format!("unknown execution provider {word:?}")
    }
}
choice_impls!(ExecutionProvider);

/// `[inference] fallback`: what happens when a preferred provider cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FallbackPolicy {
    /// `"next"`: try the next provider (logged and counted, never silent).
    #[default]
    Next,
    /// `"refuse"`: refuse to load the model.
    Refuse,
}

impl Choice for FallbackPolicy {
    const KEY: &'static str = "inference.fallback";
    const WORDS: &'static [(&'static str, Self)] = &[
        ("next", FallbackPolicy::Next),
        ("refuse", FallbackPolicy::Refuse),
    ];
    const HINT: &'static str = "use \"next\" (try the next provider, logged) or \"refuse\"";
    fn rejection(word: &str) -> String {
        format!("{word:?} is not a fallback policy")
    }
}
choice_impls!(FallbackPolicy);

// ---------------------------------------------------------------------------------------
// The file and its sections.
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    pub node: NodeSection,
    pub listen: ListenSection,
    pub state: StateSection,
    pub cache: CacheSection,
    pub runtime: RuntimeSection,
    pub inference: InferenceSection,
    pub auth: AuthSection,
    pub limits: LimitsSection,
    pub sandbox: SandboxSection,
    pub http: HttpSection,
    pub usage: UsageSection,
    pub telemetry: TelemetrySection,
    pub alerts: AlertsSection,
    pub metrics: MetricsSection,
}

/// `[node]`: who this node is and whom it serves.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeSection {
    /// Location id (e.g. `fra`), shown in metrics and responses.
    pub id: String,
    pub region: String,
    /// Tenants whose functions this node serves on its data plane (empty: all).
    pub tenants: Vec<String>,
}

impl Default for NodeSection {
    fn default() -> Self {
        NodeSection {
            id: "local".into(),
            region: "local".into(),
            tenants: Vec::new(),
        }
    }
}

impl NodeSection {
    fn validate(&self, file: &str) -> Result<(), ConfigError> {
        let id_ok = !self.id.is_empty()
            && self.id.len() <= 32
            && self
                .id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !id_ok {
            return Err(invalid(
                file,
                "node.id",
                format!("{:?} is not a valid location id", self.id),
                "use 1-32 letters, digits or '-', e.g. \"fra\"",
            ));
        }
        if let Some(t) = self.tenants.iter().find(|t| t.is_empty() || t.len() > 63) {
            return Err(invalid(
                file,
                "node.tenants",
                format!("{t:?} is not a tenant name"),
                "list tenant names, e.g. tenants = [\"acme\"]; leave empty to serve all",
            ));
        }
        Ok(())
    }
}

/// `[listen]`: the node's listeners.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListenSection {
    /// Plain-HTTP listener (HTTP/1.1 and h2c); `""` turns it off.
    pub http: String,
    /// HTTPS listener (TLS 1.2/1.3, ALPN h2 and http/1.1), with `tls_cert`/`tls_key`.
    pub https: Option<String>,
    /// PEM certificate chain; reloaded when the file changes.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key; reloaded when the file changes.
    pub tls_key: Option<PathBuf>,
    /// Mutual TLS for the control plane: `/api` only over HTTPS with a client
    /// certificate signed by this CA (PEM).
    pub client_ca: Option<PathBuf>,
    /// How often, in seconds, `tls_cert`, `tls_key` and `client_ca` are checked for
    /// changes (a rotated certificate is served from the next check on). Default: 2.
    pub tls_reload_secs: u64,
}

impl Default for ListenSection {
    fn default() -> Self {
        ListenSection {
            http: "127.0.0.1:8080".into(),
            https: None,
            tls_cert: None,
            tls_key: None,
            client_ca: None,
            tls_reload_secs: 2,
        }
    }
}

impl ListenSection {
    fn validate(&self, file: &str) -> Result<(), ConfigError> {
        if !self.http.is_empty() && self.http.parse::<SocketAddr>().is_err() {
            return Err(invalid(
                file,
                "listen.http",
                format!("{:?} is not an address:port", self.http),
                "e.g. \"127.0.0.1:8080\" or \"0.0.0.0:8080\"; \"\" turns plain HTTP off",
            ));
        }
        match (&self.https, &self.tls_cert, &self.tls_key) {
            (None, None, None) => {}
            (Some(addr), Some(cert), Some(key)) => {
                if addr.parse::<SocketAddr>().is_err() {
                    return Err(invalid(
                        file,
                        "listen.https",
                        format!("{addr:?} is not an address:port"),
                        "e.g. \"0.0.0.0:8443\"",
                    ));
                }
                for (field, path) in [("listen.tls_cert", cert), ("listen.tls_key", key)] {
                    if !path.is_file() {
                        return Err(invalid(
                            file,
                            field,
                            format!("{} does not exist", path.display()),
                            "give the path of a PEM file",
                        ));
                    }
                }
            }
            _ => {
                return Err(invalid(
                    file,
                    "listen.https",
                    "https, tls_cert and tls_key go together".into(),
                    "set all three, or none",
                ));
            }
        }
        if let Some(ca) = &self.client_ca {
            if self.https.is_none() {
                return Err(invalid(
                    file,
                    "listen.client_ca",
                    "mutual TLS needs an HTTPS listener".into(),
                    "set listen.https, tls_cert and tls_key too",
                ));
            }
            if !ca.is_file() {
                return Err(invalid(
                    file,
                    "listen.client_ca",
                    format!("{} does not exist", ca.display()),
                    "give the path of a PEM CA certificate",
                ));
            }
        }
        if self.http.is_empty() && self.https.is_none() {
            return Err(invalid(
                file,
                "listen",
                "no listener".into(),
                "set listen.http and/or listen.https",
            ));
        }
        if !(1..=3600).contains(&self.tls_reload_secs) {
            return Err(invalid(
                file,
                "listen.tls_reload_secs",
                format!("{} is out of range", self.tls_reload_secs),
                "use 1..=3600; how often the certificate files are checked for changes",
            ));
        }
        Ok(())
    }
}

/// `[state]`: where metadata and artifacts live.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateSection {
    pub data_dir: PathBuf,
    /// `redb://PATH` (default: `{data_dir}/metadata.redb`) or `dynamodb://TABLE`.
    pub metadata: Option<String>,
    /// How long a resolved `{tenant}/{function}[@qualifier]` is served from memory
    /// before it is read again: the bound on how stale this node can be after a change
    /// made through another node sharing the metadata store.
    pub resolve_cache_ttl_ms: u64,
    /// Attempts per cloud-store operation, the first included (throttling and transient
    /// errors are retried with exponential backoff and jitter).
    pub retry_max_attempts: u32,
    pub retry_initial_backoff_ms: u64,
    pub retry_max_backoff_ms: u64,
    /// Any object_store URL (default: `file://{data_dir}/artifacts`).
    pub artifacts: Option<String>,
    /// Compiled-component cache (default: `{data_dir}/compiled`).
    pub compile_cache_dir: Option<PathBuf>,
}

impl Default for StateSection {
    fn default() -> Self {
        StateSection {
            data_dir: PathBuf::from(".helixflow-data"),
            metadata: None,
            resolve_cache_ttl_ms: 1000,
            retry_max_attempts: 4,
            retry_initial_backoff_ms: 50,
            retry_max_backoff_ms: 2000,
            artifacts: None,
            compile_cache_dir: None,
        }
    }
}

impl StateSection {
    fn validate(&self, file: &str) -> Result<(), ConfigError> {
        if let Some(m) = &self.metadata {
            let table_ok = |t: &str| {
                (3..=255).contains(&t.len())
                    && t.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
            };
            let ok = match m.split_once("://") {
                Some(("redb", path)) => !path.is_empty(),
                Some(("dynamodb", table)) => table_ok(table),
                _ => false,
            };
            if !ok {
                return Err(invalid(
                    file,
                    "state.metadata",
                    format!("{m:?} is not a supported metadata URL"),
                    "use redb:///path/to/metadata.redb (embedded) or dynamodb://TABLE (AWS_* environment)",
                ));
            }
        }
        if !(1..=20).contains(&self.retry_max_attempts) {
            return Err(invalid(
                file,
                "state.retry_max_attempts",
                format!("{} is out of range", self.retry_max_attempts),
                "use 1..=20 (1 = no retries)",
            ));
        }
        if self.retry_initial_backoff_ms == 0
            || self.retry_initial_backoff_ms > self.retry_max_backoff_ms
        {
            return Err(invalid(
                file,
                "state.retry_initial_backoff_ms",
                "must be positive and at most retry_max_backoff_ms".into(),
                "e.g. retry_initial_backoff_ms = 50, retry_max_backoff_ms = 2000",
            ));
        }
        if self.resolve_cache_ttl_ms > 60_000 {
            return Err(invalid(
                file,
                "state.resolve_cache_ttl_ms",
                format!("{} is too long", self.resolve_cache_ttl_ms),
                "use 0..=60000; it bounds how long a change made on another node takes to be served here",
            ));
        }
        if let Some(a) = &self.artifacts
            && !a.contains("://")
        {
            return Err(invalid(
                file,
                "state.artifacts",
                format!("{a:?} is not a URL"),
                "use an object_store URL such as file:///var/lib/helixflow/artifacts",
            ));
        }
        Ok(())
    }
}

/// A node's metadata store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataLocation {
    /// Embedded, one file (single machine).
    Redb(PathBuf),
    /// A DynamoDB table shared by a fleet (region/credentials/endpoint from `AWS_*`).
    DynamoDb { table: String },
}

impl std::fmt::Display for MetadataLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MetadataLocation::Redb(p) => write!(f, "redb://{}", p.display()),
            MetadataLocation::DynamoDb { table } => write!(f, "dynamodb://{table}"),
        }
    }
}

/// `[cache]`: node-local caches (compiled components, and artifacts of remote stores),
/// each evicted least-recently-used past its size.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheSection {
    /// Default: the data dir.
    pub dir: Option<PathBuf>,
    pub artifacts_max_mb: u64,
    pub compiled_max_mb: u64,
}

impl Default for CacheSection {
    fn default() -> Self {
        CacheSection {
            dir: None,
            artifacts_max_mb: 2048,
            compiled_max_mb: 2048,
        }
    }
}

impl CacheSection {
    fn validate(&self, file: &str) -> Result<(), ConfigError> {
        if self.artifacts_max_mb == 0 || self.compiled_max_mb == 0 {
            return Err(invalid(
                file,
                "cache",
                "cache sizes must be positive".into(),
                "e.g. artifacts_max_mb = 2048, compiled_max_mb = 2048",
            ));
        }
        Ok(())
    }
}

/// `[runtime]`: the wasmtime engine.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeSection {
    pub max_instances: u32,
    pub max_memory_mb: u32,
    pub epoch_tick_ms: u64,
    pub max_wasm_stack_kb: u32,
    /// Event (asynchronous) invocations this node runs at once.
    pub async_workers: u32,
}

impl Default for RuntimeSection {
    fn default() -> Self {
        RuntimeSection {
            max_instances: 1000,
            max_memory_mb: 1024,
            epoch_tick_ms: 1,
            max_wasm_stack_kb: 1024,
            async_workers: 16,
        }
    }
}

impl RuntimeSection {
    fn validate(&self, file: &str) -> Result<(), ConfigError> {
        if self.max_instances == 0 || self.max_instances > 100_000 {
            return Err(invalid(
                file,
                "runtime.max_instances",
                format!("{} is out of range", self.max_instances),
                "use 1..=100000",
            ));
        }
        if self.async_workers == 0 || self.async_workers > 10_000 {
            return Err(invalid(
                file,
                "runtime.async_workers",
                format!("{} is out of range", self.async_workers),
                "use 1..=10000",
            ));
        }
        if self.max_memory_mb == 0 || self.max_memory_mb > 4096 {
            return Err(invalid(
                file,
                "runtime.max_memory_mb",
                format!("{} is out of range", self.max_memory_mb),
                "use 1..=4096 (a 32-bit linear memory tops out at 4 GiB)",
            ));
        }
        if self.epoch_tick_ms == 0 || self.epoch_tick_ms > 1000 {
            return Err(invalid(
                file,
                "runtime.epoch_tick_ms",
                format!("{} is out of range", self.epoch_tick_ms),
                "use 1..=1000; smaller is more precise",
            ));
        }
        if self.max_wasm_stack_kb < 64 {
            return Err(invalid(
                file,
                "runtime.max_wasm_stack_kb",
                format!("{} is too small", self.max_wasm_stack_kb),
                "use at least 64",
            ));
        }
        Ok(())
    }
}

/// `[inference] intra_spin`: `"adaptive"` (the default: every CPU model gets its own
/// intra-op pool whose threads spin while it runs and stop spinning when its last run
/// returns), `true` / `"always"` (one global pool, threads always spin a while after
/// work, ORT's own default), `false` / `"off"` (threads sleep between sections).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IntraSpin {
    Off,
    #[default]
    Adaptive,
    Always,
}

impl<'de> Deserialize<'de> for IntraSpin {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bool(bool),
            Text(String),
        }
        const WANTED: &str =
            "intra_spin must be \"adaptive\", true (\"always\") or false (\"off\")";
        let raw = Raw::deserialize(d).map_err(|_| serde::de::Error::custom(WANTED))?;
        match raw {
            Raw::Bool(true) => Ok(IntraSpin::Always),
            Raw::Bool(false) => Ok(IntraSpin::Off),
            Raw::Text(t) => match t.as_str() {
                "adaptive" => Ok(IntraSpin::Adaptive),
                "always" | "on" | "true" => Ok(IntraSpin::Always),
                "off" | "false" => Ok(IntraSpin::Off),
                other => Err(serde::de::Error::custom(format!("{WANTED}, not {other:?}"))),
            },
        }
    }
}

/// `[inference]`: the wasi:nn host (ONNX Runtime).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InferenceSection {
    pub ort_dylib: Option<PathBuf>,
    pub intra_threads: usize,
    pub intra_spin: IntraSpin,
    pub session_budget_mb: u64,
    /// Default provider preference, in order (`"tensorrt"`, `"cuda"`, `"cpu"`).
    pub providers: Vec<ExecutionProvider>,
    /// `"next"` or `"refuse"`.
    pub fallback: FallbackPolicy,
    pub trt_cache_dir: Option<PathBuf>,
    pub allow_guest_load: bool,
    pub max_guest_model_mb: u32,
    pub max_tensor_mb: u32,
    /// Most wasi:nn calls one invocation may make (a guest looping over `compute`
    /// fails past it). Default: 10000.
    pub max_calls_per_invocation: u32,
    /// KV-cache bytes all open `helixflow:llm` sequences may hold together.
    pub max_kv_cache_mb: u64,
    /// One tenant's share of `max_kv_cache_mb` (a larger value means all of it).
    pub max_kv_cache_mb_per_tenant: u64,
    /// Per causal LM: the KV of prompt beginnings (a system prompt, earlier turns) kept
    /// for the same tenant's next sequences, charged to the KV budget; 0 disables it.
    pub prefix_cache_mb: u64,
    /// Longest sequence in tokens (a model's own context limit applies too).
    pub max_context: usize,
    pub max_sequences_per_invocation: u32,
    /// `tenant/model[@version]` (or `public/model`) loaded at start-up.
    pub preload: Vec<String>,
}

impl Default for InferenceSection {
    fn default() -> Self {
        InferenceSection {
            ort_dylib: None,
            intra_threads: 0,
            intra_spin: IntraSpin::Adaptive,
            session_budget_mb: 4096,
            providers: vec![ExecutionProvider::Cpu],
            fallback: FallbackPolicy::Next,
            trt_cache_dir: None,
            allow_guest_load: false,
            max_guest_model_mb: 64,
            max_tensor_mb: 64,
            max_calls_per_invocation: 10_000,
            max_kv_cache_mb: 2048,
            max_kv_cache_mb_per_tenant: 1024,
            prefix_cache_mb: 64,
            max_context: 8192,
            max_sequences_per_invocation: 4,
            preload: Vec::new(),
        }
    }
}

impl InferenceSection {
    fn validate(&self, file: &str) -> Result<(), ConfigError> {
        // Each provider and the fallback policy were checked when they were parsed.
        if self.providers.is_empty() {
            return Err(invalid(
                file,
                "inference.providers",
                "empty provider list".into(),
                "e.g. [\"cpu\"] or [\"tensorrt\", \"cuda\", \"cpu\"]",
            ));
        }
        if let Some(p) = &self.ort_dylib
            && !p.is_file()
        {
            return Err(invalid(
                file,
                "inference.ort_dylib",
                format!("{} does not exist", p.display()),
                "pip install onnxruntime==1.31.1 and point at onnxruntime/capi/libonnxruntime.so.1.31.1",
            ));
        }
        for m in &self.preload {
            let ok = m
                .split_once('/')
                .is_some_and(|(t, n)| !t.is_empty() && !n.is_empty());
            if !ok {
                return Err(invalid(
                    file,
                    "inference.preload",
                    format!("{m:?} is not tenant/model[@version]"),
                    "e.g. \"acme/minilm\" or \"public/minilm@2\"",
                ));
            }
        }
        if self.max_kv_cache_mb_per_tenant == 0 {
            return Err(invalid(
                file,
                "inference.max_kv_cache_mb_per_tenant",
                "must be positive".into(),
                "e.g. 1024 (a value over max_kv_cache_mb means the whole budget)",
            ));
        }
        if self.max_calls_per_invocation == 0 {
            return Err(invalid(
                file,
                "inference.max_calls_per_invocation",
                "must be positive".into(),
                "e.g. 10000 (wasi:nn calls one invocation may make)",
            ));
        }
        Ok(())
    }
}

/// `[auth]`: who may call what.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSection {
    /// `"enforce"` (default) or `"off"`.
    pub mode: AuthMode,
    pub admin_key_sha256: Option<String>,
    pub jwks_file: Option<PathBuf>,
    /// Fetch the JWKS from here (HTTPS, or HTTP on loopback), refreshed every
    /// `jwks_refresh_secs`.
    pub jwks_url: Option<String>,
    pub jwks_refresh_secs: u64,
    /// The key sealing stored secrets (32 bytes, base64 or hex); shared by a fleet.
    pub secrets_key_file: Option<PathBuf>,
    pub jwt_issuer: Option<String>,
    pub jwt_audience: String,
    pub jwt_leeway_secs: u64,
}

impl Default for AuthSection {
    fn default() -> Self {
        AuthSection {
            mode: AuthMode::Enforce,
            admin_key_sha256: None,
            jwks_file: None,
            jwks_url: None,
            jwks_refresh_secs: 300,
            secrets_key_file: None,
            jwt_issuer: None,
            jwt_audience: "helixflow".into(),
            jwt_leeway_secs: 30,
        }
    }
}

impl AuthSection {
    fn validate(&self, file: &str) -> Result<(), ConfigError> {
        // `mode` was checked when it was parsed.
        if let Some(h) = &self.admin_key_sha256
            && (h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(invalid(
                file,
                "auth.admin_key_sha256",
                "not a SHA-256 hex digest".into(),
                "printf %s \"$KEY\" | sha256sum",
            ));
        }
        if let Some(p) = &self.jwks_file
            && !p.is_file()
        {
            return Err(invalid(
                file,
                "auth.jwks_file",
                format!("{} does not exist", p.display()),
                "give the path of a JWKS JSON file",
            ));
        }
        if let Some(u) = &self.jwks_url {
            if self.jwks_file.is_some() {
                return Err(invalid(
                    file,
                    "auth.jwks_url",
                    "both jwks_file and jwks_url are set".into(),
                    "use one of them",
                ));
            }
            let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
                .iter()
                .any(|p| u.starts_with(p));
            if !(u.starts_with("https://") || loopback) {
                return Err(invalid(
                    file,
                    "auth.jwks_url",
                    format!("{u:?} is not an https:// URL"),
                    "keys must come over TLS (http:// only on loopback)",
                ));
            }
        }
        if let Some(p) = &self.secrets_key_file
            && !p.exists()
        {
            return Err(invalid(
                file,
                "auth.secrets_key_file",
                format!("{} does not exist", p.display()),
                "create it with 32 random bytes, base64: head -c32 /dev/urandom | base64",
            ));
        }
        if !(1..=86_400).contains(&self.jwks_refresh_secs) {
            return Err(invalid(
                file,
                "auth.jwks_refresh_secs",
                format!("{} is out of range", self.jwks_refresh_secs),
                "use 1..=86400",
            ));
        }
        if self.jwt_leeway_secs > 300 {
            return Err(invalid(
                file,
                "auth.jwt_leeway_secs",
                "more than 5 minutes".into(),
                "keep clock-skew leeway small, e.g. 30",
            ));
        }
        Ok(())
    }
}

/// `[limits]`: per-function defaults and the node's upload and response caps.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSection {
    pub default_memory_mb: u32,
    pub default_timeout_ms: u64,
    pub max_component_mb: u32,
    pub max_model_mb: u32,
    pub max_request_body_mb: u32,
    pub max_response_mb: u32,
    pub max_log_kb: u32,
    pub log_records_per_function: u32,
}

impl Default for LimitsSection {
    fn default() -> Self {
        LimitsSection {
            default_memory_mb: 128,
            default_timeout_ms: 10_000,
            max_component_mb: 50,
            max_model_mb: 1024,
            max_request_body_mb: 6,
            max_response_mb: 64,
            max_log_kb: 64,
            log_records_per_function: 200,
        }
    }
}

impl LimitsSection {
    /// `runtime` bounds `default_memory_mb`.
    fn validate(&self, file: &str, runtime: &RuntimeSection) -> Result<(), ConfigError> {
        if self.default_memory_mb == 0 || self.default_memory_mb > runtime.max_memory_mb {
            return Err(invalid(
                file,
                "limits.default_memory_mb",
                format!(
                    "{} must be 1..=runtime.max_memory_mb ({})",
                    self.default_memory_mb, runtime.max_memory_mb
                ),
                "lower it or raise runtime.max_memory_mb",
            ));
        }
        if self.default_timeout_ms == 0 {
            return Err(invalid(
                file,
                "limits.default_timeout_ms",
                "must be positive".into(),
                "e.g. 10000",
            ));
        }
        if self.max_component_mb == 0 || self.max_request_body_mb == 0 {
            return Err(invalid(
                file,
                "limits",
                "size limits must be positive".into(),
                "e.g. max_component_mb = 50",
            ));
        }
        Ok(())
    }
}

/// `[sandbox]`: what guests may reach. Only the node's operator can widen it; a
/// tenant's function config never can.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SandboxSection {
    /// CIDR ranges of non-public addresses (loopback, RFC 1918, link-local, ...) that
    /// outbound HTTP from guests may connect to, e.g. `["10.0.0.0/8"]`. Default: none.
    pub allow_private: Vec<String>,
}

impl SandboxSection {
    fn validate(&self, file: &str) -> Result<(), ConfigError> {
        for range in &self.allow_private {
            if parse_cidr(range).is_none() {
                return Err(invalid(
                    file,
                    "sandbox.allow_private",
                    format!("{range:?} is not a CIDR range"),
                    "e.g. \"10.0.0.0/8\", \"127.0.0.0/8\" or \"fd00::/8\"",
                ));
            }
        }
        Ok(())
    }
}

/// `[http]`: connection handling of the node's listeners.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSection {
    /// A request head (HTTP/1) must arrive within this many ms of the connection
    /// becoming ready for one.
    pub header_read_timeout_ms: u64,
    /// A connection with no request in flight is closed after this many ms. (An HTTP/1
    /// keep-alive connection waits for its next request head at most
    /// `header_read_timeout_ms`, which is usually shorter.)
    pub idle_timeout_ms: u64,
    /// Open connections per node; past it new ones wait in the accept backlog.
    pub max_connections: usize,
    /// Open connections per client IP address; past it new ones are closed at once.
    pub max_connections_per_ip: usize,
    pub h2_max_concurrent_streams: u32,
    /// Largest request head (HTTP/1) or header list (HTTP/2), KiB.
    pub max_header_kb: u32,
}

impl Default for HttpSection {
    fn default() -> Self {
        HttpSection {
            header_read_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            max_connections: 25_000,
            max_connections_per_ip: 1024,
            h2_max_concurrent_streams: 256,
            max_header_kb: 64,
        }
    }
}

impl HttpSection {
    fn validate(&self, file: &str) -> Result<(), ConfigError> {
        if self.header_read_timeout_ms == 0 || self.idle_timeout_ms == 0 {
            return Err(invalid(
                file,
                "http",
                "timeouts must be positive".into(),
                "e.g. header_read_timeout_ms = 10000",
            ));
        }
        if self.max_connections == 0
            || self.max_connections_per_ip == 0
            || self.h2_max_concurrent_streams == 0
        {
            return Err(invalid(
                file,
                "http",
                "connection and stream limits must be positive".into(),
                "e.g. max_connections_per_ip = 1024",
            ));
        }
        if self.max_header_kb < 8 {
            return Err(invalid(
                file,
                "http.max_header_kb",
                format!("{} is too small", self.max_header_kb),
                "use at least 8",
            ));
        }
        Ok(())
    }
}

/// `[usage]`: metering of every invocation (per-minute totals flushed to the metadata
/// store; `GET /api/v1/tenants/{t}/usage`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UsageSection {
    /// Meter invocations on this node (default on; off only for nodes whose usage
    /// nobody reads, e.g. a benchmark's baseline).
    pub enabled: bool,
    /// How often this node writes its usage totals to the metadata store; a node killed
    /// with -9 loses at most this much usage.
    pub flush_interval_ms: u64,
    /// How long usage records are kept (they expire after it).
    pub retention_days: u32,
    /// Most usage series (minute x dimensions) of one tenant held in memory between
    /// flushes; past it the tenant's new series fold into one `overflow` series a minute.
    pub max_series: usize,
    /// How often the spend of a tenant with a budget (and the requests and tokens other
    /// nodes used against its rate limits) is re-read while it is invoked: with the
    /// flush interval, how late a node learns of the rest of the fleet's use.
    pub budget_refresh_ms: u64,
    /// How often complete hours of usage are summed into hourly roll-ups (by the node
    /// holding the fleet lease `usage-rollup`); queries with a step of an hour or more
    /// read them instead of minutes.
    pub rollup_interval_ms: u64,
    /// How long hourly roll-ups are kept (minute rows: `retention_days`).
    pub rollup_retention_days: u32,
    /// The price table (`[[usage.prices]]`); a tenant's own table replaces it for that
    /// tenant. Cost is usage x the entry in force when it was used.
    pub prices: Vec<PriceEntry>,
}

/// One `[[usage.prices]]` entry: rates in the table's currency (absent: zero), in force
/// from `from` (Unix seconds; default: always) for `model`'s usage (absent: all usage
/// without a more specific entry).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PriceEntry {
    pub from: u64,
    pub model: Option<String>,
    pub per_1m_prompt_tokens: f64,
    pub per_1m_completion_tokens: f64,
    pub per_1m_embedding_tokens: f64,
    pub per_gb_second: f64,
    pub per_1m_requests: f64,
    pub per_image: f64,
}

impl Default for UsageSection {
    fn default() -> Self {
        UsageSection {
            enabled: true,
            flush_interval_ms: 10_000,
            retention_days: 35,
            max_series: 10_000,
            budget_refresh_ms: 2_000,
            rollup_interval_ms: 60_000,
            rollup_retention_days: 400,
            prices: Vec::new(),
        }
    }
}

impl UsageSection {
    fn validate(&self, file: &str) -> Result<(), ConfigError> {
        // At most a minute: roll-ups and budgets treat minutes 5 minutes old as complete.
        if !(100..=60_000).contains(&self.flush_interval_ms) {
            return Err(invalid(
                file,
                "usage.flush_interval_ms",
                format!("{} is out of range", self.flush_interval_ms),
                "use 100..=60000 (default 10000): roll-ups and budgets take minutes 5 minutes old as complete",
            ));
        }
        if !(100..=600_000).contains(&self.budget_refresh_ms) {
            return Err(invalid(
                file,
                "usage.budget_refresh_ms",
                format!("{} is out of range", self.budget_refresh_ms),
                "use 100..=600000 (default 2000)",
            ));
        }
        if !(100..=3_600_000).contains(&self.rollup_interval_ms) || self.rollup_retention_days == 0
        {
            return Err(invalid(
                file,
                "usage.rollup_interval_ms",
                format!(
                    "rollup_interval_ms {} / rollup_retention_days {} out of range",
                    self.rollup_interval_ms, self.rollup_retention_days
                ),
                "rollup_interval_ms 100..=3600000 (default 60000), rollup_retention_days at least 1 (default 400)",
            ));
        }
        for p in &self.prices {
            let rates = [
                p.per_1m_prompt_tokens,
                p.per_1m_completion_tokens,
                p.per_1m_embedding_tokens,
                p.per_gb_second,
                p.per_1m_requests,
                p.per_image,
            ];
            if !p.from.is_multiple_of(3600) {
                return Err(invalid(
                    file,
                    "usage.prices",
                    format!("from = {} is not a whole hour", p.from),
                    "prices change on whole hours (Unix seconds divisible by 3600)",
                ));
            }
            if rates.iter().any(|r| !r.is_finite() || *r < 0.0) {
                return Err(invalid(
                    file,
                    "usage.prices",
                    "rates must be non-negative numbers".into(),
                    "e.g. per_1m_requests = 0.20",
                ));
            }
        }
        if self.retention_days == 0 || self.max_series == 0 {
            return Err(invalid(
                file,
                "usage",
                "retention_days and max_series must be positive".into(),
                "e.g. retention_days = 35",
            ));
        }
        Ok(())
    }
}

/// `[metrics]`: the Prometheus series of `GET /metrics`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSection {
    /// How many tenants get a `tenant` label of their own (the first this process
    /// records); every later tenant, and its functions and models, is labelled `other`,
    /// so the node's series stay bounded however many tenants it serves (default 50;
    /// 0: every tenant is `other`).
    pub max_tenant_labels: usize,
}

impl Default for MetricsSection {
    fn default() -> Self {
        MetricsSection {
            max_tenant_labels: 50,
        }
    }
}

impl MetricsSection {
    fn validate(&self, file: &str) -> Result<(), ConfigError> {
        if self.max_tenant_labels > 10_000 {
            return Err(invalid(
                file,
                "metrics.max_tenant_labels",
                format!("{} is too many", self.max_tenant_labels),
                "use 0..=10000 (default 50): each labelled tenant adds series to every scrape",
            ));
        }
        Ok(())
    }
}

/// `[alerts]`: evaluation of tenants' alert rules (one node of the fleet at a time,
/// by a lease in the metadata store) and delivery of their notifications.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsSection {
    /// Take part in alert evaluation (default on; the fleet's lease holder evaluates).
    pub enabled: bool,
    /// How often the rules are evaluated.
    pub evaluation_interval_ms: u64,
    /// Each webhook delivery attempt's limit (connect, TLS, answer).
    pub webhook_timeout_ms: u64,
    /// Attempts per webhook notification, the first included.
    pub webhook_max_attempts: u32,
    /// Wait after the first failed attempt; doubles after each (at most 60 s).
    pub webhook_retry_initial_ms: u64,
}

impl Default for AlertsSection {
    fn default() -> Self {
        AlertsSection {
            enabled: true,
            evaluation_interval_ms: 30_000,
            webhook_timeout_ms: 10_000,
            webhook_max_attempts: 4,
            webhook_retry_initial_ms: 1_000,
        }
    }
}

impl AlertsSection {
    fn validate(&self, file: &str) -> Result<(), ConfigError> {
        for (key, value, range, hint) in [
            (
                "alerts.evaluation_interval_ms",
                self.evaluation_interval_ms,
                100..=3_600_000,
                "use 100..=3600000 (default 30000)",
            ),
            (
                "alerts.webhook_timeout_ms",
                self.webhook_timeout_ms,
                100..=60_000,
                "use 100..=60000 (default 10000)",
            ),
            (
                "alerts.webhook_retry_initial_ms",
                self.webhook_retry_initial_ms,
                10..=60_000,
                "use 10..=60000 (default 1000)",
            ),
        ] {
            if !range.contains(&value) {
                return Err(invalid(file, key, format!("{value} is out of range"), hint));
            }
        }
        if !(1..=10).contains(&self.webhook_max_attempts) {
            return Err(invalid(
                file,
                "alerts.webhook_max_attempts",
                format!("{} is out of range", self.webhook_max_attempts),
                "use 1..=10 (default 4)",
            ));
        }
        Ok(())
    }
}

/// `[telemetry]`: distributed tracing. A W3C `traceparent` is always accepted and passed
/// on (into the function's request and onto its outbound requests); the spans (request
/// -> invocation -> wasi:nn compute / helixflow:llm steps) are exported over OTLP/HTTP
/// (protobuf) when `otlp_endpoint` is set, in batches from a background thread (a
/// collector that is down costs a warning, never a request's time).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetrySection {
    /// OTLP/HTTP collector, e.g. `http://127.0.0.1:4318` (`/v1/traces` is appended
    /// unless the path already ends with it). Empty (default): no span export.
    /// `OTEL_EXPORTER_OTLP_HEADERS` adds headers (e.g. a collector's API key).
    pub otlp_endpoint: String,
    /// `service.name` of the exported spans (default `helixflow`).
    pub service_name: String,
    /// Share of new traces sampled, 0.0..=1.0 (default 1.0); an incoming
    /// `traceparent`'s sampled flag decides for its trace.
    pub sample_ratio: f64,
    /// Finished spans waiting for export (default 2048); past it new spans are dropped.
    pub export_queue_size: usize,
    /// Spans per export request (default 512; at most `export_queue_size`).
    pub export_batch_size: usize,
    /// How often queued spans are sent (default 5000; sooner when a batch is full).
    pub export_interval_ms: u64,
    /// One export request, connect to answer, retries included (default 10000); also
    /// the most that flushing at shutdown waits.
    pub export_timeout_ms: u64,
}

impl Default for TelemetrySection {
    fn default() -> Self {
        TelemetrySection {
            otlp_endpoint: String::new(),
            service_name: "helixflow".into(),
            sample_ratio: 1.0,
            export_queue_size: 2048,
            export_batch_size: 512,
            export_interval_ms: 5000,
            export_timeout_ms: 10_000,
        }
    }
}

impl TelemetrySection {
    fn validate(&self, file: &str) -> Result<(), ConfigError> {
        let e = &self.otlp_endpoint;
        let host = e
            .strip_prefix("http://")
            .or_else(|| e.strip_prefix("https://"))
            .and_then(|rest| rest.split('/').next())
            .unwrap_or("");
        if !e.is_empty()
            && (host.is_empty() || host.contains('@') || e.chars().any(|c| c.is_whitespace()))
        {
            return Err(invalid(
                file,
                "telemetry.otlp_endpoint",
                format!("{e:?} is not an http:// or https:// URL"),
                "e.g. otlp_endpoint = \"http://127.0.0.1:4318\" (an OTLP/HTTP collector); \"\" turns export off",
            ));
        }
        if self.service_name.is_empty()
            || self.service_name.len() > 255
            || self.service_name.chars().any(char::is_control)
        {
            return Err(invalid(
                file,
                "telemetry.service_name",
                format!("{:?} is not a service name", self.service_name),
                "use 1-255 printable characters (default \"helixflow\")",
            ));
        }
        if !(self.sample_ratio.is_finite() && (0.0..=1.0).contains(&self.sample_ratio)) {
            return Err(invalid(
                file,
                "telemetry.sample_ratio",
                format!("{} is out of range", self.sample_ratio),
                "use 0.0..=1.0 (default 1.0: every new trace)",
            ));
        }
        if !(1..=1_000_000).contains(&self.export_queue_size)
            || !(1..=self.export_queue_size).contains(&self.export_batch_size)
        {
            return Err(invalid(
                file,
                "telemetry.export_batch_size",
                format!(
                    "export_batch_size {} / export_queue_size {} are out of range",
                    self.export_batch_size, self.export_queue_size
                ),
                "use 1 <= export_batch_size <= export_queue_size <= 1000000 (defaults 512 and 2048)",
            ));
        }
        for (key, value, range, hint) in [
            (
                "telemetry.export_interval_ms",
                self.export_interval_ms,
                10..=600_000,
                "use 10..=600000 (default 5000)",
            ),
            (
                "telemetry.export_timeout_ms",
                self.export_timeout_ms,
                100..=120_000,
                "use 100..=120000 (default 10000)",
            ),
        ] {
            if !range.contains(&value) {
                return Err(invalid(file, key, format!("{value} is out of range"), hint));
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Parsing, overrides, validation, derived locations.
// ---------------------------------------------------------------------------------------

/// `a.b.c.d/n` or `v6::/n` -> (network address, prefix length), `None` if malformed.
pub fn parse_cidr(s: &str) -> Option<(std::net::IpAddr, u8)> {
    let (addr, len) = s.trim().split_once('/')?;
    let addr: std::net::IpAddr = addr.parse().ok()?;
    let len: u8 = len.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    (len <= max).then_some((addr, len))
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |i| before.len() - i - 1)
        + 1;
    (line, column)
}

fn hint_for(message: &str) -> String {
    if let Some((_, hint)) = CHOICE_HINTS.iter().find(|(key, _)| {
        message
            .strip_prefix(key)
            .is_some_and(|rest| rest.starts_with(": "))
    }) {
        (*hint).into()
    } else if message.contains("unknown field") {
        "remove the key or fix its spelling; the keys each table accepts are listed in the message and in edge-config/src/lib.rs".into()
    } else if message.contains("invalid type") {
        "check the value's type: numbers unquoted, strings in quotes".into()
    } else {
        "see the example at the top of edge-config/src/lib.rs".into()
    }
}

impl NodeConfig {
    /// Parse TOML text (`file` names it in errors) and validate it.
    pub fn parse(text: &str, file: &str) -> Result<Self, ConfigError> {
        let cfg: NodeConfig = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
            let message = e.message().to_string();
            ConfigError::Parse {
                file: file.to_string(),
                line,
                column,
                hint: hint_for(&message),
                message,
            }
        })?;
        cfg.validate(file)?;
        Ok(cfg)
    }

    /// Read, parse and validate a file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: file.clone(),
            source,
        })?;
        Self::parse(&text, &file)
    }

    /// Apply `HELIXFLOW_*` environment overrides (then re-validate). None of them sets
    /// an enum key; one that does parses the variable with `str::parse` and reports an
    /// unknown word with [`InvalidChoice::into_config_error`]`("environment")`.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(v) = get("HELIXFLOW_NODE_ID") {
            self.node.id = v;
        }
        if let Some(v) = get("HELIXFLOW_LISTEN") {
            self.listen.http = v;
        }
        if let Some(v) = get("HELIXFLOW_DATA_DIR") {
            self.state.data_dir = PathBuf::from(v);
        }
        if let Some(v) = get("HELIXFLOW_METADATA_URL") {
            self.state.metadata = Some(v);
        }
        if let Some(v) = get("HELIXFLOW_ARTIFACTS_URL") {
            self.state.artifacts = Some(v);
        }
        if let Some(v) = get("HELIXFLOW_OTLP_ENDPOINT") {
            self.telemetry.otlp_endpoint = v;
        }
        self.validate("environment")
    }

    /// Checks every section (`file` names the source in errors); the first problem
    /// found is the error.
    pub fn validate(&self, file: &str) -> Result<(), ConfigError> {
        self.node.validate(file)?;
        self.listen.validate(file)?;
        self.state.validate(file)?;
        self.auth.validate(file)?;
        self.inference.validate(file)?;
        self.cache.validate(file)?;
        self.runtime.validate(file)?;
        self.limits.validate(file, &self.runtime)?;
        self.sandbox.validate(file)?;
        self.http.validate(file)?;
        self.usage.validate(file)?;
        self.telemetry.validate(file)?;
        self.alerts.validate(file)?;
        self.metrics.validate(file)?;
        Ok(())
    }

    /// Where metadata lives.
    pub fn metadata(&self) -> MetadataLocation {
        match self
            .state
            .metadata
            .as_deref()
            .and_then(|m| m.split_once("://"))
        {
            Some(("dynamodb", table)) => MetadataLocation::DynamoDb {
                table: table.to_string(),
            },
            Some((_, path)) => MetadataLocation::Redb(PathBuf::from(path)),
            None => MetadataLocation::Redb(self.state.data_dir.join("metadata.redb")),
        }
    }

    /// The artifact store URL (absolute `file://` by default).
    pub fn artifacts_url(&self) -> String {
        match &self.state.artifacts {
            Some(a) => a.clone(),
            None => {
                let dir = self.state.data_dir.join("artifacts");
                let abs = std::path::absolute(&dir).unwrap_or(dir);
                format!("file://{}", abs.display())
            }
        }
    }

    pub fn compile_cache_dir(&self) -> PathBuf {
        self.state.compile_cache_dir.clone().unwrap_or_else(|| {
            self.cache
                .dir
                .clone()
                .unwrap_or_else(|| self.state.data_dir.clone())
                .join("compiled")
        })
    }

    /// Where artifacts of a remote store are cached locally.
    pub fn artifact_cache_dir(&self) -> PathBuf {
        self.cache
            .dir
            .clone()
            .unwrap_or_else(|| self.state.data_dir.clone())
            .join("artifact-cache")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_parses() {
        let src = include_str!("lib.rs");
        let start = src.find("//! ```toml\n").unwrap() + "//! ```toml\n".len();
        let end = start + src[start..].find("//! ```\n").unwrap();
        let example: String = src[start..end]
            .lines()
            .map(|l| {
                l.strip_prefix("//! ")
                    .or_else(|| l.strip_prefix("//!"))
                    .unwrap_or(l)
            })
            .collect::<Vec<_>>()
            .join("\n");
        let c = NodeConfig::parse(&example, "example").unwrap();
        assert_eq!(c.node.id, "fra");
        assert_eq!(c.cache.artifacts_max_mb, 2048);
    }

    #[test]
    fn intra_spin_takes_a_bool_or_a_policy() {
        let spin = |v: &str| {
            NodeConfig::parse(&format!("[inference]\nintra_spin = {v}\n"), "n.toml")
                .map(|c| c.inference.intra_spin)
        };
        assert_eq!(
            NodeConfig::default().inference.intra_spin,
            IntraSpin::Adaptive
        );
        assert_eq!(spin("true").unwrap(), IntraSpin::Always);
        assert_eq!(spin("false").unwrap(), IntraSpin::Off);
        assert_eq!(spin("\"adaptive\"").unwrap(), IntraSpin::Adaptive);
        assert_eq!(spin("\"always\"").unwrap(), IntraSpin::Always);
        assert_eq!(spin("\"off\"").unwrap(), IntraSpin::Off);
        assert_eq!(spin("\"on\"").unwrap(), IntraSpin::Always);
        let err = spin("\"sometimes\"").unwrap_err().to_string();
        assert!(err.contains("intra_spin must be"), "{err}");
        let err = spin("3").unwrap_err().to_string();
        assert!(err.contains("intra_spin must be"), "{err}");
    }

    #[test]
    fn empty_file_is_a_working_default() {
        let c = NodeConfig::parse("", "node.toml").unwrap();
        assert_eq!(c, NodeConfig::default());
        assert!(c.artifacts_url().starts_with("file:///"));
    }

    #[test]
    fn full_file_parses() {
        let c = NodeConfig::parse(
            "[node]\nid = \"fra\"\nregion = \"eu\"\n[listen]\nhttp = \"127.0.0.1:9000\"\n[limits]\ndefault_timeout_ms = 500\n",
            "n.toml",
        )
        .unwrap();
        assert_eq!(c.node.id, "fra");
        assert_eq!(c.limits.default_timeout_ms, 500);
        assert_eq!(c.limits.default_memory_mb, 128, "unset keys keep defaults");
    }

    #[test]
    fn unknown_keys_name_file_line_and_hint() {
        let err = NodeConfig::parse(
            "[node]\nid = \"fra\"\n\n[limits]\ndefault_timeot_ms = 5\n",
            "edge.toml",
        )
        .unwrap_err();
        let s = err.to_string();
        assert!(s.starts_with("edge.toml:5:"), "{s}");
        assert!(s.contains("default_timeot_ms"), "{s}");
        assert!(s.contains("hint:"), "{s}");
    }

    #[test]
    fn bad_values_are_rejected_with_the_field() {
        for (text, field) in [
            ("[listen]\nhttp = \"nope\"", "listen.http"),
            ("[listen]\nhttps = \"127.0.0.1:8443\"", "listen.https"),
            (
                "[listen]\nhttps = \"127.0.0.1:8443\"\ntls_cert = \"/nonexistent.pem\"\ntls_key = \"/nonexistent.pem\"",
                "listen.tls_cert",
            ),
            ("[node]\nid = \"a b\"", "node.id"),
            ("[runtime]\nmax_memory_mb = 0", "runtime.max_memory_mb"),
            (
                "[limits]\ndefault_memory_mb = 9000",
                "limits.default_memory_mb",
            ),
            ("[state]\nmetadata = \"postgres://x\"", "state.metadata"),
            ("[state]\nmetadata = \"dynamodb://a b\"", "state.metadata"),
            (
                "[metrics]\nmax_tenant_labels = 20000",
                "metrics.max_tenant_labels",
            ),
            (
                "[alerts]\nevaluation_interval_ms = 5",
                "alerts.evaluation_interval_ms",
            ),
            (
                "[alerts]\nwebhook_max_attempts = 0",
                "alerts.webhook_max_attempts",
            ),
            (
                "[alerts]\nwebhook_timeout_ms = 600000",
                "alerts.webhook_timeout_ms",
            ),
        ] {
            let s = NodeConfig::parse(text, "x.toml").unwrap_err().to_string();
            assert!(s.contains(field), "{text:?} -> {s}");
        }
        let s = NodeConfig::parse("[runtime]\nmax_instances = \"ten\"", "x.toml")
            .unwrap_err()
            .to_string();
        assert!(s.starts_with("x.toml:2:"), "{s}");
    }

    #[test]
    fn environment_overrides_apply_and_are_validated() {
        let mut c = NodeConfig::default();
        c.apply_env(|k| (k == "HELIXFLOW_LISTEN").then(|| "127.0.0.1:1234".to_string()))
            .unwrap();
        assert_eq!(c.listen.http, "127.0.0.1:1234");
        let mut c = NodeConfig::default();
        assert!(
            c.apply_env(|k| (k == "HELIXFLOW_LISTEN").then(|| "bogus".to_string()))
                .is_err()
        );
    }

    #[test]
    fn telemetry_is_off_by_default_and_checked_when_set() {
        let c = NodeConfig::parse("", "x.toml").unwrap();
        assert_eq!(c.telemetry.otlp_endpoint, "");
        assert_eq!(c.telemetry.service_name, "helixflow");
        assert_eq!(c.telemetry.sample_ratio, 1.0);
        let c = NodeConfig::parse(
            "[telemetry]\notlp_endpoint = \"https://otel.example:4318/otlp\"\nsample_ratio = 0.25\nservice_name = \"edge-fra\"\n",
            "x.toml",
        )
        .unwrap();
        assert_eq!(c.telemetry.otlp_endpoint, "https://otel.example:4318/otlp");
        assert_eq!(c.telemetry.sample_ratio, 0.25);
        for (text, field) in [
            (
                "otlp_endpoint = \"127.0.0.1:4318\"",
                "telemetry.otlp_endpoint",
            ),
            ("otlp_endpoint = \"http://\"", "telemetry.otlp_endpoint"),
            (
                "otlp_endpoint = \"http://u:p@c:4318\"",
                "telemetry.otlp_endpoint",
            ),
            ("service_name = \"\"", "telemetry.service_name"),
            ("sample_ratio = 1.5", "telemetry.sample_ratio"),
            ("sample_ratio = -0.1", "telemetry.sample_ratio"),
            ("sample_ratio = nan", "telemetry.sample_ratio"),
            ("export_batch_size = 4096", "telemetry.export_batch_size"),
            ("export_queue_size = 0", "telemetry.export_batch_size"),
            ("export_interval_ms = 1", "telemetry.export_interval_ms"),
            ("export_timeout_ms = 0", "telemetry.export_timeout_ms"),
        ] {
            let text = format!("[telemetry]\n{text}\n");
            let s = NodeConfig::parse(&text, "x.toml").unwrap_err().to_string();
            assert!(s.contains(field), "{text:?} -> {s}");
        }
        let mut c = NodeConfig::default();
        c.apply_env(|k| {
            (k == "HELIXFLOW_OTLP_ENDPOINT").then(|| "http://127.0.0.1:4318".to_string())
        })
        .unwrap();
        assert_eq!(c.telemetry.otlp_endpoint, "http://127.0.0.1:4318");
        let mut c = NodeConfig::default();
        assert!(
            c.apply_env(|k| (k == "HELIXFLOW_OTLP_ENDPOINT").then(|| "nope".to_string()))
                .is_err()
        );
    }

    #[test]
    fn enum_keys_accept_their_words() {
        let c = NodeConfig::parse(
            "[auth]\nmode = \"off\"\n[inference]\nproviders = [\"tensorrt\", \"cuda\", \"cpu\"]\nfallback = \"refuse\"\n",
            "x.toml",
        )
        .unwrap();
        assert_eq!(c.auth.mode, AuthMode::Off);
        assert_eq!(
            c.inference.providers,
            [
                ExecutionProvider::Tensorrt,
                ExecutionProvider::Cuda,
                ExecutionProvider::Cpu
            ]
        );
        assert_eq!(c.inference.fallback, FallbackPolicy::Refuse);
        let c = NodeConfig::parse(
            "[auth]\nmode = \"enforce\"\n[inference]\nfallback = \"next\"\n",
            "x.toml",
        )
        .unwrap();
        assert_eq!(c.auth.mode, AuthMode::Enforce);
        assert_eq!(c.inference.fallback, FallbackPolicy::Next);
        // Defaults are the words the file would spell.
        let d = NodeConfig::default();
        assert_eq!(d.auth.mode, AuthMode::Enforce);
        assert_eq!(d.inference.providers, [ExecutionProvider::Cpu]);
        assert_eq!(d.inference.fallback, FallbackPolicy::Next);
        // Every value round-trips through its word.
        for m in [AuthMode::Enforce, AuthMode::Off] {
            assert_eq!(m.as_str().parse::<AuthMode>(), Ok(m));
        }
        for p in [
            ExecutionProvider::Tensorrt,
            ExecutionProvider::Cuda,
            ExecutionProvider::Cpu,
        ] {
            assert_eq!(p.to_string().parse::<ExecutionProvider>(), Ok(p));
        }
        for f in [FallbackPolicy::Next, FallbackPolicy::Refuse] {
            assert_eq!(f.as_str().parse::<FallbackPolicy>(), Ok(f));
        }
    }

    #[test]
    fn unknown_enum_words_name_the_key_file_line_and_hint() {
        for (text, key, message, hint) in [
            (
                "[node]\nid = \"fra\"\n[auth]\nmode = \"bogus\"\n",
                "auth.mode",
                "\"bogus\" is not an auth mode",
                "use \"enforce\" (default) or \"off\"",
            ),
            (
                "[node]\nid = \"fra\"\n[inference]\nproviders = [\"cpu\", \"gpu\"]\n",
                "inference.providers",
                "unknown execution provider \"gpu\"",
                "use an ordered list of \"tensorrt\", \"cuda\", \"cpu\"",
            ),
            (
                // Spelled as the file must spell it: lowercase, no aliases.
                "[node]\nid = \"fra\"\n[inference]\nproviders = [\"CPU\"]\n",
                "inference.providers",
                "unknown execution provider \"CPU\"",
                "use an ordered list of",
            ),
            (
                "[node]\nid = \"fra\"\n[inference]\nfallback = \"maybe\"\n",
                "inference.fallback",
                "\"maybe\" is not a fallback policy",
                "use \"next\" (try the next provider, logged) or \"refuse\"",
            ),
        ] {
            let s = NodeConfig::parse(text, "edge.toml")
                .unwrap_err()
                .to_string();
            assert!(s.starts_with("edge.toml:4:"), "{text:?} -> {s}");
            assert!(s.contains(&format!("{key}: {message}")), "{text:?} -> {s}");
            assert!(s.contains(&format!("hint: {hint}")), "{text:?} -> {s}");
        }
        // A value of the wrong type is a type error, as for every other key.
        let s = NodeConfig::parse("[auth]\nmode = 5\n", "x.toml")
            .unwrap_err()
            .to_string();
        assert!(s.starts_with("x.toml:2:"), "{s}");
        assert!(s.contains("check the value's type"), "{s}");
        // An empty provider list is still rejected by validation.
        let s = NodeConfig::parse("[inference]\nproviders = []\n", "x.toml")
            .unwrap_err()
            .to_string();
        assert!(
            s.contains("inference.providers: empty provider list"),
            "{s}"
        );
    }

    #[test]
    fn enum_words_from_elsewhere_become_errors_naming_the_key() {
        let err = "gpu".parse::<ExecutionProvider>().unwrap_err();
        assert_eq!(err.key, "inference.providers");
        let s = err.into_config_error("environment").to_string();
        assert!(
            s.starts_with("environment: inference.providers: unknown execution provider \"gpu\""),
            "{s}"
        );
        assert!(s.contains("hint: use an ordered list"), "{s}");
        let s = "disabled".parse::<AuthMode>().unwrap_err().to_string();
        assert_eq!(s, "auth.mode: \"disabled\" is not an auth mode");
        assert!("".parse::<FallbackPolicy>().is_err());
    }

    #[test]
    fn former_serve_constants_are_keys_with_their_old_defaults() {
        let c = NodeConfig::default();
        assert_eq!(c.inference.max_calls_per_invocation, 10_000);
        assert_eq!(c.listen.tls_reload_secs, 2);
        let c = NodeConfig::parse(
            "[inference]\nmax_calls_per_invocation = 7\n[listen]\ntls_reload_secs = 30\n",
            "x.toml",
        )
        .unwrap();
        assert_eq!(c.inference.max_calls_per_invocation, 7);
        assert_eq!(c.listen.tls_reload_secs, 30);
        for (text, field) in [
            (
                "[inference]\nmax_calls_per_invocation = 0",
                "inference.max_calls_per_invocation",
            ),
            ("[listen]\ntls_reload_secs = 0", "listen.tls_reload_secs"),
            ("[listen]\ntls_reload_secs = 3601", "listen.tls_reload_secs"),
        ] {
            let s = NodeConfig::parse(text, "x.toml").unwrap_err().to_string();
            assert!(
                s.starts_with(&format!("x.toml: {field}:")),
                "{text:?} -> {s}"
            );
        }
    }
}

/// Bounded random-input runs over the config parser (see helixflow-auth's note on
/// cargo-fuzz): mutated configs are rejected with a located error, never a panic.
#[cfg(test)]
mod fuzz {
    use super::*;

    #[test]
    fn mutated_configs_are_errors_with_a_location_never_panics() {
        let base = "[node]\nid = \"fra\"\n[listen]\nhttp = \"127.0.0.1:8080\"\n[state]\nresolve_cache_ttl_ms = 1000\n[inference]\nproviders = [\"cpu\"]\n[auth]\nmode = \"enforce\"\n[limits]\nmax_request_body_mb = 6\n";
        let mut x: u64 = 0x2545F4914F6CDD1D;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let junk = [
            "=",
            "[",
            "]",
            "\"",
            "\n",
            "x",
            "0",
            "-1",
            "99999999999999999999",
            "[[a]]",
            "é",
            "\u{0}",
            "true",
            ".",
            "{}",
        ];
        for _ in 0..5_000 {
            let mut s: Vec<char> = base.chars().collect();
            for _ in 0..(next() % 4 + 1) {
                let at = (next() as usize) % (s.len() + 1);
                match next() % 3 {
                    0 if !s.is_empty() => {
                        s.remove(at.min(s.len() - 1));
                    }
                    _ => {
                        let j = junk[(next() as usize) % junk.len()];
                        for (k, c) in j.chars().enumerate() {
                            s.insert(at + k, c);
                        }
                    }
                }
            }
            let text: String = s.into_iter().collect();
            if let Err(e) = NodeConfig::parse(&text, "fuzz.toml") {
                let msg = e.to_string();
                assert!(msg.starts_with("fuzz.toml"), "errors name the file: {msg}");
            }
        }
    }
}
