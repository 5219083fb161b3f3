//! The typed registry (tenants, functions, versions, aliases, models, events) against a
//! real backend: the embedded redb store of `helixflow-store-redb` (a dev-dependency;
//! these tests live here, not as unit tests, so that they and the backend link the same
//! `helixflow-store`).

use helixflow_store::events::{FailedEvent, QUEUE_SHARDS, QueuedEvent, Schedule};
use helixflow_store::models::{NewModelVersion, PUBLIC_NAMESPACE};
use helixflow_store::registry::{
    Exports, FunctionConfig, NewVersion, Registry, RegistryError, TenantLimits,
};
use helixflow_store_redb::RedbMetadataStore;
use std::sync::Arc;

async fn registry() -> (tempfile::TempDir, Registry) {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbMetadataStore::open(dir.path().join("m.redb")).unwrap();
    (dir, Registry::new(Arc::new(store)))
}

fn nv(sha: &str) -> NewVersion {
    NewVersion {
        sha256: sha.into(),
        size: 1,
        exports: Exports {
            http: true,
            event: false,
        },
        description: String::new(),
        config: None,
    }
}

#[tokio::test]
async fn versions_aliases_and_rollback() {
    let (_d, r) = registry().await;
    r.create_tenant("acme", TenantLimits::default())
        .await
        .unwrap();
    assert!(matches!(
        r.create_tenant("acme", TenantLimits::default()).await,
        Err(RegistryError::Conflict(_))
    ));
    assert!(matches!(
        r.create_tenant("api", TenantLimits::default()).await,
        Err(RegistryError::Invalid(_))
    ));
    assert!(matches!(
        r.add_version("ghost", "f", nv("a")).await,
        Err(RegistryError::NotFound(_))
    ));

    let v1 = r.add_version("acme", "f", nv("a")).await.unwrap();
    let v2 = r.add_version("acme", "f", nv("b")).await.unwrap();
    assert_eq!((v1.version, v2.version), (1, 2));
    assert_eq!(r.function("acme", "f").await.unwrap().latest_version, 2);

    r.set_alias("acme", "f", "live", 1).await.unwrap();
    let a = r.set_alias("acme", "f", "live", 2).await.unwrap();
    assert_eq!((a.version, a.history.clone()), (2, vec![1]));
    assert!(matches!(
        r.set_alias("acme", "f", "live", 9).await,
        Err(RegistryError::NotFound(_))
    ));
    assert!(matches!(
        r.delete_version("acme", "f", 2).await,
        Err(RegistryError::Conflict(_))
    ));
    let back = r.rollback_alias("acme", "f", "live").await.unwrap();
    assert_eq!(back.version, 1);
    assert!(matches!(
        r.rollback_alias("acme", "f", "live").await,
        Err(RegistryError::Conflict(_))
    ));
    r.delete_version("acme", "f", 2).await.unwrap();
    assert_eq!(r.versions("acme", "f").await.unwrap().len(), 1);

    let shas = r.delete_function("acme", "f").await.unwrap();
    assert_eq!(shas, vec!["a".to_string()]);
    assert!(matches!(
        r.function("acme", "f").await,
        Err(RegistryError::NotFound(_))
    ));
    assert!(r.versions("acme", "f").await.is_err());
}

#[tokio::test]
async fn concurrent_deploys_get_distinct_versions() {
    let (_d, r) = registry().await;
    r.create_tenant("acme", TenantLimits::default())
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let r = r.clone();
        tasks.push(tokio::spawn(async move {
            r.add_version("acme", "f", nv(&format!("{i}")))
                .await
                .unwrap()
                .version
        }));
    }
    let mut got: Vec<u32> = Vec::new();
    for t in tasks {
        got.push(t.await.unwrap());
    }
    got.sort();
    assert_eq!(got, (1..=8).collect::<Vec<_>>());
}

#[tokio::test]
async fn models_are_tenant_scoped_with_public_fallback() {
    let dir = tempfile::tempdir().unwrap();
    let r = Registry::new(Arc::new(
        RedbMetadataStore::open(dir.path().join("m.redb")).unwrap(),
    ));
    r.create_tenant("alice", TenantLimits::default())
        .await
        .unwrap();
    r.create_tenant("bob", TenantLimits::default())
        .await
        .unwrap();
    let v = |sha: &str| NewModelVersion {
        sha256: sha.into(),
        size: 1,
        ..Default::default()
    };
    r.add_model_version("alice", "secret", v("aa"))
        .await
        .unwrap();
    r.add_model_version("alice", "secret", v("ab"))
        .await
        .unwrap();
    r.add_model_version(PUBLIC_NAMESPACE, "shared", v("bb"))
        .await
        .unwrap();
    r.add_model_version("bob", "shared", v("cc")).await.unwrap();

    // Own model, latest and pinned.
    assert_eq!(
        r.resolve_model("alice", "secret").await.unwrap().1.sha256,
        "ab"
    );
    assert_eq!(
        r.resolve_model("alice", "secret@1").await.unwrap().1.sha256,
        "aa"
    );
    // Bob can never reach alice's private model.
    assert!(matches!(
        r.resolve_model("bob", "secret").await,
        Err(RegistryError::NotFound(_))
    ));
    // A tenant's own model shadows the public one; others get the public one.
    assert_eq!(
        r.resolve_model("bob", "shared").await.unwrap().1.sha256,
        "cc"
    );
    assert_eq!(
        r.resolve_model("alice", "shared").await.unwrap().1.sha256,
        "bb"
    );
    assert!(matches!(
        r.resolve_model("alice", "secret@9").await,
        Err(RegistryError::NotFound(_))
    ));
    assert!(matches!(
        r.resolve_model("alice", "x@y").await,
        Err(RegistryError::Invalid(_))
    ));
    assert!(matches!(
        r.resolve_model("alice", "../etc").await,
        Err(RegistryError::Invalid(_))
    ));
    let refs = r.referenced_models().await.unwrap();
    assert!(["aa", "ab", "bb", "cc"].iter().all(|s| refs.contains(*s)));
    r.delete_model("alice", "secret").await.unwrap();
    assert!(!r.referenced_models().await.unwrap().contains("aa"));
}

