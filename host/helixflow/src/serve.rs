//! `helixflow serve`: wire config -> state -> runtime -> API and run until a signal.

use anyhow::{Context, Result};
use helixflow_api::{ApiSettings, AppState};
use helixflow_edge_config::{
    AuthMode, ExecutionProvider, FallbackPolicy, MetadataLocation, NodeConfig,
};
use helixflow_node::{Node, NodeSettings};
use helixflow_runtime::{Runtime, RuntimeConfig};
use helixflow_store::ArtifactStore;
use helixflow_store::MetadataStore;
use helixflow_store::registry::Registry;
use helixflow_store_redb::RedbMetadataStore;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Node configuration file (TOML). Without it: embedded defaults.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Override listen.http.
    #[arg(long)]
    listen: Option<String>,
    /// Override state.data_dir.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Override node.id.
    #[arg(long)]
    node_id: Option<String>,
    /// Log as JSON lines.
    #[arg(long)]
    log_json: bool,
}

/// Load the node configuration: file (or defaults), then `HELIXFLOW_*`, then flags.
pub fn load_config(config: Option<&std::path::Path>) -> Result<NodeConfig> {
    let mut cfg = match config {
        Some(p) => NodeConfig::load(p)?,
        None => NodeConfig::default(),
    };
    cfg.apply_env(|k| std::env::var(k).ok())?;
    Ok(cfg)
}

/// The retry policy for cloud stores from the configuration.
pub fn retry_policy(cfg: &NodeConfig) -> helixflow_store::RetryPolicy {
    helixflow_store::RetryPolicy {
        max_attempts: cfg.state.retry_max_attempts,
        initial_backoff: Duration::from_millis(cfg.state.retry_initial_backoff_ms),
        max_backoff: Duration::from_millis(cfg.state.retry_max_backoff_ms),
    }
}

/// Open the metadata store the configuration names.
pub async fn open_metadata(cfg: &NodeConfig) -> Result<Arc<dyn MetadataStore>> {
    Ok(match cfg.metadata() {
        MetadataLocation::Redb(path) => Arc::new(RedbMetadataStore::open(path)?),
        MetadataLocation::DynamoDb { table } => Arc::new(
            helixflow_store_dynamodb::DynamoDbMetadataStore::from_env_with(
                &table,
                retry_policy(cfg),
            )?,
        ),
    })
}

/// Files (sockets, models, the store) the node keeps open besides its connections.
const FD_RESERVE: u64 = 1024;

/// Raises the soft open-file limit to the hard one (as Go's runtime does at start): a
/// node started under a shell's default 1024 would otherwise refuse connections past
/// ~1000 (`accept` fails with EMFILE) long before `[http] max_connections`. Says so
/// when even the hard limit is below `max_connections` plus a reserve.
fn raise_open_file_limit(max_connections: usize) {
    #[cfg(unix)]
    {
        use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
        let lim = getrlimit(Resource::Nofile);
        let mut soft = lim.current;
        if lim.current != lim.maximum {
            let raised = Rlimit {
                current: lim.maximum,
                maximum: lim.maximum,
            };
            match setrlimit(Resource::Nofile, raised) {
                Ok(()) => soft = lim.maximum,
                Err(e) => tracing::warn!(error = %e, "could not raise the open-file limit"),
            }
        }
        let wanted = max_connections as u64 + FD_RESERVE;
        match soft {
            Some(n) if n < wanted => tracing::warn!(
                open_files = n,
                max_connections,
                "the open-file limit is below [http] max_connections plus {FD_RESERVE}: connections past it fail to be accepted; raise the hard limit (LimitNOFILE=, ulimit -Hn) or lower max_connections"
            ),
            _ => tracing::debug!(open_files = ?soft, "open-file limit"),
        }
    }
}

