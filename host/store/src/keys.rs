//! Every key of the metadata store, in one place.
//!
//! This module is the only code in the workspace that spells a partition key or a sort
//! key (an invariant that `tests/key_layout.rs` checks). The typed layers
//! ([`crate::registry`], [`crate::access`], [`crate::events`], [`crate::models`]) build
//! their keys with the constructors here; nothing else formats or splits them. The bytes
//! are a storage format: existing data is read with them, so changing one is a data
//! migration, not a refactor.
//!
//! | item                 | pk                               | sk                          |
//! |----------------------|----------------------------------|-----------------------------|
//! | tenant               | `TENANTS`                        | `{tenant}`                  |
//! | function             | `T#{tenant}`                     | `FN#{function}`             |
//! | function version     | `F#{tenant}#{function}`          | `V#{version:010}`           |
//! | alias                | `F#{tenant}#{function}`          | `A#{alias}`                 |
//! | model                | `T#{tenant}`                     | `MD#{model}`                |
//! | model version        | `M#{tenant}#{model}`             | `V#{version:010}`           |
//! | api key              | `T#{tenant}`                     | `KEY#{prefix}`              |
//! | api key index        | `KEYS`                           | `{prefix}`                  |
//! | access key (SigV4)   | `T#{tenant}`                     | `AK#{access_key_id}`        |
//! | access key index     | `ACCESS_KEYS`                    | `{access_key_id}`           |
//! | JWT secret           | `T#{tenant}`                     | `JWT`                       |
//! | price table          | `T#{tenant}`                     | `PRICES`                    |
//! | budget               | `T#{tenant}`                     | `BUDGET`                    |
//! | usage roll-up mark   | `T#{tenant}`                     | `ROLLUP`                    |
//! | dashboard            | `T#{tenant}`                     | `DASH#{id}`                 |
//! | alert rule           | `T#{tenant}`                     | `ALERT#{id}`                |
//! | alert state          | `T#{tenant}`                     | `ALERT_STATE#{id}`          |
//! | alert history        | `T#{tenant}`                     | `ALERT_HISTORY#{id}`        |
//! | tenants with alerts  | `ALERTING`                       | `{tenant}`                  |
//! | fleet lease          | `LEASES`                         | `{name}`                    |
//! | node heartbeat       | `NODES`                          | `{instance}`                |
//! | audit record         | `AUDIT#{tenant}`                 | `{unix_nanos:020}#{rand}`   |
//! | queued event         | `EVQ#{shard}` (0..8)             | `{event_id}`                |
//! | failed event         | `EVF#{tenant}`                   | `{event_id}`                |
//! | schedule index       | `SCHEDULES`                      | `{tenant}#{function}`       |
//! | fired schedule tick  | `CRON#{tenant}#{function}`       | `{schedule}#{tick:012}`     |
//! | usage (one minute)   | `U#{tenant}#{unix_hour:08}`      | `{unix_minute:010}#{node}#{dims_id}` |
//!
//! Public models live under the tenant name [`crate::models::PUBLIC_NAMESPACE`], and
//! platform-level audit records under [`crate::access::PLATFORM_AUDIT`]; both are
//! tenant *names*, not key layouts. Numbers in sort keys are zero-padded so that the
//! store's lexicographic order is numeric order (versions, audit times, ticks).
//!
//! Tenant, function, alias and model names cannot contain `#`
//! ([`crate::registry::validate_name`]), so the `#`-joined keys cannot collide.

use crate::WriteOp;
use crate::metadata::Condition;
use serde_json::{Map, Value};

/// Where one item lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    pub pk: String,
    pub sk: String,
}

/// What a query reads: the items of partition `pk` whose sort key starts with
/// `sk_prefix` (empty: the whole partition).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyPrefix {
    pub pk: String,
    pub sk_prefix: String,
}

impl Key {
    fn new(pk: impl Into<String>, sk: impl Into<String>) -> Key {
        Key {
            pk: pk.into(),
            sk: sk.into(),
        }
    }

    /// A transaction write of `attrs` under this key.
    pub fn put(self, attrs: Map<String, Value>, condition: Condition) -> WriteOp {
        WriteOp::Put {
            pk: self.pk,
            sk: self.sk,
            attrs,
            condition,
        }
    }

