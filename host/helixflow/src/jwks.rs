//! Fetching the JWKS from `[auth] jwks_url` (HTTPS with the system's roots, or HTTP on
//! loopback) at start-up and every `jwks_refresh_secs`. A fetch that fails keeps the
//! keys already loaded; the node logs it and tries again at the next refresh.

use crate::http_client;
use anyhow::Context as _;
use std::time::Duration;

/// Largest JWKS document accepted.
const MAX_JWKS_BYTES: usize = 1 << 20;

async fn fetch(url: &str) -> anyhow::Result<String> {
    let client = http_client::https_or_http::<http_body_util::Empty<bytes::Bytes>>()?;
    let req = http::Request::get(url)
        .header("accept", "application/json")
        .body(http_body_util::Empty::new())?;
    let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .context("timed out")??;
    anyhow::ensure!(resp.status().is_success(), "HTTP {}", resp.status());
    let body = http_client::read_body(resp.into_body(), MAX_JWKS_BYTES)
        .await
        .map_err(|e| anyhow::anyhow!("reading the body: {e}"))?;
    String::from_utf8(body.to_vec()).context("the JWKS is not UTF-8")
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