pub async fn run(args: ServeArgs) -> Result<()> {
    let mut cfg = load_config(args.config.as_deref())?;
    if let Some(l) = args.listen {
        cfg.listen.http = l;
    }
    if let Some(d) = args.data_dir {
        cfg.state.data_dir = d;
    }
    if let Some(n) = args.node_id {
        cfg.node.id = n;
    }
    cfg.validate("command line")?;
    let telemetry = init_tracing(&cfg, args.log_json)?;
    raise_open_file_limit(cfg.http.max_connections);

    std::fs::create_dir_all(&cfg.state.data_dir)
        .with_context(|| format!("creating data dir {}", cfg.state.data_dir.display()))?;
    let meta = open_metadata(&cfg).await?;
    // Fail at start-up, not on the first request, when the store is unusable.
    let probe = helixflow_store::keys::probe();
    meta.get(&probe.pk, &probe.sk).await.with_context(|| {
        format!(
            "metadata store {} is not usable (for DynamoDB: does the table exist? `helixflow state init`)",
            cfg.metadata()
        )
    })?;
    let artifacts = ArtifactStore::from_url_with(&cfg.artifacts_url(), retry_policy(&cfg))?
        .with_local_cache(cfg.artifact_cache_dir(), cfg.cache.artifacts_max_mb << 20);
    let registry = Registry::new(meta.clone());
    let inference = start_inference(&cfg, &registry, &artifacts)?;
    // Compiled code in the disk cache is authenticated with a subkey of the secrets key.
    let cache_key = helixflow_runtime::CompileCacheKey::new(
        secrets_key(&cfg)?.derive_key(helixflow_runtime::CompileCacheKey::DERIVATION_LABEL),
    );
    let runtime = Runtime::with_inference(
        RuntimeConfig {
            cache_dir: Some(cfg.compile_cache_dir()),
            cache_max_bytes: cfg.cache.compiled_max_mb << 20,
            cache_key: Some(cache_key),
            max_instances: cfg.runtime.max_instances,
            max_memory_bytes: (cfg.runtime.max_memory_mb as usize) << 20,
            epoch_tick: Duration::from_millis(cfg.runtime.epoch_tick_ms),
            max_wasm_stack: (cfg.runtime.max_wasm_stack_kb as usize) << 10,
            // Validated by `cfg.validate` above; only the node operator sets these.
            allow_private: cfg
                .sandbox
                .allow_private
                .iter()
                .filter_map(|r| helixflow_edge_config::parse_cidr(r))
                .collect(),
        },
        inference.clone(),
    )?;
    // Model uploads are spooled to disk here (next to the caches, not in a small /tmp).
    let upload_dir = cfg
        .cache
        .dir
        .clone()
        .unwrap_or_else(|| cfg.state.data_dir.clone())
        .join("uploads");
    helixflow_api::upload::remove_stale(&upload_dir);
    let node_settings = NodeSettings {
        node_id: cfg.node.id.clone(),
        default_memory_mb: cfg.limits.default_memory_mb,
        default_timeout_ms: cfg.limits.default_timeout_ms,
        max_log_bytes: (cfg.limits.max_log_kb as usize) << 10,
        log_records_per_function: cfg.limits.log_records_per_function as usize,
        resolve_cache_ttl: Duration::from_millis(cfg.state.resolve_cache_ttl_ms),
        served_tenants: cfg.node.tenants.clone(),
        async_workers: cfg.runtime.async_workers as usize,
        usage_enabled: cfg.usage.enabled,
        usage_flush_interval: Duration::from_millis(cfg.usage.flush_interval_ms),
        usage_retention: Duration::from_secs(u64::from(cfg.usage.retention_days) * 86_400),
        usage_max_series: cfg.usage.max_series,
        budget_refresh: Duration::from_millis(cfg.usage.budget_refresh_ms),
        usage_rollup_interval: Duration::from_millis(cfg.usage.rollup_interval_ms),
        usage_rollup_retention: Duration::from_secs(
            u64::from(cfg.usage.rollup_retention_days) * 86_400,
        ),
        metrics_max_tenant_labels: cfg.metrics.max_tenant_labels,
        alerts: helixflow_node::alerts::AlertSettings {
            enabled: cfg.alerts.enabled,
            evaluation_interval: Duration::from_millis(cfg.alerts.evaluation_interval_ms),
            webhook_timeout: Duration::from_millis(cfg.alerts.webhook_timeout_ms),
            webhook_max_attempts: cfg.alerts.webhook_max_attempts,
            webhook_retry_initial: Duration::from_millis(cfg.alerts.webhook_retry_initial_ms),
        },
        prices: cfg
            .usage
            .prices
            .iter()
            .map(|p| helixflow_usage::Price {
                from: p.from,
                model: p.model.clone(),
                per_1m_prompt_tokens: p.per_1m_prompt_tokens,
                per_1m_completion_tokens: p.per_1m_completion_tokens,
                per_1m_embedding_tokens: p.per_1m_embedding_tokens,
                per_gb_second: p.per_gb_second,
                per_1m_requests: p.per_1m_requests,
                per_image: p.per_image,
            })
            .collect(),
    };
    let settings = ApiSettings {
        max_component_bytes: (cfg.limits.max_component_mb as usize) << 20,
        max_model_bytes: (cfg.limits.max_model_mb as usize) << 20,
        upload_dir: Some(upload_dir),
        max_request_body_bytes: (cfg.limits.max_request_body_mb as usize) << 20,
        max_response_bytes: (cfg.limits.max_response_mb as usize) << 20,
        control_plane_mtls: cfg.listen.client_ca.is_some(),
        http: helixflow_api::HttpSettings {
            header_read_timeout: Duration::from_millis(cfg.http.header_read_timeout_ms),
            idle_timeout: Duration::from_millis(cfg.http.idle_timeout_ms),
            max_connections: cfg.http.max_connections,
            max_connections_per_ip: cfg.http.max_connections_per_ip,
            h2_max_concurrent_streams: cfg.http.h2_max_concurrent_streams,
            max_header_bytes: (cfg.http.max_header_kb as usize) << 10,
        },
    };
    let auth = auth_settings(&cfg)?;
    if let Some(url) = &cfg.auth.jwks_url {
        crate::jwks::start(
            auth.jwt.clone(),
            url.clone(),
            Duration::from_secs(cfg.auth.jwks_refresh_secs),
        )
        .await;
    }
    let node = Node::new(Arc::new(runtime), registry, artifacts, node_settings, auth);
    if let Some(inf) = &inference {
        for m in &cfg.inference.preload {
            let (tenant, model) = m.split_once('/').unwrap_or((m, ""));
            match inf.preload(tenant, model).await {
                Ok(info) => {
                    tracing::info!(model = %info.model, provider = info.provider.as_str(), "preloaded")
                }
                // A node still serves everything else; the model loads on first use.
                Err(e) => tracing::error!(model = %m, error = %e, "preload failed"),
            }
        }
    }

    // Durable Event invocations and schedules: run what is queued (also what a crashed
    // predecessor left behind) from now on.
    helixflow_node::async_invoke::start(&node);
    // Usage totals go to the metadata store on an interval (and once more at shutdown).
    helixflow_node::usage::start(&node);
    // Spend caps and rate limits: invoked tenants' spend is re-read on an interval.
    helixflow_node::budget::start(&node);
    // Alert rules: the fleet's lease holder evaluates them; webhooks go out under the
    // same egress policy as guests' outbound HTTP.
    let webhooks = helixflow_api::webhook::WebhookClient::new(&node.runtime.config().allow_private)
        .map_err(anyhow::Error::msg)?;
    helixflow_node::alerts::start(&node, Arc::new(webhooks));
    // The fleet's roll call (GET /api/v1/admin/nodes, the console's fleet view).
    let heartbeats = helixflow_node::fleet::start(&node);
    let flush_on_exit = node.clone();
    let state = AppState::new(node, settings);

    let mut listeners = Vec::new();
    if !cfg.listen.http.is_empty() {
        let tcp = tokio::net::TcpListener::bind(&cfg.listen.http)
            .await
            .with_context(|| format!("binding {}", cfg.listen.http))?;
        let addr = tcp.local_addr()?;
        // Lines scripts can wait for.
        println!("helixflow listening on http://{addr}");
        listeners.push(helixflow_api::Listener { tcp, tls: None });
    }
    if let (Some(https), Some(cert), Some(key)) =
        (&cfg.listen.https, &cfg.listen.tls_cert, &cfg.listen.tls_key)
    {
        let tls =
            helixflow_api::tls::ReloadingTls::new(cert, key, cfg.listen.client_ca.as_deref())?;
        tls.watch(Duration::from_secs(cfg.listen.tls_reload_secs));
        let tcp = tokio::net::TcpListener::bind(https)
            .await
            .with_context(|| format!("binding {https}"))?;
        let addr = tcp.local_addr()?;
        println!("helixflow listening on https://{addr}");
        listeners.push(helixflow_api::Listener {
            tcp,
            tls: Some(tls),
        });
    }
    tracing::info!(
        location = %cfg.node.id,
        metadata = %cfg.metadata(),
        artifacts = %cfg.artifacts_url(),
        "helixflow serving"
    );

    let shutdown = async {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(_) => {
                        let _ = ctrl_c.await;
                        return;
                    }
                };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutting down");
    };
    helixflow_api::serve(listeners, state, shutdown).await;
    if let Err(e) = helixflow_node::usage::flush(&flush_on_exit).await {
        tracing::warn!(error = %e.message, "usage not written at shutdown");
    }
    helixflow_node::fleet::leave(&flush_on_exit, heartbeats).await;
    // The spans still queued go to the collector (bounded by its export timeout).
    telemetry.shutdown().await;
    Ok(())
}

