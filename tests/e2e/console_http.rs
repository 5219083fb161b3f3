//! The console's assets over HTTP: served without credentials from the binary, under a
//! strict Content-Security-Policy, revalidated by ETag, GET/HEAD only, nothing outside
//! the embedded table (the browser suite in `console.rs` drives the views themselves).

use helixflow_e2e::*;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; object-src 'none'; require-trusted-types-for 'script'; trusted-types 'none'";

#[tokio::test]
async fn console_assets_are_embedded_and_served_under_a_strict_policy() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), None);
    let http = Http::anonymous();

    // The page, at both spellings, without credentials.
    let mut page = None;
    for path in ["/console", "/console/"] {
        let r = http.get(&format!("{}{path}", node.url)).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
        assert_eq!(r.header("content-security-policy"), Some(CSP));
        assert_eq!(r.header("x-frame-options"), Some("DENY"));
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
        assert_eq!(r.header("cache-control"), Some("no-cache"));
        assert!(r.header("etag").is_some_and(|e| e.starts_with('"')));
        page = Some(r.text());
    }
    let page = page.unwrap();
    // No inline script or style: everything the page loads comes from /console/.
    assert!(
        !page.contains("<script>") && !page.contains("style="),
        "{page}"
    );

    // Every script the app imports (followed through the imports) is served as
    // JavaScript under the same policy, and none reaches outside this origin.
    let mut todo = vec![
        "/console/js/app.js".to_string(),
        "/console/console.css".to_string(),
    ];
    let mut seen = std::collections::BTreeSet::new();
    while let Some(path) = todo.pop() {
        if !seen.insert(path.clone()) {
            continue;
        }
        let r = http.get(&format!("{}{path}", node.url)).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(r.header("content-security-policy"), Some(CSP), "{path}");
        let text = r.text();
        // (The SVG namespace is a name, not a place the page loads from.)
        let elsewhere = text.replace("http://www.w3.org/2000/svg", "");
        assert!(
            !elsewhere.contains("http://")
                && !elsewhere.contains("https://")
                && !elsewhere.contains("//cdn"),
            "{path} names another origin"
        );
        if path.ends_with(".js") {
            assert_eq!(
                r.header("content-type"),
                Some("text/javascript; charset=utf-8"),
                "{path}"
            );
            let base = path.rsplit_once('/').unwrap().0.to_string();
            for line in text.lines() {
                let line = line.trim();
                if let Some(rest) = line
                    .strip_prefix("import ")
                    .filter(|_| line.contains(" from '"))
                    && let Some(spec) = rest
                        .split(" from '")
                        .nth(1)
                        .and_then(|s| s.split('\'').next())
                {
                    let mut parts: Vec<&str> = base.split('/').collect();
                    for seg in spec.split('/') {
                        match seg {
                            "." => {}
                            ".." => {
                                parts.pop();
                            }
                            s => parts.push(s),
                        }
                    }
                    todo.push(parts.join("/"));
                }
            }
        }
    }
    assert!(seen.len() >= 10, "the app's modules: {seen:?}");

    // Revalidation: the ETag answers 304 with no body; another tag gets the bytes.
    let url = format!("{}/console/js/app.js", node.url);
    let first = http.get(&url).await;
    let etag = first.header("etag").unwrap().to_string();
    let r = http
        .request("GET", &url, &[("if-none-match", &etag)], "")
        .await;
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    let r = http
        .request("GET", &url, &[("if-none-match", "\"0000\"")], "")
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, first.body);
    // HEAD: the headers, no body.
    let r = http.request("HEAD", &url, &[], "").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-length"),
        Some(first.body.len().to_string().as_str())
    );
    assert!(r.body.is_empty());

    // Only GET and HEAD.
    for m in ["POST", "PUT", "DELETE", "PATCH"] {
        let r = http.request(m, &url, &[], "x").await;
        assert_eq!(r.status, 405, "{m}");
        assert_eq!(r.code(), "method_not_allowed");
        assert_eq!(r.header("allow"), Some("GET, HEAD"));
    }
    // Nothing outside the embedded table, however spelled.
    for path in [
        "/console/nope.js",
        "/console/../Cargo.toml",
        "/console/%2e%2e/Cargo.toml",
        "/console/js/../../host/console/build.rs",
        "/console/js",
        "/console//index.html",
    ] {
        let r = http.get(&format!("{}{path}", node.url)).await;
        assert_eq!(r.status, 404, "{path}: {}", r.text());
        assert_eq!(r.code(), "not_found", "{path}");
    }

    // API answers keep `no-store` (only the console's assets are revalidated).
    let r = http.get(&format!("{}/api/v1/openapi.json", node.url)).await;
    assert_eq!(r.header("cache-control"), Some("no-store"));

    // `console` is not a tenant name: its data-plane URLs would be the console's.
    let r = Http::new()
        .post_json(
            &format!("{}/api/v1/tenants", node.url),
            serde_json::json!({"name": "console"}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("reserved"));
}

