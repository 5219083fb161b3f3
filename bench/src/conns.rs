//! Connection capacity of one node (issue 18): many concurrent keep-alive connections
//! held open while the node keeps answering. Two phases, each on a fresh node with its
//! default `[http]` settings, serving the public `hello` function:
//!
//! * HTTP/1.1: opens CONNS keep-alive connections (each sends one GET and reads the
//!   whole response, then stays open idle) and prints the node's RSS per idle
//!   connection; then, with all of them held, ROUNDS rounds in which every connection
//!   sends one more request (at most CONCURRENCY in flight), each round followed by an
//!   idle hold of HOLD_SECS.
//! * HTTP/2 (prior knowledge, h2c on the plain listener): H2_CONNS connections, RSS per
//!   idle connection, then ROUNDS rounds in which every connection has STREAMS requests
//!   in flight at once (H2_CONNS x STREAMS concurrent streams).
//!
//! Throughout each phase a separate client opens a fresh connection every 10 ms, sends
//! one request and times it (p50/p99), to show that the node keeps answering. Every
//! request must return 200 with hello's body and no held connection may be closed: the
//! exit status is non-zero on any error.
//!
//! The node allows `max_connections_per_ip` (1024) connections per client address, so
//! the held connections come from the loopback addresses 127.0.0.2, 127.0.0.3, ...
//! (PER_ADDRESS each), like clients on many hosts; the probe uses 127.0.0.1. The process
//! raises its open-file limit (RLIMIT_NOFILE) and the node it spawns inherits it.
//!
//! usage: conns-bench [CONNS=10000] [H2_CONNS=100] [STREAMS=100] [ROUNDS=3] [CONCURRENCY=256] [HOLD_SECS=5]
//! (needs HELIXFLOW_BIN and HELIXFLOW_GUEST_DIR, like the e2e tests)

use anyhow::{Context, Result, bail, ensure};
use bytes::Bytes;
use futures::StreamExt;
use helixflow_e2e::{Api, Http, Node};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Held connections per client address: under the node's default
/// `max_connections_per_ip` (1024).
const PER_ADDRESS: usize = 1000;
const PATH: &str = "/bench/hello/";
/// Longest any one request (connect included) may take before it counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The node under test.
struct Target {
    addr: SocketAddr,
    /// `host:port`, for the Host header / `:authority`.
    authority: String,
}

/// Errors of a phase, and whether its held connections should still be open.
#[derive(Default)]
struct Health {
    holding: AtomicBool,
    closed_early: AtomicUsize,
    errors: AtomicUsize,
    first_errors: Mutex<Vec<String>>,
}

impl Health {
    fn error(&self, e: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_errors.lock().unwrap_or_else(|p| p.into_inner());
        if first.len() < 5 {
            first.push(e);
        }
    }

    /// The task driving a held connection ended: an error while the bench holds it.
    fn connection_ended(&self, how: String) {
        if self.holding.load(Ordering::Acquire) {
            self.closed_early.fetch_add(1, Ordering::Relaxed);
            self.error(format!("held connection closed: {how}"));
        }
    }
}

/// Raises this process's soft RLIMIT_NOFILE to at least `want` (and the hard limit
/// with it when allowed, i.e. as root); returns the soft limit now in force.
fn raise_nofile(want: u64) -> Result<u64> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read/write the struct passed to them.
    unsafe {
        ensure!(
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0,
            "getrlimit: {}",
            std::io::Error::last_os_error()
        );
        if r.rlim_cur < want {
            let raised = libc::rlimit {
                rlim_cur: want,
                rlim_max: r.rlim_max.max(want),
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
                // Not privileged: as far as the hard limit goes.
                let soft = libc::rlimit {
                    rlim_cur: r.rlim_max,
                    rlim_max: r.rlim_max,
                };
                libc::setrlimit(libc::RLIMIT_NOFILE, &soft);
            }
            ensure!(
                libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0,
                "getrlimit: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    Ok(r.rlim_cur)
}

/// VmRSS of `pid`, KiB.
fn rss_kib(pid: u32) -> Result<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS in /proc/PID/status")
}

/// Open file descriptors of `pid`.
fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// `Max open files` (soft) of `pid`.
fn nofile_of(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/limits"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3).map(str::to_string))
        })
        .unwrap_or_else(|| "?".into())
}

