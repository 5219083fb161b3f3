//! The `MetadataStore` conformance suite: every backend runs these same checks.
//! Each check panics with a message naming what broke.

use crate::{Condition, MetadataStore, Page, StoreError, WriteOp};
use serde_json::{Map, Value, json};

fn attrs(v: Value) -> Map<String, Value> {
    v.as_object().cloned().expect("object")
}

/// Run every check against `store` (which should be empty, or use a fresh namespace).
pub async fn run_all(store: &dyn MetadataStore) {
    let ns = format!("conf-{}", std::process::id());
    create_and_get(store, &ns).await;
    conditional_put(store, &ns).await;
    conditional_delete(store, &ns).await;
    query_prefix_and_paging(store, &ns).await;
    transactions_are_all_or_nothing(store, &ns).await;
    limits_are_enforced(store, &ns).await;
    expired_items_are_absent(store, &ns).await;
    leases_have_one_holder(store, &ns).await;
}

/// `lease::try_acquire`: one holder at a time, renewals by the holder, takeover once the
/// lease has expired (judged by the backend, as for every expiring item).
async fn leases_have_one_holder(store: &dyn MetadataStore, ns: &str) {
    use crate::lease::{release, try_acquire};
    let pk = format!("{ns}#lease");
    let now = crate::now_unix();
    assert!(
        try_acquire(store, &pk, "l", "a", now, 60).await.unwrap(),
        "a free lease is taken"
    );
    assert!(
        !try_acquire(store, &pk, "l", "b", now, 60).await.unwrap(),
        "a held lease is refused"
    );
    assert!(
        try_acquire(store, &pk, "l", "a", now, 60).await.unwrap(),
        "the holder renews"
    );
    // The holder's renewal written as already expired: the lease is free again.
    assert!(
        try_acquire(store, &pk, "l", "a", now - 100, 10)
            .await
            .unwrap()
    );
    assert!(
        try_acquire(store, &pk, "l", "b", now, 60).await.unwrap(),
        "an expired lease is taken over"
    );
    assert!(
        !try_acquire(store, &pk, "l", "a", now, 60).await.unwrap(),
        "the old holder is out"
    );
    release(store, &pk, "l", "a").await.unwrap();
    assert!(
        !try_acquire(store, &pk, "l", "a", now, 60).await.unwrap(),
        "only the holder releases"
    );
    release(store, &pk, "l", "b").await.unwrap();
    assert!(
        try_acquire(store, &pk, "l", "a", now, 60).await.unwrap(),
        "a released lease is free"
    );
    // Racing for a free lease: exactly one wins.
    let free = format!("{ns}#lease2");
    let (x, y) = tokio::join!(
        try_acquire(store, &free, "l", "x", now, 60),
        try_acquire(store, &free, "l", "y", now, 60),
    );
    assert!(
        x.unwrap() ^ y.unwrap(),
        "exactly one of two racers holds the lease"
    );
}

async fn expired_items_are_absent(store: &dyn MetadataStore, ns: &str) {
    let pk = format!("{ns}#g");
    let now = crate::now_unix();
    store
        .put(
            &pk,
            "old",
            attrs(json!({"expires_at": now - 10, "x": 1})),
            Condition::Always,
        )
        .await
        .unwrap();
    store
        .put(
            &pk,
            "new",
            attrs(json!({"expires_at": now + 3600, "x": 2})),
            Condition::Always,
        )
        .await
        .unwrap();
    store
        .put(&pk, "plain", attrs(json!({"x": 3})), Condition::Always)
        .await
        .unwrap();
    assert!(
        store.get(&pk, "old").await.unwrap().is_none(),
        "an expired item reads as absent"
    );
    assert_eq!(
        store.get(&pk, "new").await.unwrap().unwrap().u64("x"),
        Some(2)
    );
    let sks: Vec<String> = store
        .query_all(&pk, "")
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.sk)
        .collect();
    assert_eq!(
        sks,
        vec!["new".to_string(), "plain".to_string()],
        "queries skip expired items"
    );
    let err = store
        .put(&pk, "old", attrs(json!({})), Condition::Exists)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::ConditionFailed { .. }),
        "Exists does not hold for an expired item"
    );
    let v = store
        .put(&pk, "old", attrs(json!({"x": 4})), Condition::NotExists)
        .await
        .unwrap();
    assert_eq!(
        v, 1,
        "creating over an expired item starts a new life at version 1"
    );
    let item = store.get(&pk, "old").await.unwrap().unwrap();
    assert_eq!((item.version, item.u64("x")), (1, Some(4)));
}

