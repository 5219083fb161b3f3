//! Hourly roll-ups: one hour of minute rows, every node's, summed per set of dimensions,
//! so a query over weeks reads one row per hour and series instead of sixty per node.

use crate::Histogram;
use helixflow_store::usage::UsageRow;
use std::collections::BTreeMap;

/// The `node` of a roll-up row: the fleet, not one writer.
pub const ROLLUP_WRITER: &str = "rollup";

/// The roll-up of `tenant`'s `hour` (Unix hours) from its minute rows (rows of other
/// hours or tenants are ignored): one row per distinct dimensions, at the hour's first
/// minute, counters summed and latency histograms merged.
pub fn merge_hour(tenant: &str, hour: u64, rows: &[UsageRow]) -> Vec<UsageRow> {
    merge_period(tenant, hour * 60, 60, rows)
}

/// The roll-up of `tenant`'s UTC `day` (Unix days) from its hourly roll-ups (or any
/// rows of the day): one row per distinct dimensions, at the day's first minute.
pub fn merge_day(tenant: &str, day: u64, rows: &[UsageRow]) -> Vec<UsageRow> {
    merge_period(tenant, day * 1440, 1440, rows)
}

/// Rows of `tenant` in `[start, start + minutes)` summed per dimensions, at `start`.
fn merge_period(tenant: &str, start: u64, minutes: u64, rows: &[UsageRow]) -> Vec<UsageRow> {
    type Totals = (BTreeMap<String, u64>, Histogram);
    let mut acc: BTreeMap<&BTreeMap<String, String>, Totals> = BTreeMap::new();
    for r in rows
        .iter()
        .filter(|r| r.tenant == tenant && (start..start + minutes).contains(&r.minute))
    {
        let (counters, latency) = acc.entry(&r.dims).or_default();
        for (k, v) in &r.counters {
            *counters.entry(k.clone()).or_default() += v;
        }
        latency.merge(&r.latency);
    }
    acc.into_iter()
        .map(|(dims, (counters, latency))| UsageRow {
            tenant: tenant.to_string(),
            minute: start,
            node: ROLLUP_WRITER.to_string(),
            dims: dims.clone(),
            counters,
            latency: latency.0,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(node: &str, minute: u64, function: &str, requests: u64, lat: &[u64]) -> UsageRow {
        UsageRow {
            tenant: "acme".into(),
            minute,
            node: node.into(),
            dims: BTreeMap::from([("function".to_string(), function.to_string())]),
            counters: BTreeMap::from([("requests".to_string(), requests)]),
            latency: lat.to_vec(),
        }
    }

    #[test]
    fn an_hour_of_minutes_from_many_nodes_sums_per_dimensions() {
        let hour = 472_222;
        let m = hour * 60;
        let rows = vec![
            row("fra~1", m, "a", 2, &[1, 0, 3]),
            row("iad~2", m + 59, "a", 3, &[0, 2]),
            row("fra~1", m + 5, "b", 7, &[]),
            // Not this hour.
            row("fra~1", m + 60, "a", 100, &[9]),
        ];
        let out = merge_hour("acme", hour, &rows);
        assert_eq!(out.len(), 2, "{out:?}");
        let a = out.iter().find(|r| r.dims["function"] == "a").unwrap();
        assert_eq!(a.counters["requests"], 5);
        assert_eq!(&a.latency[..3], &[1, 2, 3]);
        assert_eq!((a.minute, a.node.as_str()), (m, ROLLUP_WRITER));
        let b = out.iter().find(|r| r.dims["function"] == "b").unwrap();
        assert_eq!(b.counters["requests"], 7);
    }
}
