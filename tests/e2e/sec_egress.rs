//! Security hardening (issue 13): attack tests.
//!
//! Item 1, SSRF: a tenant's function lists internal hosts in `allow_outbound` and calls
//! them (loopback in every spelling, the cloud metadata service, private ranges, a DNS
//! name resolving to loopback). With the default node config every such request is
//! refused before any connection is made, logged and counted in `/metrics`; a node
//! that opts a range in (`[sandbox] allow_private`) lets allowed functions reach it.

use crate::lambda_api::LOOPBACK_EGRESS;
use helixflow_e2e::{Api, Node, Resp};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A listener that counts the TCP connections it accepts and answers each `200 ok`.
struct Listener {
    port: u16,
    conns: Arc<AtomicUsize>,
}

impl Listener {
    /// `None` when `ip` cannot be bound here (e.g. no IPv6 loopback).
    async fn start(ip: &str) -> Option<Listener> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind((ip, 0)).await.ok()?;
        let port = listener.local_addr().ok()?.port();
        let conns = Arc::new(AtomicUsize::new(0));
        let c = conns.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                c.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = [0u8; 8192];
                    let _ = s.read(&mut buf).await;
                    let _ = s
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                        )
                        .await;
                });
            }
        });
        Some(Listener { port, conns })
    }
    fn conns(&self) -> usize {
        self.conns.load(Ordering::SeqCst)
    }
}

/// The chaos guest's event handler GETs `url` through wasi:http.
async fn fetch(api: &Api<'_>, url: &str) -> Resp {
    api.http
        .post(&api.url("/invoke/acme/chaos"), format!("fetch {url}"))
        .await
}

fn assert_denied(r: &Resp, url: &str) {
    assert_eq!(r.status, 422, "{url}: {}", r.text());
    assert_eq!(
        r.json()["error"]["error_type"],
        "FetchFailed",
        "{url}: {}",
        r.text()
    );
    assert!(
        r.text().contains("HttpRequestDenied"),
        "{url}: {}",
        r.text()
    );
}

