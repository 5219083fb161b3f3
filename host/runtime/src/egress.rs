//! Where guests' outbound HTTP may connect to (server-side request forgery defence).
//!
//! The function's `allow_outbound` list names *hosts*; a host name says nothing about
//! the address it reaches (`localhost`, `0x7f.1`, `2130706433`, `[::ffff:127.0.0.1]` or
//! a tenant-controlled DNS name can all mean 127.0.0.1). So after the allow-list check
//! the host resolves the name itself, checks **every** address it resolved to, and
//! connects to the checked address: there is no second lookup that a DNS-rebinding
//! server could answer differently.
//!
//! Invariants:
//! * A guest connects only to public unicast addresses ([`non_public_reason`] is `None`)
//!   or to addresses inside a range the **node's** config opts in
//!   (`[sandbox] allow_private`, passed as [`crate::RuntimeConfig::allow_private`]);
//!   nothing a tenant configures can widen it.
//! * A name is refused if *any* of its addresses is refused (stricter than picking the
//!   good ones: a name that mixes public and internal answers is an attack or a
//!   misconfiguration either way).
//! * IPv4-mapped (`::ffff:a.b.c.d`) and IPv4-compatible (`::a.b.c.d`) IPv6 addresses are
//!   judged, matched against the opt-in ranges and connected to as the IPv4 address
//!   they carry; NAT64 (`64:ff9b::/96`) and 6to4 (`2002::/16`) addresses are judged by
//!   the IPv4 address they embed.
//! * Every refusal is `HttpRequestDenied` to the guest, a log line naming the tenant,
//!   the function and the address, and a count in [`EgressStats`] (`/metrics`).
//!
//! Redirects are not followed here (wasi:http hands a 3xx to the guest as it is); a
//! guest that follows one issues a new request, which goes through the same checks.

use bytes::Bytes;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::future::poll_fn;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

/// IPv4 ranges that are not public unicast (IANA IPv4 Special-Purpose Address Registry,
/// plus multicast and the reserved block), with why.
const V4_NON_PUBLIC: &[(Ipv4Net, &str)] = &[
    (
        v4net(0, 0, 0, 0, 8),
        "this network (0.0.0.0/8; connects to the node itself)",
    ),
    (v4net(10, 0, 0, 0, 8), "private (RFC 1918)"),
    (
        v4net(100, 64, 0, 0, 10),
        "shared address space (CGNAT, RFC 6598)",
    ),
    (v4net(127, 0, 0, 0, 8), "loopback"),
    (
        v4net(169, 254, 0, 0, 16),
        "link-local (incl. the cloud metadata service 169.254.169.254)",
    ),
    (v4net(172, 16, 0, 0, 12), "private (RFC 1918)"),
    (
        v4net(192, 0, 0, 0, 24),
        "IETF protocol assignments (192.0.0.0/24)",
    ),
    (v4net(192, 0, 2, 0, 24), "documentation (TEST-NET-1)"),
    (v4net(192, 88, 99, 0, 24), "6to4 relay anycast (deprecated)"),
    (v4net(192, 168, 0, 0, 16), "private (RFC 1918)"),
    (v4net(198, 18, 0, 0, 15), "benchmarking (RFC 2544)"),
    (v4net(198, 51, 100, 0, 24), "documentation (TEST-NET-2)"),
    (v4net(203, 0, 113, 0, 24), "documentation (TEST-NET-3)"),
    (v4net(224, 0, 0, 0, 4), "multicast"),
    (
        v4net(240, 0, 0, 0, 4),
        "reserved (240.0.0.0/4, incl. broadcast 255.255.255.255)",
    ),
];

