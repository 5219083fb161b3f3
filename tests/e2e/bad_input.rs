use helixflow_e2e::{Api, Node};
use serde_json::json;

fn files_under(dir: &std::path::Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| {
            if e.path().is_dir() {
                files_under(&e.path())
            } else {
                1
            }
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_uploads_are_rejected_with_codes_and_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), Some("[limits]\nmax_component_mb = 1\n"));
    let api = Api::new(&node);
    api.create_tenant("acme").await;

    let core_module = b"\0asm\x01\0\0\0".to_vec();
    let empty_component = b"\0asm\x0d\0\x01\0".to_vec();
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "core module without _start",
            core_module,
            400,
            "no_supported_export",
        ),
        (
            "garbage",
            b"this is not wasm at all".to_vec(),
            400,
            "not_a_component",
        ),
        (
            "truncated component",
            b"\0asm\x0d\0\x01\0\x01\xff".to_vec(),
            400,
            "compile_error",
        ),
        (
            "component exporting nothing",
            empty_component,
            400,
            "no_supported_export",
        ),
        ("empty body", Vec::new(), 400, "empty_body"),
    ];
    for (what, bytes, status, code) in cases {
        let r = api.deploy_raw("acme", "f", bytes, "").await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (status, code),
            "{what}: {}",
            r.text()
        );
        assert!(
            !r.json()["error"]["message"].as_str().unwrap().is_empty(),
            "{what}: a human message"
        );
    }
    // Oversize: refused from the declared length, before the upload is read.
    let (status, head, body) = helixflow_e2e::early_response(
        &node.url,
        "POST",
        "/api/v1/tenants/acme/functions/f/versions",
        2 << 20,
        4096,
    )
    .await;
    assert_eq!(status, 413, "{head}");
    assert!(body.contains("payload_too_large"), "{body}");
    assert!(head.contains("connection: close"), "{head}");
    let r = api
        .deploy_raw("acme", "Bad_Name", helixflow_e2e::guest("hello"), "")
        .await;
    assert_eq!((r.status, r.code().as_str()), (400, "invalid_request"));
    let r = api
        .deploy_raw("nobody", "f", helixflow_e2e::guest("hello"), "")
        .await;
    assert_eq!(r.status, 404);
    let r = api
        .http
        .request(
            "POST",
            &api.url("/api/v1/tenants/acme/functions/f/versions"),
            &[("x-helixflow-config", "{not json")],
            helixflow_e2e::guest("hello"),
        )
        .await;
    assert_eq!((r.status, r.code().as_str()), (400, "invalid_config"));

    // Nothing was stored: no function, no artifact.
    let r = api
        .http
        .get(&api.url("/api/v1/tenants/acme/functions"))
        .await;
    assert_eq!(r.json()["functions"], json!([]));
    assert_eq!(
        files_under(&dir.path().join("artifacts")),
        0,
        "no artifact written for rejected uploads"
    );

    // A good upload still works afterwards.
    assert_eq!(api.deploy("acme", "f", "hello", "").await, 1);
    assert_eq!(files_under(&dir.path().join("artifacts")), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_control_plane_requests_get_json_errors() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), None);
    let api = Api::new(&node);
    let r = api.http.post(&api.url("/api/v1/tenants"), "{oops").await;
    assert_eq!((r.status, r.code().as_str()), (400, "invalid_json"));
    let r = api
        .http
        .post_json(&api.url("/api/v1/tenants"), json!({"name": "api"}))
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (400, "invalid_request"),
        "reserved names"
    );
    api.create_tenant("acme").await;
    let r = api
        .http
        .post_json(&api.url("/api/v1/tenants"), json!({"name": "acme"}))
        .await;
    assert_eq!((r.status, r.code().as_str()), (409, "conflict"));
    let r = api
        .http
        .request("PATCH", &api.url("/api/v1/tenants"), &[], "")
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let r = api
        .http
        .get(&api.url("/api/v1/tenants/acme/functions/f/versions/zero"))
        .await;
    assert_eq!(r.status, 400);
    // Request body over the data-plane limit.
    api.deploy("acme", "chaos", "chaos", "").await;
    for path in ["/acme/chaos/echo", "/invoke/acme/chaos"] {
        let (status, head, body) =
            helixflow_e2e::early_response(&node.url, "POST", path, 7 << 20, 4096).await;
        assert_eq!(status, 413, "{path}: {head}");
        assert!(body.contains("payload_too_large"), "{path}: {body}");
    }
    // A chunked body (no Content-Length to check) that grows past the limit is cut off too.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = node.url.trim_start_matches("http://").to_string();
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let head = format!(
            "POST /invoke/acme/chaos HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {}\r\ntransfer-encoding: chunked\r\n\r\n",
            helixflow_e2e::admin_key()
        );
        s.write_all(head.as_bytes()).await.unwrap();
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..8 {
            if s.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                .await
                .is_err()
                || s.write_all(&chunk).await.is_err()
                || s.write_all(b"\r\n").await.is_err()
            {
                break;
            }
        }
        let _ = s.write_all(b"0\r\n\r\n").await;
        let mut buf = Vec::new();
        let _ =
            tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut buf)).await;
        let text = String::from_utf8_lossy(&buf);
        assert!(text.starts_with("HTTP/1.1 413"), "{text}");
        assert!(text.contains("payload_too_large"), "{text}");
    }
    // The node still serves.
    assert_eq!(api.http.get(&api.url("/acme/chaos/ok")).await.status, 200);
}

