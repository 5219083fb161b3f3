//! State backends that are configuration, not code: artifacts in S3 (a real S3
//! protocol server, ministack, started by scripts/test.sh).

use helixflow_e2e::{Api, Node, required_env as env};

fn s3_settings() -> (String, String) {
    (env("HELIXFLOW_TEST_S3_BUCKET"), env("AWS_ENDPOINT_URL_S3"))
}

#[tokio::test(flavor = "multi_thread")]
async fn artifacts_in_s3_survive_restart_and_a_lost_compile_cache() {
    let (bucket, endpoint) = s3_settings();
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!(
        "e2e-{}-{}",
        std::process::id(),
        dir.path().file_name().unwrap().to_string_lossy()
    );
    let config = format!("[state]\nartifacts = \"s3://{bucket}/{prefix}\"\n");

    let sha = {
        let node = Node::start(dir.path(), Some(&config));
        let api = Api::new(&node);
        api.create_tenant("acme").await;
        let r = api
            .deploy_raw(
                "acme",
                "hello",
                helixflow_e2e::guest("hello"),
                "?alias=live",
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
        let sha = r.json()["version"]["sha256"].as_str().unwrap().to_string();
        assert_eq!(
            api.http.get(&api.url("/acme/hello/x?name=S3")).await.text(),
            "Hello, S3! (GET /x)\n"
        );
        node.kill9();
        sha
    };
    assert!(
        !dir.path().join("artifacts").exists(),
        "nothing was written to the local artifact dir"
    );

    // The object is in the bucket under its SHA-256.
    let http = helixflow_e2e::Http::new();
    let r = http
        .get(&format!("{endpoint}/{bucket}/{prefix}/sha256/{sha}"))
        .await;
    assert_eq!(r.status, 200, "artifact in S3: {}", r.text());
    assert_eq!(r.body.as_ref(), helixflow_e2e::guest("hello").as_slice());

    // Lose the compile cache: the restarted node must fetch from S3 and recompile.
    std::fs::remove_dir_all(dir.path().join("compiled")).unwrap();
    let node = Node::start(dir.path(), Some(&config));
    let api = Api::new(&node);
    assert_eq!(
        api.http
            .get(&api.url("/acme/hello/y?name=again"))
            .await
            .text(),
        "Hello, again! (GET /y)\n"
    );
    assert!(
        node.log().contains("compiled component"),
        "recompiled from the S3 artifact"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_artifact_store_fails_deploys_fast_with_503_and_records_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on port 9: every S3 call is refused.
    let config = "[state]\nartifacts = \"s3://nowhere/x\"\n";
    // Point only this node's S3 endpoint at a dead port.
    let node = Node::start_with_env(
        dir.path(),
        Some(config),
        &[
            ("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9"),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "x"),
            ("AWS_SECRET_ACCESS_KEY", "x"),
        ],
    );
    let api = Api::new(&node);
    api.create_tenant("acme").await;
    let started = std::time::Instant::now();
    let r = api
        .deploy_raw("acme", "hello", helixflow_e2e::guest("hello"), "")
        .await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "bounded retries: {:?}",
        started.elapsed()
    );
    assert_eq!(
        (r.status, r.code().as_str()),
        (503, "store_unavailable"),
        "{}",
        r.text()
    );
    assert!(r.header("retry-after").is_some());
    let r = api
        .http
        .get(&api.url("/api/v1/tenants/acme/functions"))
        .await;
    assert_eq!(
        r.json()["functions"],
        serde_json::json!([]),
        "a failed deploy records nothing"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_edge_cache_serves_artifacts_when_the_object_store_is_gone() {
    let (bucket, endpoint) = s3_settings();
    let s3_proxy = helixflow_e2e::CutProxy::start(endpoint.trim_start_matches("http://")).await;
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!(
        "edge-{}-{}",
        std::process::id(),
        dir.path().file_name().unwrap().to_string_lossy()
    );
    let config = format!("[state]\nartifacts = \"s3://{bucket}/{prefix}\"\n");
    let proxy_url = s3_proxy.url();
    let env = [("AWS_ENDPOINT_URL_S3", proxy_url.as_str())];

    let sha = {
        let node = Node::start_with_env(dir.path(), Some(&config), &env);
        let api = Api::new(&node);
        api.create_tenant("acme").await;
        let r = api
            .deploy_raw("acme", "hello", helixflow_e2e::guest("hello"), "")
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
        node.kill9();
        r.json()["version"]["sha256"].as_str().unwrap().to_string()
    };
    let cached = dir.path().join("artifact-cache").join(&sha);
    assert!(cached.exists(), "the deploying node keeps a local copy");

    // No compiled component, no object store: the local copy is all there is.
    std::fs::remove_dir_all(dir.path().join("compiled")).unwrap();
    s3_proxy.cut();
    let node = Node::start_with_env(dir.path(), Some(&config), &env);
    let api = Api::new(&node);
    let r = api.http.get(&api.url("/acme/hello/x?name=edge")).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "Hello, edge! (GET /x)\n")
    );

    // A corrupted local copy is never served: with the store back, it is refetched.
    node.kill9();
    std::fs::write(&cached, b"tampered").unwrap();
    std::fs::remove_dir_all(dir.path().join("compiled")).unwrap();
    s3_proxy.restore().await;
    let node = Node::start_with_env(dir.path(), Some(&config), &env);
    let api = Api::new(&node);
    assert_eq!(api.http.get(&api.url("/acme/hello/")).await.status, 200);
    assert_eq!(
        helixflow_store_sha(&std::fs::read(&cached).unwrap()),
        sha,
        "refilled with the real bytes"
    );
}

