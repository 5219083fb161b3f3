use helixflow_e2e::{Api, Node};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn versions_aliases_rollback_config_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), None);
    let api = Api::new(&node);
    api.create_tenant("acme").await;
    let base = "/api/v1/tenants/acme/functions/f";

    // v1 = hello, v2 = raw-http: distinguishable answers.
    assert_eq!(api.deploy("acme", "f", "hello", "?alias=live").await, 1);
    assert_eq!(api.deploy("acme", "f", "raw-http", "").await, 2);
    let r = api.http.get(&api.url("/acme/f/x")).await;
    assert!(
        r.text().starts_with("Hello"),
        "`live` (v1) serves by default: {}",
        r.text()
    );
    assert!(
        api.http
            .get(&api.url("/acme/f@2/x"))
            .await
            .text()
            .starts_with("raw hello")
    );
    assert!(
        api.http
            .get(&api.url("/acme/f@1/x"))
            .await
            .text()
            .starts_with("Hello")
    );

    let r = api
        .http
        .put_json(
            &api.url(&format!("{base}/aliases/live")),
            json!({"version": 2}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        api.http
            .get(&api.url("/acme/f/x"))
            .await
            .text()
            .starts_with("raw hello"),
        "alias flip is served at once"
    );
    assert!(
        api.http
            .get(&api.url("/acme/f@live/x"))
            .await
            .text()
            .starts_with("raw hello")
    );

    let r = api
        .http
        .post(&api.url(&format!("{base}/aliases/live/rollback")), "")
        .await;
    assert_eq!((r.status, r.json()["version"].as_u64()), (200, Some(1)));
    assert!(
        api.http
            .get(&api.url("/acme/f/x"))
            .await
            .text()
            .starts_with("Hello")
    );
    let r = api
        .http
        .post(&api.url(&format!("{base}/aliases/live/rollback")), "")
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (409, "conflict"),
        "nothing left to roll back to"
    );

    let r = api
        .http
        .put_json(
            &api.url(&format!("{base}/aliases/live")),
            json!({"version": 9}),
        )
        .await;
    assert_eq!(r.status, 404, "alias to a missing version");
    let r = api
        .http
        .put_json(
            &api.url(&format!("{base}/aliases/7")),
            json!({"version": 1}),
        )
        .await;
    assert_eq!(r.status, 400, "numeric alias names would shadow versions");

    // Config: env reaches the guest, bad values are refused.
    let r = api
        .http
        .put_json(
            &api.url(&format!("{base}/config")),
            json!({"env": {"GREETING": "Howdy"}, "timeout_ms": 2000}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        api.http
            .get(&api.url("/acme/f/x"))
            .await
            .text()
            .starts_with("Howdy")
    );
    let r = api
        .http
        .put_json(
            &api.url(&format!("{base}/config")),
            json!({"memory_mb": 100000}),
        )
        .await;
    assert_eq!((r.status, r.code().as_str()), (400, "invalid_config"));
    let r = api
        .http
        .put_json(&api.url(&format!("{base}/config")), json!({"nonsense": 1}))
        .await;
    assert_eq!((r.status, r.code().as_str()), (400, "invalid_json"));
    let r = api.http.get(&api.url(&format!("{base}/config"))).await;
    assert_eq!(
        r.json()["timeout_ms"],
        2000,
        "rejected updates change nothing"
    );

    // The version an alias points at cannot be deleted; another can.
    let r = api
        .http
        .request("DELETE", &api.url(&format!("{base}/versions/1")), &[], "")
        .await;
    assert_eq!((r.status, r.code().as_str()), (409, "conflict"));
    let r = api
        .http
        .request("DELETE", &api.url(&format!("{base}/versions/2")), &[], "")
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(api.http.get(&api.url("/acme/f@2/x")).await.status, 404);

    let r = api.http.get(&api.url(base)).await;
    let v = r.json();
    assert_eq!(v["versions"].as_array().unwrap().len(), 1);
    assert_eq!(v["aliases"][0]["name"], "live");

    let r = api.http.request("DELETE", &api.url(base), &[], "").await;
    assert_eq!(r.status, 200);
    assert_eq!(api.http.get(&api.url("/acme/f/x")).await.status, 404);
    assert_eq!(api.http.get(&api.url(base)).await.status, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_keeps_versions_and_aliases_and_does_not_recompile() {
    let dir = tempfile::tempdir().unwrap();
    {
        let node = Node::start(dir.path(), None);
        let api = Api::new(&node);
        api.create_tenant("acme").await;
        api.deploy("acme", "f", "hello", "").await;
        api.deploy("acme", "f", "raw-http", "").await;
        let r = api
            .http
            .put_json(
                &api.url("/api/v1/tenants/acme/functions/f/aliases/live"),
                json!({"version": 1}),
            )
            .await;
        assert_eq!(r.status, 200);
        assert!(
            node.log().contains("compiled component"),
            "first deploy compiles"
        );
        node.kill9();
    }
    let node = Node::start(dir.path(), None);
    let api = Api::new(&node);
    assert!(
        api.http
            .get(&api.url("/acme/f/x"))
            .await
            .text()
            .starts_with("Hello"),
        "alias survives kill -9"
    );
    assert!(
        api.http
            .get(&api.url("/acme/f@2/x"))
            .await
            .text()
            .starts_with("raw hello")
    );
    let r = api
        .http
        .get(&api.url("/api/v1/tenants/acme/functions/f/versions"))
        .await;
    assert_eq!(r.json()["versions"].as_array().unwrap().len(), 2);
    assert!(
        !node.log().contains("compiled component"),
        "after a restart components come from the compile cache:\n{}",
        node.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_tenant_function_alias_and_version_are_404_with_clear_messages() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), None);
    let api = Api::new(&node);
    api.create_tenant("acme").await;
    api.deploy("acme", "hello", "hello", "").await;
    for (path, needle) in [
        ("/nobody/hello/", "tenant \"nobody\""),
        ("/acme/missing/", "function \"missing\""),
        ("/acme/hello@canary/", "alias \"canary\""),
        ("/acme/hello@42/", "version 42"),
        ("/invoke/acme/missing", "function \"missing\""),
        ("/api/v1/tenants/nobody/functions", "tenant \"nobody\""),
    ] {
        let r = api.http.get(&api.url(path)).await;
        let r = if path.starts_with("/invoke") {
            api.http.post(&api.url(path), "x").await
        } else {
            r
        };
        assert_eq!(r.status, 404, "{path}: {}", r.text());
        assert_eq!(r.code(), "not_found", "{path}");
        let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(msg.contains(needle), "{path}: {msg}");
    }
    let r = api.http.get(&api.url("/api/v1/nothing-here")).await;
    assert_eq!(r.status, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn qualifier_spellings_resolve_consistently() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), None);
    let api = Api::new(&node);
    api.create_tenant("acme").await;
    api.deploy("acme", "f", "hello", "").await;
    api.deploy("acme", "f", "raw-http", "").await;
    // Warm the cache with the default resolution (latest = v2).
    assert!(
        api.http
            .get(&api.url("/acme/f/x"))
            .await
            .text()
            .starts_with("raw hello")
    );
    assert!(
        api.http
            .get(&api.url("/acme/f@001/x"))
            .await
            .text()
            .starts_with("Hello"),
        "@001 is version 1"
    );
    assert_eq!(
        api.http.get(&api.url("/acme/f@0/x")).await.status,
        404,
        "@0 is not the default"
    );
    assert_eq!(
        api.http.get(&api.url("/acme/f@/x")).await.status,
        400,
        "empty qualifier"
    );
    assert_eq!(
        api.http.get(&api.url("/acme/f@99999999999/x")).await.status,
        400,
        "out of range"
    );
}
