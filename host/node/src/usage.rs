//! Usage metering: flushing this node's per-minute totals (`helixflow_usage::Meter`) to
//! the metadata store on an interval, so a fleet sharing a store answers fleet-wide.
//!
//! Invariant: a flush rewrites each minute's item with its running totals (idempotent);
//! a series leaves memory only after a flush that wrote it succeeded and its minute is
//! over, so a store outage delays usage, never loses it (memory stays bounded by the
//! meter's series cap). A node killed with -9 loses at most one interval.

use crate::Node;
use helixflow_store::usage::UsageRow;
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

/// Minutes an hour waits, once over, before it is rolled up: every node's last flush
/// of it is in by then (a node flushes every `flush_interval`; a minute is written for
/// a minute after it ends).
pub const ROLLUP_DELAY_MINUTES: u64 = 5;
/// Hours one tenant is rolled up per round (a new fleet catches up over a few rounds).
const ROLLUP_HOURS_PER_ROUND: u64 = 48;
/// The fleet lease of the roll-up job.
pub const ROLLUP_LEASE: &str = "usage-rollup";

/// One roll-up round, if this node holds (or takes) the fleet lease: for every tenant,
/// each complete hour after its mark is summed into hourly rows and the mark moved past
/// it. Idempotent (a repeated hour rewrites the same rows). `Ok(false)`: another node
/// holds the lease.
pub async fn rollup_round(node: &Node) -> Result<bool, crate::NodeError> {
    let now = helixflow_store::now_unix();
    let lease = helixflow_store::keys::lease(ROLLUP_LEASE);
    let ttl = (node.settings.usage_rollup_interval.as_secs() * 3).max(30);
    if !helixflow_store::lease::try_acquire(
        node.registry.store().as_ref(),
        &lease.pk,
        &lease.sk,
        node.meter.writer(),
        now,
        ttl,
    )
    .await?
    {
        return Ok(false);
    }
    // The first hour that is not complete everywhere yet.
    let ready = (now / 60).saturating_sub(ROLLUP_DELAY_MINUTES) / 60;
    let oldest = now.saturating_sub(node.settings.usage_retention.as_secs()) / 3600;
    let retention = node.settings.usage_rollup_retention.as_secs();
    for tenant in node.registry.tenants().await? {
        let t = &tenant.name;
        let (mark, day_mark) = node.registry.rollup_marks(t).await?;
        // The last rolled-up hour and day are rolled up again (idempotent), so rows that
        // reached the store late (a node's failed flush retried) are in them.
        let start = mark
            .map(|m| m.saturating_sub(1))
            .unwrap_or(oldest)
            .max(oldest);
        let end = ready.min(start + ROLLUP_HOURS_PER_ROUND);
        // The mark never moves back (a round that re-rolls only the last hour keeps it).
        let hour = rollup_hours(&node.registry, t, start, end, retention)
            .await?
            .max(mark.unwrap_or(0));
        // Days whose 24 hours are all rolled up.
        let first_day = day_mark.map(|d| d.saturating_sub(1)).unwrap_or(start / 24);
        let day = rollup_days(
            &node.registry,
            t,
            first_day,
            (hour / 24).min(first_day + ROLLUP_HOURS_PER_ROUND / 24),
            retention,
        )
        .await?
        .max(day_mark.unwrap_or(0));
        if (mark, day_mark) != (Some(hour), Some(day)) {
            node.registry.set_rollup_mark(t, hour, day).await?;
        }
    }
    Ok(true)
}

/// Rolls `tenant`'s UTC days `[from_day, to_day)` up from their hourly roll-ups;
/// returns the first day not rolled up. Does not move the mark.
pub async fn rollup_days(
    registry: &helixflow_store::registry::Registry,
    tenant: &str,
    from_day: u64,
    to_day: u64,
    retention_secs: u64,
) -> Result<u64, crate::NodeError> {
    let mut day = from_day;
    while day < to_day {
        let hours = registry
            .hour_rollups(tenant, day * 24, day * 24 + 24)
            .await?;
        let rolled = helixflow_usage::rollup::merge_day(tenant, day, &hours);
        registry.put_day_rollups(&rolled, retention_secs).await?;
        day += 1;
    }
    Ok(day.max(from_day))
}

