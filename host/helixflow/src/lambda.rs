//! `helixflow lambda`: HelixFlow as an AWS Lambda custom runtime (`bootstrap`).
//!
//! The Runtime API loop is `lambda_runtime`'s; each event goes to
//! `helixflow_api::lambda_host::handle`, which runs the configured component.

use anyhow::Context as _;
use helixflow_runtime::{InvocationEnv, Limits, Runtime, RuntimeConfig};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

#[derive(clap::Args)]
pub struct LambdaArgs {
    /// The component to run (relative paths: under `LAMBDA_TASK_ROOT`).
    #[arg(
        long,
        env = "HELIXFLOW_LAMBDA_COMPONENT",
        default_value = "function.wasm"
    )]
    component: PathBuf,
    /// Environment variable for the component, KEY=VALUE (repeatable). Each
    /// `HELIXFLOW_ENV_<KEY>` variable of the process (the Lambda function's
    /// configuration) gives the component `<KEY>` too; nothing else of the
    /// process's environment reaches it.
    #[arg(long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Hosts the component may call over outbound HTTP (comma-separated).
    #[arg(long, env = "HELIXFLOW_LAMBDA_ALLOW_OUTBOUND", value_delimiter = ',')]
    allow_outbound: Vec<String>,
    /// The component's memory ceiling (default: the Lambda function's memory size).
    #[arg(long, env = "HELIXFLOW_LAMBDA_MEMORY_MB")]
    memory_mb: Option<u32>,
    /// wasi:nn models: `{dir}/{name}.onnx` (relative: under `LAMBDA_TASK_ROOT`). Offered
    /// when ONNX Runtime is found (`--ort-dylib` or `ORT_DYLIB_PATH`).
    #[arg(long, env = "HELIXFLOW_LAMBDA_MODELS", default_value = "models")]
    models: PathBuf,
    /// The ONNX Runtime library (default: `ORT_DYLIB_PATH`, else the package's
    /// `lib/libonnxruntime.so` under `LAMBDA_TASK_ROOT`; none of them: no wasi:nn).
    #[arg(long, env = "HELIXFLOW_LAMBDA_ORT_DYLIB")]
    ort_dylib: Option<PathBuf>,
}

