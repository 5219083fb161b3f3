//! Durable asynchronous invocations and scheduled triggers: the worker side.
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
//! * The scheduler fires cron ticks of every scheduled function; the tick marker and
//!   the event are one conditional transaction, so each tick fires at most once across
//!   every node sharing the metadata store.

use crate::AppState;
use crate::body::{Body, json_response};
use crate::error::ApiError;
use crate::metrics::AsyncLabels;
use crate::resolve::{Target, resolve};
use crate::tracked::TrackedBody;
use base64::Engine as _;
use helixflow_store::events::{
    Destination, EventError, FailedEvent, QUEUE_SHARDS, QueuedEvent, Schedule,
};
use http::{Method, Response, StatusCode};
use serde_json::json;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore, mpsc};

/// A lease covers the function's timeout plus this margin.
const LEASE_MARGIN_MS: u64 = 5_000;
/// How often the poller looks for lapsed leases and due retries.
const POLL_EVERY: Duration = Duration::from_millis(500);
/// A quota refusal (429) puts the event back for this long; it is not a failure.
const RELEASE_DELAY_MS: u64 = 1_000;

fn now_ms() -> u64 {
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
pub fn start(state: &Arc<AppState>) {
    let Some(mut rx) = state
        .events
        .rx
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
    else {
        return;
    };
    let s = state.clone();
    tokio::spawn(async move {
        while let Some(c) = rx.recv().await {
            let Ok(permit) = s.events.workers.clone().acquire_owned().await else {
                return;
            };
            s.events
                .backlog
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            let s = s.clone();
            tokio::spawn(async move {
                run(&s, c).await;
                drop(permit);
            });
        }
    });
    let s = state.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = s.events.poll.notified() => {}
                _ = tokio::time::sleep(POLL_EVERY) => {}
            }
            if let Err(e) = poll_once(&s).await {
                tracing::warn!(code = e.code, error = %e.message, "event poller: store read failed; retrying");
            }
        }
    });
    let s = state.clone();
    tokio::spawn(async move { scheduler(s).await });
}

fn count(state: &AppState, outcome: &'static str) {
    state
        .metrics
        .async_events
        .get_or_create(&AsyncLabels { outcome })
        .inc();
}

/// Stores an Event invocation of `target` durably and schedules it on this node.
/// Returns the event id (also the request id of every attempt).
pub async fn accept(
    state: &Arc<AppState>,
    target: &Target,
    payload: Vec<u8>,
    client_context: Option<String>,
    source: String,
) -> Result<String, ApiError> {
    let ev = new_event(state, target, &payload, client_context, source);
    state.registry.enqueue_event(&ev).await?;
    count(state, "accepted");
    let id = ev.id.clone();
    dispatch(state, ev, 1);
    Ok(id)
}

fn new_event(
    state: &AppState,
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
        lease_owner: state.events.owner.clone(),
        lease_until_ms: now + timeout_ms + LEASE_MARGIN_MS,
        last_error: None,
        source,
    }
}

/// Hands a claimed event to the local dispatcher. An event that waits longer than its
/// lease is claimed again (compare-and-swap) before it runs, so a backlog never runs an
/// event twice on one node; the poller only claims more while the backlog is short.
fn dispatch(state: &AppState, ev: QueuedEvent, version: u64) {
    state
        .events
        .backlog
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if state.events.tx.send(Claimed { ev, version }).is_err() {
        state
            .events
            .backlog
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        tracing::warn!(
            "event dispatcher stopped; the event stays queued for another node or restart"
        );
    }
}

fn poller_has_room(state: &AppState) -> bool {
    state
        .events
        .backlog
        .load(std::sync::atomic::Ordering::Relaxed)
        < state.events.max_backlog_for_polling
}