    /// A transaction delete of this key.
    pub fn delete(self, condition: Condition) -> WriteOp {
        WriteOp::Delete {
            pk: self.pk,
            sk: self.sk,
            condition,
        }
    }

    /// A transaction guard on this key (writes nothing).
    pub fn check(self, condition: Condition) -> WriteOp {
        WriteOp::Check {
            pk: self.pk,
            sk: self.sk,
            condition,
        }
    }
}

impl KeyPrefix {
    fn new(pk: impl Into<String>, sk_prefix: impl Into<String>) -> KeyPrefix {
        KeyPrefix {
            pk: pk.into(),
            sk_prefix: sk_prefix.into(),
        }
    }
}

// ---- partitions of a tenant ----

fn tenant_pk(tenant: &str) -> String {
    format!("T#{tenant}")
}

fn function_pk(tenant: &str, function: &str) -> String {
    format!("F#{tenant}#{function}")
}

fn model_pk(tenant: &str, model: &str) -> String {
    format!("M#{tenant}#{model}")
}

/// The sort key of a version (of a function or a model): `V#` and ten digits.
pub fn version_sk(version: u32) -> String {
    format!("V#{version:010}")
}

const VERSION_SK_PREFIX: &str = "V#";

// ---- tenants ----

const TENANTS_PK: &str = "TENANTS";

/// A tenant's record.
pub fn tenant(name: &str) -> Key {
    Key::new(TENANTS_PK, name)
}

/// Every tenant's record.
pub fn tenants() -> KeyPrefix {
    KeyPrefix::new(TENANTS_PK, "")
}

/// A key no record is stored under (no tenant is named `-`): reading it checks that the
/// store is reachable and its table exists, and touches no data.
pub fn probe() -> Key {
    Key::new(TENANTS_PK, "-")
}

// ---- functions, versions, aliases ----

/// A function's record (config, version counter).
pub fn function(tenant: &str, function: &str) -> Key {
    Key::new(tenant_pk(tenant), format!("FN#{function}"))
}

/// Every function record of a tenant.
pub fn functions(tenant: &str) -> KeyPrefix {
    KeyPrefix::new(tenant_pk(tenant), "FN#")
}

/// One version of a function.
pub fn function_version(tenant: &str, function: &str, version: u32) -> Key {
    Key::new(function_pk(tenant, function), version_sk(version))
}

/// Every version of a function.
pub fn function_versions(tenant: &str, function: &str) -> KeyPrefix {
    KeyPrefix::new(function_pk(tenant, function), VERSION_SK_PREFIX)
}

/// An alias of a function.
pub fn alias(tenant: &str, function: &str, alias: &str) -> Key {
    Key::new(function_pk(tenant, function), format!("A#{alias}"))
}

/// Every alias of a function.
pub fn aliases(tenant: &str, function: &str) -> KeyPrefix {
    KeyPrefix::new(function_pk(tenant, function), "A#")
}

/// Everything stored under a function's own partition: its versions and aliases.
pub fn function_children(tenant: &str, function: &str) -> KeyPrefix {
    KeyPrefix::new(function_pk(tenant, function), "")
}

// ---- models ----

/// A model's record (config, version counter).
pub fn model(tenant: &str, model: &str) -> Key {
    Key::new(tenant_pk(tenant), format!("MD#{model}"))
}

/// Every model record of a tenant (or of the public namespace).
pub fn models(tenant: &str) -> KeyPrefix {
    KeyPrefix::new(tenant_pk(tenant), "MD#")
}

/// One version of a model.
pub fn model_version(tenant: &str, model: &str, version: u32) -> Key {
    Key::new(model_pk(tenant, model), version_sk(version))
}

/// Every version of a model.
pub fn model_versions(tenant: &str, model: &str) -> KeyPrefix {
    KeyPrefix::new(model_pk(tenant, model), VERSION_SK_PREFIX)
}

// ---- credentials ----

/// The two kinds of credential records. Each lives in its tenant's partition, with a
/// global index item (id -> tenant) so a presented credential is found by id alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Credential {
    /// An API key (its SHA-256), by key prefix.
    ApiKey,
    /// A SigV4 access key pair, by access key id.
    AccessKey,
}

