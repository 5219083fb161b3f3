//! `helixflow events`: event (asynchronous) invocations.

use crate::client::Client;
use crate::routes;
use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum EventsCmd {
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

pub async fn run(c: &Client, cmd: EventsCmd) -> Result<()> {
    match cmd {
        EventsCmd::List {
            tenant,
            status,
            function,
            limit,
        } => {
            let limit = limit.to_string();
            let mut q = vec![("limit", limit.as_str())];
            if let Some(s) = &status {
                q.push(("status", s.as_str()));
            }
            if let Some(f) = &function {
                q.push(("function", f.as_str()));
            }
            let v = c
                .json(http::Method::GET, &routes::events(&tenant, &q), None)
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
                .json(http::Method::GET, &routes::event(&tenant, &id), None)
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
                let mut q = vec![("status", "failed"), ("limit", "1000")];
                if let Some(f) = &function {
                    q.push(("function", f.as_str()));
                }
                let v = c
                    .json(http::Method::GET, &routes::events(&tenant, &q), None)
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
                        &routes::event_replay(&tenant, &id),
                        None,
                    )
                    .await?;
                println!("{id} -> {}", v["id"].as_str().unwrap_or_default());
            }
            Ok(())
        }
    }
}
