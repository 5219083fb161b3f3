//! The alert webhook transport: one signed delivery attempt as an HTTP POST
//! (`helixflow_node::alerts::WebhookSender`), under the same egress policy as guests'
//! outbound HTTP.
//!
//! * The host is resolved once, **every** address it resolved to is checked with the
//!   runtime's egress policy (public unicast, or a range the node's `[sandbox]
//!   allow_private` opts in), and the connection goes to a checked address: no second
//!   lookup a DNS-rebinding server could answer differently.
//! * `https://`: TLS with the public web PKI roots, SNI and certificate checked against
//!   the URL's host. Plain `http://` only when every address is a non-public one the
//!   node opts in (an internal receiver, or a test's loopback server).
//! * The wire format: `POST` of the JSON body with `content-type: application/json`,
//!   `x-helixflow-signature: sha256=<hex>` (HMAC-SHA256 of `{timestamp}.{body}` under
//!   the rule's secret), `x-helixflow-timestamp: <unix seconds>` and
//!   `x-helixflow-delivery: <transition id>` (the same on every retry). A 2xx answer is a
//!   delivery; anything else, a connection failure or the timeout is retried by the
//!   node; a refused address is not. Redirects are not followed.

use bytes::Bytes;
use helixflow_node::alerts::{DeliveryError, WebhookRequest, WebhookSender};
use helixflow_runtime::egress::{self, Egress};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};

/// Header names of a delivery.
pub const SIGNATURE_HEADER: &str = "x-helixflow-signature";
pub const TIMESTAMP_HEADER: &str = "x-helixflow-timestamp";
pub const DELIVERY_HEADER: &str = "x-helixflow-delivery";

/// Most bytes of a receiver's answer read (then the connection is dropped).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Sends alert webhooks (see the module docs).
pub struct WebhookClient {
    egress: Egress,
    tls: Arc<rustls::ClientConfig>,
}

impl WebhookClient {
    /// A client under the node's egress policy: `allow_private` as the runtime's
    /// (`[sandbox] allow_private`).
    pub fn new(allow_private: &[(IpAddr, u8)]) -> Result<WebhookClient, String> {
        let egress = Egress::new(allow_private)?;
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("webhook TLS configuration: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(WebhookClient {
            egress,
            tls: Arc::new(tls),
        })
    }

    async fn send(&self, r: &WebhookRequest) -> Result<(), DeliveryError> {
        let refused = |m: String| DeliveryError::Refused(m);
        let failed = |m: String| DeliveryError::Failed(m);
        let uri: http::Uri = r
            .url
            .parse()
            .map_err(|e| refused(format!("bad URL: {e}")))?;
        let use_tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(refused("the URL must be https:// (or http://)".into())),
        };
        let authority = uri
            .authority()
            .ok_or_else(|| refused("the URL has no host".into()))?;
        if authority.as_str().contains('@') {
            return Err(refused("credentials in the URL".into()));
        }
        let host = authority.host();
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let port = authority
            .port_u16()
            .unwrap_or(if use_tls { 443 } else { 80 });
        let addrs = egress::resolve(host, port)
            .await
            .map_err(|e| failed(format!("{host} did not resolve: {e}")))?;
        if addrs.is_empty() {
            return Err(failed(format!("{host} did not resolve")));
        }
        if let Err((addr, why)) = self.egress.check_all(&addrs) {
            tracing::warn!(%host, address = %addr.ip(), reason = why, "alert webhook refused: the host resolves to a non-public address ([sandbox] allow_private does not include it)");
            return Err(refused(format!(
                "{host} resolves to {} ({why}), which this node does not send to",
                addr.ip()
            )));
        }
        if !use_tls && addrs.iter().any(|a| egress::is_public(a.ip())) {
            return Err(refused(format!(
                "{host} is a public address: plain http:// only to private ranges the node opts in; use https://"
            )));
        }
        let stream = connect_any(&addrs)
            .await
            .map_err(|e| failed(format!("connecting to {host}: {e}")))?;
        let req = http::Request::post(uri.path_and_query().map_or("/", |p| p.as_str()))
            .header(http::header::HOST, authority.as_str())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::USER_AGENT, "helixflow-alerts")
            .header(SIGNATURE_HEADER, &r.signature)
            .header(TIMESTAMP_HEADER, r.timestamp.to_string())
            .header(DELIVERY_HEADER, &r.delivery_id)
            .body(Full::new(Bytes::from(r.body.clone())))
            .map_err(|e| refused(format!("bad request: {e}")))?;
        let status = if use_tls {
            let name = rustls::pki_types::ServerName::try_from(bare.to_string())
                .map_err(|e| refused(format!("{host}: {e}")))?;
            let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
                .connect(name, stream)
                .await
                .map_err(|e| failed(format!("TLS with {host}: {e}")))?;
            exchange(tls, req).await
        } else {
            exchange(stream, req).await
        }
        .map_err(failed)?;
        if status.is_success() {
            Ok(())
        } else {
            Err(failed(format!("{host} answered {status}")))
        }
    }
}