impl Credential {
    fn sk_prefix(self) -> &'static str {
        match self {
            Credential::ApiKey => "KEY#",
            Credential::AccessKey => "AK#",
        }
    }

    fn index_pk(self) -> &'static str {
        match self {
            Credential::ApiKey => "KEYS",
            Credential::AccessKey => "ACCESS_KEYS",
        }
    }
}

/// A credential's record in its tenant's partition.
pub fn credential(kind: Credential, tenant: &str, id: &str) -> Key {
    Key::new(tenant_pk(tenant), format!("{}{id}", kind.sk_prefix()))
}

/// Every credential record of one kind in a tenant.
pub fn credentials(kind: Credential, tenant: &str) -> KeyPrefix {
    KeyPrefix::new(tenant_pk(tenant), kind.sk_prefix())
}

/// A credential's index item (`{"tenant": ...}`), by id.
pub fn credential_index(kind: Credential, id: &str) -> Key {
    Key::new(kind.index_pk(), id)
}

/// A tenant's JWT (HS256) secret.
pub fn jwt_secret(tenant: &str) -> Key {
    Key::new(tenant_pk(tenant), "JWT")
}

// ---- audit log ----

fn audit_pk(log: &str) -> String {
    format!("AUDIT#{log}")
}

/// An audit record of `log` (a tenant, or the platform log), written at `unix_nanos`,
/// made unique by `rand`. Sort keys order by time.
pub fn audit_record(log: &str, unix_nanos: u128, rand: [u8; 4]) -> Key {
    Key::new(
        audit_pk(log),
        format!("{unix_nanos:020}#{}", hex::encode(rand)),
    )
}

/// Every audit record of `log`, oldest first.
pub fn audit_log(log: &str) -> KeyPrefix {
    KeyPrefix::new(audit_pk(log), "")
}

// ---- asynchronous invocations and schedules ----

/// Queue partitions (spreads write load over DynamoDB partitions). Changing it moves
/// events between partitions: a data migration.
pub const QUEUE_SHARDS: u32 = 8;

/// The queue shard of an event id (FNV-1a: stable across processes and builds).
pub fn shard_of(event_id: &str) -> u32 {
    let mut h: u32 = 0x811c9dc5;
    for b in event_id.bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x01000193);
    }
    h % QUEUE_SHARDS
}

fn queue_pk(shard: u32) -> String {
    format!("EVQ#{shard}")
}

/// A queued (accepted, unfinished) event, in the shard its id hashes to.
pub fn queued_event(event_id: &str) -> Key {
    Key::new(queue_pk(shard_of(event_id)), event_id)
}

/// Every queued event of one shard, oldest first (ids are UUIDv7).
pub fn queue_shard(shard: u32) -> KeyPrefix {
    KeyPrefix::new(queue_pk(shard), "")
}

fn failed_pk(tenant: &str) -> String {
    format!("EVF#{tenant}")
}

/// The record of an event that failed for good.
pub fn failed_event(tenant: &str, event_id: &str) -> Key {
    Key::new(failed_pk(tenant), event_id)
}

/// Every failed-event record of a tenant, oldest first.
pub fn failed_events(tenant: &str) -> KeyPrefix {
    KeyPrefix::new(failed_pk(tenant), "")
}

const SCHEDULES_PK: &str = "SCHEDULES";

/// The schedule index item of a function (present while it has schedules).
pub fn schedule_index(tenant: &str, function: &str) -> Key {
    Key::new(SCHEDULES_PK, format!("{tenant}#{function}"))
}

/// Every schedule index item.
pub fn schedule_indexes() -> KeyPrefix {
    KeyPrefix::new(SCHEDULES_PK, "")
}

fn ticks_pk(tenant: &str, function: &str) -> String {
    format!("CRON#{tenant}#{function}")
}

/// The marker of one fired tick of a schedule.
pub fn tick(tenant: &str, function: &str, schedule: &str, tick_unix: u64) -> Key {
    Key::new(
        ticks_pk(tenant, function),
        format!("{schedule}#{tick_unix:012}"),
    )
}

