//! Identities, RBAC and the audit log, adversarially: every test prints what it tried
//! and what happened.

use helixflow_e2e::{Api, Http, Node, Resp};
use serde_json::{Value, json};

async fn key(api: &Api<'_>, tenant: &str, role: &str) -> String {
    api.create_key(tenant, role).await.0
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Tenant `bob` with a function, a model, logs; tenant `alice` with an admin key.
async fn two_tenants(api: &Api<'_>) -> String {
    api.create_tenant("alice").await;
    api.create_tenant("bob").await;
    api.deploy("bob", "bob-secret-fn", "echo-event", "?alias=live")
        .await;
    let r = api
        .http
        .post(
            &api.url("/invoke/bob/bob-secret-fn"),
            "bob's private payload",
        )
        .await;
    assert_eq!(r.status, 200);
    let m = crate::nn::push(
        api,
        "bob",
        "bob-secret-model",
        "identity_fp32.onnx",
        json!({}),
    )
    .await;
    assert_eq!(m.status, 201);
    key(api, "alice", "admin").await
}

fn leaks(r: &Resp) -> bool {
    let t = r.text();
    t.contains("bob-secret") || t.contains("private payload")
}

#[tokio::test(flavor = "multi_thread")]
async fn another_tenants_credentials_reach_nothing_and_learn_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), None);
    let api = Api::new(&node);
    let alice_key = two_tenants(&api).await;
    let alice = Http::with_token(Some(&alice_key));
    let u = |p: &str| api.url(p);
    let wasm = helixflow_e2e::guest("echo-event");
    let attempts: Vec<(&str, String, Vec<u8>)> = vec![
        ("GET", u("/api/v1/tenants"), vec![]),
        (
            "POST",
            u("/api/v1/tenants"),
            br#"{"name":"mallory"}"#.to_vec(),
        ),
        ("GET", u("/api/v1/tenants/bob"), vec![]),
        ("GET", u("/api/v1/tenants/bob/functions"), vec![]),
        (
            "GET",
            u("/api/v1/tenants/bob/functions/bob-secret-fn"),
            vec![],
        ),
        ("GET", u("/api/v1/tenants/bob/functions/no-such-fn"), vec![]),
        (
            "POST",
            u("/api/v1/tenants/bob/functions/bob-secret-fn/versions"),
            wasm.clone(),
        ),
        (
            "DELETE",
            u("/api/v1/tenants/bob/functions/bob-secret-fn"),
            vec![],
        ),
        (
            "PUT",
            u("/api/v1/tenants/bob/functions/bob-secret-fn/config"),
            br#"{"public":true}"#.to_vec(),
        ),
        (
            "PUT",
            u("/api/v1/tenants/bob/functions/bob-secret-fn/aliases/live"),
            br#"{"version":1}"#.to_vec(),
        ),
        (
            "GET",
            u("/api/v1/tenants/bob/functions/bob-secret-fn/logs"),
            vec![],
        ),
        ("GET", u("/api/v1/tenants/bob/models"), vec![]),
        (
            "GET",
            u("/api/v1/tenants/bob/models/bob-secret-model"),
            vec![],
        ),
        (
            "DELETE",
            u("/api/v1/tenants/bob/models/bob-secret-model"),
            vec![],
        ),
        (
            "POST",
            u("/api/v1/tenants/bob/models/x/versions"),
            vec![1, 2, 3],
        ),
        ("GET", u("/api/v1/tenants/bob/keys"), vec![]),
        (
            "POST",
            u("/api/v1/tenants/bob/keys"),
            br#"{"name":"x","role":"admin"}"#.to_vec(),
        ),
        ("POST", u("/api/v1/tenants/bob/jwt-secret"), vec![]),
        ("GET", u("/api/v1/tenants/bob/audit"), vec![]),
        ("POST", u("/api/v1/admin/gc"), vec![]),
        ("GET", u("/api/v1/admin/inference"), vec![]),
        ("GET", u("/metrics"), vec![]),
        ("POST", u("/invoke/bob/bob-secret-fn"), b"x".to_vec()),
        ("POST", u("/invoke/bob/no-such-fn"), b"x".to_vec()),
        ("GET", u("/bob/bob-secret-fn/"), vec![]),
        ("POST", u("/public/models"), vec![]),
        (
            "POST",
            u("/api/v1/tenants/public/models/x/versions"),
            vec![1, 2, 3],
        ),
    ];
    let mut attempts = attempts;
    attempts.extend([
        ("GET", u("/api/v1/tenants/bob/events"), vec![]),
        (
            "GET",
            u("/api/v1/tenants/bob/events/01a217d7-67c9-7651-9405-2939135268fa"),
            vec![],
        ),
        (
            "POST",
            u("/api/v1/tenants/bob/events/01a217d7-67c9-7651-9405-2939135268fa/replay"),
            vec![],
        ),
        ("GET", u("/api/v1/tenants/bob/access-keys"), vec![]),
        (
            "POST",
            u("/api/v1/tenants/bob/access-keys"),
            br#"{"name":"x"}"#.to_vec(),
        ),
        (
            "POST",
            u("/2015-03-31/functions/bob:function:bob-secret-fn/invocations"),
            b"{}".to_vec(),
        ),
        (
            "POST",
            u("/2015-03-31/functions/bob:function:no-such-fn/invocations"),
            b"{}".to_vec(),
        ),
    ]);
    // The same with an admin JWT of alice's (HS256, alice's secret).
    let secret = api
        .http
        .post(&u("/api/v1/tenants/alice/jwt-secret"), "")
        .await
        .json()["hs256_secret"]
        .as_str()
        .unwrap()
        .to_string();
    let t = now();
    let jwt = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"sub": "alice-admin", "tenant": "alice", "role": "admin", "exp": t + 300, "aud": "helixflow"}),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap();
    let alice_jwt = Http::with_token(Some(&jwt));
    assert_eq!(
        alice_jwt.get(&u("/api/v1/tenants/alice")).await.status,
        200,
        "the JWT works in its own tenant"
    );
    for (who, client) in [("alice (API key)", &alice), ("alice (JWT)", &alice_jwt)] {
        for (method, url, body) in &attempts {
            let r = client.request(method, url, &[], body.clone()).await;
            println!(
                "{who:16} {method:6} {:70} -> {} {}",
                url.trim_start_matches(&node.url),
                r.status,
                r.code()
            );
            assert!(
                matches!(r.status, 401 | 403 | 404 | 405),
                "{who} {method} {url}: {} {}",
                r.status,
                r.text()
            );
            assert!(!leaks(&r), "{who} {method} {url} leaked: {}", r.text());
        }
    }
    // The same answer whether the function exists or not (no probing).
    let a = alice.post(&u("/invoke/bob/bob-secret-fn"), "x").await;
    let b = alice.post(&u("/invoke/bob/no-such-fn"), "x").await;
    assert_eq!((a.status, a.text()), (b.status, b.text()));
    // OpenAI API: alice's key is alice's tenant; bob's model is not there.
    let r = alice
        .request(
            "POST",
            &u("/v1/embeddings"),
            &[("openai-organization", "bob")],
            br#"{"model":"bob-secret-model","input":"x"}"#.to_vec(),
        )
        .await;
    println!(
        "alice POST /v1/embeddings as org bob -> {} {}",
        r.status,
        r.text()
    );
    assert_eq!(r.status, 404);
    // Bob's things are all still there.
    assert_eq!(
        api.http
            .get(&u("/api/v1/tenants/bob/functions/bob-secret-fn"))
            .await
            .status,
        200
    );
    assert_eq!(
        api.http
            .get(&u("/api/v1/tenants/bob/models/bob-secret-model"))
            .await
            .status,
        200
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn broken_credentials_are_401_never_500() {
    let dir = tempfile::tempdir().unwrap();
    // An Ed25519 key pair for JWKS-verified tokens.
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    use base64::Engine as _;
    let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(kp.public_key_raw());
    let jwks = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "k1", "alg": "EdDSA", "use": "sig"}]});
    std::fs::create_dir_all(dir.path()).unwrap();
    let jwks_path = dir.path().join("jwks.json");
    std::fs::write(&jwks_path, jwks.to_string()).unwrap();
    let node = Node::start(
        dir.path(),
        Some(&format!(
            "[auth]\njwks_file = \"{}\"\njwt_issuer = \"idp\"\njwt_leeway_secs = 5\n",
            jwks_path.display()
        )),
    );
    let api = Api::new(&node);
    api.create_tenant("acme").await;
    api.deploy("acme", "echo", "echo-event", "").await;
    let secret = api
        .http
        .post(&api.url("/api/v1/tenants/acme/jwt-secret"), "")
        .await
        .json()["hs256_secret"]
        .as_str()
        .unwrap()
        .to_string();
    let ed = jsonwebtoken::EncodingKey::from_ed_pem(kp.serialize_pem().as_bytes()).unwrap();
    let hs = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes());
    let claims = |exp: u64, nbf: u64, aud: &str, iss: &str, tenant: &str| json!({"sub": "u1", "tenant": tenant, "role": "invoker", "exp": exp, "nbf": nbf, "aud": aud, "iss": iss});
    let hs256 = |c: &Value| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            c,
            &hs,
        )
        .unwrap()
    };
    let eddsa = |c: &Value| {
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        h.kid = Some("k1".into());
        jsonwebtoken::encode(&h, c, &ed).unwrap()
    };
    let t = now();
    let good = claims(t + 300, t - 10, "helixflow", "idp", "acme");
    let invoke = |token: Option<String>| {
        let url = api.url("/invoke/acme/echo");
        async move { Http::with_token(token.as_deref()).post(&url, "hi").await }
    };
    // The good ones work, both ways.
    assert_eq!(
        invoke(Some(hs256(&good))).await.status,
        200,
        "HS256 with the tenant's secret"
    );
    assert_eq!(
        invoke(Some(eddsa(&good))).await.status,
        200,
        "EdDSA from the JWKS file"
    );
    let revoked = key(&api, "acme", "invoker").await;
    let prefix = revoked[4..16].to_string();
    assert_eq!(invoke(Some(revoked.clone())).await.status, 200);
    let r = api
        .http
        .request(
            "DELETE",
            &api.url(&format!("/api/v1/tenants/acme/keys/{prefix}")),
            &[],
            Vec::new(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = api
        .http
        .post_json(
            &api.url("/api/v1/tenants/acme/keys"),
            json!({"name": "short", "role": "invoker", "expires_in_secs": 1}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let expiring = r.json()["key"].as_str().unwrap().to_string();
    assert_eq!(
        invoke(Some(expiring.clone())).await.status,
        200,
        "valid before it expires"
    );
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    let alg_none = format!(
        "{}.{}.",
        B64.encode(r#"{"alg":"none","typ":"JWT"}"#),
        B64.encode(good.to_string())
    );
    // Change the signature's first character (the last one only carries padding bits
    // for a 32-byte HMAC, so changing it may not change the signature at all).
    let good_hs = hs256(&good);
    let sig_at = good_hs.rfind('.').unwrap() + 1;
    let first = &good_hs[sig_at..sig_at + 1];
    let tampered = format!(
        "{}{}{}",
        &good_hs[..sig_at],
        if first == "A" { "B" } else { "A" },
        &good_hs[sig_at + 1..]
    );
    let cases: Vec<(&str, Option<String>)> = vec![
        ("no credentials", None),
        (
            "expired JWT",
            Some(hs256(&claims(t - 600, t - 900, "helixflow", "idp", "acme"))),
        ),
        (
            "not-yet-valid JWT",
            Some(hs256(&claims(t + 900, t + 600, "helixflow", "idp", "acme"))),
        ),
        (
            "wrong signature (other secret)",
            Some(
                jsonwebtoken::encode(
                    &jsonwebtoken::Header::default(),
                    &good,
                    &jsonwebtoken::EncodingKey::from_secret(b"guess"),
                )
                .unwrap(),
            ),
        ),
        ("tampered signature", Some(tampered)),
        ("alg: none", Some(alg_none)),
        (
            "wrong audience",
            Some(eddsa(&claims(
                t + 300,
                t - 10,
                "someone-else",
                "idp",
                "acme",
            ))),
        ),
        (
            "wrong issuer",
            Some(eddsa(&claims(t + 300, t - 10, "helixflow", "evil", "acme"))),
        ),
        (
            "EdDSA token with an unknown kid",
            Some({
                let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
                h.kid = Some("nope".into());
                jsonwebtoken::encode(&h, &good, &ed).unwrap()
            }),
        ),
        (
            "HS256 for a tenant without a secret",
            Some(hs256(&claims(t + 300, t - 10, "helixflow", "idp", "ghost"))),
        ),
        ("revoked key", Some(revoked)),
        ("expired key", Some(expiring.clone())),
        (
            "unknown key",
            Some(format!("hfk_0123456789ab_{}", "A".repeat(43))),
        ),
        ("malformed key", Some("hfk_xyz".into())),
        ("garbage", Some("!!!".into())),
        ("a.b.c", Some("a.b.c".into())),
        ("huge token", Some("x".repeat(20_000))),
    ];
    for (what, token) in cases {
        let r = invoke(token).await;
        println!("{what:40} -> {} {}", r.status, r.code());
        assert!(
            r.status == 401 || r.status == 403,
            "{what}: {} {}",
            r.status,
            r.text()
        );
    }
    let r = invoke(Some(expiring)).await;
    assert_eq!(r.code(), "expired_credentials", "{}", r.text());
    for (what, header) in [
        ("Basic scheme", "Basic dXNlcjpwYXNz"),
        ("Bearer without token", "Bearer"),
        ("Bearer + spaces", "Bearer    "),
    ] {
        let r = Http::anonymous()
            .request(
                "POST",
                &api.url("/invoke/acme/echo"),
                &[("authorization", header)],
                b"x".to_vec(),
            )
            .await;
        println!("{what:40} -> {} {}", r.status, r.code());
        assert_eq!(r.status, 401, "{what}");
    }
    assert_eq!(api.http.get(&api.url("/healthz")).await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn roles_public_functions_and_the_audit_log() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), None);
    let api = Api::new(&node);
    api.create_tenant("acme").await;
    api.deploy("acme", "echo", "echo-event", "").await;
    api.deploy("acme", "hello", "hello", "").await;
    let keys: Vec<(String, Http)> = {
        let mut v = Vec::new();
        for role in ["admin", "developer", "invoker", "viewer"] {
            let k = key(&api, "acme", role).await;
            v.push((role.to_string(), Http::with_token(Some(&k))));
        }
        v
    };
    let u = |p: &str| api.url(p);
    let wasm = helixflow_e2e::guest("echo-event");
    // (what, method, path, body, roles allowed)
    type Case<'a> = (&'a str, &'a str, String, Vec<u8>, &'a [&'a str]);
    let matrix: Vec<Case> = vec![
        (
            "create a key",
            "POST",
            u("/api/v1/tenants/acme/keys"),
            br#"{"name":"n","role":"viewer"}"#.to_vec(),
            &["admin"],
        ),
        (
            "list keys",
            "GET",
            u("/api/v1/tenants/acme/keys"),
            vec![],
            &["admin"],
        ),
        (
            "deploy",
            "POST",
            u("/api/v1/tenants/acme/functions/echo/versions"),
            wasm,
            &["admin", "developer"],
        ),
        (
            "list functions",
            "GET",
            u("/api/v1/tenants/acme/functions"),
            vec![],
            &["admin", "developer", "viewer"],
        ),
        (
            "read logs",
            "GET",
            u("/api/v1/tenants/acme/functions/echo/logs"),
            vec![],
            &["admin", "developer", "viewer"],
        ),
        (
            "read audit",
            "GET",
            u("/api/v1/tenants/acme/audit"),
            vec![],
            &["admin", "developer", "viewer"],
        ),
        (
            "invoke",
            "POST",
            u("/invoke/acme/echo"),
            b"x".to_vec(),
            &["admin", "developer", "invoker"],
        ),
        (
            "create a tenant",
            "POST",
            u("/api/v1/tenants"),
            br#"{"name":"other"}"#.to_vec(),
            &[],
        ),
    ];
    for (what, method, url, body, allowed) in matrix {
        for (role, http) in &keys {
            let r = http
                .request(
                    method,
                    &url,
                    &[("content-type", "application/json")],
                    body.clone(),
                )
                .await;
            let ok = r.status < 300;
            println!("{role:10} {what:16} -> {}", r.status);
            assert_eq!(
                ok,
                allowed.contains(&role.as_str()),
                "{role} {what}: {} {}",
                r.status,
                r.text()
            );
            if !ok {
                assert_eq!(r.status, 403, "{role} {what}");
            }
        }
    }
    // HTTP endpoints need credentials unless the function is public.
    let anon = Http::anonymous();
    assert_eq!(anon.get(&u("/acme/hello/")).await.status, 401);
    let r = api
        .http
        .put_json(
            &u("/api/v1/tenants/acme/functions/hello/config"),
            json!({"public": true}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let r = anon.get(&u("/acme/hello/?name=anyone")).await;
    assert_eq!(
        r.status,
        200,
        "a public function answers anyone: {}",
        r.text()
    );
    assert_eq!(
        anon.post(&u("/invoke/acme/hello"), "x").await.status,
        401,
        "public covers HTTP only"
    );
    assert_eq!(anon.get(&u("/metrics")).await.status, 401);
    // The audit log: control-plane writes and refusals, with actor, outcome and source.
    let log = keys[0]
        .1
        .get(&u("/api/v1/tenants/acme/audit?limit=500"))
        .await
        .json();
    let recs = log["records"].as_array().unwrap();
    println!("{} audit records; newest: {}", recs.len(), recs[0]);
    let has = |action: &str, outcome: &str| {
        recs.iter()
            .any(|r| r["action"].as_str().unwrap().starts_with(action) && r["outcome"] == outcome)
    };
    assert!(
        has("POST tenants/*/functions/*/versions", "ok"),
        "deploys are audited"
    );
    assert!(has("POST tenants/*/keys", "ok"), "key creation is audited");
    assert!(has("auth.denied", "forbidden"), "refusals are audited");
    assert!(
        has("auth.denied", "missing_credentials"),
        "anonymous refusals too"
    );
    assert!(
        recs.iter()
            .all(|r| r["source"].as_str().unwrap().starts_with("127.0.0.1:")
                && !r["at"].as_str().unwrap().is_empty())
    );
    assert!(
        recs.iter()
            .any(|r| r["actor"].as_str().unwrap().starts_with("key:"))
    );
    assert!(
        !log.to_string().contains("hfk_"),
        "no key material in the audit log"
    );
    // Keys are stored hashed: the list never shows a key.
    let listed = keys[0].1.get(&u("/api/v1/tenants/acme/keys")).await;
    assert!(
        !listed.text().contains("hfk_") && !listed.text().contains("sha256"),
        "{}",
        listed.text()
    );
}

/// RS256/EdDSA keys from `[auth] jwks_url`: fetched at start, refetched, rotated keys
/// picked up, an unreachable issuer keeps the keys already loaded.
#[tokio::test(flavor = "multi_thread")]
async fn jwks_from_a_url_is_fetched_and_rotated() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    let new_key = || {
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(kp.public_key_raw());
        (kp, x)
    };
    let (k1, x1) = new_key();
    let (k2, x2) = new_key();
    let doc = std::sync::Arc::new(std::sync::Mutex::new(
        json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x1, "kid": "k1", "alg": "EdDSA"}]})
            .to_string(),
    ));
    let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    {
        let (doc, up) = (doc.clone(), up.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (doc, up) = (doc.clone(), up.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(
                        move |_req: http::Request<hyper::body::Incoming>| {
                            let (body, status) = if up.load(std::sync::atomic::Ordering::SeqCst) {
                                (doc.lock().unwrap().clone(), 200)
                            } else {
                                ("down".to_string(), 503)
                            };
                            async move {
                                Ok::<_, std::convert::Infallible>(
                                    http::Response::builder()
                                        .status(status)
                                        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
                                        .unwrap(),
                                )
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
    }
    let node = Node::start(
        dir.path(),
        Some(&format!(
            "[auth]\njwks_url = \"http://127.0.0.1:{port}/jwks.json\"\njwks_refresh_secs = 1\n"
        )),
    );
    let api = Api::new(&node);
    api.create_tenant("acme").await;
    api.deploy("acme", "echo", "echo-event", "").await;
    let t = now();
    let claims = json!({"sub": "u1", "tenant": "acme", "role": "invoker", "exp": t + 300, "aud": "helixflow"});
    let token = |kp: &rcgen::KeyPair, kid: &str| {
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        h.kid = Some(kid.into());
        jsonwebtoken::encode(
            &h,
            &claims,
            &jsonwebtoken::EncodingKey::from_ed_pem(kp.serialize_pem().as_bytes()).unwrap(),
        )
        .unwrap()
    };
    let invoke = |tok: String| {
        let url = api.url("/invoke/acme/echo");
        async move { Http::with_token(Some(&tok)).post(&url, "hi").await.status }
    };
    assert_eq!(
        invoke(token(&k1, "k1")).await,
        200,
        "k1 from the fetched JWKS"
    );
    assert_eq!(
        invoke(token(&k2, "k2")).await,
        401,
        "k2 is not published yet"
    );
    // The issuer rotates: k2 published, k1 withdrawn.
    *doc.lock().unwrap() =
        json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x2, "kid": "k2", "alg": "EdDSA"}]})
            .to_string();
    let mut status = 0;
    for _ in 0..50 {
        status = invoke(token(&k2, "k2")).await;
        if status == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200, "k2 accepted after the refresh");
    assert_eq!(invoke(token(&k1, "k1")).await, 401, "withdrawn k1 refused");
    println!("rotation picked up within the 1 s refresh");
    // The issuer goes down: the keys already loaded stay.
    up.store(false, std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(
        invoke(token(&k2, "k2")).await,
        200,
        "keys kept while the issuer is down"
    );
    assert!(
        node.log().contains("JWKS fetch failed"),
        "the failed refresh is logged"
    );
}

/// Secrets the store must keep (access-key secrets, JWT secrets) are sealed at rest with
/// the node's secrets key: the stored items never hold them in the clear; a restart with
/// the same key still verifies; a node with another key refuses, and says why.
#[tokio::test(flavor = "multi_thread")]
async fn stored_secrets_are_sealed_and_need_the_nodes_key() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), None);
    let api = Api::new(&node);
    api.create_tenant("acme").await;
    api.deploy("acme", "echo", "echo-event", "").await;
    let jwt_secret = api
        .http
        .post(&api.url("/api/v1/tenants/acme/jwt-secret"), "")
        .await
        .json()["hs256_secret"]
        .as_str()
        .unwrap()
        .to_string();
    let r = api
        .http
        .post_json(
            &api.url("/api/v1/tenants/acme/access-keys"),
            json!({"name": "sealed"}),
        )
        .await;
    assert_eq!(r.status, 201);
    let (akid, ak_secret) = (
        r.json()["access_key_id"].as_str().unwrap().to_string(),
        r.json()["secret_access_key"].as_str().unwrap().to_string(),
    );
    let t = now();
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"sub": "u", "tenant": "acme", "role": "invoker", "exp": t + 300, "aud": "helixflow"}),
        &jsonwebtoken::EncodingKey::from_secret(jwt_secret.as_bytes()),
    )
    .unwrap();
    let invoke = |url: String, tok: String| async move {
        Http::with_token(Some(&tok))
            .post(&format!("{url}/invoke/acme/echo"), "hi")
            .await
            .status
    };
    assert_eq!(invoke(node.url.clone(), token.clone()).await, 200);
    node.kill9();

    // What the store holds.
    {
        let store = helixflow_store_redb::RedbMetadataStore::open(dir.path().join("metadata.redb"))
            .unwrap();
        use helixflow_store::MetadataStore as _;
        use helixflow_store::keys::{self, Credential};
        let key = keys::credential(Credential::AccessKey, "acme", &akid);
        let ak = store.get(&key.pk, &key.sk).await.unwrap().unwrap();
        let key = keys::jwt_secret("acme");
        let jwt = store.get(&key.pk, &key.sk).await.unwrap().unwrap();
        let (ak_stored, jwt_stored) = (
            ak.str("secret").unwrap().to_string(),
            jwt.str("hs256_secret").unwrap().to_string(),
        );
        println!(
            "stored access-key secret: {}...\nstored JWT secret: {}...",
            &ak_stored[..24],
            &jwt_stored[..24]
        );
        assert!(ak_stored.starts_with("sealed:v1:") && !ak_stored.contains(&ak_secret));
        assert!(jwt_stored.starts_with("sealed:v1:") && !jwt_stored.contains(&jwt_secret));
        let raw = std::fs::read(dir.path().join("metadata.redb")).unwrap();
        let raw = String::from_utf8_lossy(&raw);
        assert!(
            !raw.contains(&ak_secret) && !raw.contains(&jwt_secret),
            "no secret in the clear anywhere in the store file"
        );
    }
    // Same key (the generated data_dir/secrets.key): still verifies after a restart.
    let node = Node::start(dir.path(), None);
    assert_eq!(invoke(node.url.clone(), token.clone()).await, 200);
    node.kill9();
    // Another key: refused, and the log says why.
    let node = Node::start_with_env(
        dir.path(),
        None,
        &[(
            "HELIXFLOW_SECRETS_KEY",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        )],
    );
    assert_eq!(invoke(node.url.clone(), token).await, 401);
    assert!(
        node.log().contains("cannot open the tenant's JWT secret"),
        "{}",
        node.log()
    );
}

