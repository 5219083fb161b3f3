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
        .arg(format!(
            "Authorization: Bearer {}",
            helixflow_e2e::admin_key()
        ))
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

/// Mutual TLS for the control plane: with `client_ca` set, `/api` answers only over
/// HTTPS with a client certificate that CA signed; the data plane is unaffected.
#[tokio::test(flavor = "multi_thread")]
async fn the_control_plane_can_require_client_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let tls_dir = dir.path().join("tls");
    std::fs::create_dir_all(&tls_dir).unwrap();
    let server_ca = write_cert(&tls_dir, "server");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "helixflow test clients CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap())
        .unwrap();
    let client_key = rcgen::KeyPair::generate().unwrap();
    let mut cp = rcgen::CertificateParams::new(vec!["ops-client".to_string()]).unwrap();
    cp.distinguished_name.push(rcgen::DnType::CommonName, "ops");
    cp.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = cp.signed_by(&client_key, &ca).unwrap();
    // A certificate from a CA the node does not trust.
    let rogue_key = rcgen::KeyPair::generate().unwrap();
    let rogue = rcgen::CertificateParams::new(vec!["rogue".to_string()])
        .unwrap()
        .self_signed(&rogue_key)
        .unwrap();
    let p = |n: &str| tls_dir.join(n).display().to_string();
    std::fs::write(p("clients-ca.pem"), ca.pem()).unwrap();
    std::fs::write(p("client.pem"), client_cert.pem()).unwrap();
    std::fs::write(p("client-key.pem"), client_key.serialize_pem()).unwrap();
    std::fs::write(p("rogue.pem"), rogue.pem()).unwrap();
    std::fs::write(p("rogue-key.pem"), rogue_key.serialize_pem()).unwrap();
    let config = format!(
        "[listen]\nhttps = \"127.0.0.1:0\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\nclient_ca = \"{}\"\n",
        p("cert.pem"),
        p("key.pem"),
        p("clients-ca.pem")
    );
    let node = Node::start(dir.path(), Some(&config));
    let https = node.https_url.clone().unwrap();
    let ca_arg = server_ca.to_str().unwrap().to_string();
    let with_cert = |extra: &[&str]| {
        let mut args: Vec<String> = vec![
            "--cacert".into(),
            ca_arg.clone(),
            "--cert".into(),
            p("client.pem"),
            "--key".into(),
            p("client-key.pem"),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        curl(&a)
    };
    let tenants = format!("{https}/api/v1/tenants");
    let (rc, out) = with_cert(&[
        "-w",
        "\n%{http_code}",
        "-H",
        "content-type: application/json",
        "-d",
        r#"{"name":"acme"}"#,
        &tenants,
    ]);
    println!("with the client certificate: POST /api/v1/tenants -> {out}");
    assert_eq!((rc, out.rsplit('\n').next().unwrap()), (0, "201"), "{out}");
    let (_, out) = curl(&["--cacert", &ca_arg, "-w", "\n%{http_code}", &tenants]);
    println!("HTTPS without a client certificate -> {out}");
    assert!(
        out.ends_with("403") && out.contains("client_certificate_required"),
        "{out}"
    );
    let (_, out) = curl(&[
        "--cacert",
        &ca_arg,
        "--cert",
        &p("rogue.pem"),
        "--key",
        &p("rogue-key.pem"),
        "-w",
        "\n%{http_code}",
        &tenants,
    ]);
    println!("a certificate from an untrusted CA -> {out:?}");
    assert!(!out.ends_with("200") && !out.ends_with("201"), "{out}");
    let (_, out) = curl(&[
        "-w",
        "\n%{http_code}",
        &format!("{}/api/v1/tenants", node.url),
    ]);
    println!("plain HTTP -> {out}");
    assert!(
        out.ends_with("403") && out.contains("client_certificate_required"),
        "{out}"
    );
    // Deploy over mutual TLS; the data plane (plain HTTP here) still serves.
    let wasm = helixflow_e2e::workspace_root().join("target/wasm32-wasip2/guest/hello.wasm");
    let wasm = std::env::var("HELIXFLOW_GUEST_DIR")
        .map(|d| std::path::PathBuf::from(d).join("hello.wasm"))
        .unwrap_or(wasm);
    let (rc, out) = with_cert(&[
        "-w",
        "\n%{http_code}",
        "--data-binary",
        &format!("@{}", wasm.display()),
        &format!("{https}/api/v1/tenants/acme/functions/hello/versions"),
    ]);
    assert_eq!((rc, out.rsplit('\n').next().unwrap()), (0, "201"), "{out}");
    let r = Api::new(&node)
        .http
        .get(&format!("{}/acme/hello/?name=mtls", node.url))
        .await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "Hello, mtls! (GET /)\n")
    );
}
