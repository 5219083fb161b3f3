//! Security hardening (issue 13): attack tests.
//!
//! Authentication: SigV4 binds the body (item 2), no empty or weak admin key and no
//! empty credential (item 3), JWT claims and JWKS key use, function `env` sealed at rest
//! and hidden from viewers (item 9). Every test prints what it tried and what happened.

use helixflow_e2e::{Api, Http, Node, helixflow_bin, required_env};
use serde_json::{Value, json};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn key(api: &Api<'_>, tenant: &str, role: &str) -> String {
    api.create_key(tenant, role).await.0
}

/// A fresh random string (the secret a test hides, or a unique payload).
fn random_tag(prefix: &str) -> String {
    use sha2::Digest;
    let seed = format!(
        "{prefix}{:?}{}",
        std::time::SystemTime::now(),
        std::process::id()
    );
    format!(
        "{prefix}{}",
        &hex::encode(sha2::Sha256::digest(seed.as_bytes()))[..24]
    )
}

// ---- item 2: SigV4 binds the body ----

/// Signs each request with botocore (`tests/python/sigv4_sign.py`) and returns the
/// headers botocore set.
async fn botocore_sign(
    node: &Node,
    akid: &str,
    secret: &str,
    requests: Value,
) -> Vec<Vec<(String, String)>> {
    let python = required_env("HELIXFLOW_AWS_PYTHON");
    let script = helixflow_e2e::workspace_root().join("tests/python/sigv4_sign.py");
    let (akid, secret) = (akid.to_string(), secret.to_string());
    let log = node.log_path.clone();
    let out = tokio::task::spawn_blocking(move || {
        use std::io::Write as _;
        let mut child = Command::new(python)
            .arg(script)
            .env("AKID", akid)
            .env("SECRET", secret)
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run python");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(requests.to_string().as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "sigv4_sign.py failed: {}\n{}\nnode log: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(log).unwrap_or_default()
    );
    let v: Vec<serde_json::Map<String, Value>> = serde_json::from_slice(&out.stdout).unwrap();
    v.into_iter()
        .map(|m| {
            m.into_iter()
                .map(|(k, v)| (k, v.as_str().unwrap().to_string()))
                .collect()
        })
        .collect()
}

async fn send_signed(url: &str, headers: &[(String, String)], body: &str) -> helixflow_e2e::Resp {
    let h: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    Http::anonymous()
        .request("POST", url, &h, body.to_string())
        .await
}

/// `helixflow_async_events_total{outcome="accepted"}`: Event invocations accepted.
async fn events_accepted(api: &Api<'_>) -> u64 {
    let m = api.http.get(&api.url("/metrics")).await.text();
    m.lines()
        .filter(|l| {
            l.starts_with("helixflow_async_events_total") && l.contains("outcome=\"accepted\"")
        })
        .filter_map(|l| l.rsplit(' ').next().and_then(|n| n.parse::<f64>().ok()))
        .sum::<f64>() as u64
}

async fn runs(api: &Api<'_>, function: &str) -> usize {
    let r = api
        .http
        .get(&api.url(&format!("/api/v1/tenants/acme/functions/{function}/logs")))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["logs"].as_array().unwrap().len()
}

/// A SigV4 signature made by botocore for body A, replayed (same headers, within the
/// clock-skew window) with body B: 403 `InvalidSignatureException`, for RequestResponse
/// and Event; nothing runs, nothing is queued. `UNSIGNED-PAYLOAD` is refused the same
/// way. The genuine request with body A still works.
#[tokio::test(flavor = "multi_thread")]
async fn sec_auth_sigv4_replay_with_another_body_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), None);
    let api = Api::new(&node);
    api.create_tenant("acme").await;
    api.deploy("acme", "echo", "echo-event", "").await;
    let (akid, secret, _) = crate::lambda_api::access_key(&api, "acme", "invoker").await;
    let url = format!("{}/2015-03-31/functions/echo/invocations", node.url);
    let body_a = json!({"transfer": "10 EUR", "to": "alice"}).to_string();
    let body_b = json!({"transfer": "10000 EUR", "to": "mallory"}).to_string();
    let sha_a = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(body_a.as_bytes()))
    };
    let signed = botocore_sign(
        &node,
        &akid,
        &secret,
        json!([
            // As a client that sends the payload hash (S3-style): what the old verifier trusted.
            {"url": url, "body": body_a, "headers": {"X-Amz-Content-SHA256": sha_a}},
            {"url": url, "body": body_a, "headers": {"X-Amz-Content-SHA256": sha_a, "X-Amz-Invocation-Type": "Event"}},
            // botocore's default for Lambda: no payload-hash header.
            {"url": url, "body": body_a, "headers": {"X-Amz-Invocation-Type": "Event"}},
            // An unsigned payload, signed otherwise.
            {"url": url, "body": body_a, "headers": {}, "unsigned_payload": true},
            {"url": url, "body": body_a, "headers": {"X-Amz-Invocation-Type": "Event"}, "unsigned_payload": true},
        ]),
    )
    .await;
    assert!(
        signed[0]
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("x-amz-content-sha256") && *v == sha_a),
        "{:?}",
        signed[0]
    );
    assert!(signed[3].iter().any(|(k, v)| k.eq_ignore_ascii_case("x-amz-content-sha256") && v == "UNSIGNED-PAYLOAD"), "{:?}", signed[3]);
    let accepted_before = events_accepted(&api).await;
    let attacks = [
        (
            "A's headers (with its payload hash), body B, RequestResponse",
            &signed[0],
            body_b.as_str(),
        ),
        (
            "A's headers (with its payload hash), body B, Event",
            &signed[1],
            body_b.as_str(),
        ),
        (
            "A's headers (with its payload hash), empty body, RequestResponse",
            &signed[0],
            "",
        ),
        (
            "A's headers (no payload hash), body B, Event",
            &signed[2],
            body_b.as_str(),
        ),
        (
            "UNSIGNED-PAYLOAD, body A, RequestResponse",
            &signed[3],
            body_a.as_str(),
        ),
        (
            "UNSIGNED-PAYLOAD, body B, Event",
            &signed[4],
            body_b.as_str(),
        ),
    ];
    for (what, headers, body) in attacks {
        let r = send_signed(&url, headers, body).await;
        println!(
            "{what:70} -> {} {:?} {}",
            r.status,
            r.header("x-amzn-errortype"),
            r.text()
        );
        assert_eq!(r.status, 403, "{what}: {}", r.text());
        assert_eq!(
            r.header("x-amzn-errortype"),
            Some("InvalidSignatureException"),
            "{what}"
        );
    }
    // Nothing ran, nothing was queued.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        runs(&api, "echo").await,
        0,
        "a refused request ran the function"
    );
    assert_eq!(
        events_accepted(&api).await,
        accepted_before,
        "a refused Event was queued"
    );
    let pending = api
        .http
        .get(&api.url("/api/v1/tenants/acme/events"))
        .await
        .json();
    assert_eq!(pending["events"].as_array().unwrap().len(), 0, "{pending}");
    // The genuine request (body A with A's signature) works: the refusals were about the body.
    let r = send_signed(&url, &signed[0], &body_a).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["echo"], json!(body_a), "the function saw body A");
    let r = send_signed(&url, &signed[1], &body_a).await;
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(events_accepted(&api).await, accepted_before + 1);
}