/// Logs (stderr, `RUST_LOG`, text or JSON) and trace context / OTLP span export
/// (`[telemetry]`). The telemetry layer has its own filter, so trace context flows
/// whatever the log level.
fn init_tracing(cfg: &NodeConfig, json: bool) -> Result<helixflow_telemetry::Telemetry> {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let t = &cfg.telemetry;
    let telemetry = helixflow_telemetry::Telemetry::start(&helixflow_telemetry::TelemetryConfig {
        otlp_endpoint: t.otlp_endpoint.clone(),
        service_name: t.service_name.clone(),
        instance_id: cfg.node.id.clone(),
        sample_ratio: t.sample_ratio,
        max_queue_size: t.export_queue_size,
        max_export_batch_size: t.export_batch_size,
        export_interval: Duration::from_millis(t.export_interval_ms),
        export_timeout: Duration::from_millis(t.export_timeout_ms),
    })
    .context("[telemetry]")?;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let logs: Box<dyn tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync> =
        if json {
            logs.json().with_filter(filter).boxed()
        } else {
            logs.with_filter(filter).boxed()
        };
    tracing_subscriber::registry()
        .with(logs)
        .with(telemetry.layer())
        .try_init()
        .context("installing the log subscriber")?;
    if let Some(url) = telemetry.export_url() {
        tracing::info!(%url, sample_ratio = t.sample_ratio, "exporting spans over OTLP/HTTP");
    }
    Ok(telemetry)
}