async fn create_and_get(store: &dyn MetadataStore, ns: &str) {
    let pk = format!("{ns}#a");
    assert!(
        store.get(&pk, "missing").await.unwrap().is_none(),
        "missing item must read as None"
    );
    let v = store
        .put(
            &pk,
            "one",
            attrs(json!({"n": 1, "s": "x"})),
            Condition::NotExists,
        )
        .await
        .unwrap();
    assert_eq!(v, 1, "a created item has version 1");
    let item = store
        .get(&pk, "one")
        .await
        .unwrap()
        .expect("created item must be readable");
    assert_eq!(item.version, 1);
    assert_eq!(item.u64("n"), Some(1));
    assert_eq!(item.str("s"), Some("x"));
}

async fn conditional_put(store: &dyn MetadataStore, ns: &str) {
    let pk = format!("{ns}#b");
    store
        .put(&pk, "k", attrs(json!({"n": 1})), Condition::NotExists)
        .await
        .unwrap();
    let err = store
        .put(&pk, "k", attrs(json!({"n": 2})), Condition::NotExists)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::ConditionFailed { .. }),
        "create over existing must fail: {err}"
    );
    let v = store
        .put(&pk, "k", attrs(json!({"n": 2})), Condition::VersionIs(1))
        .await
        .unwrap();
    assert_eq!(v, 2);
    let err = store
        .put(&pk, "k", attrs(json!({"n": 3})), Condition::VersionIs(1))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::ConditionFailed { .. }),
        "stale version must fail: {err}"
    );
    let item = store.get(&pk, "k").await.unwrap().unwrap();
    assert_eq!(
        (item.version, item.u64("n")),
        (2, Some(2)),
        "failed writes must not change the item"
    );
    let err = store
        .put(&pk, "absent", attrs(json!({})), Condition::Exists)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::ConditionFailed { .. }));
    assert!(store.get(&pk, "absent").await.unwrap().is_none());
}

async fn conditional_delete(store: &dyn MetadataStore, ns: &str) {
    let pk = format!("{ns}#c");
    store
        .put(&pk, "k", attrs(json!({})), Condition::NotExists)
        .await
        .unwrap();
    let err = store
        .delete(&pk, "k", Condition::VersionIs(9))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::ConditionFailed { .. }));
    assert!(
        store.get(&pk, "k").await.unwrap().is_some(),
        "failed delete must keep the item"
    );
    store
        .delete(&pk, "k", Condition::VersionIs(1))
        .await
        .unwrap();
    assert!(store.get(&pk, "k").await.unwrap().is_none());
    store
        .delete(&pk, "k", Condition::Always)
        .await
        .expect("deleting a missing item unconditionally is fine");
}

async fn query_prefix_and_paging(store: &dyn MetadataStore, ns: &str) {
    let pk = format!("{ns}#d");
    for i in 0..25 {
        store
            .put(
                &pk,
                &format!("V#{i:04}"),
                attrs(json!({"i": i})),
                Condition::NotExists,
            )
            .await
            .unwrap();
    }
    store
        .put(&pk, "W#0", attrs(json!({})), Condition::NotExists)
        .await
        .unwrap();
    store
        .put(
            &format!("{pk}x"),
            "V#0000",
            attrs(json!({})),
            Condition::NotExists,
        )
        .await
        .unwrap();

    let all = store.query_all(&pk, "V#").await.unwrap();
    assert_eq!(
        all.len(),
        25,
        "prefix query must return exactly the prefix's items"
    );
    let is: Vec<u64> = all.iter().map(|i| i.u64("i").unwrap()).collect();
    assert_eq!(is, (0..25).collect::<Vec<_>>(), "ascending sort-key order");

    let mut seen = Vec::new();
    let mut page = Page {
        limit: Some(10),
        start_after: None,
    };
    let mut pages = 0;
    loop {
        let p = store.query(&pk, "V#", page.clone()).await.unwrap();
        assert!(p.items.len() <= 10);
        seen.extend(p.items.into_iter().map(|i| i.sk));
        pages += 1;
        match p.next {
            Some(n) => page.start_after = Some(n),
            None => break,
        }
    }
    assert_eq!(pages, 3, "25 items in pages of 10");
    assert_eq!(seen.len(), 25);
    assert_eq!(
        store.query_all(&pk, "").await.unwrap().len(),
        26,
        "empty prefix = whole partition"
    );
}

