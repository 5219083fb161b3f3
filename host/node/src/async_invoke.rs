//! Durable asynchronous invocations (the Lambda `Event` invocation type): the worker.
//!
//! * [`accept`] stores an event (leased to this node) before the caller's 202, then
//!   hands it to this node's dispatcher; nothing runs before the write is durable.
//! * The dispatcher runs events with at most `async_workers` at once. An attempt that
//!   ends in an error is retried after `retry_delay_ms`, doubled each time, up to
//!   `max_retries`; then the event fails for good: its record goes to the `on_failure`
//!   destinations and is kept for `helixflow events list/replay`. Success goes to
//!   `on_success`. Finishing is one transaction, conditional on the claim (so a worker
//!   whose lease lapsed cannot finish an event twice).
//! * The poller claims events whose lease lapsed (their node died) or whose retry is
//!   due, from every queue shard: at-least-once delivery across restarts and nodes.
//! * Cron schedules feed the same queue (`crate::schedule`).

use crate::Node;
use crate::error::{ErrorKind, NodeError};
use crate::metrics::AsyncLabels;
use crate::resolve::{Target, resolve};
use base64::Engine as _;
use helixflow_store::events::{Destination, EventError, FailedEvent, QUEUE_SHARDS, QueuedEvent};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore, mpsc};

/// A lease covers the function's timeout plus this margin.
const LEASE_MARGIN_MS: u64 = 5_000;
/// How often the poller looks for lapsed leases and due retries.
const POLL_EVERY: Duration = Duration::from_millis(500);
/// A quota refusal (429) puts the event back for this long; it is not a failure.
const RELEASE_DELAY_MS: u64 = 1_000;

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

struct Claimed {
    ev: QueuedEvent,
    version: u64,
}

/// This node's side of the event queue.
pub struct EventRunner {
    tx: mpsc::UnboundedSender<Claimed>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<Claimed>>>,
    /// Events handed to the dispatcher and not started yet.
    backlog: std::sync::atomic::AtomicUsize,
    max_backlog_for_polling: usize,
    poll: Notify,
    /// `{node}/{random}`: who holds a lease.
    owner: String,
    workers: Arc<Semaphore>,
    /// Where the poller reads each shard next: one page per shard per poll, wrapping
    /// around, so events behind a long run of delayed retries are still reached.
    cursors: Mutex<Vec<Option<String>>>,
}

impl EventRunner {
    pub fn new(node_id: &str, workers: usize) -> Self {
        let workers = workers.max(1);
        let (tx, rx) = mpsc::unbounded_channel();
        EventRunner {
            tx,
            rx: Mutex::new(Some(rx)),
            backlog: Default::default(),
            max_backlog_for_polling: workers * 2,
            poll: Notify::new(),
            owner: format!("{node_id}/{}", uuid::Uuid::new_v4().simple()),
            workers: Arc::new(Semaphore::new(workers)),
            cursors: Mutex::new(vec![None; QUEUE_SHARDS as usize]),
        }
    }
}

/// Starts the dispatcher, the poller and the scheduler (once per node).
pub fn start(node: &Arc<Node>) {
    let Some(mut rx) = node
        .worker
        .rx
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
    else {
        return;
    };
    let s = node.clone();
    tokio::spawn(async move {
        while let Some(c) = rx.recv().await {
            let Ok(permit) = s.worker.workers.clone().acquire_owned().await else {
                return;
            };
            s.worker
                .backlog
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            let s = s.clone();
            tokio::spawn(async move {
                run(&s, c).await;
                drop(permit);
            });
        }
    });
    let s = node.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = s.worker.poll.notified() => {}
                _ = tokio::time::sleep(POLL_EVERY) => {}
            }
            if let Err(e) = poll_once(&s).await {
                tracing::warn!(code = e.code, error = %e.message, "event poller: store read failed; retrying");
            }
        }
    });
    let s = node.clone();
    tokio::spawn(async move { crate::schedule::run(s).await });
}

