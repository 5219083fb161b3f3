//! The OpenAPI document (`GET /api/v1/openapi.json`, committed as
//! `host/api/openapi.json`) against a running node: the node serves the committed file
//! without credentials, the real `openapi-spec-validator` (PyPI) accepts it, and the
//! router serves exactly the documented routes: every documented operation is answered
//! by a handler (not the router's "no route"), and the other methods on documented
//! paths, and paths one segment longer, are not served unless documented.

use helixflow_e2e::{Api, Http, Node, Resp, workspace_root};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

fn validator_python() -> String {
    std::env::var("HELIXFLOW_OPENAPI_PYTHON").unwrap_or_else(|_| {
        panic!(
            "HELIXFLOW_OPENAPI_PYTHON is not set: scripts/test.sh installs openapi-spec-validator \
             (ensure_openapi_validator in scripts/lib.sh) and sets it"
        )
    })
}

/// Runs `openapi-spec-validator` on `file`: (success, its output).
fn validate(file: &Path) -> (bool, String) {
    let out = Command::new(validator_python())
        .args(["-m", "openapi_spec_validator", "--schema", "3.1.0"])
        .arg(file)
        .output()
        .expect("run openapi-spec-validator");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test]
async fn openapi_document_is_served_is_the_committed_file_and_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), None);
    // No credentials needed.
    let r = Http::anonymous()
        .get(&format!("{}/api/v1/openapi.json", node.url))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    let committed = std::fs::read_to_string(workspace_root().join("host/api/openapi.json"))
        .expect("host/api/openapi.json");
    assert!(
        r.text() == committed,
        "the node serves a different document than host/api/openapi.json: regenerate it with \
         `helixflow openapi > host/api/openapi.json`"
    );
    let doc = r.json();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/api/v1/tenants/{tenant}/functions/{function}"]["get"].is_object());

    let served = dir.path().join("served.json");
    std::fs::write(&served, r.text()).unwrap();
    let (ok, out) = validate(&served);
    assert!(ok, "openapi-spec-validator refused the document:\n{out}");

    // The validator does reject a broken document (a `$ref` to no component).
    let broken = r.text().replacen(
        "#/components/schemas/Tenant\"",
        "#/components/schemas/NoSuch\"",
        1,
    );
    assert_ne!(broken, r.text(), "the document refers to Tenant");
    let bad = dir.path().join("broken.json");
    std::fs::write(&bad, broken).unwrap();
    let (ok, out) = validate(&bad);
    assert!(
        !ok,
        "openapi-spec-validator accepted a dangling $ref:\n{out}"
    );
}

/// The documented operations: (path template, method, served under every method).
fn operations(doc: &serde_json::Value) -> Vec<(String, String, bool)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let any = op["x-helixflow-any-method"] == true;
            out.push((path.clone(), method.to_ascii_uppercase(), any));
        }
    }
    out
}

/// First path segments that are not a tenant (the data plane's `/{tenant}/...`).
const RESERVED: &[&str] = &["api", "v1", "invoke", "2015-03-31", "console"];

/// Whether `path` (concrete) matches the template `t`.
fn matches(t: &str, path: &str) -> bool {
    let ts: Vec<&str> = t.trim_matches('/').split('/').collect();
    let ps: Vec<&str> = path.trim_matches('/').split('/').collect();
    if ts.first() == Some(&"{tenant}") {
        let first = ps.first().copied().unwrap_or_default();
        let alone = ps.len() == 1 && (first == "healthz" || first == "metrics");
        if RESERVED.contains(&first) || alone {
            return false;
        }
    }
    for (i, seg) in ts.iter().enumerate() {
        if *seg == "{path}" {
            return ps.len() >= i;
        }
        match ps.get(i) {
            None => return false,
            Some(p) if seg.starts_with('{') => {
                if p.is_empty() {
                    return false;
                }
            }
            Some(p) if p != seg => return false,
            Some(_) => {}
        }
    }
    ps.len() == ts.len()
}

/// A concrete path for a template.
fn concrete(t: &str) -> String {
    t.split('/')
        .map(|s| match s {
            "{tenant}" => "acme",
            "{function}" => "probe",
            "{function_name}" => "acme--probe",
            "{version}" => "1",
            "{path}" => "deep/er",
            s if s.starts_with('{') => "x1",
            s => s,
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Whether a response is the router's "no such route" (not a handler's answer).
fn no_route(r: &Resp) -> bool {
    if r.status == 405 {
        return true;
    }
    if r.status != 404 {
        return false;
    }
    if r.header("x-amzn-errortype") == Some("UnknownOperationException") {
        return true;
    }
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
    let code = body["error"]["code"].as_str().unwrap_or_default();
    let message = body["error"]["message"].as_str().unwrap_or_default();
    code == "unknown_url"
        || message.starts_with("no route here")
        || message.starts_with("no control-plane route")
        || message.starts_with("the control plane lives under")
        || (message.starts_with("no such ") && message.ends_with(" route"))
        || message.starts_with("use POST /invoke/")
        || message.starts_with("no function named in")
}

#[tokio::test]
async fn openapi_the_router_serves_exactly_the_documented_routes() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), None);
    let api = Api::new(&node);
    api.create_tenant("acme").await;
    let doc = Http::anonymous()
        .get(&format!("{}/api/v1/openapi.json", node.url))
        .await
        .json();
    let ops = operations(&doc);
    assert!(ops.len() > 60, "{} operations", ops.len());
    let http = Http::new();
    let served = |path: &str, method: &str| {
        ops.iter()
            .any(|(t, m, any)| matches(t, path) && (*any || m == method))
    };

    // Every documented operation reaches a handler.
    let mut problems = Vec::new();
    for (t, m, _) in &ops {
        let path = concrete(t);
        let r = http
            .request(
                m,
                &api.url(&path),
                &[("content-type", "application/json")],
                "{}",
            )
            .await;
        if no_route(&r) {
            problems.push(format!(
                "documented {m} {t} ({path}): {} {}",
                r.status,
                r.text()
            ));
        }
    }

    // Neighbours: the other methods on each documented path, and each documented path
    // one segment longer, are served exactly when a documented template matches them.
    let paths: BTreeSet<&str> = ops.iter().map(|(t, _, _)| t.as_str()).collect();
    let mut probes = BTreeSet::new();
    for t in &paths {
        let path = concrete(t);
        for m in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            probes.insert((path.clone(), m));
            probes.insert((format!("{path}/extra"), m));
        }
    }
    for (path, m) in &probes {
        let expected = served(path, m);
        let r = http
            .request(
                m,
                &api.url(path),
                &[("content-type", "application/json")],
                "{}",
            )
            .await;
        if no_route(&r) == expected {
            problems.push(format!(
                "{m} {path}: documented: {expected}, but the node answered {} {}",
                r.status,
                r.text()
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "the router and the document disagree (host/api/src/routes.rs is the table):\n{}",
        problems.join("\n")
    );
    // The probes did exercise both answers.
    assert!(probes.iter().any(|(p, m)| served(p, m)));
    assert!(probes.iter().any(|(p, m)| !served(p, m)));
}