/// `GET /api/v1/whoami` tells a credential who it is (how a client learns its key's
/// tenant), for every kind of credential; without one it is 401.
#[tokio::test(flavor = "multi_thread")]
async fn whoami_names_the_tenant_and_role_of_the_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), None);
    let api = Api::new(&node);
    api.create_tenant("alice").await;
    let url = api.url("/api/v1/whoami");
    for role in ["admin", "developer", "invoker", "viewer"] {
        let (k, prefix) = api.create_key("alice", role).await;
        let r = Http::with_token(Some(&k)).get(&url).await;
        assert_eq!(r.status, 200, "{role}: {}", r.text());
        let v = r.json();
        assert_eq!(v["tenant"], "alice", "{v}");
        assert_eq!(v["role"], role, "{v}");
        assert_eq!(v["subject"], format!("key:{prefix}"), "{v}");
        assert_eq!(v["via"], "api_key", "{v}");
        assert!(!r.text().contains(&k), "the secret is never echoed: {v}");
    }
    let v = api.http.get(&url).await.json();
    assert_eq!(
        v,
        json!({"tenant": null, "role": "admin", "subject": "platform-admin", "via": "admin_key"})
    );
    let r = Http::anonymous().get(&url).await;
    assert_eq!(r.status, 401, "{}", r.text());
    let r = Http::with_token(Some("hfk_nope_nope")).get(&url).await;
    assert_eq!(r.status, 401, "{}", r.text());
}