async fn transactions_are_all_or_nothing(store: &dyn MetadataStore, ns: &str) {
    let pk = format!("{ns}#e");
    store
        .put(
            &pk,
            "counter",
            attrs(json!({"next": 1})),
            Condition::NotExists,
        )
        .await
        .unwrap();
    // Succeeds: bump the counter and create the version item together.
    store
        .transact(vec![
            WriteOp::Put {
                pk: pk.clone(),
                sk: "counter".into(),
                attrs: attrs(json!({"next": 2})),
                condition: Condition::VersionIs(1),
            },
            WriteOp::Put {
                pk: pk.clone(),
                sk: "v1".into(),
                attrs: attrs(json!({})),
                condition: Condition::NotExists,
            },
        ])
        .await
        .unwrap();
    // Fails on the second op: nothing of the first may be visible.
    let err = store
        .transact(vec![
            WriteOp::Put {
                pk: pk.clone(),
                sk: "counter".into(),
                attrs: attrs(json!({"next": 3})),
                condition: Condition::VersionIs(2),
            },
            WriteOp::Put {
                pk: pk.clone(),
                sk: "v1".into(),
                attrs: attrs(json!({})),
                condition: Condition::NotExists,
            },
        ])
        .await
        .unwrap_err();
    match err {
        StoreError::TransactionCancelled { index, .. } => {
            assert_eq!(index, 1, "the failing op is named")
        }
        other => panic!("expected TransactionCancelled, got {other}"),
    }
    let c = store.get(&pk, "counter").await.unwrap().unwrap();
    assert_eq!(
        (c.version, c.u64("next")),
        (2, Some(2)),
        "a cancelled transaction writes nothing"
    );
    // A Check op guards without writing.
    let err = store
        .transact(vec![
            WriteOp::Check {
                pk: pk.clone(),
                sk: "nope".into(),
                condition: Condition::Exists,
            },
            WriteOp::Delete {
                pk: pk.clone(),
                sk: "v1".into(),
                condition: Condition::Always,
            },
        ])
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        StoreError::TransactionCancelled { index: 0, .. }
    ));
    assert!(store.get(&pk, "v1").await.unwrap().is_some());
}

async fn limits_are_enforced(store: &dyn MetadataStore, ns: &str) {
    let pk = format!("{ns}#f");
    let big = "x".repeat(500 * 1024);
    let err = store
        .put(&pk, "big", attrs(json!({"b": big})), Condition::Always)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Invalid(_)),
        "items over 400 KB are rejected: {err}"
    );
    assert!(store.get(&pk, "big").await.unwrap().is_none());
    let err = store
        .put(&pk, "", attrs(json!({})), Condition::Always)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Invalid(_)),
        "empty keys are rejected"
    );
}

/// The artifact-store checks every object store backend must pass.
pub async fn artifacts_run_all(store: &crate::ArtifactStore) {
    use bytes::Bytes;
    let unique = format!("{}-{:?}", std::process::id(), std::time::SystemTime::now());
    let a = Bytes::from(format!("artifact a {unique}").into_bytes());
    let b = Bytes::from(format!("artifact b {unique}").into_bytes());
    let sha_a = store.put(a.clone()).await.expect("put a");
    assert_eq!(
        sha_a,
        crate::sha256_hex(&a),
        "the key is the SHA-256 of the bytes"
    );
    assert_eq!(
        store.put(a.clone()).await.expect("put a again"),
        sha_a,
        "putting the same bytes again is fine"
    );
    let sha_b = store.put(b.clone()).await.expect("put b");
    assert_eq!(store.get(&sha_a).await.expect("get a"), a);
    assert_eq!(store.get(&sha_b).await.expect("get b"), b);
    let listed = store.list().await.expect("list");
    for sha in [&sha_a, &sha_b] {
        let entry = listed.iter().find(|x| &x.sha256 == sha).expect("listed");
        assert!(entry.size > 0);
        assert!(
            entry.age < std::time::Duration::from_secs(3600),
            "a fresh artifact is young"
        );
    }
    store.delete(&sha_b).await.expect("delete b");
    assert!(
        matches!(store.get(&sha_b).await, Err(StoreError::NotFound(_))),
        "deleted artifacts are gone"
    );
    store
        .delete(&sha_b)
        .await
        .expect("deleting a missing artifact is fine");
    assert!(matches!(
        store.get("not-a-sha").await,
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(store.get(&sha_a).await.expect("a survives"), a);
}