pub(crate) fn count(node: &Node, outcome: &'static str) {
    node.metrics
        .async_events
        .get_or_create(&AsyncLabels { outcome })
        .inc();
}

/// Stores an Event invocation of `target` durably and schedules it on this node.
/// Returns the event id (also the request id of every attempt).
pub async fn accept(
    node: &Arc<Node>,
    target: &Target,
    payload: Vec<u8>,
    client_context: Option<String>,
    source: String,
) -> Result<String, NodeError> {
    // Refused now rather than queued behind a spent budget (the tenant's, or the
    // caller's: `source` is `invoke:{principal}` for an Invoke API call).
    crate::budget::admit_spend(node, &target.tenant.name, queued_by(&source)).await?;
    let ev = new_event(node, target, &payload, client_context, source);
    node.registry.enqueue_event(&ev).await?;
    count(node, "accepted");
    let id = ev.id.clone();
    dispatch(node, ev, 1);
    Ok(id)
}

/// The principal that queued an event (`invoke:{principal}`), if a caller did.
fn queued_by(source: &str) -> &str {
    source.strip_prefix("invoke:").unwrap_or("")
}

pub(crate) fn new_event(
    node: &Node,
    target: &Target,
    payload: &[u8],
    client_context: Option<String>,
    source: String,
) -> QueuedEvent {
    let now = now_ms();
    let timeout_ms = target.limits.timeout.as_millis() as u64;
    QueuedEvent {
        id: uuid::Uuid::now_v7().to_string(),
        tenant: target.tenant.name.clone(),
        function: target.function.name.clone(),
        version: target.version.version,
        payload_b64: base64::engine::general_purpose::STANDARD.encode(payload),
        client_context,
        accepted_at_ms: now,
        attempts: 1,
        failures: 0,
        timeout_ms,
        due_at_ms: now,
        lease_owner: node.worker.owner.clone(),
        lease_until_ms: now + timeout_ms + LEASE_MARGIN_MS,
        last_error: None,
        source,
    }
}

/// Hands a claimed event to the local dispatcher. An event that waits longer than its
/// lease is claimed again (compare-and-swap) before it runs, so a backlog never runs an
/// event twice on one node; the poller only claims more while the backlog is short.
pub(crate) fn dispatch(node: &Node, ev: QueuedEvent, version: u64) {
    node.worker
        .backlog
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if node.worker.tx.send(Claimed { ev, version }).is_err() {
        node.worker
            .backlog
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        tracing::warn!(
            "event dispatcher stopped; the event stays queued for another node or restart"
        );
    }
}

fn poller_has_room(node: &Node) -> bool {
    node.worker
        .backlog
        .load(std::sync::atomic::Ordering::Relaxed)
        < node.worker.max_backlog_for_polling
}

async fn poll_once(node: &Arc<Node>) -> Result<(), NodeError> {
    let now = now_ms();
    for shard in 0..QUEUE_SHARDS {
        if !poller_has_room(node) {
            return Ok(());
        }
        let cursor = node
            .worker
            .cursors
            .lock()
            .unwrap_or_else(|p| p.into_inner())[shard as usize]
            .clone();
        let (page, next) = node
            .registry
            .queued_events_after(shard, cursor, 200)
            .await?;
        node.worker
            .cursors
            .lock()
            .unwrap_or_else(|p| p.into_inner())[shard as usize] = next;
        for (mut ev, version) in page {
            if ev.due_at_ms > now || ev.lease_until_ms > now {
                continue;
            }
            if !poller_has_room(node) {
                return Ok(());
            }
            let taken_over = !ev.lease_owner.is_empty();
            ev.lease_owner = node.worker.owner.clone();
            ev.lease_until_ms = now + ev.timeout_ms + LEASE_MARGIN_MS;
            ev.attempts += 1;
            if let Some(v) = node.registry.update_event(&ev, version).await? {
                if taken_over {
                    tracing::info!(event = %ev.id, tenant = %ev.tenant, function = %ev.function, "took over an event whose lease lapsed");
                    count(node, "taken_over");
                }
                dispatch(node, ev, v);
            }
        }
    }
    Ok(())
}

