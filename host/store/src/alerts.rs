//! Alert rules, their evaluation state and their transition history, per tenant; the
//! index of tenants that have rules (what the fleet's evaluator walks); the
//! evaluator's fleet lease ([`crate::lease`]). Keys: [`crate::keys`].
//!
//! Invariants:
//! * A tenant keeps at most the cap its caller passes: the index item counts the
//!   tenant's rules and every create/delete changes it with a compare-and-swap in the
//!   same transaction as the rule, so concurrent creates cannot overshoot.
//! * A rule's state changes only by compare-and-swap on the version the evaluator read,
//!   in one transaction with the history entry of a transition (and whatever the
//!   transition queues: an Event notification) and a check that the rule still
//!   exists: two evaluators (a lease that lapsed mid-round) cannot both record one
//!   transition, and a deleted rule's state is never written back.
//! * History is one item holding at most [`MAX_ALERT_HISTORY`] transitions, newest last.
//! * Rules are opaque JSON here (the usage crate validates them; the node seals their
//!   webhook secrets before they reach this crate).

use crate::keys;
use crate::registry::{Registry, RegistryError, Result, attrs_of, from_item};
use crate::{Condition, Page, StoreError, WriteOp};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Transitions kept per rule (older ones are dropped).
pub const MAX_ALERT_HISTORY: usize = 100;
/// Most rules read for one tenant (a cap above any per-tenant limit the node sets).
const MAX_RULES_READ: usize = 1000;
/// Compare-and-swap attempts on the index item before giving up (`Conflict`).
const INDEX_ATTEMPTS: usize = 8;

/// Whether a rule's condition holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    Ok,
    Firing,
}

/// How the last notification of a rule went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotificationOutcome {
    /// The transition it was for ([`AlertTransition::id`]).
    pub transition: String,
    /// `webhook` or `function`.
    pub channel: String,
    pub delivered: bool,
    pub attempts: u32,
    /// Unix seconds of the last attempt.
    pub at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The evaluation state of one rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertState {
    pub status: AlertStatus,
    /// Unix seconds since when `status` holds.
    pub since: u64,
    /// The watched value at the last evaluation.
    pub value: f64,
    /// Requests in the window at the last evaluation.
    pub requests: u64,
    /// Unix seconds of the last evaluation.
    pub evaluated_at: u64,
    /// The last notifications' outcomes (at most one per channel).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notifications: Vec<NotificationOutcome>,
}

/// A transition kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransitionKind {
    Firing,
    Resolved,
}

/// One change of a rule's status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertTransition {
    /// Unique (UUIDv7): also the notification's id, so receivers can drop duplicates.
    pub id: String,
    pub status: TransitionKind,
    /// Unix seconds.
    pub at: u64,
    pub value: f64,
    pub threshold: f64,
    pub requests: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct History {
    transitions: Vec<AlertTransition>,
}

fn rules_in_index(item: Option<&crate::Item>) -> (u64, Condition) {
    match item {
        Some(i) => (i.u64("rules").unwrap_or(0), Condition::VersionIs(i.version)),
        None => (0, Condition::NotExists),
    }
}

fn index_attrs(tenant: &str, rules: u64) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("tenant".into(), tenant.into());
    m.insert("rules".into(), rules.into());
    m
}