// ---- item 3: no empty or weak admin key, no empty credential ----

/// Runs `helixflow serve` on `data_dir` without `HELIXFLOW_ADMIN_KEY` (plus `env`) and
/// returns (exit status, stderr) once it exits; a node still running after 20 s is
/// killed and reported as `None` (it started).
fn serve_until_exit(
    data_dir: &std::path::Path,
    config: Option<&str>,
    env: &[(&str, &str)],
) -> (Option<std::process::ExitStatus>, String) {
    let err_path = data_dir.join(format!("stderr-{}.log", random_tag("")));
    let mut cmd = Command::new(helixflow_bin());
    cmd.arg("serve")
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("HELIXFLOW_ADMIN_KEY")
        .env_remove("HELIXFLOW_SECRETS_KEY")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err_path).unwrap());
    if let Some(toml) = config {
        let p = data_dir.join("node.toml");
        std::fs::write(&p, toml).unwrap();
        cmd.arg("--config").arg(p);
    }
    let mut child = cmd.spawn().expect("spawn helixflow serve");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (
        status,
        std::fs::read_to_string(&err_path).unwrap_or_default(),
    )
}

#[cfg(unix)]
fn chmod(p: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A node refuses to start on an empty `admin.key` (which made the empty string the
/// platform admin key), a short one, one other users can read, an empty or short
/// `HELIXFLOW_ADMIN_KEY`, and `admin_key_sha256` = SHA-256 of the empty key; it exits
/// non-zero and says how to fix it.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn sec_auth_a_node_refuses_empty_short_or_shared_admin_keys() {
    let good = format!("hfadmin_{}", random_tag("k"));
    let empty_sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(b""))
    };
    // (what, admin.key contents and mode, env, config, what stderr must say)
    type Case<'a> = (
        &'a str,
        Option<(&'a str, u32)>,
        Vec<(&'a str, &'a str)>,
        Option<String>,
        Vec<&'a str>,
    );
    let cases: Vec<Case> = vec![
        (
            "empty admin.key",
            Some(("", 0o600)),
            vec![],
            None,
            vec!["admin.key is empty", "delete"],
        ),
        (
            "blank admin.key",
            Some(("\n  \n", 0o600)),
            vec![],
            None,
            vec!["admin.key is empty", "delete"],
        ),
        (
            "short admin.key",
            Some(("tooshort", 0o600)),
            vec![],
            None,
            vec!["fewer than 32", "head -c32 /dev/urandom"],
        ),
        (
            "world-readable admin.key",
            Some((good.as_str(), 0o644)),
            vec![],
            None,
            vec!["chmod 600", "admin.key"],
        ),
        (
            "group-readable admin.key",
            Some((good.as_str(), 0o640)),
            vec![],
            None,
            vec!["chmod 600"],
        ),
        (
            "empty HELIXFLOW_ADMIN_KEY",
            None,
            vec![("HELIXFLOW_ADMIN_KEY", "")],
            None,
            vec!["HELIXFLOW_ADMIN_KEY", "empty"],
        ),
        (
            "short HELIXFLOW_ADMIN_KEY",
            None,
            vec![("HELIXFLOW_ADMIN_KEY", "admin")],
            None,
            vec!["HELIXFLOW_ADMIN_KEY", "fewer than 32"],
        ),
        (
            "admin_key_sha256 of the empty key",
            None,
            vec![],
            Some(format!("[auth]\nadmin_key_sha256 = \"{empty_sha}\"\n")),
            vec!["empty key"],
        ),
        (
            "world-readable secrets.key",
            None,
            vec![("HELIXFLOW_ADMIN_KEY", good.as_str())],
            None,
            vec!["secrets.key", "chmod 600"],
        ),
    ];
    for (what, file, env, config, must_say) in cases {
        let dir = tempfile::tempdir().unwrap();
        if let Some((contents, mode)) = file {
            let p = dir.path().join("admin.key");
            std::fs::write(&p, contents).unwrap();
            chmod(&p, mode);
        }
        if what == "world-readable secrets.key" {
            let p = dir.path().join("secrets.key");
            std::fs::write(&p, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").unwrap();
            chmod(&p, 0o644);
        }
        let (dir_path, config) = (dir.path().to_path_buf(), config.clone());
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let (status, stderr) = tokio::task::spawn_blocking(move || {
            let env: Vec<(&str, &str)> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            serve_until_exit(&dir_path, config.as_deref(), &env)
        })
        .await
        .unwrap();
        let last = stderr
            .lines()
            .rev()
            .find(|l| l.contains("error"))
            .unwrap_or_default()
            .to_string();
        println!("{what:36} -> {status:?}: {last}");
        let status =
            status.unwrap_or_else(|| panic!("{what}: the node started; its log:\n{stderr}"));
        assert!(!status.success(), "{what}: exit status {status}");
        for s in must_say {
            assert!(
                stderr.contains(s),
                "{what}: stderr does not say {s:?}:\n{stderr}"
            );
        }
        assert!(!stderr.contains(&good), "{what}: the key is never printed");
    }
}