fn aws_record(
    ev: &QueuedEvent,
    condition: &str,
    response: serde_json::Value,
    function_error: bool,
    region: &str,
) -> serde_json::Value {
    let payload = base64::engine::general_purpose::STANDARD
        .decode(&ev.payload_b64)
        .unwrap_or_default();
    let request_payload = serde_json::from_slice::<serde_json::Value>(&payload)
        .unwrap_or_else(|_| String::from_utf8_lossy(&payload).into());
    let mut response_context =
        json!({"statusCode": 200, "executedVersion": ev.version.to_string()});
    if function_error {
        response_context["functionError"] = "Unhandled".into();
    }
    json!({
        "version": "1.0",
        "timestamp": time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
        "requestContext": {
            "requestId": ev.id,
            "functionArn": crate::lambda::function_arn(region, &ev.tenant, &ev.function, Some(&ev.version.to_string())),
            "condition": condition,
            "approximateInvokeCount": ev.attempts,
        },
        "requestPayload": request_payload,
        "responseContext": response_context,
        "responsePayload": response,
    })
}

/// Writes a destination record to the object store, and returns the event for a
/// destination function (enqueued by the caller in its finishing transaction).
async fn deliver(
    node: &Arc<Node>,
    dest: &Destination,
    ev: &QueuedEvent,
    record: &serde_json::Value,
) -> Result<Option<QueuedEvent>, NodeError> {
    let mut bytes = serde_json::to_vec(record).unwrap_or_default();
    if bytes.len() > helixflow_store::events::MAX_EVENT_PAYLOAD {
        let mut r = record.clone();
        r["responsePayload"] = json!({"truncated": true});
        r["requestPayload"] = json!({"truncated": true, "see": "the failed-event record"});
        bytes = serde_json::to_vec(&r).unwrap_or_default();
    }
    if let Some(prefix) = &dest.object_prefix {
        let rel = format!(
            "events/{}/{}/{}/{}.json",
            ev.tenant,
            prefix.trim_matches('/'),
            ev.function,
            ev.id
        );
        node.artifacts
            .put_record(&rel, bytes.clone().into())
            .await?;
    }
    match &dest.function {
        None => Ok(None),
        Some(f) => match resolve(node, &ev.tenant, f, None).await {
            Ok(t) => {
                let mut next = new_event(node, &t, &bytes, None, format!("destination:{}", ev.id));
                // Deterministic id per source event: a retried finish cannot enqueue twice.
                next.id = uuid::Uuid::new_v5(
                    &uuid::Uuid::NAMESPACE_OID,
                    format!("{}->{f}", ev.id).as_bytes(),
                )
                .to_string();
                Ok(Some(next))
            }
            Err(e) => {
                tracing::warn!(event = %ev.id, destination = %f, error = %e.message, "destination function unavailable; record dropped");
                Ok(None)
            }
        },
    }
}

