//! kill -9 of a node at random points during deploys: afterwards every version is either
//! fully deployed and invocable or absent, and `gc` collects the leftovers.

use helixflow_e2e::{Api, Node, guest, with_nonce};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_during_deploys_leaves_no_half_versions_and_gc_collects_leftovers() {
    let dir = tempfile::tempdir().unwrap();
    let hello = guest("hello");
    {
        let node = Node::start(dir.path(), None);
        Api::new(&node).create_tenant("acme").await;
        node.kill9();
    }
    let mut attempts = 0u64;
    for round in 0..12u64 {
        let node = Node::start(dir.path(), None);
        let api = Api::new(&node);
        // Several deploys in flight, each a distinct artifact; kill at a varying moment.
        let mut inflight = Vec::new();
        for k in 0..3u64 {
            attempts += 1;
            let bytes = with_nonce(hello.clone(), round * 10 + k);
            let http = api.http.clone();
            let url = api.url("/api/v1/tenants/acme/functions/f/versions");
            inflight.push(tokio::spawn(async move {
                // The connection dies with the node: any outcome is fine here.
                let _ = tokio::time::timeout(
                    Duration::from_secs(5),
                    http.try_request("POST", &url, bytes),
                )
                .await;
            }));
        }
        tokio::time::sleep(Duration::from_millis(10 + (round * 137) % 1300)).await;
        node.kill9();
        for t in inflight {
            let _ = t.await;
        }
    }

    // Restart and check: versions are 1..=n with no gaps, and every one is invocable.
    let node = Node::start(dir.path(), None);
    let api = Api::new(&node);
    let r = api
        .http
        .get(&api.url("/api/v1/tenants/acme/functions/f/versions"))
        .await;
    let versions: Vec<u64> = if r.status == 404 {
        Vec::new()
    } else {
        r.json()["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["version"].as_u64().unwrap())
            .collect()
    };
    println!(
        "{attempts} deploys attempted across 12 kill -9s; {} recorded",
        versions.len()
    );
    assert_eq!(
        versions,
        (1..=versions.len() as u64).collect::<Vec<_>>(),
        "no gaps, no half versions"
    );
    for v in &versions {
        let r = api
            .http
            .get(&api.url(&format!("/acme/f@{v}/x?name=v{v}")))
            .await;
        assert_eq!(
            r.status,
            200,
            "version {v} is recorded, so it must be invocable: {}",
            r.text()
        );
    }

    assert!(
        !versions.is_empty() && (versions.len() as u64) < attempts,
        "the kills landed both before and after commits"
    );

    // A deleted function leaves its artifact behind too (artifacts may be shared, so
    // deletes never remove them; gc does).
    let r = api
        .deploy_raw("acme", "doomed", with_nonce(hello.clone(), 9_999), "")
        .await;
    assert_eq!(r.status, 201);
    let r = api
        .http
        .request(
            "DELETE",
            &api.url("/api/v1/tenants/acme/functions/doomed"),
            &[],
            "",
        )
        .await;
    assert_eq!(r.status, 200);

    // GC: unreferenced artifacts (bytes stored by deploys that died before recording,
    // and the deleted function's) go; referenced ones stay and still serve from a cold
    // compile cache.
    let artifacts_before = std::fs::read_dir(dir.path().join("artifacts/sha256"))
        .map(|d| d.count())
        .unwrap_or(0);
    let dry = api
        .http
        .post(&api.url("/api/v1/admin/gc?grace_secs=0&dry_run=true"), "")
        .await;
    assert_eq!(dry.status, 200, "{}", dry.text());
    let would = dry.json()["deleted"].as_array().unwrap().len();
    let r = api
        .http
        .post(&api.url("/api/v1/admin/gc?grace_secs=0"), "")
        .await;
    let v = r.json();
    let deleted = v["deleted"].as_array().unwrap().len();
    println!(
        "artifacts: {artifacts_before} stored, {} referenced, {deleted} collected",
        v["referenced"]
    );
    assert_eq!(deleted, would, "the dry run predicted the real run");
    assert!(
        deleted >= 1,
        "at least the deleted function's artifact is collected"
    );
    assert_eq!(v["referenced"].as_u64().unwrap() as usize, versions.len());
    assert_eq!(
        artifacts_before - deleted,
        versions.len(),
        "exactly the referenced artifacts remain"
    );
    let again = api
        .http
        .post(&api.url("/api/v1/admin/gc?grace_secs=0"), "")
        .await;
    assert_eq!(
        again.json()["deleted"].as_array().unwrap().len(),
        0,
        "gc is idempotent"
    );
    // The default grace period (1 h) protects young leftovers: a just-deleted
    // function's artifact is kept, not collected.
    let r = api
        .deploy_raw("acme", "young", with_nonce(hello.clone(), 77_777), "")
        .await;
    assert_eq!(r.status, 201);
    let r = api
        .http
        .request(
            "DELETE",
            &api.url("/api/v1/tenants/acme/functions/young"),
            &[],
            "",
        )
        .await;
    assert_eq!(r.status, 200);
    let young = api.http.post(&api.url("/api/v1/admin/gc"), "").await.json();
    assert_eq!(young["deleted"].as_array().unwrap().len(), 0, "{young}");
    assert_eq!(young["kept_younger_than_grace"], 1, "{young}");

    node.kill9();
    std::fs::remove_dir_all(dir.path().join("compiled")).ok();
    let node = Node::start(dir.path(), None);
    let api = Api::new(&node);
    for v in &versions {
        assert_eq!(
            api.http
                .get(&api.url(&format!("/acme/f@{v}/")))
                .await
                .status,
            200
        );
    }
}
