//! The OTLP exporter's HTTP transport: hyper's pooled client on the node's tokio
//! runtime.
//!
//! OpenTelemetry's batch span processor exports from its own thread and blocks on the
//! exporter's future there; hyper needs a tokio reactor. So each request is spawned
//! onto the runtime and the processor's thread waits on the join handle: requests are
//! never touched, the exporter never needs a blocking HTTP client (no reqwest), and
//! the connection pool is reused across batches.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use opentelemetry_http::{HttpClient, HttpError, Request, Response};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

/// A collector's answer is at most this big (OTLP answers are a few bytes).
const MAX_RESPONSE_BYTES: usize = 1 << 20;

#[derive(Clone)]
enum Transport {
    Plain(Client<HttpConnector, Full<Bytes>>),
    Tls(Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>),
}

const UNKNOWN: u8 = 0;
const OK: u8 = 1;
const FAILING: u8 = 2;

/// Sends OTLP requests; says once (a warning) when the collector stops answering and
/// once (info) when it answers again, however many batches fail in between.
pub(crate) struct OtlpHttp {
    transport: Transport,
    runtime: tokio::runtime::Handle,
    timeout: Duration,
    endpoint: String,
    state: Arc<AtomicU8>,
}

impl std::fmt::Debug for OtlpHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpHttp")
            .field("endpoint", &self.endpoint)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl OtlpHttp {
    pub(crate) fn new(
        endpoint: &str,
        timeout: Duration,
        runtime: tokio::runtime::Handle,
    ) -> Result<Self, crate::TelemetryError> {
        let transport = if endpoint.starts_with("https://") {
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let https = hyper_rustls::HttpsConnectorBuilder::new()
                .with_provider_and_native_roots(provider)
                .map_err(|e| crate::TelemetryError::Tls(e.to_string()))?
                .https_only()
                .enable_http1()
                .build();
            Transport::Tls(Client::builder(TokioExecutor::new()).build(https))
        } else {
            let mut c = HttpConnector::new();
            c.set_nodelay(true);
            c.set_connect_timeout(Some(timeout));
            Transport::Plain(Client::builder(TokioExecutor::new()).build(c))
        };
        Ok(OtlpHttp {
            transport,
            runtime,
            timeout,
            endpoint: endpoint.to_string(),
            state: Arc::new(AtomicU8::new(UNKNOWN)),
        })
    }

    fn note(&self, outcome: &Result<Response<Bytes>, HttpError>) {
        let failure = match outcome {
            Ok(r) if r.status().is_success() => None,
            Ok(r) => Some(format!("the collector answered {}", r.status())),
            Err(e) => Some(e.to_string()),
        };
        match failure {
            None => {
                if self.state.swap(OK, Ordering::Relaxed) == FAILING {
                    tracing::info!(endpoint = %self.endpoint, "OTLP span export works again");
                }
            }
            Some(error) => {
                if self.state.swap(FAILING, Ordering::Relaxed) != FAILING {
                    tracing::warn!(
                        endpoint = %self.endpoint,
                        %error,
                        "OTLP span export failed; spans are dropped until the collector answers (requests are not affected)"
                    );
                }
            }
        }
    }
}

async fn send(
    transport: Transport,
    request: Request<Bytes>,
    timeout: Duration,
) -> Result<Response<Bytes>, HttpError> {
    let (parts, body) = request.into_parts();
    let req = http::Request::from_parts(parts, Full::new(body));
    let exchange = async {
        let resp = match transport {
            Transport::Plain(c) => c.request(req).await?,
            Transport::Tls(c) => c.request(req).await?,
        };
        let (parts, body) = resp.into_parts();
        let body = http_body_util::Limited::new(body, MAX_RESPONSE_BYTES)
            .collect()
            .await?
            .to_bytes();
        Ok::<_, HttpError>(Response::from_parts(parts, body))
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {timeout:?}").into()),
    }
}

#[async_trait::async_trait]
impl HttpClient for OtlpHttp {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let task = self
            .runtime
            .spawn(send(self.transport.clone(), request, self.timeout));
        let outcome = match task.await {
            Ok(r) => r,
            // The runtime is shutting down (or the task panicked): the batch is lost.
            Err(e) => Err(format!("export task did not finish: {e}").into()),
        };
        self.note(&outcome);
        outcome
    }
}