/// The node's `connections_open` gauge, from `/metrics`.
async fn connections_open(node: &Node) -> String {
    let r = Http::new().get(&format!("{}/metrics", node.url)).await;
    r.text()
        .lines()
        .find(|l| !l.starts_with('#') && l.contains("connections_open"))
        .and_then(|l| l.rsplit(' ').next())
        .unwrap_or("?")
        .to_string()
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

fn source(i: usize) -> Result<Ipv4Addr> {
    let host = 2 + i / PER_ADDRESS;
    ensure!(host < 255, "too many connections for 127.0.0.2-254");
    Ok(Ipv4Addr::new(127, 0, 0, host as u8))
}

async fn connect(t: &Target, from: Option<Ipv4Addr>) -> Result<tokio::net::TcpStream> {
    let s = tokio::net::TcpSocket::new_v4()?;
    if let Some(ip) = from {
        s.bind(SocketAddr::new(ip.into(), 0))
            .with_context(|| format!("bind {ip}"))?;
    }
    let stream = s.connect(t.addr).await.context("connect")?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Reads a response whole; it must be hello's 200.
async fn check(resp: http::Response<hyper::body::Incoming>) -> Result<()> {
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    ensure!(
        status == 200 && body.starts_with(b"Hello"),
        "status {status}: {}",
        String::from_utf8_lossy(&body[..body.len().min(200)])
    );
    Ok(())
}

/// One GET of hello on an HTTP/1.1 connection; its latency.
async fn get_h1(tx: &mut http1::SendRequest<Empty<Bytes>>, t: &Target) -> Result<Duration> {
    let start = Instant::now();
    let work = async {
        tx.ready().await?;
        let req = http::Request::get(PATH)
            .header("host", &t.authority)
            .body(Empty::new())?;
        check(tx.send_request(req).await?).await
    };
    tokio::time::timeout(REQUEST_TIMEOUT, work)
        .await
        .context("timed out")??;
    Ok(start.elapsed())
}

/// One GET of hello as a new stream of an HTTP/2 connection; its latency.
async fn get_h2(mut tx: http2::SendRequest<Empty<Bytes>>, t: &Target) -> Result<Duration> {
    let start = Instant::now();
    let work = async {
        tx.ready().await?;
        let req = http::Request::get(format!("http://{}{PATH}", t.authority)).body(Empty::new())?;
        check(tx.send_request(req).await?).await
    };
    tokio::time::timeout(REQUEST_TIMEOUT, work)
        .await
        .context("timed out")??;
    Ok(start.elapsed())
}

/// A held HTTP/1.1 connection from `from`, after its first request.
async fn open_h1(
    t: Arc<Target>,
    from: Ipv4Addr,
    health: Arc<Health>,
) -> Result<http1::SendRequest<Empty<Bytes>>> {
    let stream = connect(&t, Some(from)).await?;
    let (mut tx, conn) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let r = conn.await;
        health.connection_ended(format!("{r:?}"));
    });
    get_h1(&mut tx, &t).await?;
    Ok(tx)
}

/// A held HTTP/2 connection from `from`, after its first request.
async fn open_h2(
    t: Arc<Target>,
    from: Ipv4Addr,
    health: Arc<Health>,
) -> Result<http2::SendRequest<Empty<Bytes>>> {
    let stream = connect(&t, Some(from)).await?;
    let (tx, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let r = conn.await;
        health.connection_ended(format!("{r:?}"));
    });
    get_h2(tx.clone(), &t).await?;
    Ok(tx)
}