async fn run(node: &Arc<Node>, c: Claimed) {
    let Claimed {
        mut ev,
        mut version,
    } = c;
    let now = now_ms();
    // Re-claim if our lease cannot cover a whole attempt any more (we waited in line).
    if ev.lease_owner != node.worker.owner || ev.lease_until_ms < now + ev.timeout_ms + 1_000 {
        ev.lease_owner = node.worker.owner.clone();
        ev.lease_until_ms = now + ev.timeout_ms + LEASE_MARGIN_MS;
        match node.registry.update_event(&ev, version).await {
            Ok(Some(v)) => version = v,
            Ok(None) => return, // another worker has it
            Err(e) => {
                tracing::warn!(event = %ev.id, error = %e, "could not renew the lease; the poller retries");
                return;
            }
        }
    }
    let region = node.settings.node_id.clone();
    let target = match resolve(
        node,
        &ev.tenant,
        &ev.function,
        Some(&ev.version.to_string()),
    )
    .await
    {
        Ok(t) => t,
        Err(e) if e.is_not_found() => {
            let err = EventError {
                error_type: "ResourceNotFoundException".into(),
                message: e.message,
            };
            fail(node, ev, version, "FunctionNotFound", err, None, &region).await;
            return;
        }
        Err(e) => {
            tracing::warn!(event = %ev.id, error = %e.message, "event: cannot resolve its function now; retrying later");
            release(node, ev, version, RELEASE_DELAY_MS).await;
            return;
        }
    };
    let cfg = target
        .function
        .config
        .async_invoke
        .clone()
        .unwrap_or_default();
    if now.saturating_sub(ev.accepted_at_ms) > cfg.max_event_age_s * 1000 {
        let err = ev.last_error.clone().unwrap_or(EventError {
            error_type: "EventAgeExceeded".into(),
            message: "the event is older than max_event_age_s".into(),
        });
        fail(
            node,
            ev,
            version,
            "EventAgeExceeded",
            err,
            cfg.on_failure.as_ref(),
            &region,
        )
        .await;
        return;
    }
    let payload = base64::engine::general_purpose::STANDARD
        .decode(&ev.payload_b64)
        .unwrap_or_default();
    let call = crate::invoke::call_event_logged(
        node,
        &target,
        payload,
        &ev.id,
        ev.client_context.clone(),
        &crate::invoke::Caller {
            // Who queued it: the caller of an Invoke API call (metered, and held to its
            // spend cap, as that caller), else the kind (`schedule`, `destination`,
            // `replay`; not the id after the colon: one series per kind, not per event).
            principal: match queued_by(&ev.source) {
                "" => ev.source.split(':').next().unwrap_or_default().to_string(),
                who => who.to_string(),
            },
            via: "async",
            model: None,
            reserved_tokens: 0,
        },
    )
    .await;
    let error = match call.result {
        Ok(Ok(out)) => {
            let response = serde_json::from_slice::<serde_json::Value>(&out)
                .unwrap_or_else(|_| String::from_utf8_lossy(&out).into());
            let mut follow = Vec::new();
            if let Some(d) = &cfg.on_success {
                let record = aws_record(&ev, "Success", response, false, &region);
                match deliver(node, d, &ev, &record).await {
                    Ok(f) => follow.extend(f),
                    Err(e) => {
                        tracing::warn!(event = %ev.id, error = %e.message, "on_success destination failed")
                    }
                }
            }
            finish(node, &ev, version, None, follow).await;
            count(node, "succeeded");
            return;
        }
        Ok(Err((error_type, message))) => EventError {
            error_type,
            message,
        },
        Err(crate::invoke::CallError::Quota(e)) => {
            // A spent budget lasts until the month ends or the budget is raised: check
            // back once a minute, not at the quota pace.
            let delay = if e.code == "budget_exceeded" {
                60_000
            } else {
                RELEASE_DELAY_MS
            };
            release(node, ev, version, delay).await;
            return;
        }
        Err(crate::invoke::CallError::Invoke(e)) => EventError {
            error_type: crate::lambda::runtime_error_type(&e)
                .unwrap_or(e.code())
                .to_string(),
            message: e.to_string(),
        },
    };
    ev.failures += 1;
    if ev.failures <= cfg.max_retries {
        let delay = cfg
            .retry_delay_ms
            .saturating_mul(1 << (ev.failures - 1).min(16));
        ev.last_error = Some(error);
        ev.due_at_ms = now_ms() + delay;
        ev.lease_owner.clear();
        ev.lease_until_ms = 0;
        match node.registry.update_event(&ev, version).await {
            Ok(Some(_)) => count(node, "retried"),
            Ok(None) => count(node, "taken_over"),
            Err(e) => {
                tracing::warn!(event = %ev.id, error = %e, "could not schedule the retry; the lease will lapse and the event run again")
            }
        }
        return;
    }
    fail(
        node,
        ev,
        version,
        "RetriesExhausted",
        error,
        cfg.on_failure.as_ref(),
        &region,
    )
    .await;
}

