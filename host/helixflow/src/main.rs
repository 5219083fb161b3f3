//! `helixflow`: the HelixFlow binary. `serve` runs a node; the other commands are a
//! client of a node's control and data planes. This crate wires the library crates
//! together and holds no product logic of its own.

mod client;
mod jwks;
mod lambda;
mod serve;

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "helixflow",
    version,
    about = "HelixFlow: tenants' WebAssembly functions at the edge"
)]
struct Cli {
    /// The node to talk to (client commands).
    #[arg(
        long,
        global = true,
        env = "HELIXFLOW_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    url: String,
    /// API key, JWT or the platform admin key (client commands).
    #[arg(long, global = true, env = "HELIXFLOW_TOKEN", hide_env_values = true)]
    token: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node (embedded state by default).
    Serve(serve::ServeArgs),
    /// Shared state: `state init` creates the DynamoDB table a config names.
    State {
        #[command(subcommand)]
        cmd: StateCmd,
    },
    /// Node configuration files.
    Config {
        #[command(subcommand)]
        cmd: ConfigCmd,
    },
    /// Tenants.
    Tenants {
        #[command(subcommand)]
        cmd: TenantsCmd,
    },
    /// Upload a component as a new immutable version of a function.
    Deploy {
        #[arg(long, short)]
        tenant: String,
        #[arg(long, short)]
        function: String,
        /// The component (.wasm, built for wasm32-wasip2).
        file: PathBuf,
        /// Point this alias (e.g. `live`) at the new version.
        #[arg(long)]
        alias: Option<String>,
        #[arg(long)]
        memory_mb: Option<u32>,
        #[arg(long)]
        timeout_ms: Option<u64>,
        /// Anyone may call its HTTP endpoint, without credentials.
        #[arg(long)]
        public: bool,
        /// Environment variable for the function, KEY=VALUE (repeatable).
        #[arg(long = "env", value_name = "KEY=VALUE")]
        env: Vec<String>,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Invoke a function's event handler with a payload.
    Invoke {
        #[arg(long, short)]
        tenant: String,
        #[arg(long, short)]
        function: String,
        /// A version number or alias.
        #[arg(long, short)]
        qualifier: Option<String>,
        /// The event payload (default: read from stdin).
        #[arg(long, short)]
        data: Option<String>,
    },
    /// Functions.
    Functions {
        #[command(subcommand)]
        cmd: FunctionsCmd,
    },
    /// Aliases.
    Alias {
        #[command(subcommand)]
        cmd: AliasCmd,
    },
    /// Delete artifacts no version references (older than the grace period) and prune
    /// the node's compile cache.
    Gc {
        /// Only delete unreferenced artifacts older than this (protects in-flight deploys).
        #[arg(long, default_value_t = 3600)]
        grace_secs: u64,
        /// Report what would be deleted without deleting.
        #[arg(long)]
        dry_run: bool,
    },
    /// API keys of a tenant: create (shown once), list, revoke.
    #[command(subcommand)]
    Keys(KeysCmd),
    /// AWS SigV4 access key pairs of a tenant, for the Lambda-compatible Invoke API
    /// (boto3, the AWS CLI): create (secret shown once), list, revoke.
    #[command(subcommand, name = "access-keys")]
    AccessKeys(AccessKeysCmd),
    /// Event (asynchronous) invocations: pending and failed ones, and re-driving failures.
    #[command(subcommand)]
    Events(EventsCmd),
    /// Run as an AWS Lambda custom runtime (`bootstrap`): every Lambda event goes to one
    /// WebAssembly component (HTTP events to its wasi:http handler, others to its event
    /// handler). Reads `AWS_LAMBDA_RUNTIME_API` and friends from the environment.
    Lambda(crate::lambda::LambdaArgs),
    /// A tenant's audit log (control-plane actions and refused requests), newest first.
    Audit {
        #[arg(long, short)]
        tenant: String,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// ONNX models: push (upload, with a progress bar), list, get, delete.
    #[command(subcommand)]
    Models(ModelsCmd),
    /// Recent invocation logs (captured stdout/stderr) of a function.
    Logs {
        #[arg(long, short)]
        tenant: String,
        #[arg(long, short)]
        function: String,
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
}

#[derive(Subcommand)]
enum KeysCmd {
    /// Create a key; the key is printed once and never again.
    Create {
        #[arg(long, short)]
        tenant: String,
        /// admin, developer, invoker or viewer.
        #[arg(long, short)]
        role: String,
        #[arg(long, short, default_value = "cli")]
        name: String,
        /// Expire after this many seconds.
        #[arg(long)]
        expires_in_secs: Option<u64>,
    },
    List {
        #[arg(long, short)]
        tenant: String,
    },
    Revoke {
        #[arg(long, short)]
        tenant: String,
        /// The key's prefix (the 12 hex characters after `hfk_`).
        prefix: String,
    },
}

#[derive(Subcommand)]
enum AccessKeysCmd {
    /// Create a key pair; prints `AWS_ACCESS_KEY_ID=...` and `AWS_SECRET_ACCESS_KEY=...` once.
    Create {
        #[arg(long, short)]
        tenant: String,
        /// admin, developer, invoker or viewer.
        #[arg(long, short, default_value = "invoker")]
        role: String,
        #[arg(long, short, default_value = "cli")]
        name: String,
        #[arg(long)]
        expires_in_secs: Option<u64>,
    },
    List {
        #[arg(long, short)]
        tenant: String,
    },
    Revoke {
        #[arg(long, short)]
        tenant: String,
        access_key_id: String,
    },
}

#[derive(Subcommand)]
enum EventsCmd {
    /// Pending and failed events, oldest pending first, then newest failures.
    List {
        #[arg(long, short)]
        tenant: String,
        /// `pending` or `failed` (default: both).
        #[arg(long)]
        status: Option<String>,
        #[arg(long, short)]
        function: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// One event (JSON).
    Get {
        #[arg(long, short)]
        tenant: String,
        id: String,
    },
    /// Run a failed event again (a new event with the same payload and version).
    Replay {
        #[arg(long, short)]
        tenant: String,
        /// Event ids; `--all-failed` replays every failed, not yet replayed event.
        ids: Vec<String>,
        #[arg(long)]
        all_failed: bool,
        #[arg(long, short)]
        function: Option<String>,
    },
}

#[derive(Subcommand)]
enum ModelsCmd {
    /// Upload an ONNX model as a new immutable version (`--tenant public`: a public model).
    Push {
        #[arg(long, short)]
        tenant: String,
        #[arg(long, short)]
        model: String,
        /// The .onnx file.
        file: PathBuf,
        /// Execution-provider preference, e.g. `tensorrt,cuda,cpu` (default: the node's).
        #[arg(long)]
        providers: Option<String>,
        /// When a preferred provider is unavailable: `next` or `refuse`.
        #[arg(long)]
        fallback: Option<String>,
        /// Dynamic batching: most rows per run (0 = off).
        #[arg(long, default_value_t = 0)]
        max_batch: u32,
        /// Dynamic batching: how long a request waits for company, microseconds.
        #[arg(long, default_value_t = 0)]
        max_delay_us: u64,
        /// Declare that each output row depends only on the same input row (no
        /// batch-wide statistics): required for requests to be batched together.
        #[arg(long)]
        row_independent: bool,
        /// TensorRT: build fp16 engines.
        #[arg(long)]
        trt_fp16: bool,
        /// Serve it on the OpenAI-compatible API as `KIND:FUNCTION`, e.g. `embeddings:embed-minilm`.
        #[arg(long)]
        serve: Option<String>,
        #[arg(long, default_value = "")]
        description: String,
    },
    List {
        #[arg(long, short)]
        tenant: String,
    },
    Get {
        #[arg(long, short)]
        tenant: String,
        #[arg(long, short)]
        model: String,
    },
    Delete {
        #[arg(long, short)]
        tenant: String,
        #[arg(long, short)]
        model: String,
    },
}

#[derive(Subcommand)]
enum StateCmd {
    /// Create the metadata table (DynamoDB; development and tests; production uses infra/).
    Init {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// Validate a node configuration file.
    Check { file: PathBuf },
}

#[derive(Subcommand)]
enum TenantsCmd {
    Create {
        name: String,
        #[arg(long)]
        max_memory_mb: Option<u32>,
        #[arg(long)]
        max_timeout_ms: Option<u64>,
    },
    List,
}

#[derive(Subcommand)]
enum FunctionsCmd {
    List {
        #[arg(long, short)]
        tenant: String,
    },
    Get {
        #[arg(long, short)]
        tenant: String,
        function: String,
    },
    Delete {
        #[arg(long, short)]
        tenant: String,
        function: String,
    },
    /// Show a function's config, or replace it with a JSON file (`--set config.json`):
    /// limits, env, public, allow_outbound, async_invoke (retries, destinations),
    /// schedules (cron).
    Config {
        #[arg(long, short)]
        tenant: String,
        function: String,
        #[arg(long)]
        set: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum AliasCmd {
    /// Point ALIAS at VERSION.
    Set {
        #[arg(long, short)]
        tenant: String,
        #[arg(long, short)]
        function: String,
        alias: String,
        version: u32,
    },
    /// Move ALIAS back to its previous version.
    Rollback {
        #[arg(long, short)]
        tenant: String,
        #[arg(long, short)]
        function: String,
        alias: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let code = match e.downcast_ref::<client::ClientError>() {
                Some(client::ClientError::Connect { .. }) => 3,
                Some(client::ClientError::Api { .. }) => 1,
                _ => 1,
            };
            eprintln!("error: {e:#}");
            ExitCode::from(code)
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    let c = client::Client::new(&cli.url, cli.token.clone());
    match cli.command {
        Command::Serve(args) => serve::run(args).await,
        Command::Lambda(args) => lambda::run(args).await,
        Command::State {
            cmd: StateCmd::Init { config },
        } => {
            let cfg = serve::load_config(config.as_deref())?;
            match cfg.metadata() {
                helixflow_edge_config::MetadataLocation::DynamoDb { table } => {
                    helixflow_store_dynamodb::DynamoDbMetadataStore::from_env(&table)?
                        .create_table()
                        .await?;
                    println!("table {table} is ready");
                }
                other => println!("{other}: embedded, nothing to create"),
            }
            Ok(())
        }
        Command::Config {
            cmd: ConfigCmd::Check { file },
        } => {
            let cfg = helixflow_edge_config::NodeConfig::load(&file)?;
            println!(
                "{}: ok (node {}, listening on {})",
                file.display(),
                cfg.node.id,
                cfg.listen.http
            );
            Ok(())
        }
        Command::Tenants { cmd } => match cmd {
            TenantsCmd::Create {
                name,
                max_memory_mb,
                max_timeout_ms,
            } => {
                let mut body = serde_json::json!({"name": name});
                if max_memory_mb.is_some() || max_timeout_ms.is_some() {
                    body["limits"] = serde_json::json!({
                        "max_memory_mb": max_memory_mb.unwrap_or(256),
                        "max_timeout_ms": max_timeout_ms.unwrap_or(30_000),
                    });
                }
                let v = c
                    .json(http::Method::POST, "/api/v1/tenants", Some(body))
                    .await?;
                println!("created tenant {}", v["name"].as_str().unwrap_or_default());
                Ok(())
            }
            TenantsCmd::List => {
                let v = c.json(http::Method::GET, "/api/v1/tenants", None).await?;
                for t in v["tenants"].as_array().into_iter().flatten() {
                    println!(
                        "{}\tmax_memory_mb={}\tmax_timeout_ms={}",
                        t["name"].as_str().unwrap_or_default(),
                        t["limits"]["max_memory_mb"],
                        t["limits"]["max_timeout_ms"]
                    );
                }
                Ok(())
            }
        },
        Command::Deploy {
            tenant,
            function,
            file,
            alias,
            memory_mb,
            timeout_ms,
            public,
            env,
            description,
        } => {
            let mut env_map = serde_json::Map::new();
            for kv in env {
                let Some((k, v)) = kv.split_once('=') else {
                    anyhow::bail!("--env {kv:?}: expected KEY=VALUE");
                };
                env_map.insert(k.to_string(), serde_json::Value::String(v.to_string()));
            }
            let config =
                (memory_mb.is_some() || timeout_ms.is_some() || public || !env_map.is_empty())
                    .then(|| {
                        let mut cfg = serde_json::json!({"env": env_map});
                        if public {
                            cfg["public"] = true.into();
                        }
                        if let Some(m) = memory_mb {
                            cfg["memory_mb"] = m.into();
                        }
                        if let Some(t) = timeout_ms {
                            cfg["timeout_ms"] = t.into();
                        }
                        cfg
                    });
            let v = c
                .deploy(
                    &tenant,
                    &function,
                    &file,
                    alias.as_deref(),
                    &description,
                    config,
                )
                .await?;
            let ver = &v["version"];
            println!(
                "deployed {tenant}/{function} version {} (sha256 {}, {} bytes, http={}, event={})",
                ver["version"],
                ver["sha256"].as_str().unwrap_or_default(),
                ver["size"],
                ver["exports"]["http"],
                ver["exports"]["event"]
            );
            if let Some(a) = v["alias"]["name"].as_str() {
                println!("alias {a} -> version {}", v["alias"]["version"]);
            }
            Ok(())
        }
        Command::Models(cmd) => models_cmd(&c, cmd).await,
        Command::Keys(cmd) => keys_cmd(&c, cmd).await,
        Command::AccessKeys(cmd) => access_keys_cmd(&c, cmd).await,
        Command::Events(cmd) => events_cmd(&c, cmd).await,
        Command::Audit { tenant, limit } => {
            let v = c
                .json(
                    http::Method::GET,
                    &format!("/api/v1/tenants/{tenant}/audit?limit={limit}"),
                    None,
                )
                .await?;
            for r in v["records"].as_array().into_iter().flatten() {
                println!(
                    "{}  {}  {}  {}  {} ({})  from {}",
                    r["at"].as_str().unwrap_or_default(),
                    r["actor"].as_str().unwrap_or_default(),
                    r["action"].as_str().unwrap_or_default(),
                    r["target"].as_str().unwrap_or_default(),
                    r["outcome"].as_str().unwrap_or_default(),
                    r["status"],
                    r["source"].as_str().unwrap_or_default()
                );
            }
            Ok(())
        }
        Command::Invoke {
            tenant,
            function,
            qualifier,
            data,
        } => {
            let payload = match data {
                Some(d) => d.into_bytes(),
                None => {
                    use std::io::Read;
                    let mut buf = Vec::new();
                    std::io::stdin().read_to_end(&mut buf)?;
                    buf
                }
            };
            let fq = match qualifier {
                Some(q) => format!("{function}@{q}"),
                None => function,
            };
            let out = c
                .raw(
                    http::Method::POST,
                    &format!("/invoke/{tenant}/{fq}"),
                    payload.into(),
                )
                .await?;
            use std::io::Write;
            std::io::stdout().write_all(&out)?;
            println!();
            Ok(())
        }
        Command::Functions { cmd } => match cmd {
            FunctionsCmd::List { tenant } => {
                let v = c
                    .json(
                        http::Method::GET,
                        &format!("/api/v1/tenants/{tenant}/functions"),
                        None,
                    )
                    .await?;
                let fs = v["functions"].as_array().cloned().unwrap_or_default();
                if fs.is_empty() {
                    println!("(no functions in {tenant})");
                }
                for f in fs {
                    println!(
                        "{}\tlatest={}\tupdated={}",
                        f["name"].as_str().unwrap_or_default(),
                        f["latest_version"],
                        f["updated_at"].as_str().unwrap_or_default()
                    );
                }
                Ok(())
            }
            FunctionsCmd::Get { tenant, function } => {
                let v = c
                    .json(
                        http::Method::GET,
                        &format!("/api/v1/tenants/{tenant}/functions/{function}"),
                        None,
                    )
                    .await?;
                println!("{}", serde_json::to_string_pretty(&v)?);
                Ok(())
            }
            FunctionsCmd::Config {
                tenant,
                function,
                set,
            } => {
                let path = format!("/api/v1/tenants/{tenant}/functions/{function}/config");
                let v = match set {
                    Some(file) => {
                        let text = std::fs::read_to_string(&file)
                            .with_context(|| format!("reading {}", file.display()))?;
                        let body: serde_json::Value = serde_json::from_str(&text)
                            .with_context(|| format!("{} is not JSON", file.display()))?;
                        c.json(http::Method::PUT, &path, Some(body)).await?["config"].clone()
                    }
                    None => c.json(http::Method::GET, &path, None).await?,
                };
                println!("{}", serde_json::to_string_pretty(&v)?);
                Ok(())
            }
            FunctionsCmd::Delete { tenant, function } => {
                c.json(
                    http::Method::DELETE,
                    &format!("/api/v1/tenants/{tenant}/functions/{function}"),
                    None,
                )
                .await?;
                println!("deleted {tenant}/{function}");
                Ok(())
            }
        },
        Command::Alias { cmd } => match cmd {
            AliasCmd::Set {
                tenant,
                function,
                alias,
                version,
            } => {
                let v = c
                    .json(
                        http::Method::PUT,
                        &format!("/api/v1/tenants/{tenant}/functions/{function}/aliases/{alias}"),
                        Some(serde_json::json!({"version": version})),
                    )
                    .await?;
                println!("alias {alias} -> version {}", v["version"]);
                Ok(())
            }
            AliasCmd::Rollback {
                tenant,
                function,
                alias,
            } => {
                let v = c
                    .json(
                        http::Method::POST,
                        &format!(
                            "/api/v1/tenants/{tenant}/functions/{function}/aliases/{alias}/rollback"
                        ),
                        None,
                    )
                    .await?;
                println!("alias {alias} rolled back to version {}", v["version"]);
                Ok(())
            }
        },
        Command::Gc {
            grace_secs,
            dry_run,
        } => {
            let v = c
                .json(
                    http::Method::POST,
                    &format!("/api/v1/admin/gc?grace_secs={grace_secs}&dry_run={dry_run}"),
                    None,
                )
                .await?;
            let deleted = v["deleted"].as_array().map(Vec::len).unwrap_or(0);
            println!(
                "{} {deleted} unreferenced artifact(s); kept {} younger than {grace_secs}s; {} referenced; {} compiled file(s) pruned",
                if dry_run { "would delete" } else { "deleted" },
                v["kept_younger_than_grace"],
                v["referenced"],
                v["compiled_removed"]
            );
            Ok(())
        }
        Command::Logs {
            tenant,
            function,
            limit,
        } => {
            let v = c
                .json(
                    http::Method::GET,
                    &format!("/api/v1/tenants/{tenant}/functions/{function}/logs?limit={limit}"),
                    None,
                )
                .await?;
            for r in v["logs"].as_array().into_iter().flatten().rev() {
                println!(
                    "--- {} v{} {} {} {}us{}",
                    r["at"].as_str().unwrap_or_default(),
                    r["version"],
                    r["request_id"].as_str().unwrap_or_default(),
                    r["outcome"].as_str().unwrap_or_default(),
                    r["duration_us"],
                    if r["truncated"].as_bool() == Some(true) {
                        " (truncated)"
                    } else {
                        ""
                    }
                );
                print!("{}", r["stdout"].as_str().unwrap_or_default());
                eprint!("{}", r["stderr"].as_str().unwrap_or_default());
            }
            Ok(())
        }
    }
}

async fn models_cmd(c: &client::Client, cmd: ModelsCmd) -> anyhow::Result<()> {
    match cmd {
        ModelsCmd::Push {
            tenant,
            model,
            file,
            providers,
            fallback,
            max_batch,
            max_delay_us,
            row_independent,
            trt_fp16,
            serve,
            description,
        } => {
            let mut cfg = serde_json::json!({
                "providers": providers.map(|p| p.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect::<Vec<_>>()).unwrap_or_default(),
                "max_batch": max_batch,
                "max_delay_us": max_delay_us,
                "trt_fp16": trt_fp16,
            });
            if row_independent {
                cfg["row_independent"] = true.into();
            }
            if let Some(f) = fallback {
                cfg["fallback"] = f.into();
            }
            if let Some(s) = serve {
                let Some((kind, function)) = s.split_once(':') else {
                    anyhow::bail!(
                        "--serve {s:?}: expected KIND:FUNCTION, e.g. embeddings:embed-minilm"
                    );
                };
                cfg["serve"] = serde_json::json!({"kind": kind, "function": function});
            }
            let v = c
                .push_model(&tenant, &model, &file, &description, Some(cfg))
                .await?;
            let ver = &v["version"];
            println!(
                "pushed {tenant}/{model} version {} (sha256 {}, {} bytes)",
                ver["version"],
                ver["sha256"].as_str().unwrap_or_default(),
                ver["size"]
            );
            Ok(())
        }
        ModelsCmd::List { tenant } => {
            let v = c
                .json(
                    http::Method::GET,
                    &format!("/api/v1/tenants/{tenant}/models"),
                    None,
                )
                .await?;
            for m in v["models"].as_array().into_iter().flatten() {
                println!(
                    "{}\tlatest={}\tserve={}",
                    m["name"].as_str().unwrap_or_default(),
                    m["latest_version"],
                    m["config"]["serve"]
                );
            }
            Ok(())
        }
        ModelsCmd::Get { tenant, model } => {
            let v = c
                .json(
                    http::Method::GET,
                    &format!("/api/v1/tenants/{tenant}/models/{model}"),
                    None,
                )
                .await?;
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(())
        }
        ModelsCmd::Delete { tenant, model } => {
            let v = c
                .json(
                    http::Method::DELETE,
                    &format!("/api/v1/tenants/{tenant}/models/{model}"),
                    None,
                )
                .await?;
            println!(
                "deleted {tenant}/{model} ({} versions)",
                v["deleted_versions"]
            );
            Ok(())
        }
    }
}

/// The body of a key creation request.
fn key_body(name: &str, role: &str, expires_in_secs: Option<u64>) -> serde_json::Value {
    let mut body = serde_json::json!({"name": name, "role": role});
    if let Some(s) = expires_in_secs {
        body["expires_in_secs"] = s.into();
    }
    body
}

/// One line per key: id, role, name, created, and whether it is revoked.
fn print_keys(list: &serde_json::Value, id_field: &str) {
    for k in list.as_array().into_iter().flatten() {
        println!(
            "{}\t{}\t{}\t{}{}",
            k[id_field].as_str().unwrap_or_default(),
            k["role"].as_str().unwrap_or_default(),
            k["name"].as_str().unwrap_or_default(),
            k["created_at"].as_str().unwrap_or_default(),
            if k["revoked"] == true {
                "\trevoked"
            } else {
                ""
            }
        );
    }
}

async fn access_keys_cmd(c: &client::Client, cmd: AccessKeysCmd) -> anyhow::Result<()> {
    match cmd {
        AccessKeysCmd::Create {
            tenant,
            role,
            name,
            expires_in_secs,
        } => {
            let v = c
                .json(
                    http::Method::POST,
                    &format!("/api/v1/tenants/{tenant}/access-keys"),
                    Some(key_body(&name, &role, expires_in_secs)),
                )
                .await?;
            eprintln!(
                "created {} access key for tenant {tenant} (account id {}); the secret is shown once",
                v["role"].as_str().unwrap_or_default(),
                v["account_id"].as_str().unwrap_or_default()
            );
            println!(
                "AWS_ACCESS_KEY_ID={}",
                v["access_key_id"].as_str().unwrap_or_default()
            );
            println!(
                "AWS_SECRET_ACCESS_KEY={}",
                v["secret_access_key"].as_str().unwrap_or_default()
            );
            Ok(())
        }
        AccessKeysCmd::List { tenant } => {
            let v = c
                .json(
                    http::Method::GET,
                    &format!("/api/v1/tenants/{tenant}/access-keys"),
                    None,
                )
                .await?;
            print_keys(&v["access_keys"], "access_key_id");
            Ok(())
        }
        AccessKeysCmd::Revoke {
            tenant,
            access_key_id,
        } => {
            c.json(
                http::Method::DELETE,
                &format!("/api/v1/tenants/{tenant}/access-keys/{access_key_id}"),
                None,
            )
            .await?;
            println!("revoked {access_key_id}");
            Ok(())
        }
    }
}

async fn events_cmd(c: &client::Client, cmd: EventsCmd) -> anyhow::Result<()> {
    // Path-safe: ids and names keep their '-', '_' and '.' (the API reads path segments raw).
    const SAFE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.');
    let enc = |s: &str| percent_encoding::utf8_percent_encode(s, SAFE).to_string();
    match cmd {
        EventsCmd::List {
            tenant,
            status,
            function,
            limit,
        } => {
            let mut q = format!("limit={limit}");
            if let Some(s) = status {
                q.push_str(&format!("&status={}", enc(&s)));
            }
            if let Some(f) = function {
                q.push_str(&format!("&function={}", enc(&f)));
            }
            let v = c
                .json(
                    http::Method::GET,
                    &format!("/api/v1/tenants/{tenant}/events?{q}"),
                    None,
                )
                .await?;
            for e in v["events"].as_array().into_iter().flatten() {
                let err = e["last_error"]["error_type"].as_str().unwrap_or("-");
                println!(
                    "{}\t{}\t{}@{}\tattempts={}\t{}\t{}{}",
                    e["id"].as_str().unwrap_or_default(),
                    e["status"].as_str().unwrap_or_default(),
                    e["function"].as_str().unwrap_or_default(),
                    e["version"],
                    e["attempts"],
                    e["condition"].as_str().unwrap_or("-"),
                    err,
                    e["replayed_as"]
                        .as_str()
                        .map(|r| format!("\treplayed as {r}"))
                        .unwrap_or_default()
                );
            }
            Ok(())
        }
        EventsCmd::Get { tenant, id } => {
            let v = c
                .json(
                    http::Method::GET,
                    &format!("/api/v1/tenants/{tenant}/events/{}", enc(&id)),
                    None,
                )
                .await?;
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(())
        }
        EventsCmd::Replay {
            tenant,
            mut ids,
            all_failed,
            function,
        } => {
            if all_failed {
                let mut q = "status=failed&limit=1000".to_string();
                if let Some(f) = &function {
                    q.push_str(&format!("&function={}", enc(f)));
                }
                let v = c
                    .json(
                        http::Method::GET,
                        &format!("/api/v1/tenants/{tenant}/events?{q}"),
                        None,
                    )
                    .await?;
                ids.extend(
                    v["events"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|e| e["replayed_as"].is_null())
                        .filter_map(|e| e["id"].as_str().map(str::to_string)),
                );
            }
            if ids.is_empty() {
                anyhow::bail!("nothing to replay: name event ids or use --all-failed");
            }
            for id in ids {
                let v = c
                    .json(
                        http::Method::POST,
                        &format!("/api/v1/tenants/{tenant}/events/{}/replay", enc(&id)),
                        None,
                    )
                    .await?;
                println!("{id} -> {}", v["id"].as_str().unwrap_or_default());
            }
            Ok(())
        }
    }
}

async fn keys_cmd(c: &client::Client, cmd: KeysCmd) -> anyhow::Result<()> {
    match cmd {
        KeysCmd::Create {
            tenant,
            role,
            name,
            expires_in_secs,
        } => {
            let v = c
                .json(
                    http::Method::POST,
                    &format!("/api/v1/tenants/{tenant}/keys"),
                    Some(key_body(&name, &role, expires_in_secs)),
                )
                .await?;
            eprintln!(
                "created {} key {} for tenant {tenant} (shown once; store it now)",
                v["role"].as_str().unwrap_or_default(),
                v["prefix"].as_str().unwrap_or_default()
            );
            println!("{}", v["key"].as_str().unwrap_or_default());
            Ok(())
        }
        KeysCmd::List { tenant } => {
            let v = c
                .json(
                    http::Method::GET,
                    &format!("/api/v1/tenants/{tenant}/keys"),
                    None,
                )
                .await?;
            print_keys(&v["keys"], "prefix");
            Ok(())
        }
        KeysCmd::Revoke { tenant, prefix } => {
            c.json(
                http::Method::DELETE,
                &format!("/api/v1/tenants/{tenant}/keys/{prefix}"),
                None,
            )
            .await?;
            println!("revoked {prefix}");
            Ok(())
        }
    }
}
