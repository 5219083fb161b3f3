//! Operating a node: `state`, `config`, `gc` and `audit`.

use crate::client::Client;
use crate::routes;
use anyhow::Result;
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum StateCmd {
    /// Create the metadata table (DynamoDB; development and tests; production uses infra/).
    Init {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum ConfigCmd {
    /// Validate a node configuration file.
    Check { file: PathBuf },
}

// `helixflow gc` (its help text is the `Command::Gc` variant's).
#[derive(Args)]
pub struct GcArgs {
    /// Only delete unreferenced artifacts older than this (protects in-flight deploys).
    #[arg(long, default_value_t = 3600)]
    grace_secs: u64,
    /// Report what would be deleted without deleting.
    #[arg(long)]
    dry_run: bool,
}

// `helixflow audit`.
#[derive(Args)]
pub struct AuditArgs {
    #[arg(long, short)]
    tenant: String,
    #[arg(long, default_value_t = 50)]
    limit: usize,
}

pub async fn state(cmd: StateCmd) -> Result<()> {
    match cmd {
        StateCmd::Init { config } => {
            let cfg = crate::serve::load_config(config.as_deref())?;
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
    }
}

pub fn config(cmd: ConfigCmd) -> Result<()> {
    match cmd {
        ConfigCmd::Check { file } => {
            let cfg = helixflow_edge_config::NodeConfig::load(&file)?;
            println!(
                "{}: ok (node {}, listening on {})",
                file.display(),
                cfg.node.id,
                cfg.listen.http
            );
            Ok(())
        }
    }
}

pub async fn gc(c: &Client, args: GcArgs) -> Result<()> {
    let GcArgs {
        grace_secs,
        dry_run,
    } = args;
    let v = c
        .json(
            http::Method::POST,
            &routes::admin_gc(grace_secs, dry_run),
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

pub async fn audit(c: &Client, args: AuditArgs) -> Result<()> {
    let AuditArgs { tenant, limit } = args;
    let v = c
        .json(http::Method::GET, &routes::audit(&tenant, limit), None)
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