/// Every fired-tick marker of one schedule, oldest first.
pub fn ticks(tenant: &str, function: &str, schedule: &str) -> KeyPrefix {
    KeyPrefix::new(ticks_pk(tenant, function), format!("{schedule}#"))
}

/// The tick time (Unix seconds) of a tick marker's sort key.
pub fn tick_of(sk: &str) -> Option<u64> {
    sk.rsplit('#').next()?.parse().ok()
}

/// A tenant's own price table (replacing the node's for it).
pub fn prices(tenant: &str) -> Key {
    Key::new(tenant_pk(tenant), "PRICES")
}

/// A tenant's budget (spend caps, rate limits; per tenant and per caller).
pub fn budget(tenant: &str) -> Key {
    Key::new(tenant_pk(tenant), "BUDGET")
}

/// A stored dashboard definition.
pub fn dashboard(tenant: &str, id: &str) -> Key {
    Key::new(tenant_pk(tenant), format!("DASH#{id}"))
}

/// Every dashboard of a tenant.
pub fn dashboards(tenant: &str) -> KeyPrefix {
    KeyPrefix::new(tenant_pk(tenant), "DASH#")
}

// ---- alerts ----

/// An alert rule of a tenant.
pub fn alert_rule(tenant: &str, id: &str) -> Key {
    Key::new(tenant_pk(tenant), format!("ALERT#{id}"))
}

/// Every alert rule of a tenant.
pub fn alert_rules(tenant: &str) -> KeyPrefix {
    KeyPrefix::new(tenant_pk(tenant), "ALERT#")
}

/// The evaluation state of an alert rule (ok/firing, since, last value).
pub fn alert_state(tenant: &str, id: &str) -> Key {
    Key::new(tenant_pk(tenant), format!("ALERT_STATE#{id}"))
}

/// The bounded transition history of an alert rule (one item).
pub fn alert_history(tenant: &str, id: &str) -> Key {
    Key::new(tenant_pk(tenant), format!("ALERT_HISTORY#{id}"))
}

const ALERTING_PK: &str = "ALERTING";

/// The fleet index item of a tenant that has alert rules (its rule count).
pub fn alerting_tenant(tenant: &str) -> Key {
    Key::new(ALERTING_PK, tenant)
}

/// Every tenant that has alert rules.
pub fn alerting_tenants() -> KeyPrefix {
    KeyPrefix::new(ALERTING_PK, "")
}

const LEASES_PK: &str = "LEASES";

/// A fleet-wide lease (one holder at a time, with an expiry), e.g. the alert evaluator's.
pub fn lease(name: &str) -> Key {
    Key::new(LEASES_PK, name)
}

const NODES_PK: &str = "NODES";

/// One node process's last heartbeat (it expires when the process stops beating).
pub fn node_heartbeat(instance: &str) -> Key {
    Key::new(NODES_PK, instance)
}

/// Every node's heartbeat.
pub fn node_heartbeats() -> KeyPrefix {
    KeyPrefix::new(NODES_PK, "")
}

// ---- usage ----

fn usage_pk(tenant: &str, unix_hour: u64) -> String {
    format!("U#{tenant}#{unix_hour:08}")
}

/// One node's usage aggregate of one minute and one set of dimensions (`dims_id`: a
/// digest of the dimensions, which may hold characters keys cannot).
pub fn usage_minute(tenant: &str, unix_minute: u64, node: &str, dims_id: &str) -> Key {
    Key::new(
        usage_pk(tenant, unix_minute / 60),
        format!("{unix_minute:010}#{node}#{dims_id}"),
    )
}

fn usage_rollup_pk(tenant: &str, unix_day: u64) -> String {
    format!("UH#{tenant}#{unix_day:06}")
}

/// The fleet's usage of `tenant` in one hour and one set of dimensions (every node and
/// minute of the hour summed), in a partition per UTC day.
pub fn usage_hour_rollup(tenant: &str, unix_hour: u64, dims_id: &str) -> Key {
    Key::new(
        usage_rollup_pk(tenant, unix_hour / 24),
        format!("{unix_hour:08}#{dims_id}"),
    )
}

/// Every hourly roll-up of `tenant` in one UTC day.
pub fn usage_rollups_of_day(tenant: &str, unix_day: u64) -> KeyPrefix {
    KeyPrefix::new(usage_rollup_pk(tenant, unix_day), "")
}