/// Bounded random-input run over HTTP request -> route/invocation mapping: random
/// methods, paths (encodings, dot segments, unicode, huge), query strings, headers and
/// bodies, as the platform admin (so they reach every route). No answer is a 5xx, and
/// the node serves on.
#[tokio::test(flavor = "multi_thread")]
async fn random_requests_never_get_a_server_error() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), None);
    let api = Api::new(&node);
    api.create_tenant("acme").await;
    api.deploy("acme", "hello", "hello", "?alias=live").await;
    api.deploy("acme", "echo", "echo-event", "").await;
    let mut x: u64 = 0x853c49e6748fea9b;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let segs = [
        "api",
        "v1",
        "tenants",
        "acme",
        "functions",
        "hello",
        "echo",
        "versions",
        "aliases",
        "live",
        "config",
        "logs",
        "models",
        "keys",
        "audit",
        "invoke",
        "v1",
        "embeddings",
        "metrics",
        "healthz",
        "..",
        ".",
        "%2e%2e",
        "%00",
        "%ff",
        "hello@1",
        "hello@live",
        "hello@",
        "@",
        "échec",
        "a%2Fb",
        "",
        "public",
        "admin",
        "gc",
        "inference",
        "0",
        "-1",
        "99999999999",
    ];
    let methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"];
    let bodies: [&[u8]; 6] = [
        b"",
        b"{}",
        b"{\"name\":",
        b"\xff\xfe\x00",
        b"[1,2,3]",
        b"{\"version\": -1}",
    ];
    let mut server_errors = Vec::new();
    for i in 0..2000 {
        let n = (next() % 7) as usize;
        let mut path = String::new();
        for _ in 0..n {
            path.push('/');
            path.push_str(segs[(next() as usize) % segs.len()]);
        }
        if path.is_empty() {
            path.push('/');
        }
        if next() % 50 == 0 {
            path.push_str(&"x".repeat(10_000));
        }
        if next() % 5 == 0 {
            path.push_str(&format!(
                "?{}={}",
                segs[(next() as usize) % segs.len()],
                next() % 1000
            ));
        }
        let method = methods[(next() as usize) % methods.len()];
        let body = bodies[(next() as usize) % bodies.len()].to_vec();
        let ct = if next() % 2 == 0 {
            "application/json"
        } else {
            "text/plain"
        };
        let url = format!("{}{}", node.url, path);
        let Ok(uri) = url.parse::<http::Uri>() else {
            continue;
        };
        let r = api.http.try_request(method, &uri.to_string(), body).await;
        match r {
            Ok(resp) if resp.status >= 500 => server_errors.push(format!(
                "#{i} {method} {:.120} ({ct}) -> {} {}",
                path,
                resp.status,
                resp.text()
            )),
            Ok(_) => {}
            Err(e) => server_errors.push(format!(
                "#{i} {method} {:.120} -> transport error {e}",
                path
            )),
        }
    }
    println!(
        "2000 random requests, {} server errors",
        server_errors.len()
    );
    for e in &server_errors {
        println!("  {e}");
    }
    assert!(server_errors.is_empty(), "{server_errors:#?}");
    assert_eq!(api.http.get(&api.url("/healthz")).await.status, 200);
    assert_eq!(
        api.http
            .get(&api.url("/acme/hello/?name=still"))
            .await
            .status,
        200
    );
}