/// IPv6 ranges inside global unicast (2000::/3) that are nevertheless not public.
const V6_NON_PUBLIC_IN_GLOBAL: &[(Ipv6Net, &str)] = &[
    // Teredo (2001::/32), benchmarking (2001:2::/48), ORCHID, AMT, AS112...: protocol
    // assignments, not servers a function calls; Teredo also tunnels to IPv4.
    (
        v6net([0x2001, 0, 0, 0, 0, 0, 0, 0], 23),
        "IETF protocol assignments (2001::/23, incl. Teredo)",
    ),
    (
        v6net([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32),
        "documentation (2001:db8::/32)",
    ),
    (
        v6net([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20),
        "documentation (3fff::/20)",
    ),
];

/// IPv6 ranges outside global unicast, named for the log (everything outside
/// 2000::/3 is refused, named or not).
const V6_NAMED: &[(Ipv6Net, &str)] = &[
    (
        v6net([0, 0, 0, 0, 0, 0, 0, 0], 128),
        "unspecified (::; connects to the node itself)",
    ),
    (v6net([0, 0, 0, 0, 0, 0, 0, 1], 128), "loopback"),
    (
        v6net([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48),
        "local-use NAT64 (64:ff9b:1::/48)",
    ),
    (
        v6net([0x100, 0, 0, 0, 0, 0, 0, 0], 64),
        "discard-only (100::/64)",
    ),
    (
        v6net([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7),
        "unique-local (fc00::/7, incl. the metadata service fd00:ec2::254)",
    ),
    (v6net([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10), "link-local"),
    (
        v6net([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10),
        "site-local (deprecated)",
    ),
    (v6net([0xff00, 0, 0, 0, 0, 0, 0, 0], 8), "multicast"),
];

const fn v4net(a: u8, b: u8, c: u8, d: u8, len: u8) -> Ipv4Net {
    Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), len)
}

const fn v6net(s: [u16; 8], len: u8) -> Ipv6Net {
    Ipv6Net::new_assert(
        Ipv6Addr::new(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]),
        len,
    )
}

/// The address a connection to `ip` really reaches: an IPv4-mapped (`::ffff:a.b.c.d`)
/// or IPv4-compatible (`::a.b.c.d`, deprecated) IPv6 address becomes the IPv4 address
/// it carries; `::` and `::1` stay IPv6; anything else is unchanged.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let s = v6.segments();
            if s[..6] == [0; 6] && !v6.is_unspecified() && !v6.is_loopback() {
                return IpAddr::V4(Ipv4Addr::from(((s[6] as u32) << 16) | s[7] as u32));
            }
            ip
        }
        IpAddr::V4(_) => ip,
    }
}

/// Why `ip` is not a public unicast address (loopback, private, link-local, CGNAT,
/// unique-local, multicast, broadcast, unspecified, reserved, documentation, ...), or
/// `None` when it is public. IPv4 carried in IPv6 (mapped, compatible, NAT64, 6to4) is
/// judged as that IPv4 address.
pub fn non_public_reason(ip: IpAddr) -> Option<&'static str> {
    match canonical(ip) {
        IpAddr::V4(v4) => V4_NON_PUBLIC
            .iter()
            .find(|(net, _)| net.contains(&v4))
            .map(|(_, why)| *why),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            // NAT64 well-known prefix: the gateway connects to the embedded IPv4.
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                return non_public_reason(IpAddr::V4(Ipv4Addr::from(
                    ((s[6] as u32) << 16) | s[7] as u32,
                )));
            }
            // 6to4: 2002:AABB:CCDD::/48 embeds AA.BB.CC.DD.
            if s[0] == 0x2002 {
                return non_public_reason(IpAddr::V4(Ipv4Addr::from(
                    ((s[1] as u32) << 16) | s[2] as u32,
                )));
            }
            let global_unicast = (s[0] & 0xe000) == 0x2000;
            if global_unicast {
                return V6_NON_PUBLIC_IN_GLOBAL
                    .iter()
                    .find(|(net, _)| net.contains(&v6))
                    .map(|(_, why)| *why);
            }
            Some(
                V6_NAMED
                    .iter()
                    .find(|(net, _)| net.contains(&v6))
                    .map_or("not global unicast (outside 2000::/3)", |(_, why)| *why),
            )
        }
    }
}

/// Is `ip` a public unicast address (see [`non_public_reason`])?
pub fn is_public(ip: IpAddr) -> bool {
    non_public_reason(ip).is_none()
}

/// Counts of refused outbound requests since the runtime started (for `/metrics`).
#[derive(Debug, Default)]
pub struct EgressStats {
    not_allowed: AtomicU64,
    private_address: AtomicU64,
}