/// Rolls `tenant`'s hours `[from_hour, to_hour)` up (every node's minute rows of each
/// hour, summed per dimensions); returns the first hour not rolled up. Does not move
/// the mark.
pub async fn rollup_hours(
    registry: &helixflow_store::registry::Registry,
    tenant: &str,
    from_hour: u64,
    to_hour: u64,
    retention_secs: u64,
) -> Result<u64, crate::NodeError> {
    let mut hour = from_hour;
    while hour < to_hour {
        let minutes = registry.usage(tenant, hour * 60, hour * 60 + 60).await?;
        let rolled = helixflow_usage::rollup::merge_hour(tenant, hour, &minutes);
        registry.put_hour_rollups(&rolled, retention_secs).await?;
        hour += 1;
    }
    Ok(hour)
}

/// The rows a usage query over `[from, to)` at `step` minutes reads
/// ([`period_rows`]): days from daily roll-ups when the step is a day, whole hours
/// from hourly roll-ups when it is an hour or more, minutes otherwise.
pub async fn query_rows(
    node: &Node,
    tenant: &str,
    from: u64,
    to: u64,
    step: u64,
    prices: &PriceBook,
) -> Result<Vec<UsageRow>, crate::NodeError> {
    if step < 60 {
        return rows(node, tenant, from, to).await;
    }
    period_rows(node, tenant, from, to, prices, step >= 1440).await
}

/// The usage rows of `tenant` covering the minutes `[from, to)`, each minute counted
/// once: every whole UTC day already rolled up (when `days`, and no price entry starts
/// inside it, so one price covers it) as its daily rows, every other whole hour already
/// rolled up as its hourly rows, and the rest as minute rows ([`rows`]).
pub async fn period_rows(
    node: &Node,
    tenant: &str,
    from: u64,
    to: u64,
    prices: &PriceBook,
    days: bool,
) -> Result<Vec<UsageRow>, crate::NodeError> {
    let now = helixflow_store::now_unix();
    let oldest_hour = now.saturating_sub(node.settings.usage_rollup_retention.as_secs()) / 3600;
    let (hour_mark, day_mark) = node.registry.rollup_marks(tenant).await?;
    let (hour_mark, day_mark) = (hour_mark.unwrap_or(0), day_mark.unwrap_or(0));
    let mut out = Vec::new();
    // Whole days usable from daily roll-ups.
    let mut gaps = vec![(from, to)];
    if days {
        let priced_once = |d: u64| {
            !prices
                .0
                .iter()
                .any(|p| p.from > d * 86_400 && p.from < (d + 1) * 86_400)
        };
        let first = from.div_ceil(1440).max(oldest_hour.div_ceil(24));
        let last = (to / 1440).min(day_mark);
        let usable: Vec<u64> = (first..last).filter(|d| priced_once(*d)).collect();
        if let (Some(&lo), Some(&hi)) = (usable.first(), usable.last()) {
            let wanted: std::collections::HashSet<u64> = usable.iter().copied().collect();
            out.extend(
                node.registry
                    .day_rollups(tenant, lo, hi + 1)
                    .await?
                    .into_iter()
                    .filter(|r| wanted.contains(&(r.minute / 1440))),
            );
            gaps.clear();
            let mut at = from;
            for d in usable {
                if d * 1440 > at {
                    gaps.push((at, d * 1440));
                }
                at = (d + 1) * 1440;
            }
            if at < to {
                gaps.push((at, to));
            }
        }
    }
    // Whole hours from hourly roll-ups; minutes at the edges.
    for (a, b) in gaps {
        let (h0, h1) = (a.div_ceil(60).max(oldest_hour), (b / 60).min(hour_mark));
        if h0 >= h1 {
            out.extend(rows(node, tenant, a, b).await?);
            continue;
        }
        out.extend(node.registry.hour_rollups(tenant, h0, h1).await?);
        out.extend(rows(node, tenant, a, h0 * 60).await?);
        out.extend(rows(node, tenant, h1 * 60, b).await?);
    }
    Ok(out)
}

/// Flushes every `usage_flush_interval` until the process ends; rolls up complete
/// hours every `usage_rollup_interval` (the fleet lease holder does).
pub fn start(node: &Arc<Node>) {
    let rolling = node.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(rolling.settings.usage_rollup_interval).await;
            if let Err(e) = rollup_round(&rolling).await {
                tracing::warn!(code = e.code, error = %e.message, "usage roll-up failed; the next round retries");
            }
        }
    });
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
    let (book, _) = prices(node, tenant).await?;
    let rows = query_rows(node, tenant, base.from, base.to, base.step, &book).await?;
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