/// A node with no admin key configured generates one: `admin.key` (and `secrets.key`)
/// mode 0600, a long key, left by an atomic write (no temp file behind). The key works;
/// an empty `x-api-key` or an empty bearer never authenticates (401, not the admin).
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn sec_auth_generated_key_files_are_private_and_empty_credentials_are_401() {
    use std::io::BufRead as _;
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(helixflow_bin())
        .arg("serve")
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--data-dir")
        .arg(dir.path())
        .env_remove("HELIXFLOW_ADMIN_KEY")
        .env_remove("HELIXFLOW_SECRETS_KEY")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.path().join("serve.log")).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let url = tokio::task::spawn_blocking(move || {
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find_map(|l| {
                l.strip_prefix("helixflow listening on ")
                    .map(|u| u.trim().to_string())
            })
    })
    .await
    .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _child = Kill(child);
    let url = url.unwrap_or_else(|| {
        panic!(
            "node did not start: {}",
            std::fs::read_to_string(dir.path().join("serve.log")).unwrap_or_default()
        )
    });
    for name in ["admin.key", "secrets.key"] {
        let meta = std::fs::metadata(dir.path().join(name)).unwrap();
        println!(
            "{name}: mode {:o}, {} bytes",
            meta.permissions().mode() & 0o777,
            meta.len()
        );
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{name}");
    }
    let leftovers: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "temp files left behind: {leftovers:?}"
    );
    let admin = std::fs::read_to_string(dir.path().join("admin.key")).unwrap();
    assert!(
        admin.trim().len() >= 32,
        "{} characters",
        admin.trim().len()
    );
    let u = |p: &str| format!("{url}{p}");
    assert_eq!(
        Http::with_token(Some(admin.trim()))
            .get(&u("/api/v1/tenants"))
            .await
            .status,
        200,
        "the generated key is the admin"
    );
    for (what, header) in [
        ("x-api-key: (empty)", ("x-api-key", "")),
        ("x-api-key: (blank)", ("x-api-key", "   ")),
        (
            "Authorization: Bearer (empty)",
            ("authorization", "Bearer "),
        ),
        ("Authorization: (empty)", ("authorization", "")),
    ] {
        let r = Http::anonymous()
            .request("GET", &u("/api/v1/tenants"), &[header], Vec::new())
            .await;
        println!("{what:36} -> {} {}", r.status, r.code());
        assert_eq!(r.status, 401, "{what}: {}", r.text());
        assert_eq!(r.code(), "malformed_credentials", "{what}");
    }
}