fn usage_day_rollup_pk(tenant: &str, unix_day: u64) -> String {
    format!("UD#{tenant}#{:05}", unix_day / 32)
}

/// The fleet's usage of `tenant` in one UTC day and one set of dimensions, in a
/// partition per 32 days.
pub fn usage_day_rollup(tenant: &str, unix_day: u64, dims_id: &str) -> Key {
    Key::new(
        usage_day_rollup_pk(tenant, unix_day),
        format!("{unix_day:06}#{dims_id}"),
    )
}

/// Every daily roll-up of `tenant` in the 32-day partition holding `unix_day`.
pub fn usage_day_rollups_near(tenant: &str, unix_day: u64) -> KeyPrefix {
    KeyPrefix::new(usage_day_rollup_pk(tenant, unix_day), "")
}

/// How far `tenant`'s usage is rolled up into hours and days (the first hour and day not yet).
pub fn usage_rollup_mark(tenant: &str) -> Key {
    Key::new(tenant_pk(tenant), "ROLLUP")
}

/// Every usage aggregate of `tenant` in one minute (all nodes, all dimensions).
pub fn usage_of_minute(tenant: &str, unix_minute: u64) -> KeyPrefix {
    KeyPrefix::new(
        usage_pk(tenant, unix_minute / 60),
        format!("{unix_minute:010}#"),
    )
}