pub async fn run(args: LambdaArgs) -> anyhow::Result<()> {
    // Lambda sends the process's output to CloudWatch Logs: plain lines, no colours.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .try_init();
    // lambda_runtime panics without these; say what is missing instead.
    for var in [
        "AWS_LAMBDA_RUNTIME_API",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    ] {
        if std::env::var(var).map(|v| v.is_empty()).unwrap_or(true) {
            anyhow::bail!(
                "{var} is not set: `helixflow lambda` runs inside AWS Lambda (or against a Runtime API server), which sets it"
            );
        }
    }
    if std::env::var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        .ok()
        .and_then(|v| v.parse::<i32>().ok())
        .is_none()
    {
        anyhow::bail!("AWS_LAMBDA_FUNCTION_MEMORY_SIZE must be a number of MB");
    }
    let task_root = |p: &PathBuf| match std::env::var_os("LAMBDA_TASK_ROOT") {
        Some(root) if p.is_relative() => PathBuf::from(root).join(p),
        _ => p.clone(),
    };
    let component = task_root(&args.component);
    let bytes = std::fs::read(&component)
        .with_context(|| format!("reading the component {}", component.display()))?;
    let lambda_mb: u32 = std::env::var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(128);
    let memory_mb = args.memory_mb.unwrap_or(lambda_mb).clamp(1, 4096);
    let ort_dylib = args.ort_dylib.clone().or_else(|| {
        match std::env::var_os("ORT_DYLIB_PATH") {
            Some(v) if !v.is_empty() => Some(PathBuf::from(v)),
            // `helixflow package --lambda --with-onnxruntime` put it there.
            _ => Some(task_root(&PathBuf::from(crate::package::PACKAGED_ORT)))
                .filter(|p| p.is_file()),
        }
    });
    let inference = if let Some(ort) = ort_dylib {
        let models = task_root(&args.models);
        let nn = helixflow_nn::NnConfig {
            ort_dylib: Some(ort.clone()),
            ..Default::default()
        };
        let inf = helixflow_nn::Inference::new(
            nn,
            Arc::new(helixflow_nn::dir_source::DirModels::new(&models)),
        )
        .context("starting the wasi:nn host")?;
        tracing::info!(models = %models.display(), ort = %ort.display(), "wasi:nn on ONNX Runtime");
        Some(inf)
    } else {
        None
    };
    let runtime = Runtime::with_inference(
        RuntimeConfig {
            cache_dir: Some(std::env::temp_dir().join("helixflow-compile-cache")),
            // No node secrets here: a per-process key, so only this process's own
            // entries are trusted (an execution environment compiles once per cold start).
            cache_key: Some(helixflow_runtime::CompileCacheKey::random()?),
            max_instances: 8,
            max_memory_bytes: (memory_mb as usize) << 20,
            ..Default::default()
        },
        inference,
    )?;
    let sha = {
        use sha2::Digest;
        hex_lower(&sha2::Sha256::digest(&bytes))
    };
    let func = runtime
        .load(&sha, &bytes)
        .await
        .with_context(|| format!("loading {}", component.display()))?;
    let mut env = Vec::new();
    for kv in &args.env {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("--env {kv:?}: use KEY=VALUE"))?;
        env.push((k.to_string(), v.to_string()));
    }
    for (k, v) in std::env::vars_os() {
        if let (Some(k), Some(v)) = (k.to_str(), v.to_str())
            && let Some(name) = k.strip_prefix("HELIXFLOW_ENV_").filter(|n| !n.is_empty())
        {
            env.push((name.to_string(), v.to_string()));
        }
    }
    let function_name = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_default();
    // Outbound HTTP reaches public addresses only: the RuntimeConfig above opts no
    // private range in (`allow_private` defaults to none).
    let inv_env = InvocationEnv {
        env,
        tenant: String::new(),
        function: function_name.clone(),
        allow_outbound: args.allow_outbound.clone(),
    };
    let limits = Limits {
        memory_bytes: (memory_mb as usize) << 20,
        timeout: Duration::from_secs(900),
        max_log_bytes: 256 << 10,
    };
    let function_version = std::env::var("AWS_LAMBDA_FUNCTION_VERSION")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    tracing::info!(component = %component.display(), memory_mb, %function_name, "helixflow lambda runtime ready");
    let runtime = Arc::new(runtime);
    let handler =
        lambda_runtime::service_fn(move |ev: lambda_runtime::LambdaEvent<serde_json::Value>| {
            let (runtime, func, limits, inv_env, function_name) = (
                runtime.clone(),
                func.clone(),
                limits.clone(),
                inv_env.clone(),
                function_name.clone(),
            );
            async move {
                let ctx = ev.context;
                let inv = helixflow_api::lambda_host::LambdaInvocation {
                    request_id: ctx.request_id.clone(),
                    deadline: UNIX_EPOCH + Duration::from_millis(ctx.deadline),
                    function_arn: ctx.invoked_function_arn.clone(),
                    function_name,
                    function_version,
                    client_context: ctx
                        .client_context
                        .as_ref()
                        .and_then(|c| serde_json::to_string(c).ok()),
                };
                helixflow_api::lambda_host::handle(
                    &runtime, &func, &limits, &inv_env, ev.payload, inv,
                )
                .await
                .map_err(|f| lambda_runtime::Diagnostic {
                    error_type: f.error_type,
                    error_message: f.message,
                })
            }
        });
    lambda_runtime::run(handler)
        .await
        .map_err(|e| anyhow::anyhow!("Lambda runtime loop: {e}"))
}

fn hex_lower(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