// ---- item 9: JWT claims and JWKS keys; function env sealed ----

/// RS256 tokens verified with keys from a JWKS file: the `tenant` claim must name a
/// tenant (as on the HS256 path), `aud` may be an array that contains the audience, and
/// a JWK is only used for the algorithm (`alg`) and the use (`use: sig`) it states.
#[tokio::test(flavor = "multi_thread")]
async fn sec_auth_jwks_tokens_check_tenant_audience_and_key_use() {
    use jsonwebtoken::{Algorithm, EncodingKey, Header, jwk::Jwk};
    let dir = tempfile::tempdir().unwrap();
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256)
        .expect("RSA key generation (rcgen with aws-lc-rs)");
    let enc = EncodingKey::from_rsa_pem(kp.serialize_pem().as_bytes()).unwrap();
    let base =
        serde_json::to_value(Jwk::from_encoding_key(&enc, Algorithm::RS256).unwrap()).unwrap();
    let jwk = |kid: &str, extra: Value| {
        let mut j = base.clone();
        let o = j.as_object_mut().unwrap();
        o.insert("kid".into(), kid.into());
        o.remove("alg");
        o.extend(extra.as_object().unwrap().clone());
        j
    };
    // The same RSA key published four ways.
    let jwks = json!({"keys": [
        jwk("good", json!({"alg": "RS256", "use": "sig"})),
        jwk("rs384", json!({"alg": "RS384", "use": "sig"})),
        jwk("enc", json!({"alg": "RS256", "use": "enc"})),
        jwk("ops-encrypt", json!({"key_ops": ["encrypt"]})),
    ]});
    let jwks_path = dir.path().join("jwks.json");
    std::fs::write(&jwks_path, jwks.to_string()).unwrap();
    let node = Node::start(
        dir.path(),
        Some(&format!(
            "[auth]\njwks_file = \"{}\"\n",
            jwks_path.display()
        )),
    );
    let api = Api::new(&node);
    api.create_tenant("acme").await;
    api.deploy("acme", "echo", "echo-event", "").await;
    let t = now();
    let token = |kid: &str, tenant: &str, aud: Value| {
        let mut h = Header::new(Algorithm::RS256);
        h.kid = Some(kid.into());
        jsonwebtoken::encode(
            &h,
            &json!({"sub": "u1", "tenant": tenant, "role": "invoker", "exp": t + 300, "aud": aud}),
            &enc,
        )
        .unwrap()
    };
    let invoke = |tok: String| {
        let url = api.url("/invoke/acme/echo");
        async move { Http::with_token(Some(&tok)).post(&url, "hi").await }
    };
    let accepted = [
        (
            "RS256, key good, aud string",
            token("good", "acme", json!("helixflow")),
        ),
        (
            "RS256, key good, aud array with the audience",
            token("good", "acme", json!(["other-api", "helixflow"])),
        ),
    ];
    for (what, tok) in accepted {
        let r = invoke(tok).await;
        println!("{what:56} -> {} {}", r.status, r.code());
        assert_eq!(r.status, 200, "{what}: {}", r.text());
    }
    let refused = [
        (
            "tenant claim \"../x\"",
            token("good", "../x", json!("helixflow")),
        ),
        (
            "tenant claim \"ACME\"",
            token("good", "ACME", json!("helixflow")),
        ),
        (
            "tenant claim \"public\" (reserved)",
            token("good", "public", json!("helixflow")),
        ),
        ("tenant claim \"\"", token("good", "", json!("helixflow"))),
        (
            "aud array without the audience",
            token("good", "acme", json!(["other-api"])),
        ),
        ("aud empty array", token("good", "acme", json!([]))),
        (
            "RS256 token, JWK alg RS384",
            token("rs384", "acme", json!("helixflow")),
        ),
        (
            "RS256 token, JWK use enc",
            token("enc", "acme", json!("helixflow")),
        ),
        (
            "RS256 token, JWK key_ops [encrypt]",
            token("ops-encrypt", "acme", json!("helixflow")),
        ),
    ];
    for (what, tok) in refused {
        let r = invoke(tok.clone()).await;
        println!("{what:56} -> {} {}", r.status, r.code());
        assert_eq!(r.status, 401, "{what}: {}", r.text());
        // Not even a read of the (claimed) tenant works.
        let r = Http::with_token(Some(&tok))
            .get(&api.url("/api/v1/tenants/acme"))
            .await;
        assert_eq!(r.status, 401, "{what} (control plane): {}", r.text());
    }
    assert_eq!(
        runs(&api, "echo").await,
        2,
        "only the two accepted tokens ran the function"
    );
}