impl EgressStats {
    /// Refusals by reason: `not_allowed` (the host is not on the function's
    /// allow-list) and `private_address` (the host resolved to a non-public address
    /// the node does not allow). Low-cardinality by construction: never the host.
    pub fn denials(&self) -> [(&'static str, u64); 2] {
        [
            ("not_allowed", self.not_allowed.load(Ordering::Relaxed)),
            (
                "private_address",
                self.private_address.load(Ordering::Relaxed),
            ),
        ]
    }
    pub(crate) fn count_not_allowed(&self) {
        self.not_allowed.fetch_add(1, Ordering::Relaxed);
    }
    fn count_private_address(&self) {
        self.private_address.fetch_add(1, Ordering::Relaxed);
    }
}

/// The node's egress policy: the non-public ranges it opts in, the refusal counters
/// and the TLS client configuration (public web PKI roots), shared by every invocation.
#[derive(Debug)]
pub struct Egress {
    allow_private: Vec<IpNet>,
    pub(crate) stats: Arc<EgressStats>,
    tls: Arc<rustls::ClientConfig>,
}

impl Egress {
    /// A policy opting in `allow_private`: (network address, prefix length) pairs, e.g.
    /// from `edge_config::parse_cidr` (host bits are ignored). Errors on a prefix
    /// length longer than the address.
    pub fn new(allow_private: &[(IpAddr, u8)]) -> Result<Self, String> {
        let allow_private = allow_private
            .iter()
            .map(|&(ip, len)| {
                IpNet::new(ip, len)
                    .map(|n| n.trunc())
                    .map_err(|_| format!("{ip}/{len} is not a CIDR range"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS client configuration: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(Egress {
            allow_private,
            stats: Arc::default(),
            tls: Arc::new(tls),
        })
    }

    /// May a guest connect to `ip`? `Err` carries why not.
    pub fn check(&self, ip: IpAddr) -> Result<(), &'static str> {
        let Some(why) = non_public_reason(ip) else {
            return Ok(());
        };
        let canon = canonical(ip);
        if self
            .allow_private
            .iter()
            .any(|n| n.contains(&canon) || n.contains(&ip))
        {
            return Ok(());
        }
        Err(why)
    }

    /// Checks every address a host resolved to: the first refused one, with why, or
    /// `Ok` when all of them may be reached.
    pub fn check_all(&self, addrs: &[SocketAddr]) -> Result<(), (SocketAddr, &'static str)> {
        addrs
            .iter()
            .try_for_each(|a| self.check(a.ip()).map_err(|why| (*a, why)))
    }
}

/// Who is sending, for the log line of a refusal.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    pub tenant: String,
    pub function: String,
}

/// The socket addresses `host` (a URI authority's host: a DNS name, an IPv4 literal or
/// a bracketed IPv6 literal) stands for on `port`. Literals need no lookup; anything
/// else goes to the system resolver, which may well turn `0x7f.1` or `2130706433` into
/// 127.0.0.1: the caller checks what comes back, never the spelling.
pub async fn resolve(host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    Ok(tokio::net::lookup_host((bare, port)).await?.collect())
}

trait TokioStream: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static {}
impl<T> TokioStream for T where T: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static {}

/// The outcome of [`send`]: the response and the connection's I/O future.
pub(crate) type Sent = (
    http::Response<WasiBody>,
    Box<dyn Future<Output = Result<(), Error>> + Send>,
);

/// Sends a guest's outbound request (already on its function's allow-list) after
/// checking where it would go: resolves the host once, refuses (`HttpRequestDenied`,
/// logged and counted) if any resolved address is not allowed by `egress`, then
/// connects to the checked addresses themselves, with TLS for https (SNI and
/// certificate checked against the host name) and HTTP/1.1 over that connection.
/// Timeouts follow the request's options as in wasmtime-wasi-http's
/// `default_send_request`, which this mirrors apart from where it connects.
pub(crate) async fn send(
    egress: Arc<Egress>,
    caller: Caller,
    mut req: http::Request<WasiBody>,
    options: Option<RequestOptions>,
) -> Result<Sent, Error> {
    let uri = req.uri();
    let authority = uri.authority().ok_or(Error::HttpRequestUriInvalid)?;
    let use_tls = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
    let host = authority.host().to_string();
    let port = authority
        .port_u16()
        .unwrap_or(if use_tls { 443 } else { 80 });
    let connect_timeout = options
        .and_then(|r| r.connect_timeout)
        .unwrap_or(Duration::from_secs(600));
    let first_byte_timeout = options
        .and_then(|r| r.first_byte_timeout)
        .unwrap_or(Duration::from_secs(600));
    let between_bytes_timeout = options
        .and_then(|r| r.between_bytes_timeout)
        .unwrap_or(Duration::from_secs(600));

    let addrs = match tokio::time::timeout(connect_timeout, resolve(&host, port)).await {
        Err(_) => return Err(Error::DnsTimeout),
        Ok(Err(e)) => {
            tracing::debug!(tenant = %caller.tenant, function = %caller.function, %host, error = %e, "outbound request: name did not resolve");
            return Err(Error::DnsError {
                rcode: None,
                info_code: None,
            });
        }
        Ok(Ok(addrs)) if addrs.is_empty() => {
            return Err(Error::DnsError {
                rcode: None,
                info_code: None,
            });
        }
        Ok(Ok(addrs)) => addrs,
    };
    if let Err((addr, reason)) = egress.check_all(&addrs) {
        egress.stats.count_private_address();
        tracing::warn!(
            tenant = %caller.tenant,
            function = %caller.function,
            %host,
            address = %addr.ip(),
            reason,
            "outbound request refused: the host resolves to a non-public address ([sandbox] allow_private does not include it)"
        );
        return Err(Error::HttpRequestDenied);
    }

    let stream = match tokio::time::timeout(connect_timeout, connect_any(&addrs)).await {
        Ok(stream) => stream.map_err(Error::Connect)?,
        Err(_) => return Err(Error::ConnectionTimeout),
    };
    let stream: Box<dyn TokioStream> = if use_tls {
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(&host);
        let name = rustls::pki_types::ServerName::try_from(bare.to_string())?;
        let connector = tokio_rustls::TlsConnector::from(egress.tls.clone());
        match tokio::time::timeout(connect_timeout, connector.connect(name, stream)).await {
            Ok(s) => Box::new(s.map_err(Error::Tls)?),
            Err(_) => return Err(Error::ConnectionTimeout),
        }
    } else {
        Box::new(stream)
    };
    let (mut sender, conn) = tokio::time::timeout(
        connect_timeout,
        hyper::client::conn::http1::Builder::new()
            .handshake(wasmtime_wasi_http::io::TokioIo::new(stream)),
    )
    .await
    .map_err(|_| Error::ConnectionTimeout)??;

    // The request line carries only the path: scheme and authority are for proxies
    // (the Host header, set by wasi:http, names the host).
    let path_only = http::Uri::builder()
        .path_and_query(req.uri().path_and_query().map_or("/", |p| p.as_str()))
        .build()
        .map_err(|_| Error::HttpRequestUriInvalid)?;
    *req.uri_mut() = path_only;

    let send = async move {
        let res = tokio::time::timeout(first_byte_timeout, sender.send_request(req))
            .await
            .map_err(|_| Error::ConnectionReadTimeout)?
            .map_err(Error::from)?;
        // tokio panics on a zero interval.
        let between = between_bytes_timeout.max(Duration::from_nanos(1));
        let mut timeout = tokio::time::interval(between);
        timeout.reset();
        Ok::<_, Error>(res.map(|incoming| IncomingResponseBody { incoming, timeout }))
    };
    let mut send = pin!(send);
    let mut conn = Some(conn);
    // Wait for the response while driving the connection's I/O.
    let res = poll_fn(|cx| match send.as_mut().poll(cx) {
        Poll::Ready(r) => Poll::Ready(r),
        Poll::Pending => {
            let Some(fut) = conn.as_mut() else {
                return Poll::Pending;
            };
            let res = ready!(Pin::new(fut).poll(cx));
            conn = None;
            match res {
                Ok(()) => send.as_mut().poll(cx),
                Err(err) => Poll::Ready(Err(Error::from(err))),
            }
        }
    })
    .await?;
    let io = async move {
        let Some(conn) = conn.take() else {
            return Ok(());
        };
        match conn.await {
            Err(err) if err.is_timeout() => Err(Error::HttpResponseTimeout),
            Err(err) => Err(err.into()),
            Ok(()) => Ok(()),
        }
    };
    use http_body_util::BodyExt;
    Ok((res.map(BodyExt::boxed_unsync), Box::new(io)))
}

/// Connects to the first of `addrs` (each already checked) that accepts, as the
/// address it really reaches (IPv4-mapped IPv6 as IPv4).
async fn connect_any(addrs: &[SocketAddr]) -> std::io::Result<TcpStream> {
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address to connect to");
    for a in addrs {
        match TcpStream::connect(SocketAddr::new(canonical(a.ip()), a.port())).await {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// A response body that fails when no frame arrives within the between-bytes timeout.
struct IncomingResponseBody {
    incoming: hyper::body::Incoming,
    timeout: tokio::time::Interval,
}

impl http_body::Body for IncomingResponseBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Error>>> {
        match Pin::new(&mut self.incoming).poll_frame(cx) {
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Ready(Some(Err(err))) => Poll::Ready(Some(Err(if err.is_timeout() {
                Error::HttpResponseTimeout
            } else {
                Error::from(err)
            }))),
            Poll::Ready(Some(Ok(frame))) => {
                self.timeout.reset();
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => {
                ready!(self.timeout.poll_tick(cx));
                Poll::Ready(Some(Err(Error::ConnectionReadTimeout)))
            }
        }
    }
    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }
    fn size_hint(&self) -> http_body::SizeHint {
        self.incoming.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn every_internal_ipv4_range_is_non_public() {
        for s in [
            "127.0.0.1",
            "127.255.255.254",
            "10.0.0.1",
            "10.255.255.255",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.0.1",
            "192.168.255.255",
            "169.254.169.254",
            "169.254.0.1",
            "100.64.0.1",
            "100.127.255.255",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "239.255.255.250",
            "255.255.255.255",
            "240.0.0.1",
            "192.0.0.170",
            "192.0.2.1",
            "192.88.99.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.1",
            "203.0.113.1",
        ] {
            assert!(!is_public(ip(s)), "{s} must not be public");
        }
    }

    #[test]
    fn every_internal_ipv6_range_and_embedded_ipv4_is_non_public() {
        for s in [
            "::",
            "::1",
            // IPv4-mapped and IPv4-compatible forms of internal IPv4 addresses.
            "::ffff:127.0.0.1",
            "::ffff:7f00:1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "::ffff:0.0.0.0",
            "::127.0.0.1",
            "::169.254.169.254",
            "::ffff:100.64.0.1",
            // Metadata service over IPv6 (AWS), unique-local, link-local, multicast.
            "fd00:ec2::254",
            "fc00::1",
            "fdff:ffff::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "ff0e::1",
            // NAT64 and 6to4 carrying internal IPv4.
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::1",
            "2002:a9fe:a9fe::1",
            "64:ff9b:1::1",
            // Documentation, Teredo, discard, outside global unicast.
            "2001:db8::1",
            "2001::1",
            "3fff::1",
            "100::1",
            "5f00::1",
            "4000::1",
        ] {
            assert!(!is_public(ip(s)), "{s} must not be public");
        }
    }

    #[test]
    fn public_addresses_pass_including_neighbours_of_internal_ranges() {
        for s in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.215.14",
            "9.255.255.255",
            "11.0.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "126.255.255.255",
            "128.0.0.0",
            "169.253.255.255",
            "169.255.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.167.255.255",
            "192.169.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "2a00:1450:4001::1",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert!(
                is_public(ip(s)),
                "{s} must be public: {:?}",
                non_public_reason(ip(s))
            );
        }
    }

    #[test]
    fn mapped_and_compatible_ipv6_canonicalise_to_ipv4_but_loopback_and_unspecified_stay() {
        assert_eq!(canonical(ip("::ffff:127.0.0.1")), ip("127.0.0.1"));
        assert_eq!(canonical(ip("::127.0.0.1")), ip("127.0.0.1"));
        assert_eq!(canonical(ip("::1")), ip("::1"));
        assert_eq!(canonical(ip("::")), ip("::"));
        assert_eq!(canonical(ip("2606:4700::1")), ip("2606:4700::1"));
        assert_eq!(canonical(ip("10.0.0.1")), ip("10.0.0.1"));
    }

    #[test]
    fn only_the_node_can_opt_ranges_in() {
        let none = Egress::new(&[]).unwrap();
        for s in [
            "127.0.0.1",
            "::1",
            "::ffff:127.0.0.1",
            "169.254.169.254",
            "10.0.0.1",
            "fd00:ec2::254",
        ] {
            assert!(none.check(ip(s)).is_err(), "{s} refused by default");
        }
        assert!(none.check(ip("8.8.8.8")).is_ok());
        let loopback = Egress::new(&[(ip("127.0.0.0"), 8)]).unwrap();
        assert!(loopback.check(ip("127.0.0.1")).is_ok());
        assert!(
            loopback.check(ip("::ffff:127.0.0.1")).is_ok(),
            "mapped form matches the IPv4 range"
        );
        assert!(
            loopback.check(ip("::1")).is_err(),
            "an IPv4 range does not open IPv6 loopback"
        );
        assert!(loopback.check(ip("169.254.169.254")).is_err());
        assert!(loopback.check(ip("10.0.0.1")).is_err());
        // Host bits in the configured range are ignored.
        let ten = Egress::new(&[(ip("10.1.2.3"), 8), (ip("::1"), 128)]).unwrap();
        assert!(ten.check(ip("10.200.0.1")).is_ok());
        assert!(ten.check(ip("::1")).is_ok());
        assert!(ten.check(ip("11.0.0.1")).is_ok(), "public anyway");
        assert!(ten.check(ip("192.168.0.1")).is_err());
        assert!(Egress::new(&[(ip("10.0.0.0"), 33)]).is_err());
    }

    #[test]
    fn a_name_is_refused_when_any_of_its_addresses_is_internal() {
        let e = Egress::new(&[]).unwrap();
        let sa = |s: &str| SocketAddr::new(ip(s), 80);
        assert!(e.check_all(&[sa("8.8.8.8"), sa("1.1.1.1")]).is_ok());
        // A rebinding-style answer mixing a public and an internal address.
        let (addr, why) = e.check_all(&[sa("8.8.8.8"), sa("127.0.0.1")]).unwrap_err();
        assert_eq!(addr, sa("127.0.0.1"));
        assert_eq!(why, "loopback");
        assert!(e.check_all(&[sa("::ffff:169.254.169.254")]).is_err());
    }

    #[tokio::test]
    async fn names_resolving_to_loopback_and_odd_ip_spellings_are_refused() {
        let e = Egress::new(&[]).unwrap();
        // Literals need no resolver.
        assert_eq!(
            resolve("[::1]", 81).await.unwrap(),
            vec![SocketAddr::new(ip("::1"), 81)]
        );
        assert_eq!(
            resolve("[::ffff:127.0.0.1]", 81).await.unwrap(),
            vec![SocketAddr::new(ip("::ffff:127.0.0.1"), 81)]
        );
        assert_eq!(
            resolve("127.0.0.1", 82).await.unwrap(),
            vec![SocketAddr::new(ip("127.0.0.1"), 82)]
        );
        // A DNS name resolving to loopback (via /etc/hosts here; a tenant's own DNS
        // server answers the same way).
        let addrs = resolve("localhost", 80).await.unwrap();
        assert!(!addrs.is_empty());
        assert!(e.check_all(&addrs).is_err(), "{addrs:?}");
        // Spellings the system resolver may turn into 127.0.0.1: if it does, the
        // address is refused; if it does not, there is nothing to connect to.
        for odd in ["0x7f.1", "2130706433", "0177.0.0.1", "127.1"] {
            if let Ok(addrs) = resolve(odd, 80).await {
                assert!(
                    addrs.is_empty() || e.check_all(&addrs).is_err(),
                    "{odd} -> {addrs:?}"
                );
            }
        }
    }

    /// A loopback HTTP server answering `200 ok`, counting the connections it accepted.
    async fn server() -> (u16, Arc<AtomicU64>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(AtomicU64::new(0));
        let h = hits.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                h.fetch_add(1, Ordering::SeqCst);
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
            }
        });
        (port, hits)
    }

