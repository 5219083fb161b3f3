//! Usage aggregates: what each tenant used, one item per (tenant, minute, node,
//! dimensions), written by the node that metered it (`helixflow-usage`).
//!
//! A node rewrites its item for a minute with the minute's running totals on every flush
//! (`Condition::Always`), so a retried or repeated flush never counts twice, and nodes
//! sharing a store never write each other's items: a fleet-wide answer is the sum over
//! nodes. Items expire after the retention the node is configured with.

use crate::keys;
use crate::metadata::{Condition, EXPIRES_AT, MAX_TRANSACTION_OPS};
use crate::registry::{Registry, Result, attrs_of, from_item_owned};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use std::collections::BTreeMap;

/// One node's totals for one minute and one set of dimensions.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(from = "StoredRow", into = "StoredRow")]
pub struct UsageRow {
    pub tenant: String,
    /// Unix minute (seconds / 60).
    pub minute: u64,
    /// The node (location) that metered it.
    pub node: String,
    /// Dimension name -> value (function, trigger, principal, model, ...).
    pub dims: BTreeMap<String, String>,
    /// Counter name -> total (requests, errors, wall_ms, ...).
    pub counters: BTreeMap<String, u64>,
    /// Latency histogram: count per bucket (bucket bounds: `helixflow-usage`).
    pub latency: Vec<u64>,
}

/// A usage row as stored: the latency histogram as its non-empty buckets (`lat`:
/// `[bucket, count]` pairs; most of a row's buckets are empty, and rows are read by the
/// thousand). Rows written before hold it dense (`latency`); both read the same.
#[derive(Serialize, Deserialize)]
struct StoredRow {
    tenant: String,
    minute: u64,
    node: String,
    dims: BTreeMap<String, String>,
    counters: BTreeMap<String, u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    latency: Vec<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    lat: Vec<(u32, u64)>,
}

/// Most histogram buckets a stored row may name (more is a corrupt row, not a reason
/// to allocate).
const MAX_STORED_BUCKETS: u32 = 4096;

impl From<StoredRow> for UsageRow {
    fn from(s: StoredRow) -> UsageRow {
        let mut latency = s.latency;
        for (i, n) in s.lat {
            if i >= MAX_STORED_BUCKETS {
                continue;
            }
            let i = i as usize;
            if latency.len() <= i {
                latency.resize(i + 1, 0);
            }
            latency[i] += n;
        }
        UsageRow {
            tenant: s.tenant,
            minute: s.minute,
            node: s.node,
            dims: s.dims,
            counters: s.counters,
            latency,
        }
    }
}

impl From<UsageRow> for StoredRow {
    fn from(r: UsageRow) -> StoredRow {
        StoredRow {
            lat: r
                .latency
                .iter()
                .enumerate()
                .filter(|(_, n)| **n > 0)
                .map(|(i, n)| (i as u32, *n))
                .collect(),
            latency: Vec::new(),
            tenant: r.tenant,
            minute: r.minute,
            node: r.node,
            dims: r.dims,
            counters: r.counters,
        }
    }
}

impl UsageRow {
    /// A short, stable digest of the dimensions (their values may hold any character).
    pub fn dims_id(&self) -> String {
        let mut h = sha2::Sha256::new();
        for (k, v) in &self.dims {
            h.update(k.as_bytes());
            h.update([0]);
            h.update(v.as_bytes());
            h.update([0]);
        }
        hex::encode(&h.finalize()[..12])
    }
}

impl Registry {
    /// Writes (replaces) `rows`, each under `key_of(row)`, expiring `retention_secs`
    /// after its minute.
    async fn put_rows(
        &self,
        rows: &[UsageRow],
        retention_secs: u64,
        key_of: impl Fn(&UsageRow) -> keys::Key,
    ) -> Result<()> {
        for chunk in rows.chunks(MAX_TRANSACTION_OPS) {
            let mut ops = Vec::with_capacity(chunk.len());
            for r in chunk {
                let mut attrs = attrs_of(r)?;
                attrs.insert(EXPIRES_AT.into(), (r.minute * 60 + retention_secs).into());
                ops.push(key_of(r).put(attrs, Condition::Always));
            }
            self.store().transact(ops).await?;
        }
        Ok(())
    }