async fn poll_once(state: &Arc<AppState>) -> Result<(), ApiError> {
    let now = now_ms();
    for shard in 0..QUEUE_SHARDS {
        if !poller_has_room(state) {
            return Ok(());
        }
        let cursor = state
            .events
            .cursors
            .lock()
            .unwrap_or_else(|p| p.into_inner())[shard as usize]
            .clone();
        let (page, next) = state
            .registry
            .queued_events_after(shard, cursor, 200)
            .await?;
        state
            .events
            .cursors
            .lock()
            .unwrap_or_else(|p| p.into_inner())[shard as usize] = next;
        for (mut ev, version) in page {
            if ev.due_at_ms > now || ev.lease_until_ms > now {
                continue;
            }
            if !poller_has_room(state) {
                return Ok(());
            }
            let taken_over = !ev.lease_owner.is_empty();
            ev.lease_owner = state.events.owner.clone();
            ev.lease_until_ms = now + ev.timeout_ms + LEASE_MARGIN_MS;
            ev.attempts += 1;
            if let Some(v) = state.registry.update_event(&ev, version).await? {
                if taken_over {
                    tracing::info!(event = %ev.id, tenant = %ev.tenant, function = %ev.function, "took over an event whose lease lapsed");
                    count(state, "taken_over");
                }
                dispatch(state, ev, v);
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
    state: &Arc<AppState>,
    dest: &Destination,
    ev: &QueuedEvent,
    record: &serde_json::Value,
) -> Result<Option<QueuedEvent>, ApiError> {
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
        state
            .artifacts
            .put_record(&rel, bytes.clone().into())
            .await?;
    }
    match &dest.function {
        None => Ok(None),
        Some(f) => match resolve(state, &ev.tenant, f, None).await {
            Ok(t) => {
                let mut next = new_event(state, &t, &bytes, None, format!("destination:{}", ev.id));
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

async fn run(state: &Arc<AppState>, c: Claimed) {
    let Claimed {
        mut ev,
        mut version,
    } = c;
    let now = now_ms();
    // Re-claim if our lease cannot cover a whole attempt any more (we waited in line).
    if ev.lease_owner != state.events.owner || ev.lease_until_ms < now + ev.timeout_ms + 1_000 {
        ev.lease_owner = state.events.owner.clone();
        ev.lease_until_ms = now + ev.timeout_ms + LEASE_MARGIN_MS;
        match state.registry.update_event(&ev, version).await {
            Ok(Some(v)) => version = v,
            Ok(None) => return, // another worker has it
            Err(e) => {
                tracing::warn!(event = %ev.id, error = %e, "could not renew the lease; the poller retries");
                return;
            }
        }
    }
    let region = state.settings.node_id.clone();
    let target = match resolve(
        state,
        &ev.tenant,
        &ev.function,
        Some(&ev.version.to_string()),
    )
    .await
    {
        Ok(t) => t,
        Err(e) if e.status == StatusCode::NOT_FOUND => {
            let err = EventError {
                error_type: "ResourceNotFoundException".into(),
                message: e.message,
            };
            fail(state, ev, version, "FunctionNotFound", err, None, &region).await;
            return;
        }
        Err(e) => {
            tracing::warn!(event = %ev.id, error = %e.message, "event: cannot resolve its function now; retrying later");
            release(state, ev, version, RELEASE_DELAY_MS).await;
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
            state,
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
    let call =
        crate::data::call_event_logged(state, &target, payload, &ev.id, ev.client_context.clone())
            .await;
    let error = match call.result {
        Ok(Ok(out)) => {
            let response = serde_json::from_slice::<serde_json::Value>(&out)
                .unwrap_or_else(|_| String::from_utf8_lossy(&out).into());
            let mut follow = Vec::new();
            if let Some(d) = &cfg.on_success {
                let record = aws_record(&ev, "Success", response, false, &region);
                match deliver(state, d, &ev, &record).await {
                    Ok(f) => follow.extend(f),
                    Err(e) => {
                        tracing::warn!(event = %ev.id, error = %e.message, "on_success destination failed")
                    }
                }
            }
            finish(state, &ev, version, None, follow).await;
            count(state, "succeeded");
            return;
        }
        Ok(Err((error_type, message))) => EventError {
            error_type,
            message,
        },
        Err(crate::data::CallError::Quota(_)) => {
            release(state, ev, version, RELEASE_DELAY_MS).await;
            return;
        }
        Err(crate::data::CallError::Invoke(e)) => EventError {
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
        match state.registry.update_event(&ev, version).await {
            Ok(Some(_)) => count(state, "retried"),
            Ok(None) => count(state, "taken_over"),
            Err(e) => {
                tracing::warn!(event = %ev.id, error = %e, "could not schedule the retry; the lease will lapse and the event run again")
            }
        }
        return;
    }
    fail(
        state,
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
    state: &Arc<AppState>,
    ev: &QueuedEvent,
    version: u64,
    failed: Option<&FailedEvent>,
    follow: Vec<QueuedEvent>,
) {
    match state
        .registry
        .finish_event(ev, version, failed, &follow)
        .await
    {
        Ok(true) => {
            for f in follow {
                count(state, "accepted");
                dispatch(state, f, 1);
            }
        }
        Ok(false) => {
            tracing::info!(event = %ev.id, "event finished by another worker (its lease had lapsed): ran more than once");
            count(state, "taken_over");
        }
        Err(e) => {
            tracing::warn!(event = %ev.id, error = %e, "could not record the event's end; it will run again (at-least-once)")
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn fail(
    state: &Arc<AppState>,
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
        match deliver(state, d, &ev, &record).await {
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
    finish(state, &ev, version, Some(&failed), follow).await;
    count(state, "failed");
}

async fn release(state: &Arc<AppState>, mut ev: QueuedEvent, version: u64, delay_ms: u64) {
    ev.due_at_ms = now_ms() + delay_ms;
    ev.lease_owner.clear();
    ev.lease_until_ms = 0;
    if let Ok(Some(_)) = state.registry.update_event(&ev, version).await {
        count(state, "released");
    }
}

/// Parses a schedule's cron expression (5 fields: minutes; 6: seconds first), UTC.
pub fn parse_cron(expr: &str) -> Result<cron::Schedule, String> {
    let fields = expr.split_whitespace().count();
    let full = match fields {
        5 => format!("0 {expr}"),
        6 => expr.to_string(),
        _ => {
            return Err(format!(
                "cron {expr:?}: use 5 fields (min hour day month weekday) or 6 (sec min hour day month weekday)"
            ));
        }
    };
    cron::Schedule::from_str(&full).map_err(|e| format!("cron {expr:?}: {e}"))
}

/// Validates a function's schedules (config time).
pub fn check_schedules(schedules: &[Schedule]) -> Result<(), ApiError> {
    if schedules.len() > 10 {
        return Err(ApiError::bad_request(
            "invalid_config",
            "at most 10 schedules per function",
        ));
    }
    let mut names = std::collections::HashSet::new();
    for s in schedules {
        helixflow_store::registry::validate_name("schedule", &s.name)
            .map_err(|e| ApiError::bad_request("invalid_config", e.to_string()))?;
        if !names.insert(&s.name) {
            return Err(ApiError::bad_request(
                "invalid_config",
                format!("two schedules named {:?}", s.name),
            ));
        }
        parse_cron(&s.cron).map_err(|m| ApiError::bad_request("invalid_config", m))?;
        if serde_json::to_vec(&s.payload).map(|v| v.len()).unwrap_or(0) > 64 * 1024 {
            return Err(ApiError::bad_request(
                "invalid_config",
                format!("schedule {:?}: payload over 64 KiB", s.name),
            ));
        }
    }
    Ok(())
}

struct Scheduled {
    tenant: String,
    function: String,
    schedule: Schedule,
    cron: cron::Schedule,
}

async fn load_schedules(state: &AppState) -> Result<Vec<Scheduled>, ApiError> {
    let mut out = Vec::new();
    for (tenant, function) in state.registry.scheduled_functions().await? {
        let served = &state.settings.served_tenants;
        if !served.is_empty() && !served.contains(&tenant) {
            continue;
        }
        let Ok(f) = state.registry.function(&tenant, &function).await else {
            continue;
        };
        for s in f.config.schedules.into_iter().filter(|s| s.enabled) {
            match parse_cron(&s.cron) {
                Ok(cron) => out.push(Scheduled {
                    tenant: tenant.clone(),
                    function: function.clone(),
                    schedule: s,
                    cron,
                }),
                Err(e) => tracing::warn!(%tenant, %function, error = %e, "schedule skipped"),
            }
        }
    }
    Ok(out)
}

async fn scheduler(state: Arc<AppState>) {
    let mut schedules: Vec<Scheduled> = Vec::new();
    let mut loaded_at: Option<std::time::Instant> = None;
    let mut last = chrono::Utc::now();
    loop {
        // Wake just after the next whole second.
        let ms = 1000 - (now_ms() % 1000) + 5;
        tokio::time::sleep(Duration::from_millis(ms)).await;
        if loaded_at.is_none_or(|t| {
            t.elapsed() > state.settings.resolve_cache_ttl.max(Duration::from_secs(1)) * 5
        }) {
            match load_schedules(&state).await {
                Ok(s) => {
                    schedules = s;
                    loaded_at = Some(std::time::Instant::now());
                }
                Err(e) => {
                    tracing::warn!(error = %e.message, "scheduler: cannot list schedules; keeping the last list")
                }
            }
        }
        let now = chrono::Utc::now();
        for s in &schedules {
            for tick in s.cron.after(&last).take_while(|t| *t <= now).take(60) {
                fire(&state, s, tick).await;
            }
        }
        last = now;
    }
}

async fn fire(state: &Arc<AppState>, s: &Scheduled, tick: chrono::DateTime<chrono::Utc>) {
    let target = match resolve(state, &s.tenant, &s.function, None).await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(tenant = %s.tenant, function = %s.function, error = %e.message, "scheduled function unavailable; tick skipped");
            return;
        }
    };
    let tick_unix = tick.timestamp().max(0) as u64;
    let mut ev = new_event(
        state,
        &target,
        b"",
        None,
        format!("schedule:{}", s.schedule.name),
    );
    let payload = json!({
        "version": "0",
        "id": ev.id,
        "detail-type": "Scheduled Event",
        "source": "helixflow.scheduler",
        "account": crate::lambda::account_id(&s.tenant),
        "time": tick.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "region": state.settings.node_id,
        "resources": [format!("{}/{}/{}", s.tenant, s.function, s.schedule.name)],
        "detail": s.schedule.payload,
    });
    ev.payload_b64 = base64::engine::general_purpose::STANDARD
        .encode(serde_json::to_vec(&payload).unwrap_or_default());
    match state
        .registry
        .fire_tick(&s.tenant, &s.function, &s.schedule.name, tick_unix, &ev)
        .await
    {
        Ok(true) => {
            state.metrics.schedule_ticks.inc();
            count(state, "accepted");
            dispatch(state, ev, 1);
        }
        Ok(false) => {} // another node fired this tick
        Err(e) => {
            tracing::warn!(tenant = %s.tenant, function = %s.function, error = %e, "could not fire a schedule tick")
        }
    }
}

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
    state.registry.tenant(tenant).await?;
    let query = req.uri().query().unwrap_or("").to_string();
    let param = |k: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(k).and_then(|v| v.strip_prefix('=')))
            .map(|v| {
                percent_encoding::percent_decode_str(v)
                    .decode_utf8_lossy()
                    .to_string()
            })
    };
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
                    for (ev, _) in state.registry.queued_events(shard, 1000).await? {
                        if ev.tenant == tenant
                            && function.as_ref().is_none_or(|f| *f == ev.function)
                        {
                            out.push(pending_view(&ev));
                        }
                    }
                }
            }
            if status.as_deref().is_none_or(|s| s == "failed") {
                for f in state.registry.failed_events(tenant, limit).await? {
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
            if let Some((ev, _)) = state.registry.queued_event(id).await? {
                if ev.tenant == tenant {
                    return Ok(json_response(StatusCode::OK, &pending_view(&ev)));
                }
            }
            match state.registry.failed_event(tenant, id).await? {
                Some((f, _)) => Ok(json_response(StatusCode::OK, &failed_view(&f))),
                None => Err(ApiError::not_found(format!(
                    "event {id:?} is neither pending nor failed in tenant {tenant:?} (it succeeded, or its record expired)"
                ))),
            }
        }
        (Method::POST, [id, "replay"]) => {
            let Some((f, version)) = state.registry.failed_event(tenant, id).await? else {
                return Err(ApiError::not_found(format!(
                    "no failed event {id:?} in tenant {tenant:?}"
                )));
            };
            if let Some(again) = &f.replayed_as {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "already_replayed",
                    format!("event {id} was already replayed as {again}"),
                ));
            }
            let now = now_ms();
            let timeout_ms = match state.registry.function(tenant, &f.function).await {
                Ok(func) => func
                    .config
                    .timeout_ms
                    .unwrap_or(state.settings.default_timeout_ms),
                Err(_) => state.settings.default_timeout_ms,
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
            state.registry.replay_failed(&f, version, &ev).await?;
            count(state, "accepted");
            state.events.poll.notify_one();
            Ok(json_response(
                StatusCode::ACCEPTED,
                &json!({"id": ev.id, "replay_of": f.id}),
            ))
        }
        _ => Err(ApiError::not_found("no such events route")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cron_expressions() {
        assert!(parse_cron("*/5 * * * *").is_ok());
        assert!(parse_cron("* * * * * *").is_ok());
        assert!(parse_cron("0 12 * * MON-FRI").is_ok());
        for bad in [
            "",
            "* * *",
            "61 * * * *",
            "not a cron at all x",
            "* * * * * * * *",
        ] {
            assert!(parse_cron(bad).is_err(), "{bad:?}");
        }
        let every_second = parse_cron("* * * * * *").unwrap();
        let t0 = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let ticks: Vec<_> = every_second
            .after(&t0)
            .take(3)
            .map(|t| t.timestamp())
            .collect();
        assert_eq!(ticks, vec![1_800_000_001, 1_800_000_002, 1_800_000_003]);
    }
}