    fn get(url: &str) -> http::Request<WasiBody> {
        http::Request::get(url)
            .body(
                http_body_util::Empty::<Bytes>::new()
                    .map_err(|never| match never {})
                    .boxed_unsync(),
            )
            .unwrap()
    }

    #[tokio::test]
    async fn send_refuses_loopback_without_connecting_and_reaches_it_when_the_node_opts_in() {
        let (port, hits) = server().await;
        let strict = Arc::new(Egress::new(&[]).unwrap());
        for url in [
            format!("http://localhost:{port}/"),
            format!("http://127.0.0.1:{port}/"),
            format!("http://[::ffff:127.0.0.1]:{port}/"),
        ] {
            let r = send(strict.clone(), Caller::default(), get(&url), None).await;
            assert!(
                matches!(r, Err(Error::HttpRequestDenied)),
                "{url}: {:?}",
                r.err()
            );
        }
        assert_eq!(
            strict.stats.denials(),
            [("not_allowed", 0), ("private_address", 3)]
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            hits.load(Ordering::SeqCst),
            0,
            "a refused request never connects"
        );

        let open = Arc::new(Egress::new(&[(ip("127.0.0.0"), 8)]).unwrap());
        let (res, io) = send(
            open.clone(),
            Caller::default(),
            get(&format!("http://localhost:{port}/x?y=1")),
            None,
        )
        .await
        .unwrap();
        assert_eq!(res.status(), 200);
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"ok");
        let _ = Pin::from(io).await;
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        assert_eq!(
            open.stats.denials(),
            [("not_allowed", 0), ("private_address", 0)]
        );
    }
}
