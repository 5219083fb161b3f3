//! `helixflow models`: ONNX models.

use crate::client::Client;
use crate::routes;
use anyhow::Result;
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum ModelsCmd {
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

pub async fn run(c: &Client, cmd: ModelsCmd) -> Result<()> {
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
            let headers = vec![("x-helixflow-model-config", serde_json::to_string(&cfg)?)];
            let v = c
                .upload(
                    &routes::model_versions(&tenant, &model, &description),
                    &file,
                    "application/octet-stream",
                    headers,
                )
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
                .json(http::Method::GET, &routes::models(&tenant), None)
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
                .json(http::Method::GET, &routes::model(&tenant, &model), None)
                .await?;
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(())
        }
        ModelsCmd::Delete { tenant, model } => {
            let v = c
                .json(http::Method::DELETE, &routes::model(&tenant, &model), None)
                .await?;
            println!(
                "deleted {tenant}/{model} ({} versions)",
                v["deleted_versions"]
            );
            Ok(())
        }
    }
}