/// Loads ONNX Runtime when the node is configured for it (`[inference].ort_dylib` or
/// `ORT_DYLIB_PATH`); a configured but unusable library stops start-up with the reason.
fn start_inference(
    cfg: &NodeConfig,
    registry: &Registry,
    artifacts: &ArtifactStore,
) -> anyhow::Result<Option<Arc<helixflow_nn::Inference>>> {
    let env_set = std::env::var_os("ORT_DYLIB_PATH").is_some_and(|v| !v.is_empty());
    if cfg.inference.ort_dylib.is_none() && !env_set {
        tracing::warn!(
            "wasi:nn disabled: no ONNX Runtime configured (set ORT_DYLIB_PATH or [inference].ort_dylib)"
        );
        return Ok(None);
    }
    let i = &cfg.inference;
    let nn = helixflow_nn::NnConfig {
        ort_dylib: i.ort_dylib.clone(),
        intra_threads: i.intra_threads,
        intra_spin: match i.intra_spin {
            helixflow_edge_config::IntraSpin::Off => helixflow_nn::SpinPolicy::Off,
            helixflow_edge_config::IntraSpin::Adaptive => helixflow_nn::SpinPolicy::Adaptive,
            helixflow_edge_config::IntraSpin::Always => helixflow_nn::SpinPolicy::Always,
        },
        session_budget_bytes: i.session_budget_mb << 20,
        default_providers: i.providers.iter().copied().map(nn_provider).collect(),
        default_fallback: match i.fallback {
            FallbackPolicy::Next => helixflow_nn::Fallback::Next,
            FallbackPolicy::Refuse => helixflow_nn::Fallback::Refuse,
        },
        trt_cache_dir: i.trt_cache_dir.clone(),
        allow_guest_load: i.allow_guest_load,
        max_guest_model_bytes: (i.max_guest_model_mb as usize) << 20,
        max_tensor_bytes: (i.max_tensor_mb as usize) << 20,
        max_calls_per_invocation: i.max_calls_per_invocation,
        max_kv_bytes: i.max_kv_cache_mb << 20,
        max_kv_tenant_bytes: i.max_kv_cache_mb_per_tenant.min(i.max_kv_cache_mb) << 20,
        prefix_cache_bytes: i.prefix_cache_mb.min(i.max_kv_cache_mb) << 20,
        max_context: i.max_context,
        max_sequences_per_invocation: i.max_sequences_per_invocation,
    };
    let source = Arc::new(helixflow_node::models::RegistryModels::new(
        registry.clone(),
        artifacts.clone(),
        Duration::from_millis(cfg.state.resolve_cache_ttl_ms),
    ));
    let inf = helixflow_nn::Inference::new(nn, source).context("starting the wasi:nn host")?;
    Ok(Some(inf))
}