impl Registry {
    /// Stores a new rule under `id` unless the tenant already has `max_rules` (then
    /// `Ok(false)`). The tenant must exist; an existing `id` is a `Conflict`.
    pub async fn create_alert_rule(
        &self,
        tenant: &str,
        id: &str,
        rule: Map<String, Value>,
        max_rules: usize,
    ) -> Result<bool> {
        self.tenant(tenant).await?;
        let idx = keys::alerting_tenant(tenant);
        for _ in 0..INDEX_ATTEMPTS {
            let (n, cond) = rules_in_index(self.store().get(&idx.pk, &idx.sk).await?.as_ref());
            if n >= max_rules as u64 {
                return Ok(false);
            }
            let ops = vec![
                keys::alert_rule(tenant, id).put(rule.clone(), Condition::NotExists),
                idx.clone().put(index_attrs(tenant, n + 1), cond),
            ];
            match self.store().transact(ops).await {
                Ok(()) => return Ok(true),
                Err(StoreError::TransactionCancelled { index: 0, .. }) => {
                    return Err(RegistryError::Conflict(format!(
                        "alert rule {id:?} already exists"
                    )));
                }
                Err(StoreError::TransactionCancelled { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(RegistryError::Conflict(
            "the tenant's alert rules are changing concurrently; try again".into(),
        ))
    }

    /// A rule, if it exists.
    pub async fn alert_rule(&self, tenant: &str, id: &str) -> Result<Option<Map<String, Value>>> {
        let key = keys::alert_rule(tenant, id);
        Ok(self.store().get(&key.pk, &key.sk).await?.map(|i| i.attrs))
    }

    /// A tenant's rules, oldest id first (at most 1000 are read).
    pub async fn alert_rules(&self, tenant: &str) -> Result<Vec<Map<String, Value>>> {
        let prefix = keys::alert_rules(tenant);
        let page = self
            .store()
            .query(
                &prefix.pk,
                &prefix.sk_prefix,
                Page {
                    limit: Some(MAX_RULES_READ),
                    start_after: None,
                },
            )
            .await?;
        Ok(page.items.into_iter().map(|i| i.attrs).collect())
    }

    /// Replaces an existing rule; `Ok(false)` if there is none.
    pub async fn replace_alert_rule(
        &self,
        tenant: &str,
        id: &str,
        rule: Map<String, Value>,
    ) -> Result<bool> {
        let key = keys::alert_rule(tenant, id);
        match self
            .store()
            .transact(vec![key.put(rule, Condition::Exists)])
            .await
        {
            Ok(()) => Ok(true),
            Err(StoreError::TransactionCancelled { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes a rule with its state and history; `Ok(false)` if there was none.
    pub async fn delete_alert_rule(&self, tenant: &str, id: &str) -> Result<bool> {
        let idx = keys::alerting_tenant(tenant);
        for _ in 0..INDEX_ATTEMPTS {
            let current = self.store().get(&idx.pk, &idx.sk).await?;
            let (n, cond) = rules_in_index(current.as_ref());
            let mut ops = vec![
                keys::alert_rule(tenant, id).delete(Condition::Exists),
                keys::alert_state(tenant, id).delete(Condition::Always),
                keys::alert_history(tenant, id).delete(Condition::Always),
            ];
            match n {
                0 if current.is_none() => {}
                0 | 1 => ops.push(idx.clone().delete(cond)),
                n => ops.push(idx.clone().put(index_attrs(tenant, n - 1), cond)),
            }
            match self.store().transact(ops).await {
                Ok(()) => return Ok(true),
                Err(StoreError::TransactionCancelled { index: 0, .. }) => return Ok(false),
                Err(StoreError::TransactionCancelled { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(RegistryError::Conflict(
            "the tenant's alert rules are changing concurrently; try again".into(),
        ))
    }

    /// A rule's state and its item version (for [`Registry::record_alert_state`]).
    pub async fn alert_state(&self, tenant: &str, id: &str) -> Result<Option<(AlertState, u64)>> {
        let key = keys::alert_state(tenant, id);
        match self.store().get(&key.pk, &key.sk).await? {
            Some(item) => Ok(Some((from_item(&item)?, item.version))),
            None => Ok(None),
        }
    }

    /// A rule's transitions, oldest first (at most [`MAX_ALERT_HISTORY`]).
    pub async fn alert_history(&self, tenant: &str, id: &str) -> Result<Vec<AlertTransition>> {
        let key = keys::alert_history(tenant, id);
        match self.store().get(&key.pk, &key.sk).await? {
            Some(item) => Ok(from_item::<History>(&item)?.transitions),
            None => Ok(Vec::new()),
        }
    }

    /// Records an evaluation: the new `state` if the stored one is still at `expected`
    /// (`None`: there is none yet) and the rule still exists, with `transition` appended
    /// to the history (trimmed to [`MAX_ALERT_HISTORY`]) and `also` (e.g. a queued Event
    /// notification) in the same transaction. `Ok(false)`: something changed meanwhile
    /// (another evaluator, a deleted rule); nothing was written.
    pub async fn record_alert_state(
        &self,
        tenant: &str,
        id: &str,
        state: &AlertState,
        expected: Option<u64>,
        transition: Option<AlertTransition>,
        also: Vec<WriteOp>,
    ) -> Result<bool> {
        let mut ops = vec![
            keys::alert_rule(tenant, id).check(Condition::Exists),
            keys::alert_state(tenant, id).put(
                attrs_of(state)?,
                expected.map_or(Condition::NotExists, Condition::VersionIs),
            ),
        ];
        if let Some(t) = transition {
            let key = keys::alert_history(tenant, id);
            let (mut history, cond) = match self.store().get(&key.pk, &key.sk).await? {
                Some(item) => (
                    from_item::<History>(&item)?,
                    Condition::VersionIs(item.version),
                ),
                None => (History::default(), Condition::NotExists),
            };
            history.transitions.push(t);
            let excess = history.transitions.len().saturating_sub(MAX_ALERT_HISTORY);
            history.transitions.drain(..excess);
            ops.push(key.put(attrs_of(&history)?, cond));
        }
        ops.extend(also);
        match self.store().transact(ops).await {
            Ok(()) => Ok(true),
            Err(StoreError::TransactionCancelled { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Sets the outcome of a notification on the rule's state (replacing the previous
    /// outcome of the same channel). A state that is gone is left alone.
    pub async fn set_alert_notification(
        &self,
        tenant: &str,
        id: &str,
        outcome: NotificationOutcome,
    ) -> Result<()> {
        let key = keys::alert_state(tenant, id);
        for _ in 0..INDEX_ATTEMPTS {
            let Some((mut state, version)) = self.alert_state(tenant, id).await? else {
                return Ok(());
            };
            state.notifications.retain(|n| n.channel != outcome.channel);
            state.notifications.push(outcome.clone());
            match self
                .store()
                .transact(vec![
                    key.clone()
                        .put(attrs_of(&state)?, Condition::VersionIs(version)),
                ])
                .await
            {
                Ok(()) => return Ok(()),
                Err(StoreError::TransactionCancelled { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(RegistryError::Conflict(
            "the alert's state is changing concurrently".into(),
        ))
    }

    /// One page of the tenants that have alert rules, by name, after `after`; the second
    /// value is where the next page starts (`None`: this was the last).
    pub async fn alerting_tenants(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<(Vec<String>, Option<String>)> {
        let prefix = keys::alerting_tenants();
        let page = self
            .store()
            .query(
                &prefix.pk,
                &prefix.sk_prefix,
                Page {
                    limit: Some(limit.max(1)),
                    start_after: after,
                },
            )
            .await?;
        let tenants = page
            .items
            .iter()
            .filter(|i| i.u64("rules").unwrap_or(0) > 0)
            .filter_map(|i| i.str("tenant").map(str::to_string))
            .collect();
        Ok((tenants, page.next))
    }

    /// Takes or renews the fleet lease `name` for `holder` for `ttl_secs`
    /// ([`crate::lease`]); `Ok(false)`: another holder has it.
    pub async fn try_lease(&self, name: &str, holder: &str, ttl_secs: u64) -> Result<bool> {
        let key = keys::lease(name);
        Ok(crate::lease::try_acquire(
            self.store().as_ref(),
            &key.pk,
            &key.sk,
            holder,
            crate::now_unix(),
            ttl_secs,
        )
        .await?)
    }

    /// Gives the fleet lease `name` up if `holder` has it.
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        let key = keys::lease(name);
        Ok(crate::lease::release(self.store().as_ref(), &key.pk, &key.sk, holder).await?)
    }
}