/// Function `env` values are sealed at rest with the node's secrets key (the store
/// file holds no value in the clear), viewers see only the names, developers and admins
/// the values, and the function gets the value at run time. A plain-text env written
/// before sealing existed still works and is sealed at the next config write.
#[tokio::test(flavor = "multi_thread")]
async fn sec_auth_function_env_is_sealed_at_rest_and_hidden_from_viewers() {
    let dir = tempfile::tempdir().unwrap();
    let secret = random_tag("Bonjour-s3cret-");
    let other = random_tag("db-password-");
    let node = Node::start(dir.path(), None);
    let api = Api::new(&node);
    api.create_tenant("acme").await;
    // The initial config comes with the deploy (x-helixflow-config) ...
    let cfg = json!({"env": {"GREETING": secret}}).to_string();
    let r = api
        .http
        .request(
            "POST",
            &api.url("/api/v1/tenants/acme/functions/hello/versions"),
            &[("x-helixflow-config", cfg.as_str())],
            helixflow_e2e::guest("hello"),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert!(!r.text().contains(&secret), "{}", r.text());
    // ... and a second function's through PUT config.
    api.deploy("acme", "hello2", "hello", "").await;
    let r = api
        .http
        .put_json(
            &api.url("/api/v1/tenants/acme/functions/hello2/config"),
            json!({"env": {"GREETING": secret, "DB_PASSWORD": other}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["config"]["env"]["DB_PASSWORD"],
        json!(other),
        "the admin who wrote it sees the value"
    );
    // The function gets the value at run time.
    for f in ["hello", "hello2"] {
        let r = api
            .http
            .get(&api.url(&format!("/acme/{f}/?name=Ada")))
            .await;
        println!("GET /acme/{f}/ -> {} {}", r.status, r.text().trim());
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(
            r.text().starts_with(&format!("{secret}, Ada!")),
            "{}",
            r.text()
        );
    }
    // Viewers see names only; developers (who may deploy) see the values.
    let viewer = Http::with_token(Some(&key(&api, "acme", "viewer").await));
    let developer = Http::with_token(Some(&key(&api, "acme", "developer").await));
    for path in [
        "/api/v1/tenants/acme/functions",
        "/api/v1/tenants/acme/functions/hello2",
        "/api/v1/tenants/acme/functions/hello2/config",
    ] {
        let r = viewer.get(&api.url(path)).await;
        println!(
            "viewer    GET {path:48} -> {} {}",
            r.status,
            r.text().chars().take(160).collect::<String>()
        );
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(
            !r.text().contains(&secret) && !r.text().contains(&other),
            "viewer saw a value: {}",
            r.text()
        );
        assert!(
            r.text().contains("DB_PASSWORD") && r.text().contains("GREETING"),
            "viewers see the names: {}",
            r.text()
        );
        let r = developer.get(&api.url(path)).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(
            r.text().contains(&secret) && r.text().contains(&other),
            "developer sees the values: {}",
            r.text()
        );
    }
    let r = viewer
        .get(&api.url("/api/v1/tenants/acme/functions/hello2/config"))
        .await
        .json();
    assert_eq!(r["env"], json!({"DB_PASSWORD": "***", "GREETING": "***"}));
    node.kill9();

    // What the store holds: sealed values only, nothing in the clear anywhere in the file.
    let db = dir.path().join("metadata.redb");
    {
        use helixflow_store::MetadataStore as _;
        let store = helixflow_store_redb::RedbMetadataStore::open(&db).unwrap();
        for f in ["hello", "hello2"] {
            let key = helixflow_store::keys::function("acme", f);
            let item = store.get(&key.pk, &key.sk).await.unwrap().unwrap();
            let env = item.attrs["config"]["env"].as_object().unwrap().clone();
            println!(
                "stored env of {f}: {}",
                Value::Object(env.clone())
                    .to_string()
                    .chars()
                    .take(120)
                    .collect::<String>()
            );
            for (name, v) in &env {
                let v = v.as_str().unwrap();
                assert!(
                    v.starts_with("sealed:v1:") && !v.contains(&secret) && !v.contains(&other),
                    "{f} {name}: {v}"
                );
            }
        }
        // A record written before sealing existed: plain text.
        let hello = helixflow_store::keys::function("acme", "hello");
        let mut item = store.get(&hello.pk, &hello.sk).await.unwrap().unwrap();
        let legacy = random_tag("Legacy-");
        item.attrs["config"]["env"]["GREETING"] = json!(legacy);
        store
            .put(
                &hello.pk,
                &hello.sk,
                item.attrs.clone(),
                helixflow_store::Condition::Always,
            )
            .await
            .unwrap();
        drop(store);
        let raw = String::from_utf8_lossy(&std::fs::read(&db).unwrap()).into_owned();
        assert!(
            !raw.contains(&secret) && !raw.contains(&other),
            "a value in the clear in the store file"
        );
        // The legacy value still works after a restart (same generated secrets key) ...
        let node = Node::start(dir.path(), None);
        let api = Api::new(&node);
        let r = api.http.get(&api.url("/acme/hello/?name=Ada")).await;
        assert!(
            r.text().starts_with(&format!("{legacy}, Ada!")),
            "legacy plain-text env: {}",
            r.text()
        );
        // ... and is sealed by the next config write.
        let r = api
            .http
            .put_json(
                &api.url("/api/v1/tenants/acme/functions/hello/config"),
                json!({"env": {"GREETING": legacy}}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(
            api.http
                .get(&api.url("/acme/hello/?name=Ada"))
                .await
                .text()
                .starts_with(&format!("{legacy}, Ada!"))
        );
        node.kill9();
        let store = helixflow_store_redb::RedbMetadataStore::open(&db).unwrap();
        let hello = helixflow_store::keys::function("acme", "hello");
        let item = store.get(&hello.pk, &hello.sk).await.unwrap().unwrap();
        let v = item.attrs["config"]["env"]["GREETING"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(v.starts_with("sealed:v1:") && !v.contains(&legacy), "{v}");
    }
    // A node with another secrets key cannot run it, and says why (no value leaks).
    let node = Node::start_with_env(
        dir.path(),
        None,
        &[(
            "HELIXFLOW_SECRETS_KEY",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        )],
    );
    let r = Http::new().get(&format!("{}/acme/hello2/", node.url)).await;
    println!(
        "another secrets key: GET /acme/hello2/ -> {} {}",
        r.status,
        r.text()
    );
    assert_eq!(r.status, 500, "{}", r.text());
    assert_eq!(r.code(), "secrets_unavailable");
    assert!(!r.text().contains(&secret));
    assert!(
        node.log()
            .contains("cannot open a sealed environment value"),
        "{}",
        node.log()
    );
}
