//! `helixflow tenants`.

use crate::client::Client;
use crate::routes;
use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum TenantsCmd {
    Create {
        name: String,
        #[arg(long)]
        max_memory_mb: Option<u32>,
        #[arg(long)]
        max_timeout_ms: Option<u64>,
    },
    List,
}

pub async fn run(c: &Client, cmd: TenantsCmd) -> Result<()> {
    match cmd {
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
                .json(http::Method::POST, &routes::tenants(), Some(body))
                .await?;
            println!("created tenant {}", v["name"].as_str().unwrap_or_default());
            Ok(())
        }
        TenantsCmd::List => {
            let v = c.json(http::Method::GET, &routes::tenants(), None).await?;
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
    }
}