fn helixflow_store_sha(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_serves_only_the_tenants_it_is_configured_for() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(
        dir.path(),
        Some("[node]\nid = \"fra\"\ntenants = [\"acme\"]\n"),
    );
    let api = Api::new(&node);
    api.create_tenant("acme").await;
    api.create_tenant("beta").await;
    api.deploy("acme", "hello", "hello", "").await;
    api.deploy("beta", "hello", "hello", "").await;
    assert_eq!(api.http.get(&api.url("/acme/hello/")).await.status, 200);
    let r = api.http.get(&api.url("/beta/hello/")).await;
    assert_eq!((r.status, r.code().as_str()), (404, "tenant_not_served"));
    assert!(r.text().contains("\\\"fra\\\""), "{}", r.text());
    let r = api.http.post(&api.url("/invoke/beta/hello"), "x").await;
    assert_eq!(r.code(), "tenant_not_served");
}

/// file://, s3:// (ministack) and az:// (Azurite): one suite.
#[tokio::test(flavor = "multi_thread")]
async fn every_object_store_backend_passes_the_artifact_suite() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("conf-{}", std::process::id());
    let urls = [
        format!("file://{}", dir.path().join("artifacts").display()),
        format!("s3://{}/{prefix}", env("HELIXFLOW_TEST_S3_BUCKET")),
        format!("az://{}/{prefix}", env("HELIXFLOW_TEST_AZURE_CONTAINER")),
    ];
    for url in urls {
        println!("artifact conformance: {url}");
        let store =
            helixflow_store::ArtifactStore::from_url(&url).unwrap_or_else(|e| panic!("{url}: {e}"));
        helixflow_store::conformance::artifacts_run_all(&store).await;
    }
}

/// A node deploys to and serves from Azure Blob storage by config alone.
#[tokio::test(flavor = "multi_thread")]
async fn nodes_serve_functions_from_azure_blob() {
    for url in [format!(
        "az://{}/node-{}",
        env("HELIXFLOW_TEST_AZURE_CONTAINER"),
        std::process::id()
    )] {
        let dir = tempfile::tempdir().unwrap();
        let config = format!("[state]\nartifacts = \"{url}\"\n");
        {
            let node = Node::start(dir.path(), Some(&config));
            let api = Api::new(&node);
            api.create_tenant("acme").await;
            assert_eq!(api.deploy("acme", "hello", "hello", "").await, 1, "{url}");
            node.kill9();
        }
        // Cold node-local caches: the bytes must come back from the cloud store.
        std::fs::remove_dir_all(dir.path().join("compiled")).unwrap();
        std::fs::remove_dir_all(dir.path().join("artifact-cache")).unwrap();
        let node = Node::start(dir.path(), Some(&config));
        let api = Api::new(&node);
        let r = api.http.get(&api.url("/acme/hello/x?name=cloud")).await;
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, "Hello, cloud! (GET /x)\n"),
            "{url}"
        );
    }
}