    /// The rows under `prefixes` whose minute is in `minutes` (decoded without a copy).
    async fn read_rows(
        &self,
        prefixes: impl IntoIterator<Item = keys::KeyPrefix>,
        minutes: std::ops::Range<u64>,
    ) -> Result<Vec<UsageRow>> {
        let mut out = Vec::new();
        for prefix in prefixes {
            for item in self
                .store()
                .query_all(&prefix.pk, &prefix.sk_prefix)
                .await?
            {
                let row: UsageRow = from_item_owned(item)?;
                if minutes.contains(&row.minute) {
                    out.push(row);
                }
            }
        }
        Ok(out)
    }

    /// Writes (replaces) usage rows; each row expires `retention_secs` after its minute.
    pub async fn put_usage(&self, rows: &[UsageRow], retention_secs: u64) -> Result<()> {
        self.put_rows(rows, retention_secs, |r| {
            keys::usage_minute(&r.tenant, r.minute, &r.node, &r.dims_id())
        })
        .await
    }

    /// Every usage row of `tenant` with `from_minute <= minute < to_minute`, all nodes.
    pub async fn usage(
        &self,
        tenant: &str,
        from_minute: u64,
        to_minute: u64,
    ) -> Result<Vec<UsageRow>> {
        if to_minute <= from_minute {
            return Ok(Vec::new());
        }
        // A short range (a budget's refresh) reads its minutes, not their whole hours.
        let prefixes: Vec<keys::KeyPrefix> = if to_minute - from_minute <= SHORT_RANGE_MINUTES {
            (from_minute..to_minute)
                .map(|m| keys::usage_of_minute(tenant, m))
                .collect()
        } else {
            (from_minute / 60..=(to_minute - 1) / 60)
                .map(|h| keys::usage_hour(tenant, h))
                .collect()
        };
        self.read_rows(prefixes, from_minute..to_minute).await
    }
}

impl Registry {
    /// Writes (replaces) hourly roll-ups: rows whose `minute` is their hour's first
    /// minute, summed over every node; each expires `retention_secs` after its hour.
    pub async fn put_hour_rollups(&self, rows: &[UsageRow], retention_secs: u64) -> Result<()> {
        self.put_rows(rows, retention_secs, |r| {
            keys::usage_hour_rollup(&r.tenant, r.minute / 60, &r.dims_id())
        })
        .await
    }

    /// The hourly roll-ups of `tenant` with `from_hour <= hour < to_hour`.
    pub async fn hour_rollups(
        &self,
        tenant: &str,
        from_hour: u64,
        to_hour: u64,
    ) -> Result<Vec<UsageRow>> {
        if to_hour <= from_hour {
            return Ok(Vec::new());
        }
        let days =
            (from_hour / 24..=(to_hour - 1) / 24).map(|d| keys::usage_rollups_of_day(tenant, d));
        self.read_rows(days, from_hour * 60..to_hour * 60).await
    }

    /// Writes (replaces) daily roll-ups (rows at their UTC day's first minute); each
    /// expires `retention_secs` after its day.
    pub async fn put_day_rollups(&self, rows: &[UsageRow], retention_secs: u64) -> Result<()> {
        self.put_rows(rows, retention_secs, |r| {
            keys::usage_day_rollup(&r.tenant, r.minute / 1440, &r.dims_id())
        })
        .await
    }

    /// The daily roll-ups of `tenant` with `from_day <= day < to_day`.
    pub async fn day_rollups(
        &self,
        tenant: &str,
        from_day: u64,
        to_day: u64,
    ) -> Result<Vec<UsageRow>> {
        if to_day <= from_day {
            return Ok(Vec::new());
        }
        let parts = (from_day / 32..=(to_day - 1) / 32)
            .map(|p| keys::usage_day_rollups_near(tenant, p * 32));
        self.read_rows(parts, from_day * 1440..to_day * 1440).await
    }

    /// The first hour of `tenant` not yet rolled up (`None`: none is).
    pub async fn rollup_mark(&self, tenant: &str) -> Result<Option<u64>> {
        Ok(self.rollup_marks(tenant).await?.0)
    }

    /// The first hour and the first day of `tenant` not yet rolled up.
    pub async fn rollup_marks(&self, tenant: &str) -> Result<(Option<u64>, Option<u64>)> {
        let key = keys::usage_rollup_mark(tenant);
        let item = self.store().get(&key.pk, &key.sk).await?;
        let get = |name: &str| {
            item.as_ref()
                .and_then(|i| i.attrs.get(name).and_then(|v| v.as_u64()))
        };
        Ok((get("until_hour"), get("until_day")))
    }

