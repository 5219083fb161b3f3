//! The HTTP trigger: a fresh instance per request serving `wasi:http/incoming-handler`.

use crate::engine::{Inner, classify};
use crate::state::{Capture, Logs};
use crate::{InvocationEnv, InvokeError, Limits, LoadedFunction};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;
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
    /// Tokens the invocation ran through `helixflow:llm` (host-counted).
    pub inference: helixflow_nn::host::InferenceUsage,
}

/// Receives the report of an HTTP invocation when the guest is done (possibly after
/// the response head went out and the body streamed). Runs on the invocation's task.
pub type ReportSink = Box<dyn FnOnce(InvocationReport) + Send + 'static>;

/// How the guest used its response outparam.
#[derive(Default)]
struct Answer {
    set: bool,
    error: Option<String>,
}

pub(crate) async fn invoke<B>(
    inner: &Arc<Inner>,
    func: &Arc<LoadedFunction>,
    limits: Limits,
    env: InvocationEnv,
    req: hyper::Request<B>,
    on_report: ReportSink,
) -> Result<hyper::Response<HyperOutgoingBody>, InvokeError>
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<wasmtime_wasi_http::Error>,
{
    let started = Instant::now();
    let fail = |err: InvokeError, on_report: ReportSink| {
        on_report(InvocationReport {
            result: Err(err.clone()),
            logs: Logs::default(),
            duration: started.elapsed(),
            inference: Default::default(),
        });
        Err(err)
    };
    let Some(pre) = func.proxy_pre.clone() else {
        return fail(
            InvokeError::WrongTrigger("wasi:http/incoming-handler"),
            on_report,
        );
    };
    // The guest sees the invocation span as its caller: its `traceparent` replaces the
    // client's (whose span is the invocation's grandparent).
    let mut req = req;
    if let Some(tc) = helixflow_telemetry::current() {
        tc.inject(req.headers_mut());
    }
    let capture = Capture::new(limits.max_log_bytes);
    let mut store = inner.new_store(&limits, &env, &capture);
    let (tx, rx) = tokio::sync::oneshot::channel();
    let answer = Arc::new(std::sync::Mutex::new(Answer::default()));
    let (req, out) = {
        let mut http = store.data_mut().http();
        let req = match http.new_incoming_request(Scheme::Http, req) {
            Ok(r) => r,
            Err(e) => return fail(InvokeError::Internal(format!("{e:#}")), on_report),
        };
        let answer = answer.clone();
        let out = match http.new_response_outparam_from_callback(move |r| {
            if let Ok(mut a) = answer.lock() {
                a.set = true;
                if let Err(code) = &r {
                    a.error = Some(format!(
                        "the function answered with wasi:http error {code:?}"
                    ));
                }
            }
            // The receiver is gone when the caller stopped waiting (e.g. timeout).
            let _ = tx.send(r);
        }) {
            Ok(o) => o,
            Err(e) => return fail(InvokeError::Internal(format!("{e:#}")), on_report),
        };
        (req, out)
    };

    // The guest runs in its own task so it can keep streaming the body after the
    // response head is returned; the task reports when the guest is done.
    let guest = async move {
        let run = async {
            let proxy = pre.instantiate_async(&mut store).await?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, req, out)
                .await
        };
        let outcome = tokio::time::timeout(limits.timeout, run).await;
        let mut result = match outcome {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(classify(e, store.data().limiter.exceeded, &limits)),
            Err(_elapsed) => Err(InvokeError::Timeout(limits.timeout)),
        };
        let inference = store.data().nn.usage();
        drop(store);
        let logs = capture.logs();
        if result.is_ok() {
            let a = answer
                .lock()
                .map(|a| (a.set, a.error.clone()))
                .unwrap_or((true, None));
            result = match a {
                (false, _) => Err(InvokeError::NoResponse),
                (true, Some(msg)) => Err(InvokeError::Trap(msg)),
                (true, None) => Ok(()),
            };
        }
        let result = result.map_err(|e| crate::engine::enrich(e, &logs));
        on_report(InvocationReport {
            result: result.clone(),
            logs,
            duration: started.elapsed(),
            inference,
        });
        result
    };
    // The guest's task stays in the invocation span (its wasi:nn calls are children;
    // the span ends when the guest is done, body streamed).
    let task = tokio::spawn(guest.in_current_span());

    match rx.await {
        Ok(Ok(resp)) => Ok(resp),
        Ok(Err(code)) => Err(InvokeError::Trap(format!(
            "the function answered with wasi:http error {code:?}"
        ))),
        // The outparam was dropped unset: the guest returned or failed first.
        Err(_) => match task.await {
            Ok(Err(e)) => Err(e),
            Ok(Ok(())) => Err(InvokeError::NoResponse),
            Err(e) => Err(InvokeError::Internal(format!(
                "invocation task failed: {e}"
            ))),
        },
    }
}
