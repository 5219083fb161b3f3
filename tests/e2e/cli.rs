use helixflow_e2e::{Node, helixflow_bin, workspace_root};
use std::process::Command;

fn hf(url: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(helixflow_bin())
        .env("HELIXFLOW_TOKEN", helixflow_e2e::admin_key())
        .args(args)
        .env("HELIXFLOW_URL", url)
        .output()
        .expect("run helixflow");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn guest_path(name: &str) -> String {
    let dir = std::env::var("HELIXFLOW_GUEST_DIR").unwrap_or_else(|_| {
        workspace_root()
            .join("target/wasm32-wasip2/guest")
            .display()
            .to_string()
    });
    format!("{dir}/{name}.wasm")
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_deploy_invoke_list_alias_logs_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), None);
    let url = node.url.clone();
    let run = move |args: &[&str]| hf(&url, args);

    let (rc, out, err) = run(&["tenants", "create", "acme"]);
    assert_eq!(rc, 0, "{out}{err}");
    let (rc, out, err) = run(&[
        "deploy",
        "-t",
        "acme",
        "-f",
        "echo",
        &guest_path("echo_event"),
        "--alias",
        "live",
        "--env",
        "A=1",
    ]);
    assert_eq!(rc, 0, "{out}{err}");
    assert!(
        out.contains("deployed acme/echo version 1") && out.contains("event=true"),
        "{out}"
    );
    assert!(out.contains("alias live -> version 1"), "{out}");
    let (rc, out, _) = run(&[
        "deploy",
        "-t",
        "acme",
        "-f",
        "echo",
        &guest_path("echo_event"),
    ]);
    assert_eq!(rc, 0);
    assert!(out.contains("version 2"), "{out}");

    let (rc, out, _) = run(&["invoke", "-t", "acme", "-f", "echo", "-d", "hi"]);
    assert_eq!(rc, 0);
    assert!(
        out.contains(r#""echo":"hi""#) && out.contains(r#""version":1"#),
        "live -> v1: {out}"
    );
    let (rc, out, _) = run(&["invoke", "-t", "acme", "-f", "echo", "-q", "2", "-d", "hi"]);
    assert_eq!(rc, 0);
    assert!(out.contains(r#""version":2"#), "{out}");

    let (rc, out, _) = run(&["alias", "set", "-t", "acme", "-f", "echo", "live", "2"]);
    assert_eq!((rc, out.trim()), (0, "alias live -> version 2"));
    let (rc, out, _) = run(&["alias", "rollback", "-t", "acme", "-f", "echo", "live"]);
    assert_eq!((rc, out.trim()), (0, "alias live rolled back to version 1"));

    let (rc, out, _) = run(&["functions", "list", "-t", "acme"]);
    assert_eq!(rc, 0);
    assert!(out.starts_with("echo\tlatest=2"), "{out}");

    let (rc, _, err) = run(&["logs", "-t", "acme", "-f", "echo"]);
    assert_eq!(rc, 0);
    assert!(
        err.contains("echo-event: 2 bytes"),
        "stderr of the guest is shown: {err}"
    );

    // Errors a person can act on, with distinct exit codes.
    let (rc, _, err) = run(&["invoke", "-t", "acme", "-f", "nope", "-d", "x"]);
    assert_eq!(rc, 1);
    assert!(
        err.contains("404 not_found") && err.contains("\"nope\""),
        "{err}"
    );
    let (rc, _, err) = run(&["deploy", "-t", "acme", "-f", "bad", "/nonexistent.wasm"]);
    assert_eq!(rc, 1);
    assert!(err.contains("/nonexistent.wasm"), "{err}");
    let (rc, _, err) = hf("http://127.0.0.1:9", &["functions", "list", "-t", "acme"]);
    assert_eq!(rc, 3, "{err}");
    assert!(err.contains("is `helixflow serve` running"), "{err}");
}

#[test]
fn config_check_reports_file_line_and_hint() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(&good, "[node]\nid = \"fra\"\n").unwrap();
    let (rc, out, _) = hf(
        "http://127.0.0.1:9",
        &["config", "check", good.to_str().unwrap()],
    );
    assert_eq!(rc, 0);
    assert!(out.contains("ok (node fra"), "{out}");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[node]\nid = \"fra\"\ncolour = \"blue\"\n").unwrap();
    let (rc, _, err) = hf(
        "http://127.0.0.1:9",
        &["config", "check", bad.to_str().unwrap()],
    );
    assert_eq!(rc, 1);
    assert!(
        err.contains("bad.toml:3:") && err.contains("colour") && err.contains("hint:"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_bootstraps_tenants_keys_and_reads_the_audit_log() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), None);
    // The README's bootstrap: the platform admin creates a tenant and its admin key.
    let (code, _, err) = hf(&node.url, &["tenants", "create", "acme"]);
    assert_eq!(code, 0, "{err}");
    let (code, key, err) = hf(
        &node.url,
        &["keys", "create", "-t", "acme", "-r", "admin", "-n", "ops"],
    );
    assert_eq!(code, 0, "{err}");
    let key = key.trim().to_string();
    assert!(
        key.starts_with("hfk_") && err.contains("shown once"),
        "{key} / {err}"
    );
    // The tenant admin (not the platform admin) takes it from here.
    let as_tenant = |args: &[&str]| {
        let out = Command::new(helixflow_bin())
            .env("HELIXFLOW_URL", &node.url)
            .env("HELIXFLOW_TOKEN", &key)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, dev_key, err) = as_tenant(&["keys", "create", "-t", "acme", "-r", "developer"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = as_tenant(&[
        "deploy",
        "-t",
        "acme",
        "-f",
        "echo",
        &guest_path("echo_event"),
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, list, _) = as_tenant(&["keys", "list", "-t", "acme"]);
    assert_eq!(code, 0);
    assert_eq!(list.lines().count(), 2, "{list}");
    assert!(!list.contains(dev_key.trim()), "keys are never shown again");
    let dev_prefix = &dev_key.trim()[4..16];
    let (code, out, _) = as_tenant(&["keys", "revoke", "-t", "acme", dev_prefix]);
    assert_eq!(
        (code, out.trim()),
        (0, format!("revoked {dev_prefix}").as_str())
    );
    // A tenant admin cannot create tenants: API error, exit code 1.
    let (code, _, err) = as_tenant(&["tenants", "create", "other"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("403") && err.contains("forbidden"), "{err}");
    let (code, audit, err) = as_tenant(&["audit", "-t", "acme", "--limit", "20"]);
    assert_eq!(code, 0, "{err}");
    println!("{audit}");
    assert!(
        audit.contains("POST tenants/*/keys") && audit.contains("DELETE tenants/*/keys/*"),
        "{audit}"
    );
    assert!(
        audit.contains("POST tenants/*/functions/*/versions"),
        "{audit}"
    );
    assert!(
        audit.contains("key:"),
        "actors are named by key prefix: {audit}"
    );
}

/// `access-keys`, `functions config --set`, `events list/get/replay` from the CLI.
#[tokio::test(flavor = "multi_thread")]
async fn cli_manages_access_keys_async_config_and_failed_events() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), None);
    let url = node.url.clone();
    let run = move |args: &[&str]| hf(&url, args);
    assert_eq!(run(&["tenants", "create", "acme"]).0, 0);
    let (rc, out, err) = run(&["deploy", "-t", "acme", "-f", "chaos", &guest_path("chaos")]);
    assert_eq!(rc, 0, "{out}{err}");

    // Access keys: created once (secret shown), listed without the secret, revoked.
    let (rc, out, err) = run(&["access-keys", "create", "-t", "acme", "-n", "ci"]);
    assert_eq!(rc, 0, "{out}{err}");
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("AWS_ACCESS_KEY_ID="))
        .unwrap()
        .to_string();
    let secret = out
        .lines()
        .find_map(|l| l.strip_prefix("AWS_SECRET_ACCESS_KEY="))
        .unwrap()
        .to_string();
    assert!(id.starts_with("HFAK") && secret.len() == 40, "{out}");
    assert!(err.contains("account id"), "{err}");
    let (rc, out, _) = run(&["access-keys", "list", "-t", "acme"]);
    assert!(
        rc == 0 && out.contains(&id) && out.contains("invoker") && !out.contains(&secret),
        "{out}"
    );
    let (rc, out, _) = run(&["access-keys", "revoke", "-t", "acme", &id]);
    assert_eq!((rc, out.trim().to_string()), (0, format!("revoked {id}")));
    let (_, out, _) = run(&["access-keys", "list", "-t", "acme"]);
    assert!(out.contains("revoked"), "{out}");

    // Config from a file: no retries, so an error fails the event at once.
    let cfg = dir.path().join("config.json");
    std::fs::write(&cfg, r#"{"async_invoke": {"max_retries": 0}}"#).unwrap();
    let (rc, out, err) = run(&[
        "functions",
        "config",
        "-t",
        "acme",
        "chaos",
        "--set",
        cfg.to_str().unwrap(),
    ]);
    assert!(rc == 0 && out.contains("\"max_retries\": 0"), "{out}{err}");
    std::fs::write(&cfg, r#"{"async_invoke": {"max_retries": 7}}"#).unwrap();
    let (rc, _, err) = run(&[
        "functions",
        "config",
        "-t",
        "acme",
        "chaos",
        "--set",
        cfg.to_str().unwrap(),
    ]);
    assert!(
        rc == 1 && err.contains("invalid_config"),
        "refused with the reason: {err}"
    );

    // A failing Event invocation, then list, get and replay it from the CLI.
    let r = helixflow_e2e::Http::new()
        .request(
            "POST",
            &format!(
                "{}/2015-03-31/functions/acme:function:chaos/invocations",
                node.url
            ),
            &[("x-amz-invocation-type", "Event")],
            br#""error""#.to_vec(),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let event_id = r.header("x-amzn-requestid").unwrap().to_string();
    let mut listed = String::new();
    for _ in 0..100 {
        listed = run(&["events", "list", "-t", "acme", "--status", "failed"]).1;
        if listed.contains(&event_id) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    println!("{listed}");
    assert!(
        listed.contains(&event_id)
            && listed.contains("RetriesExhausted")
            && listed.contains("ChaosError"),
        "{listed}"
    );
    let (rc, out, _) = run(&["events", "get", "-t", "acme", &event_id]);
    assert!(rc == 0 && out.contains("\"status\": \"failed\""), "{out}");
    let (rc, out, err) = run(&["events", "replay", "-t", "acme", "--all-failed"]);
    assert!(
        rc == 0 && out.starts_with(&format!("{event_id} -> ")),
        "{out}{err}"
    );
    let (rc, _, err) = run(&["events", "replay", "-t", "acme", &event_id]);
    assert!(rc == 1 && err.contains("already_replayed"), "{err}");
    let (rc, _, err) = run(&["events", "get", "-t", "acme", "no-such-event"]);
    assert!(rc == 1 && err.contains("not_found"), "{err}");
}
