//! Alert rules, state and history (`helixflow_store::alerts`) against the embedded
//! backend: the per-tenant cap holds under concurrent creates, state changes only by
//! compare-and-swap and never for a deleted rule, history stays bounded, the alerting
//! index follows the rules, and the fleet lease has one holder.

use helixflow_store::alerts::{
    AlertState, AlertStatus, AlertTransition, MAX_ALERT_HISTORY, NotificationOutcome,
    TransitionKind,
};
use helixflow_store::registry::{Registry, RegistryError, TenantLimits};
use helixflow_store_redb::RedbMetadataStore;
use serde_json::{Map, Value, json};
use std::sync::Arc;

async fn registry() -> (tempfile::TempDir, Registry) {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbMetadataStore::open(dir.path().join("m.redb")).unwrap();
    let r = Registry::new(Arc::new(store));
    r.create_tenant("acme", TenantLimits::default())
        .await
        .unwrap();
    r.create_tenant("beta", TenantLimits::default())
        .await
        .unwrap();
    (dir, r)
}

fn rule(id: &str) -> Map<String, Value> {
    json!({"id": id, "spec": {"kind": "cost_threshold"}})
        .as_object()
        .unwrap()
        .clone()
}

fn state(status: AlertStatus, value: f64) -> AlertState {
    AlertState {
        status,
        since: 1,
        value,
        requests: 3,
        evaluated_at: 2,
        notifications: Vec::new(),
    }
}

fn transition(n: u64) -> AlertTransition {
    AlertTransition {
        id: format!("t{n}"),
        status: TransitionKind::Firing,
        at: n,
        value: n as f64,
        threshold: 1.0,
        requests: 1,
    }
}

#[tokio::test]
async fn the_cap_holds_under_concurrent_creates_and_the_index_follows() {
    let (_d, r) = registry().await;
    let r = Arc::new(r);
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let r = r.clone();
            tokio::spawn(async move {
                let id = format!("r{i:02}");
                r.create_alert_rule("acme", &id, rule(&id), 5).await
            })
        })
        .collect();
    let mut created = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(true) => created += 1,
            Ok(false) => {}
            // Lost every compare-and-swap try: refused, never over the cap.
            Err(RegistryError::Conflict(_)) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(created, 5, "exactly the cap");
    assert_eq!(r.alert_rules("acme").await.unwrap().len(), 5);
    assert!(
        !r.create_alert_rule("acme", "more", rule("x"), 5)
            .await
            .unwrap()
    );
    assert!(matches!(
        r.create_alert_rule("nobody", "a", rule("x"), 5).await,
        Err(RegistryError::NotFound(_))
    ));
    let (tenants, next) = r.alerting_tenants(None, 10).await.unwrap();
    assert_eq!((tenants, next), (vec!["acme".to_string()], None));

    // Deleting every rule takes the tenant off the index; a missing rule is `false`.
    let ids: Vec<String> = r
        .alert_rules("acme")
        .await
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 5);
    for (n, id) in ids.iter().enumerate() {
        assert!(r.delete_alert_rule("acme", id).await.unwrap());
        let (tenants, _) = r.alerting_tenants(None, 10).await.unwrap();
        assert_eq!(tenants.len(), usize::from(n < 4), "after {} deletes", n + 1);
    }
    assert!(r.alert_rules("acme").await.unwrap().is_empty());
    assert!(!r.delete_alert_rule("acme", &ids[0]).await.unwrap());
    let (tenants, _) = r.alerting_tenants(None, 10).await.unwrap();
    assert!(tenants.is_empty(), "{tenants:?}");
    assert!(
        r.create_alert_rule("acme", "again", rule("x"), 5)
            .await
            .unwrap(),
        "the count went back to zero"
    );
    assert!(matches!(
        r.create_alert_rule("acme", "again", rule("x"), 5).await,
        Err(RegistryError::Conflict(_))
    ));
}