/// Fresh-connection requests, one every 10 ms until `stop`: latencies while `busy`
/// (a round running) and while the held connections are idle.
async fn probe(
    t: Arc<Target>,
    stop: Arc<AtomicBool>,
    busy: Arc<AtomicBool>,
    health: Arc<Health>,
) -> (Vec<Duration>, Vec<Duration>) {
    let (mut during, mut idle) = (Vec::new(), Vec::new());
    while !stop.load(Ordering::Acquire) {
        let was_busy = busy.load(Ordering::Acquire);
        let start = Instant::now();
        let r = async {
            let stream = tokio::time::timeout(REQUEST_TIMEOUT, connect(&t, None))
                .await
                .context("connect timed out")??;
            let (mut tx, conn) = http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            get_h1(&mut tx, &t).await
        }
        .await;
        match r {
            Ok(_) if was_busy => during.push(start.elapsed()),
            Ok(_) => idle.push(start.elapsed()),
            Err(e) => health.error(format!("probe: {e:#}")),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    during.sort();
    idle.sort();
    (during, idle)
}

/// A fresh node with the public `hello`, warmed up with `concurrency` requests in flight.
async fn start_node(dir: &std::path::Path, concurrency: usize) -> Result<(Node, Arc<Target>)> {
    let node = Node::start(dir, None);
    let api = Api::new(&node);
    api.create_tenant("bench").await;
    let r = api
        .http
        .request(
            "POST",
            &api.url("/api/v1/tenants/bench/functions/hello/versions"),
            &[("x-helixflow-config", r#"{"public":true}"#)],
            helixflow_e2e::guest("hello"),
        )
        .await;
    ensure!(r.status == 201, "deploy hello: {}", r.text());
    let authority = node
        .url
        .strip_prefix("http://")
        .context("node url")?
        .to_string();
    let t = Arc::new(Target {
        addr: authority.parse()?,
        authority,
    });
    // Warm-up, anonymous (hello is public): the compiled component, and as many
    // requests in flight as the phase will have, so that the instance slots, allocator
    // arenas and worker state they touch are in the baseline RSS, not counted against
    // the held connections.
    let warm: Vec<Result<()>> = futures::stream::iter(0..concurrency)
        .map(|_| {
            let t = t.clone();
            async move {
                let stream = connect(&t, None).await?;
                let (mut tx, conn) = http1::handshake(TokioIo::new(stream)).await?;
                tokio::spawn(conn);
                for _ in 0..20 {
                    get_h1(&mut tx, &t).await?;
                }
                Ok(())
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    for r in warm {
        r.context("warm-up")?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok((node, t))
}

struct Args {
    conns: usize,
    h2_conns: usize,
    streams: usize,
    rounds: usize,
    concurrency: usize,
    hold: Duration,
}

fn print_round(name: &str, n: usize, el: Duration, mut lat: Vec<Duration>, errors: usize) {
    lat.sort();
    println!(
        "  {name:<10} {n:>6} requests in {:>6.2} s  {:>8.0} RPS   p50 {:>7.2} ms   p99 {:>7.2} ms   errors {errors}",
        el.as_secs_f64(),
        n as f64 / el.as_secs_f64(),
        pct(&lat, 0.5),
        pct(&lat, 0.99)
    );
}

fn print_idle(node: &Node, before: u64, after: u64, held: usize) {
    println!(
        "  node RSS {:.1} MiB before, {:.1} MiB with {held} idle connections: {:.1} KiB per idle connection  (node fds {}, fd limit {})",
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        after.saturating_sub(before) as f64 / held.max(1) as f64,
        fds(node.pid()),
        nofile_of(node.pid())
    );
}

fn print_probe(health: &Health, (during, idle): (Vec<Duration>, Vec<Duration>)) {
    println!(
        "  fresh-connection probe (1 request per new connection, every 10 ms): during rounds n={} p50 {:.2} ms p99 {:.2} ms; while held idle n={} p50 {:.2} ms p99 {:.2} ms",
        during.len(),
        pct(&during, 0.5),
        pct(&during, 0.99),
        idle.len(),
        pct(&idle, 0.5),
        pct(&idle, 0.99)
    );
    println!(
        "  errors: {} (held connections closed by the node: {})",
        health.errors.load(Ordering::Relaxed),
        health.closed_early.load(Ordering::Relaxed)
    );
    for e in health
        .first_errors
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
    {
        println!("    {e}");
    }
}

/// HTTP/1.1 keep-alive phase; returns its error count.
async fn phase_h1(a: &Args) -> Result<usize> {
    let dir = tempfile::tempdir()?;
    let (node, t) = start_node(dir.path(), a.concurrency).await?;
    let pid = node.pid();
    let health = Arc::new(Health::default());
    health.holding.store(true, Ordering::Release);
    let before = rss_kib(pid)?;
    println!(
        "HTTP/1.1 keep-alive: {} connections from {} loopback addresses, opened {} at a time",
        a.conns,
        a.conns.div_ceil(PER_ADDRESS),
        a.concurrency
    );
    let start = Instant::now();
    let opened: Vec<_> = futures::stream::iter(0..a.conns)
        .map(|i| {
            let (t, health) = (t.clone(), health.clone());
            async move { open_h1(t, source(i)?, health).await }
        })
        .buffer_unordered(a.concurrency)
        .collect()
        .await;
    let mut conns = Vec::with_capacity(a.conns);
    for r in opened {
        match r {
            Ok(c) => conns.push(c),
            Err(e) => health.error(format!("open: {e:#}")),
        }
    }
    println!(
        "  opened {} of {} in {:.2} s (each after one full GET)",
        conns.len(),
        a.conns,
        start.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss_kib(pid)?;
    print_idle(&node, before, after, conns.len());
    println!(
        "  node's connections_open gauge: {}",
        connections_open(&node).await
    );

    let (stop, busy) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let prober = tokio::spawn(probe(t.clone(), stop.clone(), busy.clone(), health.clone()));
    for round in 1..=a.rounds {
        busy.store(true, Ordering::Release);
        let start = Instant::now();
        let out: Vec<_> = futures::stream::iter(std::mem::take(&mut conns))
            .map(|mut c| {
                let t = t.clone();
                async move {
                    let r = get_h1(&mut c, &t).await;
                    (c, r)
                }
            })
            .buffer_unordered(a.concurrency)
            .collect()
            .await;
        let el = start.elapsed();
        busy.store(false, Ordering::Release);
        let (mut lat, mut errors) = (Vec::new(), 0);
        for (c, r) in out {
            match r {
                Ok(d) => lat.push(d),
                Err(e) => {
                    errors += 1;
                    health.error(format!("round {round}: {e:#}"));
                }
            }
            conns.push(c);
        }
        print_round(
            &format!("round {round}"),
            lat.len() + errors,
            el,
            lat,
            errors,
        );
        tokio::time::sleep(a.hold).await;
    }
    let still_open = conns.iter().filter(|c| !c.is_closed()).count();
    println!(
        "  after {} rounds and {} s idle holds: {still_open} of {} connections open; node RSS {:.1} MiB; connections_open gauge {}",
        a.rounds,
        a.hold.as_secs(),
        conns.len(),
        rss_kib(pid)? as f64 / 1024.0,
        connections_open(&node).await
    );
    stop.store(true, Ordering::Release);
    let lat = prober.await?;
    health.holding.store(false, Ordering::Release);
    print_probe(&health, lat);
    drop(conns);
    Ok(health.errors.load(Ordering::Relaxed))
}

/// HTTP/2 phase; returns its error count.
async fn phase_h2(a: &Args) -> Result<usize> {
    let dir = tempfile::tempdir()?;
    let (node, t) = start_node(dir.path(), a.concurrency).await?;
    let pid = node.pid();
    let health = Arc::new(Health::default());
    health.holding.store(true, Ordering::Release);
    let before = rss_kib(pid)?;
    println!(
        "HTTP/2 (h2c, prior knowledge): {} connections x {} concurrent streams = {} streams in flight per round",
        a.h2_conns,
        a.streams,
        a.h2_conns * a.streams
    );
    let start = Instant::now();
    let opened: Vec<_> = futures::stream::iter(0..a.h2_conns)
        .map(|i| {
            let (t, health) = (t.clone(), health.clone());
            async move { open_h2(t, source(i)?, health).await }
        })
        .buffer_unordered(a.concurrency)
        .collect()
        .await;
    let mut conns = Vec::with_capacity(a.h2_conns);
    for r in opened {
        match r {
            Ok(c) => conns.push(c),
            Err(e) => health.error(format!("open: {e:#}")),
        }
    }
    println!(
        "  opened {} of {} in {:.2} s (each after one full GET)",
        conns.len(),
        a.h2_conns,
        start.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss_kib(pid)?;
    print_idle(&node, before, after, conns.len());

    let (stop, busy) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let prober = tokio::spawn(probe(t.clone(), stop.clone(), busy.clone(), health.clone()));
    let mut peak = 0;
    for round in 1..=a.rounds {
        busy.store(true, Ordering::Release);
        let start = Instant::now();
        let tasks: Vec<_> = conns
            .iter()
            .map(|c| {
                let (c, t, streams) = (c.clone(), t.clone(), a.streams);
                tokio::spawn(async move {
                    futures::future::join_all((0..streams).map(|_| get_h2(c.clone(), &t))).await
                })
            })
            .collect();
        let sampler = {
            let busy = busy.clone();
            tokio::spawn(async move {
                let mut peak = 0;
                while busy.load(Ordering::Acquire) {
                    peak = peak.max(rss_kib(pid).unwrap_or(0));
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                peak
            })
        };
        let (mut lat, mut errors) = (Vec::new(), 0);
        for task in tasks {
            for r in task.await? {
                match r {
                    Ok(d) => lat.push(d),
                    Err(e) => {
                        errors += 1;
                        health.error(format!("round {round}: {e:#}"));
                    }
                }
            }
        }
        let el = start.elapsed();
        busy.store(false, Ordering::Release);
        peak = peak.max(sampler.await?);
        print_round(
            &format!("round {round}"),
            lat.len() + errors,
            el,
            lat,
            errors,
        );
        tokio::time::sleep(a.hold).await;
    }
    let still_open = conns.iter().filter(|c| !c.is_closed()).count();
    println!(
        "  after {} rounds: {still_open} of {} connections open; node RSS peak during rounds {:.1} MiB, now {:.1} MiB",
        a.rounds,
        conns.len(),
        peak as f64 / 1024.0,
        rss_kib(pid)? as f64 / 1024.0
    );
    stop.store(true, Ordering::Release);
    let lat = prober.await?;
    health.holding.store(false, Ordering::Release);
    print_probe(&health, lat);
    drop(conns);
    Ok(health.errors.load(Ordering::Relaxed))
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|s| s.parse().with_context(|| format!("{s:?}: not a number")))
        .collect::<Result<_>>()
        .context(
            "usage: conns-bench [CONNS] [H2_CONNS] [STREAMS] [ROUNDS] [CONCURRENCY] [HOLD_SECS]",
        )?;
    let arg = |i: usize, d: usize| args.get(i).copied().unwrap_or(d);
    let a = Args {
        conns: arg(0, 10_000),
        h2_conns: arg(1, 100),
        streams: arg(2, 100),
        rounds: arg(3, 3),
        concurrency: arg(4, 256).max(1),
        hold: Duration::from_secs(arg(5, 5) as u64),
    };
    // Held connections + the probe's + the node's own files, in each process.
    let want = (a.conns.max(a.h2_conns) as u64 + 4096).max(65_536);
    let limit = raise_nofile(want)?;
    if limit < a.conns as u64 + 1024 {
        bail!(
            "RLIMIT_NOFILE is {limit}, too low for {} connections: raise it (ulimit -n)",
            a.conns
        );
    }
    let http = helixflow_edge_config::HttpSection::default();
    ensure!(
        PER_ADDRESS <= http.max_connections_per_ip && a.conns <= http.max_connections,
        "the node's default [http] limits changed: adjust PER_ADDRESS / CONNS"
    );
    let ports =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    println!(
        "conns-bench: node defaults [http] header_read_timeout_ms {} (idle HTTP/1 keep-alive limit), idle_timeout_ms {}, max_connections {}, max_connections_per_ip {}, h2_max_concurrent_streams {}; RLIMIT_NOFILE {limit} (the node inherits it); ephemeral ports {}",
        http.header_read_timeout_ms,
        http.idle_timeout_ms,
        http.max_connections,
        http.max_connections_per_ip,
        http.h2_max_concurrent_streams,
        ports.split_whitespace().collect::<Vec<_>>().join("-")
    );
    ensure!(
        a.hold.as_millis() < http.header_read_timeout_ms as u128,
        "HOLD_SECS must be under the node's idle HTTP/1 keep-alive limit"
    );
    let mut errors = phase_h1(&a).await?;
    if a.h2_conns > 0 {
        errors += phase_h2(&a).await?;
    }
    ensure!(errors == 0, "{errors} errors");
    Ok(())
}