fn ev(id: &str) -> QueuedEvent {
    QueuedEvent {
        id: id.into(),
        tenant: "acme".into(),
        function: "f".into(),
        version: 1,
        payload_b64: "e30=".into(),
        client_context: None,
        accepted_at_ms: 1,
        attempts: 0,
        failures: 0,
        timeout_ms: 1000,
        due_at_ms: 0,
        lease_owner: String::new(),
        lease_until_ms: 0,
        last_error: None,
        source: "invoke".into(),
    }
}

#[tokio::test]
async fn queue_claim_finish_and_tick_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(RedbMetadataStore::open(dir.path().join("m.redb")).unwrap());
    let reg = Registry::new(store);
    reg.create_tenant("acme", TenantLimits::default())
        .await
        .unwrap();
    let a = ev("0190a000-0000-7000-8000-000000000001");
    reg.enqueue_event(&a).await.unwrap();
    assert!(matches!(
        reg.enqueue_event(&a).await,
        Err(RegistryError::Conflict(_))
    ));
    let (got, v) = reg.queued_event(&a.id).await.unwrap().unwrap();
    assert_eq!(got, a);
    // Two workers race for the claim: one wins.
    let mut c = got.clone();
    c.attempts = 1;
    c.lease_owner = "w1".into();
    let v2 = reg.update_event(&c, v).await.unwrap().unwrap();
    assert_eq!(reg.update_event(&c, v).await.unwrap(), None);
    // The loser cannot finish it; the winner can, with a failure record.
    assert!(!reg.finish_event(&c, v, None, &[]).await.unwrap());
    let failed = FailedEvent {
        id: c.id.clone(),
        tenant: "acme".into(),
        function: "f".into(),
        version: 1,
        payload_b64: c.payload_b64.clone(),
        client_context: None,
        accepted_at_ms: 1,
        finished_at_ms: 2,
        attempts: 1,
        condition: "RetriesExhausted".into(),
        last_error: None,
        source: "invoke".into(),
        replayed_as: None,
        expires_at: helixflow_store::now_unix() + 60,
    };
    let follow = ev("0190a000-0000-7000-8000-000000000002");
    assert!(
        reg.finish_event(&c, v2, Some(&failed), std::slice::from_ref(&follow))
            .await
            .unwrap()
    );
    assert!(reg.queued_event(&c.id).await.unwrap().is_none());
    assert!(reg.queued_event(&follow.id).await.unwrap().is_some());
    assert_eq!(
        reg.failed_events("acme", 10).await.unwrap(),
        vec![failed.clone()]
    );
    // Replay marks the failure and enqueues once.
    let (f, fv) = reg.failed_event("acme", &c.id).await.unwrap().unwrap();
    let again = ev("0190a000-0000-7000-8000-000000000003");
    reg.replay_failed(&f, fv, &again).await.unwrap();
    assert!(
        reg.replay_failed(&f, fv, &ev("0190a000-0000-7000-8000-000000000004"))
            .await
            .is_err()
    );
    assert_eq!(
        reg.failed_event("acme", &c.id)
            .await
            .unwrap()
            .unwrap()
            .0
            .replayed_as
            .as_deref(),
        Some(again.id.as_str())
    );
    // A tick fires once.
    let t1 = ev("0190a000-0000-7000-8000-000000000005");
    let t2 = ev("0190a000-0000-7000-8000-000000000006");
    let tick = helixflow_store::now_unix();
    assert!(
        reg.fire_tick("acme", "f", "every", tick, &t1)
            .await
            .unwrap()
    );
    assert!(
        !reg.fire_tick("acme", "f", "every", tick, &t2)
            .await
            .unwrap()
    );
    assert!(
        reg.queued_event(&t2.id).await.unwrap().is_none(),
        "the losing tick enqueued nothing"
    );
    assert_eq!(
        reg.fired_ticks("acme", "f", "every").await.unwrap(),
        vec![(tick, t1.id.clone())]
    );
    // Shards list everything exactly once.
    let mut n = 0;
    for s in 0..QUEUE_SHARDS {
        n += reg.queued_events(s, 100).await.unwrap().len();
    }
    assert_eq!(n, 3);
    // Schedules index follows the config.
    let sha = "ab".repeat(32);
    reg.add_version(
        "acme",
        "f",
        NewVersion {
            sha256: sha,
            size: 1,
            exports: Default::default(),
            description: String::new(),
            config: None,
        },
    )
    .await
    .unwrap();
    let mut cfg = FunctionConfig::default();
    cfg.schedules.push(Schedule {
        name: "every".into(),
        cron: "* * * * * *".into(),
        payload: serde_json::Value::Null,
        enabled: true,
    });
    reg.set_config("acme", "f", cfg.clone()).await.unwrap();
    assert_eq!(
        reg.scheduled_functions().await.unwrap(),
        vec![("acme".to_string(), "f".to_string())]
    );
    reg.set_config("acme", "f", FunctionConfig::default())
        .await
        .unwrap();
    assert!(reg.scheduled_functions().await.unwrap().is_empty());
    reg.set_config("acme", "f", cfg).await.unwrap();
    reg.delete_function("acme", "f").await.unwrap();
    assert!(
        reg.scheduled_functions().await.unwrap().is_empty(),
        "deleting the function drops its schedules"
    );
}
