//! Fetching the JWKS from `[auth] jwks_url` (HTTPS with the system's roots, or HTTP on
//! loopback) at start-up and every `jwks_refresh_secs`. A fetch that fails keeps the
//! keys already loaded; the node logs it and tries again at the next refresh.

use anyhow::Context as _;
use http_body_util::BodyExt;
use std::time::Duration;

/// Largest JWKS document accepted.
const MAX_JWKS_BYTES: usize = 1 << 20;

async fn fetch(url: &str) -> anyhow::Result<String> {
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(provider)
        .context("loading the system's TLS roots")?
        .https_or_http()
        .enable_http1()
        .build();
    let client: hyper_util::client::legacy::Client<_, http_body_util::Empty<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(https);
    let req = http::Request::get(url)
        .header("accept", "application/json")
        .body(http_body_util::Empty::new())?;
    let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .context("timed out")??;
    anyhow::ensure!(resp.status().is_success(), "HTTP {}", resp.status());
    let body = http_body_util::Limited::new(resp.into_body(), MAX_JWKS_BYTES)
        .collect()
        .await
        .map_err(|e| anyhow::anyhow!("reading the body: {e}"))?
        .to_bytes();
    Ok(String::from_utf8(body.to_vec()).context("the JWKS is not UTF-8")?)
}

/// Loads the JWKS once (start-up waits for it, but starts without it if the issuer is
/// down), then refreshes it in the background.
pub async fn start(verifier: helixflow_auth::JwtVerifier, url: String, every: Duration) {
    let load = |verifier: &helixflow_auth::JwtVerifier, url: &str, text: anyhow::Result<String>| {
        match text.and_then(|t| verifier.set_jwks(&t).map_err(anyhow::Error::msg)) {
            Ok(n) => tracing::info!(%url, keys = n, "JWKS loaded"),
            Err(e) => {
                tracing::error!(%url, error = %format!("{e:#}"), "JWKS fetch failed; keeping the keys already loaded")
            }
        }
    };
    load(&verifier, &url, fetch(&url).await);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            load(&verifier, &url, fetch(&url).await);
        }
    });
}