/// The wasi:nn host's execution provider for a configured one.
fn nn_provider(p: ExecutionProvider) -> helixflow_nn::Provider {
    match p {
        ExecutionProvider::Tensorrt => helixflow_nn::Provider::Tensorrt,
        ExecutionProvider::Cuda => helixflow_nn::Provider::Cuda,
        ExecutionProvider::Cpu => helixflow_nn::Provider::Cpu,
    }
}

/// Authentication settings. The platform admin key comes from `[auth] admin_key_sha256`,
/// else `HELIXFLOW_ADMIN_KEY`, else `{data_dir}/admin.key` (generated atomically, mode
/// 0600, on first start; its path is logged, never the key). An empty or short key, the
/// digest of the empty key, or a key file other users can read stops start-up with a
/// message that says how to fix it (`helixflow_auth::keyfile`).
fn auth_settings(cfg: &NodeConfig) -> anyhow::Result<helixflow_node::AuthSettings> {
    let a = &cfg.auth;
    let jwks = match &a.jwks_file {
        Some(p) => {
            Some(std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?)
        }
        None => None,
    };
    let jwt = helixflow_auth::JwtVerifier::new(
        jwks.as_deref(),
        a.jwt_issuer.clone(),
        a.jwt_audience.clone(),
        a.jwt_leeway_secs,
    )
    .map_err(anyhow::Error::msg)?;
    let enforce = match a.mode {
        AuthMode::Enforce => true,
        AuthMode::Off => false,
    };
    if !enforce {
        tracing::warn!(
            "[auth] mode = \"off\": every caller is the platform admin; never expose this node"
        );
    }
    use helixflow_auth::keyfile;
    let admin = if let Some(h) = &a.admin_key_sha256 {
        anyhow::ensure!(
            !h.eq_ignore_ascii_case(&helixflow_auth::sha256_hex("")),
            "[auth] admin_key_sha256 is the SHA-256 of the empty key: generate a key (`head -c32 /dev/urandom | base64`) and set its digest (`printf %s \"$KEY\" | sha256sum`)"
        );
        h.to_ascii_lowercase()
    } else if let Some(k) = std::env::var_os("HELIXFLOW_ADMIN_KEY") {
        let k = k
            .into_string()
            .map_err(|_| anyhow::anyhow!("HELIXFLOW_ADMIN_KEY is not UTF-8"))?;
        keyfile::check_admin_key(&k).map_err(|why| {
            anyhow::anyhow!(
                "HELIXFLOW_ADMIN_KEY: {why} (or unset it to use the key generated into {})",
                cfg.state.data_dir.join("admin.key").display()
            )
        })?;
        // Bearer tokens are trimmed, so only the trimmed key can ever match.
        helixflow_auth::sha256_hex(k.trim())
    } else {
        let path = cfg.state.data_dir.join("admin.key");
        let fix = format!(
            "delete {} and restart to generate a new key, or write a key of at least {} characters into it (chmod 600)",
            path.display(),
            keyfile::MIN_ADMIN_KEY_LEN
        );
        let key = match keyfile::read_key_file(&path, &fix)? {
            Some(k) => k,
            None => {
                let k = format!(
                    "hfadmin_{}",
                    helixflow_auth::random_secret().map_err(anyhow::Error::msg)?
                );
                std::fs::create_dir_all(&cfg.state.data_dir)?;
                keyfile::write_key_file(&path, &k)?;
                k
            }
        };
        keyfile::check_admin_key(&key).map_err(|why| {
            anyhow::anyhow!(
                "{}: {why} (or delete it and restart to generate one)",
                path.display()
            )
        })?;
        tracing::info!(path = %path.display(), "platform admin key (HELIXFLOW_TOKEN for the CLI)");
        helixflow_auth::sha256_hex(&key)
    };
    let secrets = secrets_key(cfg)?;
    Ok(helixflow_node::AuthSettings {
        enforce,
        admin_key_sha256: Some(admin),
        jwt,
        secrets,
    })
}