/// Every usage aggregate of `tenant` in one hour (all nodes, all dimensions).
pub fn usage_hour(tenant: &str, unix_hour: u64) -> KeyPrefix {
    KeyPrefix::new(usage_pk(tenant, unix_hour), "")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exact bytes of every layout: stored data is read with them.
    #[test]
    fn key_bytes_are_the_stored_format() {
        let k = |k: Key| (k.pk, k.sk);
        let p = |p: KeyPrefix| (p.pk, p.sk_prefix);
        let s = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert_eq!(k(tenant("acme")), s("TENANTS", "acme"));
        assert_eq!(p(tenants()), s("TENANTS", ""));
        assert_eq!(k(probe()), s("TENANTS", "-"));
        assert_eq!(k(function("acme", "f")), s("T#acme", "FN#f"));
        assert_eq!(p(functions("acme")), s("T#acme", "FN#"));
        assert_eq!(
            k(function_version("acme", "f", 7)),
            s("F#acme#f", "V#0000000007")
        );
        assert_eq!(p(function_versions("acme", "f")), s("F#acme#f", "V#"));
        assert_eq!(k(alias("acme", "f", "live")), s("F#acme#f", "A#live"));
        assert_eq!(p(aliases("acme", "f")), s("F#acme#f", "A#"));
        assert_eq!(p(function_children("acme", "f")), s("F#acme#f", ""));
        assert_eq!(k(model("acme", "m")), s("T#acme", "MD#m"));
        assert_eq!(p(models("public")), s("T#public", "MD#"));
        assert_eq!(
            k(model_version("acme", "m", u32::MAX)),
            s("M#acme#m", "V#4294967295")
        );
        assert_eq!(p(model_versions("acme", "m")), s("M#acme#m", "V#"));
        assert_eq!(
            k(credential(Credential::ApiKey, "acme", "hfk_ab")),
            s("T#acme", "KEY#hfk_ab")
        );
        assert_eq!(
            p(credentials(Credential::ApiKey, "acme")),
            s("T#acme", "KEY#")
        );
        assert_eq!(
            k(credential_index(Credential::ApiKey, "hfk_ab")),
            s("KEYS", "hfk_ab")
        );
        assert_eq!(
            k(credential(Credential::AccessKey, "acme", "AKID")),
            s("T#acme", "AK#AKID")
        );
        assert_eq!(
            p(credentials(Credential::AccessKey, "acme")),
            s("T#acme", "AK#")
        );
        assert_eq!(
            k(credential_index(Credential::AccessKey, "AKID")),
            s("ACCESS_KEYS", "AKID")
        );
        assert_eq!(k(jwt_secret("acme")), s("T#acme", "JWT"));
        assert_eq!(
            k(audit_record("acme", 42, [0xde, 0xad, 0xbe, 0xef])),
            s("AUDIT#acme", "00000000000000000042#deadbeef")
        );
        assert_eq!(p(audit_log("_platform")), s("AUDIT#_platform", ""));
        let id = "0190a000-0000-7000-8000-000000000001";
        assert_eq!(
            k(queued_event(id)),
            (format!("EVQ#{}", shard_of(id)), id.to_string())
        );
        assert_eq!(p(queue_shard(3)), s("EVQ#3", ""));
        assert_eq!(k(failed_event("acme", id)), s("EVF#acme", id));
        assert_eq!(p(failed_events("acme")), s("EVF#acme", ""));
        assert_eq!(k(schedule_index("acme", "f")), s("SCHEDULES", "acme#f"));
        assert_eq!(p(schedule_indexes()), s("SCHEDULES", ""));
        assert_eq!(
            k(tick("acme", "f", "every", 1_700_000_000)),
            s("CRON#acme#f", "every#001700000000")
        );
        assert_eq!(p(ticks("acme", "f", "every")), s("CRON#acme#f", "every#"));
        assert_eq!(tick_of("every#001700000000"), Some(1_700_000_000));
        assert_eq!(tick_of("every#x"), None);
        // 28_333_333 minutes = hour 472_222 (the partition holds one hour of minutes).
        assert_eq!(
            k(usage_minute("acme", 28_333_333, "fra", "abc")),
            s("U#acme#00472222", "0028333333#fra#abc")
        );
        assert_eq!(p(usage_hour("acme", 472_222)), s("U#acme#00472222", ""));
        assert_eq!(
            p(usage_of_minute("acme", 28_333_333)),
            s("U#acme#00472222", "0028333333#")
        );
        assert_eq!(k(prices("acme")), s("T#acme", "PRICES"));
        assert_eq!(k(budget("acme")), s("T#acme", "BUDGET"));
        assert_eq!(
            k(usage_hour_rollup("acme", 472_222, "abc")),
            s("UH#acme#019675", "00472222#abc")
        );
        assert_eq!(
            p(usage_rollups_of_day("acme", 19_675)),
            s("UH#acme#019675", "")
        );
        assert_eq!(k(usage_rollup_mark("acme")), s("T#acme", "ROLLUP"));
        assert_eq!(
            k(usage_day_rollup("acme", 19_675, "abc")),
            s("UD#acme#00614", "019675#abc")
        );
        assert_eq!(
            p(usage_day_rollups_near("acme", 19_675)),
            s("UD#acme#00614", "")
        );
        assert_eq!(k(dashboard("acme", "d1")), s("T#acme", "DASH#d1"));
        assert_eq!(p(dashboards("acme")), s("T#acme", "DASH#"));
        assert_eq!(k(alert_rule("acme", "a1")), s("T#acme", "ALERT#a1"));
        assert_eq!(p(alert_rules("acme")), s("T#acme", "ALERT#"));
        assert_eq!(k(alert_state("acme", "a1")), s("T#acme", "ALERT_STATE#a1"));
        assert_eq!(
            k(alert_history("acme", "a1")),
            s("T#acme", "ALERT_HISTORY#a1")
        );
        assert_eq!(k(alerting_tenant("acme")), s("ALERTING", "acme"));
        assert_eq!(p(alerting_tenants()), s("ALERTING", ""));
        assert_eq!(k(lease("alerts")), s("LEASES", "alerts"));
        assert_eq!(
            k(node_heartbeat("fra~0a1b2c3d")),
            s("NODES", "fra~0a1b2c3d")
        );
        assert_eq!(p(node_heartbeats()), s("NODES", ""));
    }

    /// The shard function is part of the layout: these values are on disk.
    #[test]
    fn shards_are_stable() {
        let got: Vec<u32> = ["", "a", "0190a000-0000-7000-8000-000000000001"]
            .iter()
            .map(|id| shard_of(id))
            .collect();
        // FNV-1a 32 of "" is 0x811c9dc5, of "a" 0xe40c292c.
        assert_eq!(
            got[..2],
            [0x811c9dc5u32 % QUEUE_SHARDS, 0xe40c292cu32 % QUEUE_SHARDS]
        );
        assert!(got[2] < QUEUE_SHARDS);
    }
}