async fn connect_any(addrs: &[SocketAddr]) -> std::io::Result<tokio::net::TcpStream> {
    let mut last = None;
    for a in addrs {
        match tokio::net::TcpStream::connect(a).await {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no address")))
}

/// One HTTP/1.1 request over `stream`; the answer's status (its body is read, capped,
/// and dropped).
async fn exchange<S>(stream: S, req: http::Request<Full<Bytes>>) -> Result<http::StatusCode, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    let conn = tokio::spawn(conn);
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("sending: {e}"))?;
    let status = resp.status();
    let mut body = resp.into_body();
    let mut read = 0usize;
    while read < MAX_ANSWER_BYTES {
        match body.frame().await {
            Some(Ok(f)) => read += f.data_ref().map_or(0, |d| d.len()),
            _ => break,
        }
    }
    conn.abort();
    Ok(status)
}

#[async_trait::async_trait]
impl WebhookSender for WebhookClient {
    async fn post(&self, request: &WebhookRequest) -> Result<(), DeliveryError> {
        match tokio::time::timeout(request.timeout, self.send(request)).await {
            Ok(r) => r,
            Err(_) => Err(DeliveryError::Failed(format!(
                "no answer within {} ms",
                request.timeout.as_millis()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(url: &str) -> WebhookRequest {
        WebhookRequest {
            url: url.into(),
            body: b"{}".to_vec(),
            timestamp: 1,
            signature: "sha256=00".into(),
            delivery_id: "d".into(),
            timeout: std::time::Duration::from_secs(2),
        }
    }

    /// The egress policy holds for webhooks: non-public addresses only where the node
    /// opts them in, plain http only to such addresses; refusals are never retried,
    /// connection failures are.
    #[tokio::test]
    async fn deliveries_obey_the_egress_policy() {
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let strict = WebhookClient::new(&[]).unwrap();
        for url in [
            format!("http://127.0.0.1:{closed}/x"),
            format!("https://127.0.0.1:{closed}/x"),
            "https://169.254.169.254/latest".to_string(),
            "https://[::1]/x".to_string(),
            "http://8.8.8.8/x".to_string(),
            "ftp://example.com/x".to_string(),
            "https://u:p@example.com/x".to_string(),
        ] {
            let r = strict.post(&request(&url)).await;
            assert!(matches!(r, Err(DeliveryError::Refused(_))), "{url}: {r:?}");
        }
        let loopback = WebhookClient::new(&[("127.0.0.0".parse().unwrap(), 8)]).unwrap();
        let r = loopback
            .post(&request(&format!("http://127.0.0.1:{closed}/x")))
            .await;
        assert!(
            matches!(r, Err(DeliveryError::Failed(_))),
            "an opted-in address is tried (and retried when down): {r:?}"
        );
        let r = loopback.post(&request("https://169.254.169.254/x")).await;
        assert!(matches!(r, Err(DeliveryError::Refused(_))), "{r:?}");
    }
}
