//! Usage aggregates: what each tenant used, one item per (tenant, minute, node,
//! dimensions), written by the node that metered it (`helixflow-usage`).
//!
//! A node rewrites its item for a minute with the minute's running totals on every flush
//! (`Condition::Always`), so a retried or repeated flush never counts twice, and nodes
//! sharing a store never write each other's items: a fleet-wide answer is the sum over
//! nodes. Items expire after the retention the node is configured with.

use crate::keys;
use crate::metadata::{Condition, EXPIRES_AT, MAX_TRANSACTION_OPS};
use crate::registry::{Registry, Result, attrs_of, from_item};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use std::collections::BTreeMap;

/// One node's totals for one minute and one set of dimensions.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
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
    /// Writes (replaces) usage rows; each row expires `retention_secs` after its minute.
    pub async fn put_usage(&self, rows: &[UsageRow], retention_secs: u64) -> Result<()> {
        for chunk in rows.chunks(MAX_TRANSACTION_OPS) {
            let mut ops = Vec::with_capacity(chunk.len());
            for r in chunk {
                let mut attrs = attrs_of(r)?;
                attrs.insert(EXPIRES_AT.into(), (r.minute * 60 + retention_secs).into());
                let key = keys::usage_minute(&r.tenant, r.minute, &r.node, &r.dims_id());
                ops.push(key.put(attrs, Condition::Always));
            }
            self.store().transact(ops).await?;
        }
        Ok(())
    }

    /// Every usage row of `tenant` with `from_minute <= minute < to_minute`, all nodes.
    pub async fn usage(
        &self,
        tenant: &str,
        from_minute: u64,
        to_minute: u64,
    ) -> Result<Vec<UsageRow>> {
        let mut out = Vec::new();
        if to_minute <= from_minute {
            return Ok(out);
        }
        for hour in from_minute / 60..=(to_minute - 1) / 60 {
            let prefix = keys::usage_hour(tenant, hour);
            for item in self
                .store()
                .query_all(&prefix.pk, &prefix.sk_prefix)
                .await?
            {
                let row: UsageRow = from_item(&item)?;
                if (from_minute..to_minute).contains(&row.minute) {
                    out.push(row);
                }
            }
        }
        Ok(out)
    }
}

impl Registry {
    /// A tenant's own price table (JSON, as the node's usage layer wrote it), if any.
    pub async fn tenant_prices(&self, tenant: &str) -> Result<Option<serde_json::Value>> {
        let key = keys::prices(tenant);
        Ok(self
            .store()
            .get(&key.pk, &key.sk)
            .await?
            .and_then(|item| item.attrs.get("prices").cloned()))
    }

    /// Sets (`Some`) or removes (`None`) a tenant's own price table. The tenant must exist.
    pub async fn set_tenant_prices(
        &self,
        tenant: &str,
        prices: Option<serde_json::Value>,
    ) -> Result<()> {
        self.tenant(tenant).await?;
        let key = keys::prices(tenant);
        match prices {
            Some(p) => {
                let mut attrs = serde_json::Map::new();
                attrs.insert("prices".into(), p);
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
