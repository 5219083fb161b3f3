//! Asynchronous-invocation routes: `/api/v1/tenants/{t}/events[/{id}[/replay]]` (the
//! pending and failed invocations of a tenant's queue; the worker itself is
//! `helixflow_node::async_invoke`).

use crate::AppState;
use crate::body::{Body, json_response};
use crate::error::ApiError;
use crate::tracked::TrackedBody;
use helixflow_store::events::{FailedEvent, QUEUE_SHARDS, QueuedEvent};
use http::{Method, Response, StatusCode};
use serde_json::json;

fn pending_view(ev: &QueuedEvent) -> serde_json::Value {
    json!({
        "id": ev.id, "status": "pending", "function": ev.function, "version": ev.version,
        "attempts": ev.attempts, "failures": ev.failures, "accepted_at_ms": ev.accepted_at_ms,
        "due_at_ms": ev.due_at_ms, "last_error": ev.last_error, "source": ev.source,
    })
}

fn failed_view(f: &FailedEvent) -> serde_json::Value {
    json!({
        "id": f.id, "status": "failed", "function": f.function, "version": f.version,
        "attempts": f.attempts, "condition": f.condition, "accepted_at_ms": f.accepted_at_ms,
        "finished_at_ms": f.finished_at_ms, "last_error": f.last_error, "source": f.source,
        "replayed_as": f.replayed_as, "payload_b64": f.payload_b64,
    })
}

/// `/api/v1/tenants/{t}/events[/{id}[/replay]]`
pub async fn route(
    state: &AppState,
    req: http::Request<TrackedBody>,
    tenant: &str,
    rest: &[&str],
) -> Result<Response<Body>, ApiError> {
    state.node.registry.tenant(tenant).await?;
    let query = crate::request::query(&req);
    let param = |k: &str| query.get(k).cloned();
    match (req.method().clone(), rest) {
        (Method::GET, []) => {
            let status = param("status");
            let function = param("function");
            let limit: usize = param("limit")
                .and_then(|l| l.parse().ok())
                .unwrap_or(100)
                .min(1000);
            let mut out = Vec::new();
            if status.as_deref().is_none_or(|s| s == "pending") {
                for shard in 0..QUEUE_SHARDS {
                    for (ev, _) in state.node.registry.queued_events(shard, 1000).await? {
                        if ev.tenant == tenant
                            && function.as_ref().is_none_or(|f| *f == ev.function)
                        {
                            out.push(pending_view(&ev));
                        }
                    }
                }
            }
            if status.as_deref().is_none_or(|s| s == "failed") {
                for f in state.node.registry.failed_events(tenant, limit).await? {
                    if function.as_ref().is_none_or(|x| *x == f.function) {
                        out.push(failed_view(&f));
                    }
                }
            }
            if let Some(s) = status
                .as_deref()
                .filter(|s| *s != "pending" && *s != "failed")
            {
                return Err(ApiError::bad_request(
                    "invalid_request",
                    format!("status {s:?}: use pending or failed"),
                ));
            }
            out.truncate(limit);
            Ok(json_response(StatusCode::OK, &json!({"events": out})))
        }
        (Method::GET, [id]) => {
            if let Some((ev, _)) = state.node.registry.queued_event(id).await?
                && ev.tenant == tenant
            {
                return Ok(json_response(StatusCode::OK, &pending_view(&ev)));
            }
            match state.node.registry.failed_event(tenant, id).await? {
                Some((f, _)) => Ok(json_response(StatusCode::OK, &failed_view(&f))),
                None => Err(ApiError::not_found(format!(
                    "event {id:?} is neither pending nor failed in tenant {tenant:?} (it succeeded, or its record expired)"
                ))),
            }
        }
        (Method::POST, [id, "replay"]) => {
            let again = helixflow_node::async_invoke::replay(&state.node, tenant, id).await?;
            Ok(json_response(
                StatusCode::ACCEPTED,
                &json!({"id": again, "replay_of": id}),
            ))
        }
        _ => Err(ApiError::not_found("no such events route")),
    }
}
