//! Functions: `deploy`, `invoke`, `logs`, `functions` and `alias`.

use crate::client::Client;
use crate::routes;
use anyhow::{Context as _, Result};
use clap::{Args, Subcommand};
use std::path::PathBuf;

// `helixflow deploy` (its help text is the `Command::Deploy` variant's).
#[derive(Args)]
pub struct DeployArgs {
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
}

// `helixflow invoke`.
#[derive(Args)]
pub struct InvokeArgs {
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
}

// `helixflow logs`.
#[derive(Args)]
pub struct LogsArgs {
    #[arg(long, short)]
    tenant: String,
    #[arg(long, short)]
    function: String,
    #[arg(long, default_value_t = 20)]
    limit: usize,
}

#[derive(Subcommand)]
pub enum FunctionsCmd {
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
pub enum AliasCmd {
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

pub async fn deploy(c: &Client, args: DeployArgs) -> Result<()> {
    let DeployArgs {
        tenant,
        function,
        file,
        alias,
        memory_mb,
        timeout_ms,
        public,
        env,
        description,
    } = args;
    let mut env_map = serde_json::Map::new();
    for kv in env {
        let Some((k, v)) = kv.split_once('=') else {
            anyhow::bail!("--env {kv:?}: expected KEY=VALUE");
        };
        env_map.insert(k.to_string(), serde_json::Value::String(v.to_string()));
    }
    let config = (memory_mb.is_some() || timeout_ms.is_some() || public || !env_map.is_empty())
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
    let headers = match config {
        Some(cfg) => vec![("x-helixflow-config", serde_json::to_string(&cfg)?)],
        None => vec![],
    };
    let v = c
        .upload(
            &routes::versions(&tenant, &function, alias.as_deref(), &description),
            &file,
            "application/wasm",
            headers,
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

pub async fn invoke(c: &Client, args: InvokeArgs) -> Result<()> {
    let InvokeArgs {
        tenant,
        function,
        qualifier,
        data,
    } = args;
    let payload = match data {
        Some(d) => d.into_bytes(),
        None => {
            use std::io::Read;
            let mut buf = Vec::new();
            std::io::stdin().read_to_end(&mut buf)?;
            buf
        }
    };
    let out = c
        .raw(
            http::Method::POST,
            &routes::invoke(&tenant, &function, qualifier.as_deref()),
            payload.into(),
        )
        .await?;
    use std::io::Write;
    std::io::stdout().write_all(&out)?;
    println!();
    Ok(())
}

pub async fn logs(c: &Client, args: LogsArgs) -> Result<()> {
    let LogsArgs {
        tenant,
        function,
        limit,
    } = args;
    let v = c
        .json(
            http::Method::GET,
            &routes::function_logs(&tenant, &function, limit),
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

pub async fn functions(c: &Client, cmd: FunctionsCmd) -> Result<()> {
    match cmd {
        FunctionsCmd::List { tenant } => {
            let v = c
                .json(http::Method::GET, &routes::functions(&tenant), None)
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
                    &routes::function(&tenant, &function),
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
            let path = routes::function_config(&tenant, &function);
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
                &routes::function(&tenant, &function),
                None,
            )
            .await?;
            println!("deleted {tenant}/{function}");
            Ok(())
        }
    }
}

pub async fn alias(c: &Client, cmd: AliasCmd) -> Result<()> {
    match cmd {
        AliasCmd::Set {
            tenant,
            function,
            alias,
            version,
        } => {
            let v = c
                .json(
                    http::Method::PUT,
                    &routes::alias(&tenant, &function, &alias),
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
                    &routes::alias_rollback(&tenant, &function, &alias),
                    None,
                )
                .await?;
            println!("alias {alias} rolled back to version {}", v["version"]);
            Ok(())
        }
    }
}
