//! The HTTP trigger: a fresh instance per request serving `wasi:http/incoming-handler`.

use crate::engine::{Inner, classify};
use crate::state::{Capture, Logs};
use crate::{InvocationEnv, InvokeError, Limits, LoadedFunction};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// How an invocation ended, available once the guest has returned (for HTTP that can
/// be after the response headers went out, while the body streamed).
#[derive(Debug, Clone)]
pub struct InvocationReport {
    pub result: Result<(), InvokeError>,
    pub logs: Logs,
    pub duration: Duration,
}

/// The response (as soon as the guest sets it) and the report (when the guest is done).
pub struct HttpInvocation {
    pub response: Result<hyper::Response<HyperOutgoingBody>, InvokeError>,
    pub report: Pin<Box<dyn Future<Output = InvocationReport> + Send>>,
}

fn failed(err: InvokeError, started: Instant) -> HttpInvocation {
    let report = InvocationReport {
        result: Err(err.clone()),
        logs: Logs::default(),
        duration: started.elapsed(),
    };
    HttpInvocation {
        response: Err(err),
        report: Box::pin(std::future::ready(report)),
    }
}

pub(crate) async fn invoke<B>(
    inner: &Arc<Inner>,
    func: &Arc<LoadedFunction>,
    limits: Limits,
    env: InvocationEnv,
    req: hyper::Request<B>,
) -> HttpInvocation
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<wasmtime_wasi_http::Error>,
{
    let started = Instant::now();
    let Some(pre) = func.proxy_pre.clone() else {
        return failed(
            InvokeError::WrongTrigger("wasi:http/incoming-handler"),
            started,
        );
    };
    let capture = Capture::new(limits.max_log_bytes);
    let mut store = inner.new_store(&limits, &env, &capture);
    let (tx, rx) = tokio::sync::oneshot::channel();
    let (req, out) = {
        let mut http = store.data_mut().http();
        let req = match http.new_incoming_request(Scheme::Http, req) {
            Ok(r) => r,
            Err(e) => return failed(InvokeError::Internal(format!("{e:#}")), started),
        };
        let out = match http.new_response_outparam(tx) {
            Ok(o) => o,
            Err(e) => return failed(InvokeError::Internal(format!("{e:#}")), started),
        };
        (req, out)
    };

    // The guest runs in its own task so it can keep streaming the body after the
    // response head is returned.
    let task = tokio::spawn(async move {
        let run = async {
            let proxy = pre.instantiate_async(&mut store).await?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, req, out)
                .await
        };
        let outcome = tokio::time::timeout(limits.timeout, run).await;
        let result = match outcome {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(classify(e, store.data().limiter.exceeded, &limits)),
            Err(_elapsed) => Err(InvokeError::Timeout(limits.timeout)),
        };
        drop(store);
        let logs = capture.logs();
        InvocationReport {
            result: result.map_err(|e| crate::engine::enrich(e, &logs)),
            logs,
            duration: started.elapsed(),
        }
    });

    // The report of a task that may still be streaming the body.
    let joined = move |task: tokio::task::JoinHandle<InvocationReport>| -> Pin<Box<dyn Future<Output = InvocationReport> + Send>> {
        Box::pin(async move {
            task.await.unwrap_or_else(|e| InvocationReport {
                result: Err(InvokeError::Internal(format!("invocation task failed: {e}"))),
                logs: Logs::default(),
                duration: started.elapsed(),
            })
        })
    };
    match rx.await {
        Ok(Ok(resp)) => HttpInvocation {
            response: Ok(resp),
            report: joined(task),
        },
        // The guest chose to answer with a wasi:http error instead of a response.
        Ok(Err(code)) => HttpInvocation {
            response: Err(InvokeError::Trap(format!(
                "the function answered with wasi:http error {code:?}"
            ))),
            report: joined(task),
        },
        Err(_) => {
            // The outparam was dropped unset: the guest returned or failed first.
            let report = joined(task).await;
            let err = match &report.result {
                Err(e) => e.clone(),
                Ok(()) => InvokeError::NoResponse,
            };
            let report = InvocationReport {
                result: Err(err.clone()),
                ..report
            };
            HttpInvocation {
                response: Err(err),
                report: Box::pin(std::future::ready(report)),
            }
        }
    }
}
