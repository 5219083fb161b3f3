//! Durable asynchronous invocations (the Lambda `Event` type) and scheduled triggers.
//! Their keys (queue shards, failure records, the schedule index, tick markers) are in
//! [`crate::keys`].
//!
//! Event ids are time-ordered (UUIDv7), so a shard lists oldest first. An event is
//! written to its shard before the caller gets its 202 and stays there until a worker
//! finishes it. A worker owns an event while its lease (`lease_until_ms`, set with a
//! compare-and-swap on the item version) runs; a worker that dies simply lets the lease
//! lapse and another one takes the event over: at-least-once. Finishing deletes the
//! queue item (conditional on the version the worker claimed) in one transaction with
//! whatever follows from it: the failure record, and the events of a destination
//! function. A schedule tick fires in one transaction that creates the tick marker
//! (`NotExists`) and the event, so across a fleet sharing the store each tick fires at
//! most once.

use crate::keys;
use crate::registry::{Registry, RegistryError, Result, attrs_of};
use crate::{Condition, Item, StoreError, WriteOp};
use serde::{Deserialize, Serialize};

pub use crate::keys::{QUEUE_SHARDS, shard_of};
/// How long a failed-event record is kept (for `events list` / `replay`).
pub const FAILED_RETENTION_SECS: u64 = 14 * 24 * 3600;
/// Largest Event payload: it must fit one metadata item with its envelope.
pub const MAX_EVENT_PAYLOAD: usize = 256 * 1024;

/// Retry policy and destinations of a function's Event invocations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AsyncConfig {
    /// Retries after a failed attempt: 0, 1 or 2 (default 2, as Lambda).
    #[serde(default = "default_retries")]
    pub max_retries: u32,
    /// Events older than this are not run again (60 .. 21600 s; default 21600).
    #[serde(default = "default_max_age")]
    pub max_event_age_s: u64,
    /// Delay before the first retry; doubles after each (default 60000 ms).
    #[serde(default = "default_retry_delay")]
    pub retry_delay_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_success: Option<Destination>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<Destination>,
}

fn default_retries() -> u32 {
    2
}
fn default_max_age() -> u64 {
    21600
}
fn default_retry_delay() -> u64 {
    60_000
}

impl Default for AsyncConfig {
    fn default() -> Self {
        AsyncConfig {
            max_retries: default_retries(),
            max_event_age_s: default_max_age(),
            retry_delay_ms: default_retry_delay(),
            on_success: None,
            on_failure: None,
        }
    }
}

/// Where a finished event's record goes: another function of the same tenant (as an
/// Event invocation) and/or a prefix in the tenant's part of the object store.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Destination {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_prefix: Option<String>,
}

/// A scheduled trigger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// Unique per function: `[a-z][a-z0-9-]*`.
    pub name: String,
    /// Cron, UTC: 5 fields (minute granularity) or 6 with seconds first.
    pub cron: String,
    /// The `detail` of the scheduled event.
    #[serde(default)]
    pub payload: serde_json::Value,
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