async fn finish(
    node: &Arc<Node>,
    ev: &QueuedEvent,
    version: u64,
    failed: Option<&FailedEvent>,
    follow: Vec<QueuedEvent>,
) {
    match node
        .registry
        .finish_event(ev, version, failed, &follow)
        .await
    {
        Ok(true) => {
            for f in follow {
                count(node, "accepted");
                dispatch(node, f, 1);
            }
        }
        Ok(false) => {
            tracing::info!(event = %ev.id, "event finished by another worker (its lease had lapsed): ran more than once");
            count(node, "taken_over");
        }
        Err(e) => {
            tracing::warn!(event = %ev.id, error = %e, "could not record the event's end; it will run again (at-least-once)")
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn fail(
    node: &Arc<Node>,
    ev: QueuedEvent,
    version: u64,
    condition: &str,
    error: EventError,
    dest: Option<&Destination>,
    region: &str,
) {
    let mut follow = Vec::new();
    if let Some(d) = dest {
        let record = aws_record(
            &ev,
            condition,
            json!({"errorType": error.error_type, "errorMessage": error.message}),
            true,
            region,
        );
        match deliver(node, d, &ev, &record).await {
            Ok(f) => follow.extend(f),
            Err(e) => {
                tracing::warn!(event = %ev.id, error = %e.message, "on_failure destination failed")
            }
        }
    }
    tracing::warn!(event = %ev.id, tenant = %ev.tenant, function = %ev.function, condition, error_type = %error.error_type, "event failed for good");
    let failed = FailedEvent {
        id: ev.id.clone(),
        tenant: ev.tenant.clone(),
        function: ev.function.clone(),
        version: ev.version,
        payload_b64: ev.payload_b64.clone(),
        client_context: ev.client_context.clone(),
        accepted_at_ms: ev.accepted_at_ms,
        finished_at_ms: now_ms(),
        attempts: ev.attempts,
        condition: condition.into(),
        last_error: Some(error),
        source: ev.source.clone(),
        replayed_as: None,
        expires_at: helixflow_store::now_unix() + helixflow_store::events::FAILED_RETENTION_SECS,
    };
    finish(node, &ev, version, Some(&failed), follow).await;
    count(node, "failed");
}

async fn release(node: &Arc<Node>, mut ev: QueuedEvent, version: u64, delay_ms: u64) {
    ev.due_at_ms = now_ms() + delay_ms;
    ev.lease_owner.clear();
    ev.lease_until_ms = 0;
    if let Ok(Some(_)) = node.registry.update_event(&ev, version).await {
        count(node, "released");
    }
}

/// Replays a failed event: a new event with its payload, queued for any node, and the
/// failed record marked as replayed (one transaction). Returns the new event's id.
pub async fn replay(node: &Node, tenant: &str, id: &str) -> Result<String, NodeError> {
    let Some((f, version)) = node.registry.failed_event(tenant, id).await? else {
        return Err(NodeError::not_found(format!(
            "no failed event {id:?} in tenant {tenant:?}"
        )));
    };
    if let Some(again) = &f.replayed_as {
        return Err(NodeError::new(
            ErrorKind::Conflict,
            "already_replayed",
            format!("event {id} was already replayed as {again}"),
        ));
    }
    let now = now_ms();
    let timeout_ms = match node.registry.function(tenant, &f.function).await {
        Ok(func) => func
            .config
            .timeout_ms
            .unwrap_or(node.settings.default_timeout_ms),
        Err(_) => node.settings.default_timeout_ms,
    };
    let ev = QueuedEvent {
        id: uuid::Uuid::now_v7().to_string(),
        tenant: f.tenant.clone(),
        function: f.function.clone(),
        version: f.version,
        payload_b64: f.payload_b64.clone(),
        client_context: f.client_context.clone(),
        accepted_at_ms: now,
        attempts: 0,
        failures: 0,
        timeout_ms,
        due_at_ms: now,
        lease_owner: String::new(),
        lease_until_ms: 0,
        last_error: None,
        source: format!("replay:{}", f.id),
    };
    node.registry.replay_failed(&f, version, &ev).await?;
    count(node, "accepted");
    node.worker.poll.notify_one();
    Ok(ev.id)
}