/// `helixflow_egress_denied_total{...,reason="<reason>"}` from `/metrics`.
async fn egress_denied(api: &Api<'_>, reason: &str) -> u64 {
    let m = api.http.get(&api.url("/metrics")).await.text();
    m.lines()
        .find(|l| {
            l.starts_with("helixflow_egress_denied_total{")
                && l.contains(&format!("reason=\"{reason}\""))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no egress_denied_total for {reason} in /metrics:\n{m}"))
}

async fn allow(api: &Api<'_>, hosts: &[String]) {
    let r = api
        .http
        .put_json(
            &api.url("/api/v1/tenants/acme/functions/chaos/config"),
            json!({"allow_outbound": hosts}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

/// With the default node config, a function whose allow-list names internal hosts
/// still reaches none of them: loopback in every spelling the resolver accepts
/// (`localhost`, `127.0.0.1`, `127.1`, `0x7f.1`, `2130706433`, octal, `0.0.0.0`,
/// IPv4-mapped IPv6, `[::1]`, `[::]`), the metadata service (169.254.169.254,
/// fd00:ec2::254), RFC 1918 and CGNAT addresses. The listener sees no connection; each
/// refusal is `HttpRequestDenied` to the guest, a log line and a count in `/metrics`.
#[tokio::test(flavor = "multi_thread")]
async fn internal_addresses_are_refused_in_every_spelling_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), None);
    let api = Api::new(&node);
    api.create_tenant("acme").await;
    api.deploy("acme", "chaos", "chaos", "").await;
    let v4 = Listener::start("127.0.0.1").await.expect("bind 127.0.0.1");
    let v6 = Listener::start("::1").await;
    let p = v4.port;
    let mut targets: Vec<(String, String)> = [
        format!("localhost:{p}"),
        format!("127.0.0.1:{p}"),
        format!("127.1:{p}"),
        format!("0x7f.1:{p}"),
        format!("2130706433:{p}"),
        format!("017700000001:{p}"),
        format!("0.0.0.0:{p}"),
        format!("[::ffff:127.0.0.1]:{p}"),
        format!("[::ffff:7f00:1]:{p}"),
        "169.254.169.254".to_string(),
        "[fd00:ec2::254]".to_string(),
        "10.0.0.1".to_string(),
        "192.168.0.1".to_string(),
        "100.100.100.200".to_string(),
    ]
    .into_iter()
    .map(|a| (a.clone(), format!("http://{a}/latest/meta-data/")))
    .collect();
    match &v6 {
        Some(l) => {
            for a in [format!("[::1]:{}", l.port), format!("[::]:{}", l.port)] {
                targets.push((a.clone(), format!("http://{a}/")));
            }
        }
        None => println!("no IPv6 loopback here: [::1] not tried"),
    }
    allow(
        &api,
        &targets.iter().map(|(a, _)| a.clone()).collect::<Vec<_>>(),
    )
    .await;
    for (_, url) in &targets {
        let r = fetch(&api, url).await;
        println!("{url} -> {} {}", r.status, r.text());
        assert_denied(&r, url);
    }
    assert_eq!(
        v4.conns(),
        0,
        "a refused request must not connect to 127.0.0.1"
    );
    if let Some(l) = &v6 {
        assert_eq!(l.conns(), 0, "a refused request must not connect to ::1");
    }
    assert_eq!(
        egress_denied(&api, "private_address").await,
        targets.len() as u64
    );
    // A host not on the allow-list at all is counted separately.
    assert_denied(&fetch(&api, "http://example.com/").await, "example.com");
    assert_eq!(egress_denied(&api, "not_allowed").await, 1);
    // Logged with the tenant, the function and the address.
    let log = node.log();
    assert!(
        log.lines().any(|l| l.contains("outbound request refused")
            && l.contains("169.254.169.254")
            && l.contains("chaos")
            && l.contains("acme")),
        "{log}"
    );
}

/// A node that opts loopback in (`[sandbox] allow_private = ["127.0.0.0/8"]`) lets a
/// function reach it, whatever name the allow-list uses; the function's allow-list
/// still applies, and ranges the node did not opt in stay closed.
#[tokio::test(flavor = "multi_thread")]
async fn a_node_that_opts_loopback_in_lets_allowed_functions_reach_it() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), Some(LOOPBACK_EGRESS));
    let api = Api::new(&node);
    api.create_tenant("acme").await;
    api.deploy("acme", "chaos", "chaos", "").await;
    let v4 = Listener::start("127.0.0.1").await.expect("bind 127.0.0.1");
    let v6 = Listener::start("::1").await;
    let p = v4.port;
    let mut hosts = vec![
        format!("localhost:{p}"),
        format!("127.0.0.1:{p}"),
        format!("[::ffff:127.0.0.1]:{p}"),
        "169.254.169.254".to_string(),
    ];
    if let Some(l) = &v6 {
        hosts.push(format!("[::1]:{}", l.port));
    }
    allow(&api, &hosts).await;
    for a in &hosts[..3] {
        let r = fetch(&api, &format!("http://{a}/")).await;
        assert_eq!((r.status, r.text()), (200, "200 ok".to_string()), "{a}");
    }
    assert_eq!(v4.conns(), 3);
    // Not opted in: the metadata service and IPv6 loopback (127.0.0.0/8 is IPv4 only).
    assert_denied(
        &fetch(&api, "http://169.254.169.254/").await,
        "169.254.169.254",
    );
    if let Some(l) = &v6 {
        let url = format!("http://[::1]:{}/", l.port);
        assert_denied(&fetch(&api, &url).await, &url);
        assert_eq!(l.conns(), 0);
    }
    // Opted-in range, but a port the function's allow-list does not name.
    let other = format!("http://127.0.0.1:{}/", p.wrapping_add(1));
    assert_denied(&fetch(&api, &other).await, &other);
    assert_eq!(v4.conns(), 3);
}