impl AsyncConfig {
    /// Checks ranges and names; `Err` carries a message for the caller.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.max_retries > 2 {
            return Err("async_invoke.max_retries must be 0, 1 or 2".into());
        }
        if !(60..=21600).contains(&self.max_event_age_s) {
            return Err("async_invoke.max_event_age_s must be between 60 and 21600".into());
        }
        if !(100..=3_600_000).contains(&self.retry_delay_ms) {
            return Err("async_invoke.retry_delay_ms must be between 100 and 3600000".into());
        }
        for (what, d) in [
            ("on_success", &self.on_success),
            ("on_failure", &self.on_failure),
        ] {
            let Some(d) = d else { continue };
            if d.function.is_none() && d.object_prefix.is_none() {
                return Err(format!(
                    "async_invoke.{what} needs a function or an object_prefix"
                ));
            }
            if let Some(f) = &d.function {
                crate::registry::validate_name("function", f)
                    .map_err(|e| format!("async_invoke.{what}.function: {e}"))?;
            }
            if let Some(p) = &d.object_prefix {
                let ok = !p.is_empty()
                    && p.len() <= 200
                    && p.split('/').filter(|s| !s.is_empty()).all(|s| {
                        s != "."
                            && s != ".."
                            && s.bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
                    });
                if !ok || p.starts_with('/') {
                    return Err(format!(
                        "async_invoke.{what}.object_prefix {p:?}: use relative path segments of a-z, A-Z, 0-9, '-', '_', '.'"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// An error an attempt ended with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventError {
    pub error_type: String,
    pub message: String,
}

/// An accepted event that has not finished.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueuedEvent {
    /// Time-ordered (UUIDv7); also the request id of every attempt.
    pub id: String,
    pub tenant: String,
    pub function: String,
    /// The version resolved when the event was accepted.
    pub version: u32,
    /// base64 of the payload.
    pub payload_b64: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_context: Option<String>,
    pub accepted_at_ms: u64,
    /// Attempts started so far (a worker that died mid-attempt counts too).
    pub attempts: u32,
    /// Attempts that ended in an error; the retry budget counts these.
    #[serde(default)]
    pub failures: u32,
    /// The function's timeout when the event was accepted: a lease lasts this long
    /// plus a margin.
    #[serde(default)]
    pub timeout_ms: u64,
    /// Not to be run before this time.
    pub due_at_ms: u64,
    #[serde(default)]
    pub lease_owner: String,
    #[serde(default)]
    pub lease_until_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<EventError>,
    /// `invoke`, `schedule:{name}`, `replay:{id}`, `destination:{id}`.
    pub source: String,
}

/// An event that failed for good (kept for `FAILED_RETENTION_SECS`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailedEvent {
    pub id: String,
    pub tenant: String,
    pub function: String,
    pub version: u32,
    pub payload_b64: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_context: Option<String>,
    pub accepted_at_ms: u64,
    pub finished_at_ms: u64,
    pub attempts: u32,
    /// `RetriesExhausted`, `EventAgeExceeded`, `FunctionNotFound`.
    pub condition: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<EventError>,
    pub source: String,
    /// Set once the event has been replayed (the id of the new event).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replayed_as: Option<String>,
    pub expires_at: u64,
}

fn from<T: for<'de> Deserialize<'de>>(i: &Item) -> Result<T> {
    serde_json::from_value(serde_json::Value::Object(i.attrs.clone()))
        .map_err(|e| StoreError::Corrupt(format!("{}/{}: {e}", i.pk, i.sk)).into())
}

/// A queue write to put in the same transaction as something else.
pub fn enqueue_op(ev: &QueuedEvent) -> Result<WriteOp> {
    Ok(keys::queued_event(&ev.id).put(attrs_of(ev)?, Condition::NotExists))
}

impl Registry {
    /// Stores a new event durably (the caller answers 202 only after this).
    pub async fn enqueue_event(&self, ev: &QueuedEvent) -> Result<()> {
        match self.store().transact(vec![enqueue_op(ev)?]).await {
            Ok(()) => Ok(()),
            Err(StoreError::TransactionCancelled { .. }) => Err(RegistryError::Conflict(format!(
                "event {} already exists",
                ev.id
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// Up to `limit` queued events of one shard, oldest first, with their item versions.
    pub async fn queued_events(&self, shard: u32, limit: usize) -> Result<Vec<(QueuedEvent, u64)>> {
        Ok(self.queued_events_after(shard, None, limit).await?.0)
    }

    /// A page of a shard after the event id `start_after`; the second value is where the
    /// next page starts (`None`: this was the end of the shard).
    pub async fn queued_events_after(
        &self,
        shard: u32,
        start_after: Option<String>,
        limit: usize,
    ) -> Result<(Vec<(QueuedEvent, u64)>, Option<String>)> {
        let partition = keys::queue_shard(shard);
        let page = self
            .store()
            .query(
                &partition.pk,
                &partition.sk_prefix,
                crate::Page {
                    limit: Some(limit),
                    start_after,
                },
            )
            .await?;
        let items = page
            .items
            .iter()
            .map(|i| Ok((from(i)?, i.version)))
            .collect::<Result<Vec<_>>>()?;
        Ok((items, page.next))
    }

    /// One queued event by id.
    pub async fn queued_event(&self, id: &str) -> Result<Option<(QueuedEvent, u64)>> {
        let key = keys::queued_event(id);
        match self.store().get(&key.pk, &key.sk).await? {
            Some(i) => Ok(Some((from(&i)?, i.version))),
            None => Ok(None),
        }
    }

    /// Replaces a queued event if it is still at `version` (claims, retries, releases).
    /// `Ok(None)`: someone else changed or finished it; `Ok(Some(v))`: the new version.
    pub async fn update_event(&self, ev: &QueuedEvent, version: u64) -> Result<Option<u64>> {
        let key = keys::queued_event(&ev.id);
        match self
            .store()
            .put(
                &key.pk,
                &key.sk,
                attrs_of(ev)?,
                Condition::VersionIs(version),
            )
            .await
        {
            Ok(v) => Ok(Some(v)),
            Err(StoreError::ConditionFailed { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Finishes a claimed event: deletes it from the queue (if still at `version`) and,
    /// in the same transaction, records `failed` and enqueues `follow_ups` (events for
    /// destination functions). `Ok(false)`: another worker had taken it over.
    pub async fn finish_event(
        &self,
        ev: &QueuedEvent,
        version: u64,
        failed: Option<&FailedEvent>,
        follow_ups: &[QueuedEvent],
    ) -> Result<bool> {
        let mut ops = vec![keys::queued_event(&ev.id).delete(Condition::VersionIs(version))];
        if let Some(f) = failed {
            let mut attrs = attrs_of(f)?;
            attrs.insert(crate::EXPIRES_AT.into(), f.expires_at.into());
            ops.push(keys::failed_event(&f.tenant, &f.id).put(attrs, Condition::Always));
        }
        for e in follow_ups {
            ops.push(enqueue_op(e)?);
        }
        match self.store().transact(ops).await {
            Ok(()) => Ok(true),
            Err(StoreError::TransactionCancelled { index: 0, .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Failed events of a tenant, newest first.
    pub async fn failed_events(&self, tenant: &str, limit: usize) -> Result<Vec<FailedEvent>> {
        let all = keys::failed_events(tenant);
        let mut all: Vec<FailedEvent> = self
            .store()
            .query_all(&all.pk, &all.sk_prefix)
            .await?
            .iter()
            .map(from)
            .collect::<Result<_>>()?;
        all.reverse();
        all.truncate(limit);
        Ok(all)
    }

    pub async fn failed_event(&self, tenant: &str, id: &str) -> Result<Option<(FailedEvent, u64)>> {
        let key = keys::failed_event(tenant, id);
        match self.store().get(&key.pk, &key.sk).await? {
            Some(i) => Ok(Some((from(&i)?, i.version))),
            None => Ok(None),
        }
    }

    /// Re-drives a failed event as `new_event`; the failure record remembers it, in the
    /// same transaction (so one failure is replayed once per request, not twice by a race).
    pub async fn replay_failed(
        &self,
        failed: &FailedEvent,
        version: u64,
        new_event: &QueuedEvent,
    ) -> Result<()> {
        let mut marked = failed.clone();
        marked.replayed_as = Some(new_event.id.clone());
        let mut attrs = attrs_of(&marked)?;
        attrs.insert(crate::EXPIRES_AT.into(), marked.expires_at.into());
        let ops = vec![
            keys::failed_event(&failed.tenant, &failed.id)
                .put(attrs, Condition::VersionIs(version)),
            enqueue_op(new_event)?,
        ];
        match self.store().transact(ops).await {
            Ok(()) => Ok(()),
            Err(StoreError::TransactionCancelled { .. }) => Err(RegistryError::Conflict(format!(
                "event {} changed meanwhile; retry",
                failed.id
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// Every `(tenant, function)` with schedules.
    pub async fn scheduled_functions(&self) -> Result<Vec<(String, String)>> {
        let all = keys::schedule_indexes();
        Ok(self
            .store()
            .query_all(&all.pk, &all.sk_prefix)
            .await?
            .iter()
            .filter_map(|i| Some((i.str("tenant")?.to_string(), i.str("function")?.to_string())))
            .collect())
    }

    /// Fires one schedule tick: records the tick and enqueues `ev` in one transaction.
    /// `Ok(false)`: this tick had already fired (on this node or another).
    pub async fn fire_tick(
        &self,
        tenant: &str,
        function: &str,
        schedule: &str,
        tick_unix: u64,
        ev: &QueuedEvent,
    ) -> Result<bool> {
        let mut marker = serde_json::Map::new();
        marker.insert("event_id".into(), ev.id.clone().into());
        marker.insert(crate::EXPIRES_AT.into(), (tick_unix + 24 * 3600).into());
        let ops = vec![
            keys::tick(tenant, function, schedule, tick_unix).put(marker, Condition::NotExists),
            enqueue_op(ev)?,
        ];
        match self.store().transact(ops).await {
            Ok(()) => Ok(true),
            Err(StoreError::TransactionCancelled { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// The fired ticks of a function's schedule (markers), oldest first.
    pub async fn fired_ticks(
        &self,
        tenant: &str,
        function: &str,
        schedule: &str,
    ) -> Result<Vec<(u64, String)>> {
        let all = keys::ticks(tenant, function, schedule);
        Ok(self
            .store()
            .query_all(&all.pk, &all.sk_prefix)
            .await?
            .iter()
            .filter_map(|i| {
                let tick = keys::tick_of(&i.sk)?;
                Some((tick, i.str("event_id")?.to_string()))
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn async_config_validation() {
        assert!(AsyncConfig::default().validate().is_ok());
        let bad = |f: fn(&mut AsyncConfig)| {
            let mut c = AsyncConfig::default();
            f(&mut c);
            c.validate().is_err()
        };
        assert!(bad(|c| c.max_retries = 3));
        assert!(bad(|c| c.max_event_age_s = 59));
        assert!(bad(|c| c.retry_delay_ms = 1));
        assert!(bad(|c| c.on_failure = Some(Destination::default())));
        assert!(bad(|c| c.on_failure = Some(Destination {
            function: None,
            object_prefix: Some("../x".into())
        })));
        assert!(bad(|c| c.on_failure = Some(Destination {
            function: Some("Bad Name".into()),
            object_prefix: None
        })));
        let ok = AsyncConfig {
            on_failure: Some(Destination {
                function: Some("dlq-handler".into()),
                object_prefix: Some("dead-letters/v1".into()),
            }),
            ..AsyncConfig::default()
        };
        assert!(ok.validate().is_ok());
    }
}