#[tokio::test]
async fn fleet_nodes_are_listed_for_the_platform_admin_only() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), None);
    let api = Api::new(&node);
    api.create_tenant("acme").await;
    let (key, _) = api.create_key("acme", "admin").await;
    let url = format!("{}/api/v1/admin/nodes", node.url);

    let r = Http::new().get(&url).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let nodes = r.json()["nodes"].as_array().cloned().unwrap_or_default();
    assert_eq!(nodes.len(), 1, "{nodes:?}");
    let me = &nodes[0];
    assert_eq!(me["this_node"], true);
    assert_eq!(me["stale"], false);
    assert_eq!(me["location"], "local");
    assert_eq!(me["version"], env!("CARGO_PKG_VERSION"));
    assert!(me["started_at"].as_u64().unwrap() <= me["seen_at"].as_u64().unwrap());
    assert!(me.get("expires_at").is_none(), "{me}");

    // A tenant's own admin is not a platform admin.
    let r = Http::with_token(Some(&key)).get(&url).await;
    assert_eq!(r.status, 403, "{}", r.text());
    let r = Http::anonymous().get(&url).await;
    assert_eq!(r.status, 401, "{}", r.text());
}

/// The node's origin is shared by every tenant's functions and the console, so a
/// function gets neither the caller's HelixFlow credential nor a way to take the origin
/// over: its documents are sandboxed (an opaque origin) and service-worker scripts are
/// refused.
#[tokio::test]
async fn functions_never_see_the_callers_credential_nor_control_the_origin() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), None);
    let api = Api::new(&node);
    api.create_tenant("acme").await;
    let (key, _) = api.create_key("acme", "admin").await;
    let r = api
        .http
        .request(
            "POST",
            &api.url("/api/v1/tenants/acme/functions/chaos/versions"),
            &[("x-helixflow-config", r#"{"public": true}"#)],
            guest("chaos"),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let u = |p: &str| format!("{}/acme/chaos{p}", node.url);
    let anon = Http::anonymous();

    // A key the node accepted (Bearer, or x-api-key) is removed before the function runs.
    let r = Http::with_token(Some(&key))
        .get(&u("/header?name=authorization"))
        .await;
    assert_eq!((r.status, r.text().as_str()), (404, "no such header"));
    let r = anon
        .request(
            "GET",
            &u("/header?name=x-api-key"),
            &[("x-api-key", &key)],
            "",
        )
        .await;
    assert_eq!((r.status, r.text().as_str()), (404, "no such header"));
    // Only the header the credential came from: the function's own headers pass.
    let bearer = format!("Bearer {key}");
    let r = anon
        .request(
            "GET",
            &u("/header?name=x-api-key"),
            &[
                ("authorization", &bearer),
                ("x-api-key", "the-functions-own"),
            ],
            "",
        )
        .await;
    assert_eq!((r.status, r.text().as_str()), (200, "the-functions-own"));
    let r = anon
        .request(
            "GET",
            &u("/header?name=x-custom"),
            &[("x-custom", "kept")],
            "",
        )
        .await;
    assert_eq!((r.status, r.text().as_str()), (200, "kept"));

    // Every data-plane answer is sandboxed: a tenant's page runs in an opaque origin.
    let csp = r.header("content-security-policy").unwrap_or_default();
    assert!(csp.starts_with("sandbox allow-scripts"), "{csp}");
    assert!(!csp.contains("allow-same-origin"), "{csp}");
    // A service worker's script request (what `navigator.serviceWorker.register` sends)
    // never reaches a function.
    let r = anon
        .request("GET", &u("/echo"), &[("service-worker", "script")], "")
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.code(), "service_worker_refused");
    // The console itself is not sandboxed (it has its own policy).
    let r = anon.get(&format!("{}/console", node.url)).await;
    assert!(
        !r.header("content-security-policy")
            .unwrap_or_default()
            .contains("sandbox")
    );
}
