//! Usage metering: flushing this node's per-minute totals (`helixflow_usage::Meter`) to
//! the metadata store on an interval, so a fleet sharing a store answers fleet-wide.
//!
//! Invariant: a flush rewrites each minute's item with its running totals (idempotent);
//! a series leaves memory only after a flush that wrote it succeeded and its minute is
//! over, so a store outage delays usage, never loses it (memory stays bounded by the
//! meter's series cap). A node killed with -9 loses at most one interval.

use crate::Node;
use helixflow_usage::dashboard::DashboardSpec;
use helixflow_usage::query::Query;
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

/// Usage rows of `tenant` in `[from, to)` (Unix minutes, clamped to the retention and to now): what
/// the store holds from every node process, with this process's own series taken from
/// memory (fresher than its last flush, and never counted twice).
pub async fn rows(
    node: &Node,
    tenant: &str,
    from: u64,
    to: u64,
) -> Result<Vec<helixflow_store::usage::UsageRow>, crate::NodeError> {
    // Nothing older than the retention exists: never read partitions for it.
    let oldest =
        helixflow_store::now_unix().saturating_sub(node.settings.usage_retention.as_secs()) / 60;
    let from = from.max(oldest);
    // Nor any in the future.
    let to = to.min(helixflow_store::now_unix() / 60 + 2);
    if from >= to {
        return Ok(Vec::new());
    }
    let mine: Vec<_> = node
        .meter
        .tenant_rows(tenant)
        .into_iter()
        .filter(|r| (from..to).contains(&r.minute))
        .collect();
    let fresh: std::collections::HashSet<(u64, String)> =
        mine.iter().map(|r| (r.minute, r.dims_id())).collect();
    let mut out: Vec<_> = node
        .registry
        .usage(tenant, from, to)
        .await?
        .into_iter()
        .filter(|r| r.node != node.meter.writer() || !fresh.contains(&(r.minute, r.dims_id())))
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

/// Most dashboards one tenant keeps.
pub const MAX_DASHBOARDS: usize = 100;

fn dashboard_not_found(id: &str) -> crate::NodeError {
    crate::NodeError::not_found(format!("no dashboard {id:?} in this tenant"))
}

fn valid_dashboard_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Stores a dashboard definition (validated) and returns it with its `id`.
pub async fn create_dashboard(
    node: &Node,
    tenant: &str,
    spec: DashboardSpec,
) -> Result<serde_json::Value, crate::NodeError> {
    spec.validate()
        .map_err(|e| crate::NodeError::invalid(e.code, e.message))?;
    if node.registry.dashboards(tenant).await?.len() >= MAX_DASHBOARDS {
        return Err(crate::NodeError::new(
            crate::ErrorKind::Conflict,
            "too_many_dashboards",
            format!("a tenant keeps at most {MAX_DASHBOARDS} dashboards: delete one first"),
        ));
    }
    let id = uuid::Uuid::now_v7().simple().to_string();
    let mut def = match serde_json::to_value(&spec) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => {
            return Err(crate::NodeError::internal(
                "internal",
                "dashboard is not an object",
            ));
        }
    };
    def.insert("id".into(), id.clone().into());
    def.insert(
        "created_at".into(),
        time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
            .into(),
    );
    node.registry
        .create_dashboard(tenant, &id, def.clone())
        .await?;
    Ok(serde_json::Value::Object(def))
}

/// A stored dashboard definition.
pub async fn dashboard(
    node: &Node,
    tenant: &str,
    id: &str,
) -> Result<serde_json::Value, crate::NodeError> {
    if !valid_dashboard_id(id) {
        return Err(dashboard_not_found(id));
    }
    node.registry
        .dashboard(tenant, id)
        .await?
        .map(serde_json::Value::Object)
        .ok_or_else(|| dashboard_not_found(id))
}

/// Deletes a dashboard.
pub async fn delete_dashboard(node: &Node, tenant: &str, id: &str) -> Result<(), crate::NodeError> {
    if valid_dashboard_id(id) && node.registry.delete_dashboard(tenant, id).await? {
        Ok(())
    } else {
        Err(dashboard_not_found(id))
    }
}

/// The series of every panel of a dashboard over `params` (`from`, `to`, `step`).
pub async fn dashboard_data(
    node: &Node,
    tenant: &str,
    id: &str,
    params: &std::collections::HashMap<String, String>,
) -> Result<serde_json::Value, crate::NodeError> {
    let def = dashboard(node, tenant, id).await?;
    let spec: DashboardSpec = serde_json::from_value(serde_json::json!({
        "name": def["name"], "metrics": def["metrics"], "dimensions": def["dimensions"], "alerts": def["alerts"],
    }))
    .map_err(|e| crate::NodeError::internal("store_corrupt", format!("dashboard {id}: {e}")))?;
    let mut range = params.clone();
    range.retain(|k, _| matches!(k.as_str(), "from" | "to" | "step"));
    let base = Query::parse(&range, helixflow_store::now_unix())
        .map_err(|e| crate::NodeError::invalid(e.code, e.message))?;
    let rows = rows(node, tenant, base.from, base.to).await?;
    let (book, _) = prices(node, tenant).await?;
    let panels: Vec<serde_json::Value> = spec
        .panels()
        .into_iter()
        .map(|p| {
            let q = Query {
                group_by: p.group_by.clone(),
                metrics: p.metrics.clone(),
                ..base.clone()
            };
            let mut out = q.run(&rows, &book);
            if !p.over_time
                && let Some(series) = out["series"].as_array_mut()
            {
                for s in series {
                    if let Some(o) = s.as_object_mut() {
                        o.remove("points");
                    }
                }
            }
            out["name"] = p.name.into();
            out
        })
        .collect();
    Ok(serde_json::json!({"dashboard": def, "panels": panels}))
}