/// The key that seals stored secrets: `[auth] secrets_key_file`, else
/// `HELIXFLOW_SECRETS_KEY`, else `{data_dir}/secrets.key` (generated atomically, mode
/// 0600, on first start). Nodes sharing a metadata store must share it. A key file that
/// is empty or that other users can read, or an empty `HELIXFLOW_SECRETS_KEY`, stops
/// start-up with a message that says how to fix it.
fn secrets_key(cfg: &NodeConfig) -> anyhow::Result<helixflow_auth::sealed::SecretBox> {
    use helixflow_auth::keyfile;
    use helixflow_auth::sealed::SecretBox;
    let restore = "restore it from a backup or from a node sharing this store ([auth] secrets_key_file); only if nothing was ever sealed with it, delete it to generate a new one";
    let (text, source) = if let Some(p) = &cfg.auth.secrets_key_file {
        let text = keyfile::read_key_file(p, restore)?
            .ok_or_else(|| anyhow::anyhow!("{} does not exist", p.display()))?;
        (text, p.display().to_string())
    } else if let Some(k) = std::env::var_os("HELIXFLOW_SECRETS_KEY") {
        let k = k
            .into_string()
            .map_err(|_| anyhow::anyhow!("HELIXFLOW_SECRETS_KEY is not UTF-8"))?;
        anyhow::ensure!(
            !k.trim().is_empty(),
            "HELIXFLOW_SECRETS_KEY is set but empty: set it to the fleet's secrets key (32 bytes, base64), or unset it to use {}",
            cfg.state.data_dir.join("secrets.key").display()
        );
        (k, "HELIXFLOW_SECRETS_KEY".to_string())
    } else {
        let path = cfg.state.data_dir.join("secrets.key");
        let text = match keyfile::read_key_file(&path, restore)? {
            Some(k) => k,
            None => {
                let k = SecretBox::generate_text().map_err(anyhow::Error::msg)?;
                std::fs::create_dir_all(&cfg.state.data_dir)?;
                keyfile::write_key_file(&path, &k)?;
                tracing::info!(path = %path.display(), "generated the secrets key (nodes sharing this store need the same one: [auth] secrets_key_file)");
                k
            }
        };
        (text, path.display().to_string())
    };
    SecretBox::from_text(&text).map_err(|e| anyhow::anyhow!("secrets key ({source}): {e}"))
}
