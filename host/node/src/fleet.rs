//! The fleet's roll call: every node process writes a heartbeat item to the metadata
//! store on an interval, so any node can list the fleet (the control plane's fleet
//! listing and the console's fleet view).
//!
//! A heartbeat carries what an operator asks first: where the node is, what it runs,
//! which models it has loaded and on which execution providers. It expires
//! [`HEARTBEAT_TTL`] after it was written, so a node that stopped drops out of the list
//! without anyone deleting it; one that stops cleanly deletes its own.

use crate::Node;
use crate::error::NodeError;
use helixflow_store::{Condition, EXPIRES_AT, keys, now_unix};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::Duration;

/// How often a node writes its heartbeat.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(10);
/// Seconds after which a heartbeat no longer counts (the node is gone).
pub const HEARTBEAT_TTL: u64 = 45;
/// A node whose last heartbeat is older than this is listed as `stale`.
pub const STALE_AFTER: u64 = 25;

/// What this node reports about itself now.
pub fn heartbeat(node: &Node) -> Map<String, Value> {
    let now = now_unix();
    let (sessions, providers, models) = match node.runtime.inference() {
        Some(inf) => {
            let loaded = inf.loaded();
            let mut providers: Vec<&str> = loaded.iter().map(|l| l.provider.as_str()).collect();
            providers.sort_unstable();
            providers.dedup();
            let models: Vec<Value> = loaded
                .iter()
                .map(|l| json!({"model": l.model, "provider": l.provider.as_str()}))
                .collect();
            (
                loaded.len(),
                providers.into_iter().map(String::from).collect::<Vec<_>>(),
                models,
            )
        }
        None => (0, Vec::new(), Vec::new()),
    };
    let mut m = Map::new();
    m.insert("instance".into(), json!(node.instance));
    m.insert("location".into(), json!(node.settings.node_id));
    m.insert("version".into(), json!(env!("CARGO_PKG_VERSION")));
    m.insert("started_at".into(), json!(node.started_at));
    m.insert("seen_at".into(), json!(now));
    m.insert(
        "inference".into(),
        json!(node.runtime.inference().is_some()),
    );
    m.insert("sessions".into(), json!(sessions));
    m.insert("providers".into(), json!(providers));
    m.insert("models".into(), json!(models));
    m.insert(EXPIRES_AT.into(), json!(now + HEARTBEAT_TTL));
    m
}

/// Writes this node's heartbeat once.
pub async fn beat(node: &Node) -> Result<(), NodeError> {
    let op = keys::node_heartbeat(&node.instance).put(heartbeat(node), Condition::Always);
    node.registry.store().transact(vec![op]).await?;
    Ok(())
}

/// Stops the heartbeat loop [`start`] returned, then removes this node's heartbeat (a
/// clean shutdown). The loop is stopped first so that no beat in flight, or one due
/// while the process winds down, writes the item back after the delete.
pub async fn leave(node: &Node, beats: tokio::task::JoinHandle<()>) {
    beats.abort();
    let _ = beats.await;
    let k = keys::node_heartbeat(&node.instance);
    if let Err(e) = node
        .registry
        .store()
        .delete(&k.pk, &k.sk, Condition::Always)
        .await
    {
        tracing::debug!(error = %e, "fleet: could not remove this node's heartbeat");
    }
}

/// Beats now and then every [`HEARTBEAT_EVERY`] until [`leave`] stops it.
pub fn start(node: &Arc<Node>) -> tokio::task::JoinHandle<()> {
    let node = node.clone();
    tokio::spawn(async move {
        loop {
            if let Err(e) = beat(&node).await {
                tracing::warn!(error = %e.message, "fleet: heartbeat write failed; retrying");
            }
            tokio::time::sleep(HEARTBEAT_EVERY).await;
        }
    })
}

/// Every node with a live heartbeat, by location then instance; each with `stale`
/// (no heartbeat for [`STALE_AFTER`] seconds) and `age_secs`.
pub async fn list(node: &Node) -> Result<Vec<Value>, NodeError> {
    let p = keys::node_heartbeats();
    let now = now_unix();
    let mut items = node.registry.store().query_all(&p.pk, &p.sk_prefix).await?;
    // Backends never return an expired item (a process that died without leaving drops
    // out here); the check is only for a clock that moved between read and now.
    items.retain(|i| !i.expired(now));
    items.sort_by(|a, b| (a.str("location"), &a.sk).cmp(&(b.str("location"), &b.sk)));
    Ok(items
        .into_iter()
        .map(|i| {
            let age = now.saturating_sub(i.u64("seen_at").unwrap_or(0));
            let mut m = i.attrs;
            m.remove(EXPIRES_AT);
            m.insert("age_secs".into(), json!(age));
            m.insert("stale".into(), json!(age > STALE_AFTER));
            m.insert("this_node".into(), json!(i.sk == node.instance));
            Value::Object(m)
        })
        .collect())
}