#[tokio::test]
async fn state_is_compare_and_swap_and_history_is_bounded() {
    let (_d, r) = registry().await;
    assert!(
        r.create_alert_rule("acme", "a", rule("a"), 100)
            .await
            .unwrap()
    );
    // First record: no state yet.
    assert!(
        r.record_alert_state(
            "acme",
            "a",
            &state(AlertStatus::Firing, 5.0),
            None,
            Some(transition(0)),
            vec![]
        )
        .await
        .unwrap()
    );
    let (s, v) = r.alert_state("acme", "a").await.unwrap().unwrap();
    assert_eq!((s.status, s.value), (AlertStatus::Firing, 5.0));
    // A second evaluator that read "no state" loses.
    assert!(
        !r.record_alert_state(
            "acme",
            "a",
            &state(AlertStatus::Firing, 6.0),
            None,
            Some(transition(1)),
            vec![]
        )
        .await
        .unwrap()
    );
    assert_eq!(r.alert_history("acme", "a").await.unwrap().len(), 1);
    // So does one with a stale version.
    assert!(
        r.record_alert_state(
            "acme",
            "a",
            &state(AlertStatus::Ok, 0.0),
            Some(v),
            None,
            vec![]
        )
        .await
        .unwrap()
    );
    assert!(
        !r.record_alert_state(
            "acme",
            "a",
            &state(AlertStatus::Ok, 0.0),
            Some(v),
            None,
            vec![]
        )
        .await
        .unwrap()
    );
    // History keeps the newest MAX_ALERT_HISTORY transitions, oldest first.
    for n in 1..=(MAX_ALERT_HISTORY as u64 + 5) {
        let (_, v) = r.alert_state("acme", "a").await.unwrap().unwrap();
        assert!(
            r.record_alert_state(
                "acme",
                "a",
                &state(AlertStatus::Ok, 0.0),
                Some(v),
                Some(transition(n)),
                vec![]
            )
            .await
            .unwrap()
        );
    }
    let h = r.alert_history("acme", "a").await.unwrap();
    assert_eq!(h.len(), MAX_ALERT_HISTORY);
    assert_eq!(h.first().unwrap().id, "t6");
    assert_eq!(h.last().unwrap().id, format!("t{}", MAX_ALERT_HISTORY + 5));

    // Notification outcomes: one per channel, the latest.
    for (channel, delivered) in [("webhook", false), ("function", true), ("webhook", true)] {
        r.set_alert_notification(
            "acme",
            "a",
            NotificationOutcome {
                transition: "t".into(),
                channel: channel.into(),
                delivered,
                attempts: 2,
                at: 3,
                error: None,
            },
        )
        .await
        .unwrap();
    }
    let (s, _) = r.alert_state("acme", "a").await.unwrap().unwrap();
    assert_eq!(s.notifications.len(), 2);
    assert!(s.notifications.iter().all(|n| n.delivered));

    // A deleted rule's state and history go with it, and are never written back.
    let (_, v) = r.alert_state("acme", "a").await.unwrap().unwrap();
    assert!(r.delete_alert_rule("acme", "a").await.unwrap());
    assert!(r.alert_state("acme", "a").await.unwrap().is_none());
    assert!(r.alert_history("acme", "a").await.unwrap().is_empty());
    assert!(
        !r.record_alert_state(
            "acme",
            "a",
            &state(AlertStatus::Ok, 0.0),
            Some(v),
            None,
            vec![]
        )
        .await
        .unwrap()
    );
    assert!(
        !r.record_alert_state(
            "acme",
            "a",
            &state(AlertStatus::Ok, 0.0),
            None,
            None,
            vec![]
        )
        .await
        .unwrap()
    );
    assert!(r.alert_state("acme", "a").await.unwrap().is_none());
    // Tenants are apart: beta has none of acme's rules.
    assert!(r.alert_rules("beta").await.unwrap().is_empty());
    assert!(r.alert_rule("beta", "a").await.unwrap().is_none());
}

#[tokio::test]
async fn the_fleet_lease_has_one_holder() {
    let (_d, r) = registry().await;
    assert!(r.try_lease("alerts", "node-a", 60).await.unwrap());
    assert!(!r.try_lease("alerts", "node-b", 60).await.unwrap());
    assert!(r.try_lease("alerts", "node-a", 60).await.unwrap());
    assert!(
        r.try_lease("other", "node-b", 60).await.unwrap(),
        "leases are by name"
    );
    r.release_lease("alerts", "node-b").await.unwrap();
    assert!(!r.try_lease("alerts", "node-b", 60).await.unwrap());
    r.release_lease("alerts", "node-a").await.unwrap();
    assert!(r.try_lease("alerts", "node-b", 60).await.unwrap());
}
