//! The event trigger: `helixflow:function/event-handler` (bytes in -> bytes out or a
//! typed function error), a fresh instance per event.

use crate::engine::{Inner, classify};
use crate::http::InvocationReport;
use crate::state::{Capture, Logs};
use crate::{InvocationEnv, InvokeError, Limits, LoadedFunction};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

wasmtime::component::bindgen!({
    path: "../../wit/function",
    world: "event-function",
    exports: { default: async },
});

use exports::helixflow::function::event_handler::{FunctionError, InvocationContext};

/// Invocation context the caller supplies (the deadline and memory limit come from `Limits`).
#[derive(Debug, Clone, Default)]
pub struct EventContext {
    pub request_id: String,
    pub tenant: String,
    pub function_name: String,
    pub function_version: u32,
    pub client_context: Option<String>,
}

/// The result of one event invocation.
#[derive(Debug, Clone)]
pub struct EventOutput {
    /// `Ok(Ok(bytes))`: the function returned; `Ok(Err((type, message)))`: it returned a
    /// handled error; `Err(_)`: it failed (trap, timeout, memory, ...).
    pub result: Result<Result<Vec<u8>, (String, String)>, InvokeError>,
    pub report: InvocationReport,
}

pub(crate) async fn invoke(
    inner: &Arc<Inner>,
    func: &Arc<LoadedFunction>,
    limits: Limits,
    env: InvocationEnv,
    ctx: EventContext,
    payload: Vec<u8>,
) -> EventOutput {
    let started = Instant::now();
    let Some(pre) = func.event_pre.clone() else {
        let err = InvokeError::WrongTrigger("helixflow:function/event-handler");
        return EventOutput {
            result: Err(err.clone()),
            report: InvocationReport {
                result: Err(err),
                logs: Logs::default(),
                duration: started.elapsed(),
                inference: Default::default(),
            },
        };
    };
    let capture = Capture::new(limits.max_log_bytes);
    let mut store = inner.new_store(&limits, &env, &capture);
    let deadline = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .saturating_add(limits.timeout);
    let wit_ctx = InvocationContext {
        request_id: ctx.request_id,
        tenant: ctx.tenant,
        function_name: ctx.function_name,
        function_version: ctx.function_version,
        deadline_unix_ms: deadline.as_millis() as u64,
        memory_limit_mb: (limits.memory_bytes >> 20) as u32,
        client_context: ctx.client_context,
    };
    let run = async {
        let f = pre.instantiate_async(&mut store).await?;
        f.helixflow_function_event_handler()
            .call_handle(&mut store, &payload, &wit_ctx)
            .await
    };
    let outcome = tokio::time::timeout(limits.timeout, run).await;
    let result = match outcome {
        Ok(Ok(Ok(bytes))) => Ok(Ok(bytes)),
        Ok(Ok(Err(FunctionError {
            error_type,
            message,
        }))) => Ok(Err((error_type, message))),
        Ok(Err(e)) => Err(classify(e, store.data().limiter.exceeded, &limits)),
        Err(_) => Err(InvokeError::Timeout(limits.timeout)),
    };
    let inference = store.data().nn.usage();
    drop(store);
    let logs = capture.logs();
    let result = result.map_err(|e| crate::engine::enrich(e, &logs));
    EventOutput {
        report: InvocationReport {
            result: result.as_ref().map(|_| ()).map_err(Clone::clone),
            logs,
            duration: started.elapsed(),
            inference,
        },
        result,
    }
}
