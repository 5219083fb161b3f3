//! The binary's outbound HTTP, built one way: hyper's pooled client on the tokio
//! executor, over plain HTTP (the CLI's calls to `--url`) or HTTPS-or-HTTP with the
//! system's roots (the JWKS fetch), and reading response bodies whole under a bound.
//! (`helixflow lambda` talks to the Runtime API through `lambda_runtime`, not this.)

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A client that speaks plain HTTP only.
pub fn plain<B>() -> Client<HttpConnector, B>
where
    B: http_body::Body + Send,
    B::Data: Send,
{
    Client::builder(TokioExecutor::new()).build_http()
}

/// A client for `https://` (rustls on aws-lc-rs, the system's root certificates) and
/// `http://` URLs, HTTP/1.1.
pub fn https_or_http<B>() -> anyhow::Result<Client<hyper_rustls::HttpsConnector<HttpConnector>, B>>
where
    B: http_body::Body + Send,
    B::Data: Send,
{
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(provider)
        .context("loading the system's TLS roots")?
        .https_or_http()
        .enable_http1()
        .build();
    Ok(Client::builder(TokioExecutor::new()).build(https))
}

/// Reads a whole body; one over `limit` bytes is an error.
pub async fn read_body<B>(body: B, limit: usize) -> Result<Bytes, BoxError>
where
    B: http_body::Body,
    B::Error: Into<BoxError>,
{
    Ok(http_body_util::Limited::new(body, limit)
        .collect()
        .await?
        .to_bytes())
}