    /// Records that every hour before `until_hour` and every day before `until_day` is
    /// rolled up.
    pub async fn set_rollup_mark(
        &self,
        tenant: &str,
        until_hour: u64,
        until_day: u64,
    ) -> Result<()> {
        let key = keys::usage_rollup_mark(tenant);
        let mut attrs = serde_json::Map::new();
        attrs.insert("until_hour".into(), until_hour.into());
        attrs.insert("until_day".into(), until_day.into());
        self.store()
            .put(&key.pk, &key.sk, attrs, Condition::Always)
            .await?;
        Ok(())
    }
}

/// Ranges up to this many minutes are read minute by minute.
const SHORT_RANGE_MINUTES: u64 = 10;

impl Registry {
    /// One JSON setting of a tenant stored as attribute `attr` of item `key`, if set.
    async fn tenant_setting(
        &self,
        key: keys::Key,
        attr: &str,
    ) -> Result<Option<serde_json::Value>> {
        Ok(self
            .store()
            .get(&key.pk, &key.sk)
            .await?
            .and_then(|item| item.attrs.get(attr).cloned()))
    }

    /// Sets (`Some`) or removes (`None`) a tenant's setting. The tenant must exist.
    async fn set_tenant_setting(
        &self,
        tenant: &str,
        key: keys::Key,
        attr: &str,
        value: Option<serde_json::Value>,
    ) -> Result<()> {
        self.tenant(tenant).await?;
        match value {
            Some(v) => {
                let mut attrs = serde_json::Map::new();
                attrs.insert(attr.into(), v);
                self.store()
                    .put(&key.pk, &key.sk, attrs, Condition::Always)
                    .await?;
            }
            None => {
                self.store()
                    .transact(vec![key.delete(Condition::Always)])
                    .await?
            }
        }
        Ok(())
    }

    /// A tenant's budget (JSON, as the node's budget layer wrote it), if any.
    pub async fn tenant_budget(&self, tenant: &str) -> Result<Option<serde_json::Value>> {
        self.tenant_setting(keys::budget(tenant), "budget").await
    }

    /// Sets (`Some`) or removes (`None`) a tenant's budget. The tenant must exist.
    pub async fn set_tenant_budget(
        &self,
        tenant: &str,
        budget: Option<serde_json::Value>,
    ) -> Result<()> {
        self.set_tenant_setting(tenant, keys::budget(tenant), "budget", budget)
            .await
    }

    /// A tenant's own price table (JSON, as the node's usage layer wrote it), if any.
    pub async fn tenant_prices(&self, tenant: &str) -> Result<Option<serde_json::Value>> {
        self.tenant_setting(keys::prices(tenant), "prices").await
    }

    /// Sets (`Some`) or removes (`None`) a tenant's own price table. The tenant must exist.
    pub async fn set_tenant_prices(
        &self,
        tenant: &str,
        prices: Option<serde_json::Value>,
    ) -> Result<()> {
        self.set_tenant_setting(tenant, keys::prices(tenant), "prices", prices)
            .await
    }
}

impl Registry {
    /// Stores a new dashboard definition (`id` must be new). The tenant must exist.
    pub async fn create_dashboard(
        &self,
        tenant: &str,
        id: &str,
        definition: serde_json::Map<String, serde_json::Value>,
    ) -> Result<()> {
        self.tenant(tenant).await?;
        let key = keys::dashboard(tenant, id);
        self.store()
            .put(&key.pk, &key.sk, definition, Condition::NotExists)
            .await?;
        Ok(())
    }

    /// A dashboard definition, if it exists.
    pub async fn dashboard(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<serde_json::Map<String, serde_json::Value>>> {
        let key = keys::dashboard(tenant, id);
        Ok(self.store().get(&key.pk, &key.sk).await?.map(|i| i.attrs))
    }

    /// Every dashboard definition of a tenant.
    pub async fn dashboards(
        &self,
        tenant: &str,
    ) -> Result<Vec<serde_json::Map<String, serde_json::Value>>> {
        let prefix = keys::dashboards(tenant);
        Ok(self
            .store()
            .query_all(&prefix.pk, &prefix.sk_prefix)
            .await?
            .into_iter()
            .map(|i| i.attrs)
            .collect())
    }

    /// Deletes a dashboard; `false` if there was none.
    pub async fn delete_dashboard(&self, tenant: &str, id: &str) -> Result<bool> {
        let key = keys::dashboard(tenant, id);
        if self.store().get(&key.pk, &key.sk).await?.is_none() {
            return Ok(false);
        }
        self.store()
            .transact(vec![key.delete(Condition::Always)])
            .await?;
        Ok(true)
    }
}
