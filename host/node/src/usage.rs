//! Usage metering: flushing this node's per-minute totals (`helixflow_usage::Meter`) to
//! the metadata store on an interval, so a fleet sharing a store answers fleet-wide.
//!
//! Invariant: a flush rewrites each minute's item with its running totals (idempotent);
//! a series leaves memory only after a flush that wrote it succeeded and its minute is
//! over, so a store outage delays usage, never loses it (memory stays bounded by the
//! meter's series cap). A node killed with -9 loses at most one interval.

use crate::Node;
use helixflow_usage::{Price, PriceBook};
use std::sync::Arc;

/// Writes the meter's totals once; `Err` keeps them for the next try.
pub async fn flush(node: &Node) -> Result<(), crate::NodeError> {
    let (rows, closed) = node.meter.snapshot();
    if rows.is_empty() {
        return Ok(());
    }
    node.registry
        .put_usage(&rows, node.settings.usage_retention.as_secs())
        .await?;
    node.meter.forget(closed);
    Ok(())
}

/// Flushes every `usage_flush_interval` until the process ends.
pub fn start(node: &Arc<Node>) {
    let node = node.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(node.settings.usage_flush_interval).await;
            if let Err(e) = flush(&node).await {
                tracing::warn!(code = e.code, error = %e.message, "usage flush failed; keeping the totals for the next one");
            }
        }
    });
}

/// Usage rows of `tenant` in `[from, to)` (Unix minutes): what the store holds from every
/// node, with this node's own series taken from memory (fresher than its last flush,
/// and never counted twice).
pub async fn rows(
    node: &Node,
    tenant: &str,
    from: u64,
    to: u64,
) -> Result<Vec<helixflow_store::usage::UsageRow>, crate::NodeError> {
    let (mine, _) = node.meter.snapshot();
    let mine: Vec<_> = mine
        .into_iter()
        .filter(|r| r.tenant == tenant && (from..to).contains(&r.minute))
        .collect();
    let fresh: std::collections::HashSet<(u64, String)> =
        mine.iter().map(|r| (r.minute, r.dims_id())).collect();
    let mut out: Vec<_> = node
        .registry
        .usage(tenant, from, to)
        .await?
        .into_iter()
        .filter(|r| r.node != node.settings.node_id || !fresh.contains(&(r.minute, r.dims_id())))
        .collect();
    out.extend(mine);
    Ok(out)
}

/// The price table that applies to `tenant`: its own, else the node's (`[[usage.prices]]`).
pub async fn prices(
    node: &Node,
    tenant: &str,
) -> Result<(PriceBook, &'static str), crate::NodeError> {
    let own = match node.registry.tenant_prices(tenant).await? {
        Some(v) => serde_json::from_value::<Vec<Price>>(v).map_err(|e| {
            crate::NodeError::internal("store_corrupt", format!("stored prices of {tenant:?}: {e}"))
        })?,
        None => Vec::new(),
    };
    let source = if own.is_empty() { "node" } else { "tenant" };
    Ok((
        PriceBook::for_tenant(&node.settings.prices, Some(&own)),
        source,
    ))
}

/// Sets a tenant's own price table (an empty list removes it: the node's applies).
pub async fn set_prices(
    node: &Node,
    tenant: &str,
    prices: Vec<Price>,
) -> Result<(), crate::NodeError> {
    for (i, p) in prices.iter().enumerate() {
        p.validate()
            .map_err(|m| crate::NodeError::invalid("invalid_price", format!("prices[{i}]: {m}")))?;
    }
    let value = if prices.is_empty() {
        None
    } else {
        Some(
            serde_json::to_value(&prices)
                .map_err(|e| crate::NodeError::internal("internal", e.to_string()))?,
        )
    };
    node.registry.set_tenant_prices(tenant, value).await?;
    Ok(())
}
