//! A small HTTP client for the control and data planes, with an upload progress bar.

use crate::http_client;
use anyhow::{Context, Result};
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::Frame;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "cannot reach {url}: {reason} (is `helixflow serve` running there? set --url or HELIXFLOW_URL)"
    )]
    Connect { url: String, reason: String },
    #[error("{status} {code}: {message}")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
}

type ReqBody = BoxBody<Bytes, std::io::Error>;

pub struct Client {
    base: String,
    token: Option<String>,
    http: HyperClient<HttpConnector, ReqBody>,
}

impl Client {
    pub fn new(base: &str, token: Option<String>) -> Self {
        Client {
            base: base.trim_end_matches('/').to_string(),
            token: token.filter(|t| !t.is_empty()),
            http: http_client::plain(),
        }
    }

    /// The node's base URL, without a trailing '/'.
    pub fn base(&self) -> &str {
        &self.base
    }

    async fn send(&self, mut req: http::Request<ReqBody>) -> Result<(http::StatusCode, Bytes)> {
        if let Some(t) = &self.token {
            let v = http::HeaderValue::from_str(&format!("Bearer {t}"))
                .context("the token is not a valid header value")?;
            req.headers_mut().insert(http::header::AUTHORIZATION, v);
        }
        let resp = self
            .http
            .request(req)
            .await
            .map_err(|e| ClientError::Connect {
                url: self.base.clone(),
                reason: {
                    use std::error::Error;
                    e.source()
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| e.to_string())
                },
            })?;
        let status = resp.status();
        // No bound: the CLI reads whatever the node it was pointed at answers.
        let body = http_client::read_body(resp.into_body(), usize::MAX)
            .await
            .map_err(anyhow::Error::from_boxed)
            .context("reading the response")?;
        if !status.is_success() {
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            return Err(ClientError::Api {
                status: status.as_u16(),
                code: v["error"]["code"]
                    .as_str()
                    .unwrap_or("http_error")
                    .to_string(),
                message: v["error"]["message"]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned()),
            }
            .into());
        }
        Ok((status, body))
    }

    fn full(b: Bytes) -> ReqBody {
        Full::new(b).map_err(|never| match never {}).boxed()
    }

    pub async fn json(
        &self,
        method: http::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<serde_json::Value> {
        let bytes = body
            .map(|b| serde_json::to_vec(&b))
            .transpose()?
            .unwrap_or_default();
        let req = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(Self::full(bytes.into()))?;
        let (_, body) = self.send(req).await?;
        Ok(serde_json::from_slice(&body).unwrap_or_default())
    }

    pub async fn raw(&self, method: http::Method, path: &str, body: Bytes) -> Result<Bytes> {
        let req = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .body(Self::full(body))?;
        Ok(self.send(req).await?.1)
    }

    /// Upload a file to `path` (a POST) with a progress bar; `headers` go with it.
    pub async fn upload(
        &self,
        path: &str,
        file: &Path,
        content_type: &str,
        headers: Vec<(&str, String)>,
    ) -> Result<serde_json::Value> {
        let bytes = Bytes::from(
            std::fs::read(file).with_context(|| format!("reading {}", file.display()))?,
        );
        let total = bytes.len() as u64;
        let pb = indicatif::ProgressBar::new(total);
        pb.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        pb.set_message(format!("uploading {}", file.display()));
        let chunks: Vec<Bytes> = (0..bytes.len())
            .step_by(64 * 1024)
            .map(|i| bytes.slice(i..(i + 64 * 1024).min(bytes.len())))
            .collect();
        let pb2 = pb.clone();
        let stream = futures::stream::iter(chunks).map(move |c| {
            pb2.inc(c.len() as u64);
            Ok::<_, std::io::Error>(Frame::data(c))
        });
        let mut req = http::Request::builder()
            .method(http::Method::POST)
            .uri(format!("{}{path}", self.base))
            .header("content-type", content_type)
            .header("content-length", total.to_string());
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let req = req.body(BodyExt::boxed(StreamBody::new(stream)))?;
        let result = self.send(req).await;
        pb.finish_and_clear();
        let (_, body) = result?;
        Ok(serde_json::from_slice(&body).unwrap_or_default())
    }
}
