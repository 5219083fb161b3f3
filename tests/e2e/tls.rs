//! HTTPS with rustls: ALPN h2 and http/1.1, a real certificate check, and rotation of
//! the certificate files without a restart. The client is curl.

use helixflow_e2e::{Api, Node};
use std::path::Path;
use std::time::{Duration, Instant};

fn write_cert(dir: &Path, name: &str) -> std::path::PathBuf {
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    let ca = dir.join(format!("{name}-ca.pem"));
    std::fs::write(&ca, ck.cert.pem()).unwrap();
    // Key first, then the certificate: the node reloads the pair when either changes.
    std::fs::write(dir.join("key.pem"), ck.signing_key.serialize_pem()).unwrap();
    std::fs::write(dir.join("cert.pem"), ck.cert.pem()).unwrap();
    ca
}

fn curl(args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .arg("-H")
        .arg(format!("Authorization: Bearer {}", helixflow_e2e::admin_key()))
        .args(args)
        .output()
        .expect("curl is installed");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn https_serves_h2_and_http11_and_picks_up_a_rotated_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let tls_dir = dir.path().join("tls");
    std::fs::create_dir_all(&tls_dir).unwrap();
    let ca1 = write_cert(&tls_dir, "first");
    let config = format!(
        "[listen]\nhttps = \"127.0.0.1:0\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
        tls_dir.join("cert.pem").display(),
        tls_dir.join("key.pem").display()
    );
    let node = Node::start(dir.path(), Some(&config));
    let https = node
        .https_url
        .clone()
        .expect("the node prints its https address");
    let api = Api::new(&node);
    api.create_tenant("acme").await;
    api.deploy("acme", "hello", "hello", "").await;
    let url = format!("{https}/acme/hello/tls?name=TLS");

    let (rc, out) = curl(&[
        "--cacert",
        ca1.to_str().unwrap(),
        "--http2",
        "-w",
        "\n%{http_version} %{http_code}",
        &url,
    ]);
    assert_eq!(
        (rc, out.as_str()),
        (0, "Hello, TLS! (GET /tls)\n\n2 200"),
        "h2 via ALPN"
    );
    let (rc, out) = curl(&[
        "--cacert",
        ca1.to_str().unwrap(),
        "--http1.1",
        "-o",
        "/dev/null",
        "-w",
        "%{http_version} %{http_code}",
        &url,
    ]);
    assert_eq!((rc, out.as_str()), (0, "1.1 200"), "HTTP/1.1 over TLS");
    let (rc, _) = curl(&["-o", "/dev/null", &url]);
    assert_eq!(
        rc, 60,
        "an untrusted certificate is refused: the TLS is real"
    );

    // Rotate: new key and certificate on disk; the node switches without a restart.
    let ca2 = write_cert(&tls_dir, "second");
    let started = Instant::now();
    loop {
        let (rc, out) = curl(&[
            "--cacert",
            ca2.to_str().unwrap(),
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &url,
        ]);
        if rc == 0 && out == "200" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "rotated certificate not picked up (curl {rc})"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "certificate rotation picked up after {:?}",
        started.elapsed()
    );
    let (rc, _) = curl(&["--cacert", ca1.to_str().unwrap(), "-o", "/dev/null", &url]);
    assert_eq!(rc, 60, "the old certificate is no longer served");
    // Plain HTTP still works alongside.
    assert_eq!(api.http.get(&api.url("/healthz")).await.status, 200);
}
