//! Alerts: tenants' alert rules (`helixflow_usage::alert`), evaluated against their
//! usage once per fleet, with firing/resolved state, a bounded history and
//! notifications.
//!
//! * Rules: validated by `AlertSpec::validate`, at most [`MAX_ALERTS`] per tenant,
//!   stored through `helixflow_store::alerts`. A rule that notifies a webhook gets a
//!   random secret at creation: shown once, stored sealed with the node's secrets key
//!   (bound to the tenant and rule), opened only to sign a delivery.
//! * Evaluation: every node runs the loop ([`start`]); each round, the node that holds
//!   (or takes) the fleet lease `alerts` in the metadata store evaluates every tenant
//!   with rules: one usage read per tenant and distinct window
//!   ([`crate::usage::period_rows`]: rolled-up hours as hourly rows, the rest as minute
//!   rows of every node, this node's unflushed ones from memory), costed with the
//!   tenant's prices, judged by each rule of that window.
//! * A status change (ok -> firing, firing -> ok: `resolved`) is recorded with a
//!   compare-and-swap on the state, in one transaction with the history entry and, for
//!   a rule that notifies a function, the queued Event invocation carrying the alert:
//!   two evaluators cannot both record (or notify) one transition, and an Event
//!   notification is durable (at least once). Webhook deliveries follow the commit:
//!   signed (HMAC-SHA256 of `{timestamp}.{body}` with the rule's secret), retried with
//!   exponential backoff up to `webhook_max_attempts`, each attempt under
//!   `webhook_timeout`; their outcome is kept on the rule's state. The transport
//!   ([`WebhookSender`], the api crate's) applies the node's egress policy.
//!
//! Invariant: this module knows no HTTP: a delivery is a URL, a body and its signature;
//! the transport decides the wire format.

use crate::Node;
use crate::error::{ErrorKind, NodeError};
use helixflow_store::alerts::{
    AlertState, AlertStatus, AlertTransition, NotificationOutcome, TransitionKind,
};
use helixflow_usage::alert::{AlertSpec, Evaluation, Rule};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::Duration;

/// Most alert rules one tenant keeps.
pub const MAX_ALERTS: usize = 100;
/// The name of the evaluator's fleet lease.
const LEASE: &str = "alerts";
/// Tenants read per page of the alerting index (the lease is renewed between pages).
const TENANTS_PAGE: usize = 100;
/// Longest webhook URL.
const MAX_URL_LEN: usize = 2048;
/// Webhook deliveries in flight at once from one node.
const MAX_DELIVERIES: usize = 32;
/// The longest wait between two delivery attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// How this node evaluates alerts and delivers notifications (`[alerts]`).
#[derive(Debug, Clone)]
pub struct AlertSettings {
    /// Whether this node takes part in evaluation at all.
    pub enabled: bool,
    /// How often rules are evaluated (by the lease holder).
    pub evaluation_interval: Duration,
    /// Each webhook attempt's limit (connect, TLS, answer).
    pub webhook_timeout: Duration,
    /// Attempts per notification, the first included.
    pub webhook_max_attempts: u32,
    /// Wait after the first failed attempt; doubles after each (at most 60 s).
    pub webhook_retry_initial: Duration,
}

impl Default for AlertSettings {
    fn default() -> Self {
        AlertSettings {
            enabled: true,
            evaluation_interval: Duration::from_secs(30),
            webhook_timeout: Duration::from_secs(10),
            webhook_max_attempts: 4,
            webhook_retry_initial: Duration::from_secs(1),
        }
    }
}

/// One webhook delivery attempt, signed, for the transport to send as a POST.
#[derive(Debug, Clone)]
pub struct WebhookRequest {
    pub url: String,
    /// The JSON notification.
    pub body: Vec<u8>,
    /// Unix seconds; part of the signed material (receivers refuse stale ones).
    pub timestamp: u64,
    /// `sha256=<hex HMAC-SHA256 of "{timestamp}.{body}" under the rule's secret>`.
    pub signature: String,
    /// The transition's id: the same on every attempt, so receivers drop duplicates.
    pub delivery_id: String,
    /// The attempt's time limit.
    pub timeout: Duration,
}

/// Why a delivery attempt did not succeed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DeliveryError {
    /// Not sent and not worth retrying (the URL is not allowed by the egress policy).
    #[error("refused: {0}")]
    Refused(String),
    /// This attempt failed (connection, timeout, an answer that is not 2xx): retried.
    #[error("{0}")]
    Failed(String),
}

/// Sends webhook deliveries (the api crate's client: egress policy, TLS, headers).
#[async_trait::async_trait]
pub trait WebhookSender: Send + Sync + 'static {
    async fn post(&self, request: &WebhookRequest) -> Result<(), DeliveryError>;
}

/// `sha256=<hex>`: HMAC-SHA256 of `{timestamp}.{body}` under `secret` (its UTF-8 bytes).
pub fn sign(secret: &str, timestamp: u64, body: &[u8]) -> String {
    use aws_lc_rs::hmac;
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    let tag = ctx.sign();
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

fn rfc3339(unix: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix as i64)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

fn not_found(id: &str) -> NodeError {
    NodeError::not_found(format!("no alert rule {id:?} in this tenant"))
}

fn valid_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The associated data a rule's webhook secret is sealed with (tenant names cannot
/// contain `/`; ids are hex): a sealed secret copied to another rule does not open.
fn secret_context(tenant: &str, id: &str) -> String {
    format!("alert-webhook:{tenant}/{id}")
}

// ---- rules (the API's operations) ----

fn parse(body: Value) -> Result<(AlertSpec, Rule), NodeError> {
    if !body.is_object() {
        return Err(NodeError::invalid(
            "invalid_rule",
            "an alert rule is a JSON object",
        ));
    }
    let spec: AlertSpec = serde_json::from_value(body)
        .map_err(|e| NodeError::invalid("invalid_rule", format!("alert rule: {e}")))?;
    let rule = spec
        .validate()
        .map_err(|e| NodeError::invalid(e.code(), e.to_string()))?;
    Ok((spec, rule))
}

/// The node's egress policy for webhooks: the same ranges guests may reach.
fn egress(node: &Node) -> Result<helixflow_runtime::egress::Egress, NodeError> {
    helixflow_runtime::egress::Egress::new(&node.runtime.config().allow_private)
        .map_err(|e| NodeError::internal("internal", format!("egress policy: {e}")))
}

/// Checks a webhook URL at rule time: `https://host[:port]/...` (plain `http://` only
/// where the node opts private ranges in, and then only to them), no credentials in
/// it, and an IP literal only where the egress policy allows it. Names are resolved
/// and checked again at every delivery.
fn check_webhook_url(node: &Node, url: &str) -> Result<(), NodeError> {
    let bad = |m: String| NodeError::invalid("invalid_webhook", m);
    if url.len() > MAX_URL_LEN {
        return Err(bad(format!(
            "notify.webhook: at most {MAX_URL_LEN} characters"
        )));
    }
    let uri: http::Uri = url
        .parse()
        .map_err(|e| bad(format!("notify.webhook {url:?}: {e}")))?;
    let authority = uri
        .authority()
        .ok_or_else(|| bad(format!("notify.webhook {url:?}: no host")))?;
    if authority.as_str().contains('@') {
        return Err(bad(
            "notify.webhook: no credentials in the URL (deliveries are signed instead)".into(),
        ));
    }
    let host = authority.host();
    if host.is_empty() {
        return Err(bad(format!("notify.webhook {url:?}: no host")));
    }
    let opted_in = !node.runtime.config().allow_private.is_empty();
    let plain = match uri.scheme_str() {
        Some("https") => false,
        Some("http") if opted_in => true,
        _ => {
            return Err(bad(format!(
                "notify.webhook {url:?}: use https:// (plain http:// only to private ranges the node's [sandbox] allow_private opts in)"
            )));
        }
    };
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = bare.parse::<std::net::IpAddr>() {
        if let Err(why) = egress(node)?.check(ip) {
            return Err(NodeError::invalid(
                "webhook_not_allowed",
                format!("notify.webhook: {ip} is {why}; this node does not send there"),
            ));
        }
        if plain && helixflow_runtime::egress::is_public(ip) {
            return Err(bad(format!(
                "notify.webhook {url:?}: use https:// for a public address"
            )));
        }
    }
    Ok(())
}

async fn check_notify(node: &Node, tenant: &str, spec: &AlertSpec) -> Result<(), NodeError> {
    if let Some(url) = &spec.notify.webhook {
        check_webhook_url(node, url)?;
    }
    if let Some(f) = &spec.notify.function {
        let unknown = || {
            NodeError::invalid(
                "unknown_function",
                format!("notify.function: no function {f:?} in this tenant"),
            )
        };
        if helixflow_store::registry::validate_name("function", f).is_err() {
            return Err(unknown());
        }
        match node.registry.function(tenant, f).await {
            Ok(_) => {}
            Err(helixflow_store::registry::RegistryError::NotFound(_)) => return Err(unknown()),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn spec_value(spec: &AlertSpec) -> Result<Value, NodeError> {
    serde_json::to_value(spec).map_err(|e| NodeError::internal("internal", e.to_string()))
}

fn stored_spec(id: &str, record: &Map<String, Value>) -> Result<AlertSpec, NodeError> {
    serde_json::from_value(record.get("spec").cloned().unwrap_or(Value::Null))
        .map_err(|e| NodeError::internal("store_corrupt", format!("stored alert rule {id}: {e}")))
}

fn state_view(state: Option<&AlertState>) -> Value {
    match state {
        None => json!({"status": "ok", "since": null, "evaluated_at": null}),
        Some(s) => {
            let notifications: Vec<Value> = s
                .notifications
                .iter()
                .map(|n| {
                    json!({
                        "channel": n.channel, "transition": n.transition, "delivered": n.delivered,
                        "attempts": n.attempts, "at": rfc3339(n.at), "error": n.error,
                    })
                })
                .collect();
            json!({
                "status": s.status,
                "since": rfc3339(s.since),
                "value": s.value,
                "requests": s.requests,
                "evaluated_at": rfc3339(s.evaluated_at),
                "notifications": notifications,
            })
        }
    }
}

/// What callers see of a stored rule: its spec's fields, id, times and state; never
/// its secret.
fn view(record: &Map<String, Value>, state: Option<&AlertState>) -> Value {
    let mut out = match record.get("spec") {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    for k in ["id", "created_at", "updated_at"] {
        out.insert(k.into(), record.get(k).cloned().unwrap_or(Value::Null));
    }
    out.insert("state".into(), state_view(state));
    Value::Object(out)
}

fn now_rfc3339() -> String {
    rfc3339(helixflow_store::now_unix())
}

fn new_secret() -> Result<String, NodeError> {
    helixflow_auth::random_secret()
        .map(|s| format!("whsec_{s}"))
        .map_err(|e| NodeError::internal("internal", format!("generating a secret: {e}")))
}

fn seal(node: &Node, tenant: &str, id: &str, secret: &str) -> Result<String, NodeError> {
    node.auth
        .secrets
        .seal(secret, &secret_context(tenant, id))
        .map_err(|e| NodeError::internal("internal", format!("sealing the webhook secret: {e}")))
}

/// Stores a new rule. The answer is the rule's view with, when it notifies a webhook,
/// `webhook_secret`: the signing secret, shown this once.
pub async fn create(node: &Node, tenant: &str, body: Value) -> Result<Value, NodeError> {
    node.registry.tenant(tenant).await?;
    let (spec, _) = parse(body)?;
    check_notify(node, tenant, &spec).await?;
    let id = uuid::Uuid::now_v7().simple().to_string();
    let now = now_rfc3339();
    let mut record = Map::new();
    record.insert("id".into(), id.clone().into());
    record.insert("spec".into(), spec_value(&spec)?);
    record.insert("created_at".into(), now.clone().into());
    record.insert("updated_at".into(), now.into());
    let secret = match spec.notify.webhook {
        Some(_) => {
            let s = new_secret()?;
            record.insert("webhook_secret".into(), seal(node, tenant, &id, &s)?.into());
            Some(s)
        }
        None => None,
    };
    if !node
        .registry
        .create_alert_rule(tenant, &id, record.clone(), MAX_ALERTS)
        .await?
    {
        return Err(NodeError::new(
            ErrorKind::Conflict,
            "too_many_alerts",
            format!("a tenant keeps at most {MAX_ALERTS} alert rules: delete one first"),
        ));
    }
    let mut out = view(&record, None);
    if let (Some(s), Value::Object(m)) = (secret, &mut out) {
        m.insert("webhook_secret".into(), s.into());
    }
    Ok(out)
}

async fn record_of(node: &Node, tenant: &str, id: &str) -> Result<Map<String, Value>, NodeError> {
    if !valid_id(id) {
        return Err(not_found(id));
    }
    node.registry
        .alert_rule(tenant, id)
        .await?
        .ok_or_else(|| not_found(id))
}

/// A rule with its state.
pub async fn get(node: &Node, tenant: &str, id: &str) -> Result<Value, NodeError> {
    let record = record_of(node, tenant, id).await?;
    let state = node.registry.alert_state(tenant, id).await?;
    Ok(view(&record, state.as_ref().map(|(s, _)| s)))
}

/// Every rule of a tenant with its state.
pub async fn list(node: &Node, tenant: &str) -> Result<Value, NodeError> {
    node.registry.tenant(tenant).await?;
    let mut out = Vec::new();
    for record in node.registry.alert_rules(tenant).await? {
        let id = record.get("id").and_then(Value::as_str).unwrap_or_default();
        let state = if valid_id(id) {
            node.registry.alert_state(tenant, id).await?
        } else {
            None
        };
        out.push(view(&record, state.as_ref().map(|(s, _)| s)));
    }
    Ok(json!({"alerts": out}))
}

/// Replaces a rule's definition (state and history stay; the next evaluation judges
/// the new definition). A webhook keeps its secret; a rule that gains one gets a new
/// secret, returned this once as `webhook_secret`.
pub async fn replace(node: &Node, tenant: &str, id: &str, body: Value) -> Result<Value, NodeError> {
    let old = record_of(node, tenant, id).await?;
    let (spec, _) = parse(body)?;
    check_notify(node, tenant, &spec).await?;
    let mut record = Map::new();
    record.insert("id".into(), id.into());
    record.insert("spec".into(), spec_value(&spec)?);
    record.insert(
        "created_at".into(),
        old.get("created_at").cloned().unwrap_or(Value::Null),
    );
    record.insert("updated_at".into(), now_rfc3339().into());
    let mut fresh = None;
    if spec.notify.webhook.is_some() {
        match old.get("webhook_secret") {
            Some(sealed) => {
                record.insert("webhook_secret".into(), sealed.clone());
            }
            None => {
                let s = new_secret()?;
                record.insert("webhook_secret".into(), seal(node, tenant, id, &s)?.into());
                fresh = Some(s);
            }
        }
    }
    if !node
        .registry
        .replace_alert_rule(tenant, id, record.clone())
        .await?
    {
        return Err(not_found(id));
    }
    let state = node.registry.alert_state(tenant, id).await?;
    let mut out = view(&record, state.as_ref().map(|(s, _)| s));
    if let (Some(s), Value::Object(m)) = (fresh, &mut out) {
        m.insert("webhook_secret".into(), s.into());
    }
    Ok(out)
}

/// Deletes a rule, its state and its history.
pub async fn delete(node: &Node, tenant: &str, id: &str) -> Result<(), NodeError> {
    if valid_id(id) && node.registry.delete_alert_rule(tenant, id).await? {
        Ok(())
    } else {
        Err(not_found(id))
    }
}

/// A rule's transitions, newest first.
pub async fn history(node: &Node, tenant: &str, id: &str) -> Result<Value, NodeError> {
    record_of(node, tenant, id).await?;
    let mut transitions: Vec<Value> = node
        .registry
        .alert_history(tenant, id)
        .await?
        .into_iter()
        .map(|t| {
            json!({
                "id": t.id, "status": t.status, "at": rfc3339(t.at), "value": t.value,
                "threshold": t.threshold, "requests": t.requests,
            })
        })
        .collect();
    transitions.reverse();
    Ok(json!({"id": id, "transitions": transitions}))
}

// ---- evaluation ----

/// Runs the evaluator until the process ends: every `evaluation_interval`, one round
/// ([`round`]) if this node holds the fleet lease.
pub fn start(node: &Arc<Node>, sender: Arc<dyn WebhookSender>) {
    if !node.settings.alerts.enabled {
        return;
    }
    let node = node.clone();
    let deliveries = Arc::new(tokio::sync::Semaphore::new(MAX_DELIVERIES));
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(node.settings.alerts.evaluation_interval).await;
            if let Err(e) = round(&node, &sender, &deliveries).await {
                tracing::warn!(code = e.code, error = %e.message, "alert evaluation round failed");
            }
        }
    });
}

/// The lease outlives a few rounds, so a live holder keeps it and a dead one is
/// replaced within three intervals (five seconds at least: expiry is in whole seconds).
fn lease_ttl_secs(node: &Node) -> u64 {
    (node.settings.alerts.evaluation_interval * 3)
        .as_secs()
        .max(5)
}

/// One evaluation round: takes (or renews) the fleet lease, then evaluates every tenant
/// with rules, renewing the lease between pages of tenants. `Ok(false)`: another node
/// holds the lease; nothing was evaluated here.
pub async fn round(
    node: &Arc<Node>,
    sender: &Arc<dyn WebhookSender>,
    deliveries: &Arc<tokio::sync::Semaphore>,
) -> Result<bool, NodeError> {
    let holder = node.meter.writer().to_string();
    let ttl = lease_ttl_secs(node);
    if !node.registry.try_lease(LEASE, &holder, ttl).await? {
        return Ok(false);
    }
    let mut after = None;
    loop {
        let (tenants, next) = node
            .registry
            .alerting_tenants(after.clone(), TENANTS_PAGE)
            .await?;
        for tenant in tenants {
            if let Err(e) = evaluate_tenant(node, sender, deliveries, &tenant).await {
                tracing::warn!(%tenant, code = e.code, error = %e.message, "alert evaluation failed for a tenant");
            }
        }
        match next {
            None => return Ok(true),
            Some(n) => {
                after = Some(n);
                if !node.registry.try_lease(LEASE, &holder, ttl).await? {
                    return Ok(true);
                }
            }
        }
    }
}

struct Loaded {
    id: String,
    spec: AlertSpec,
    rule: Rule,
    sealed_secret: Option<String>,
}

async fn evaluate_tenant(
    node: &Arc<Node>,
    sender: &Arc<dyn WebhookSender>,
    deliveries: &Arc<tokio::sync::Semaphore>,
    tenant: &str,
) -> Result<(), NodeError> {
    let mut rules = Vec::new();
    for record in node.registry.alert_rules(tenant).await? {
        let id = record
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let spec = match stored_spec(&id, &record) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(%tenant, alert = %id, error = %e.message, "alert rule skipped");
                continue;
            }
        };
        if !spec.enabled {
            continue;
        }
        match spec.validate() {
            Ok(rule) => rules.push(Loaded {
                id,
                rule,
                sealed_secret: record
                    .get("webhook_secret")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                spec,
            }),
            Err(e) => {
                tracing::warn!(%tenant, alert = %id, error = %e, "stored alert rule no longer valid; skipped")
            }
        }
    }
    if rules.is_empty() {
        return Ok(());
    }
    let now = helixflow_store::now_unix();
    let (prices, _) = crate::usage::prices(node, tenant).await?;
    // One read per distinct window: whole hours already rolled up come as hourly rows
    // (a day-long window reads 24 rows per series, not 1,440), the edges as minutes. A
    // rolled-up hour is one row stamped with its first minute, so rows read for a longer
    // window would miscount a shorter one: each window gets its own.
    let mut windows: Vec<u64> = rules.iter().map(|r| r.rule.window_minutes).collect();
    windows.sort_unstable();
    windows.dedup();
    for w in windows {
        let (from, to) = helixflow_usage::alert::window_of(w, now / 60);
        let rows = crate::usage::period_rows(node, tenant, from, to, &prices, false).await?;
        for r in rules.iter().filter(|r| r.rule.window_minutes == w) {
            let ev = r.rule.evaluate(&rows, &prices, now);
            if let Err(e) = apply(node, sender, deliveries, tenant, r, &ev, now).await {
                tracing::warn!(%tenant, alert = %r.id, code = e.code, error = %e.message, "alert state not recorded");
            }
        }
    }
    Ok(())
}

/// The notification of a transition (webhook body and Event payload).
fn payload(
    node: &Node,
    tenant: &str,
    r: &Loaded,
    t: &AlertTransition,
    ev: &Evaluation,
    firing_since: Option<u64>,
) -> Value {
    let mut alert = match spec_value(&r.spec) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    alert.remove("notify");
    alert.insert("id".into(), r.id.clone().into());
    json!({
        "type": "helixflow.alert",
        "id": t.id,
        "status": t.status,
        "tenant": tenant,
        "alert": alert,
        "value": t.value,
        "threshold": t.threshold,
        "requests": t.requests,
        "window": {"from": rfc3339(ev.from_minute * 60), "to": rfc3339(ev.to_minute * 60)},
        "at": rfc3339(t.at),
        "firing_since": firing_since.map(rfc3339),
        "node": node.settings.node_id,
    })
}

/// The queued Event invocation of `function` carrying `body`.
async fn event_for(
    node: &Arc<Node>,
    tenant: &str,
    function: &str,
    alert_id: &str,
    body: &[u8],
) -> Result<helixflow_store::events::QueuedEvent, NodeError> {
    let target = crate::resolve::resolve(node, tenant, function, None).await?;
    if !target.version.exports.event {
        return Err(NodeError::invalid(
            "no_event_handler",
            format!("function {function:?} has no event handler"),
        ));
    }
    Ok(crate::async_invoke::new_event(
        node,
        &target,
        body,
        None,
        format!("alert:{alert_id}"),
    ))
}

async fn apply(
    node: &Arc<Node>,
    sender: &Arc<dyn WebhookSender>,
    deliveries: &Arc<tokio::sync::Semaphore>,
    tenant: &str,
    r: &Loaded,
    ev: &Evaluation,
    now: u64,
) -> Result<(), NodeError> {
    let prev = node.registry.alert_state(tenant, &r.id).await?;
    let prev_status = prev.as_ref().map_or(AlertStatus::Ok, |(s, _)| s.status);
    let status = if ev.breached {
        AlertStatus::Firing
    } else {
        AlertStatus::Ok
    };
    let transition = (status != prev_status).then(|| AlertTransition {
        id: uuid::Uuid::now_v7().to_string(),
        status: match status {
            AlertStatus::Firing => TransitionKind::Firing,
            AlertStatus::Ok => TransitionKind::Resolved,
        },
        at: now,
        value: ev.value,
        threshold: ev.threshold,
        requests: ev.requests,
    });
    let mut state = AlertState {
        status,
        since: match (&prev, &transition) {
            (Some((s, _)), None) => s.since,
            _ => now,
        },
        value: ev.value,
        requests: ev.requests,
        evaluated_at: now,
        notifications: prev
            .as_ref()
            .map(|(s, _)| s.notifications.clone())
            .unwrap_or_default(),
    };
    let mut also = Vec::new();
    let mut queued = None;
    let mut body = Vec::new();
    if let Some(t) = &transition {
        let firing_since = match (t.status, &prev) {
            (TransitionKind::Resolved, Some((s, _))) => Some(s.since),
            _ => None,
        };
        body = serde_json::to_vec(&payload(node, tenant, r, t, ev, firing_since))
            .map_err(|e| NodeError::internal("internal", e.to_string()))?;
        if let Some(f) = &r.spec.notify.function {
            let outcome = match event_for(node, tenant, f, &r.id, &body).await {
                Ok(e) => {
                    also.push(helixflow_store::events::enqueue_op(&e)?);
                    queued = Some(e);
                    Ok(())
                }
                Err(e) => {
                    tracing::warn!(%tenant, alert = %r.id, function = %f, error = %e.message, "alert notification function unavailable");
                    Err(e.message)
                }
            };
            state.notifications.retain(|n| n.channel != "function");
            state.notifications.push(NotificationOutcome {
                transition: t.id.clone(),
                channel: "function".into(),
                delivered: outcome.is_ok(),
                attempts: 1,
                at: now,
                error: outcome.err(),
            });
        }
    }
    if !node
        .registry
        .record_alert_state(
            tenant,
            &r.id,
            &state,
            prev.as_ref().map(|(_, v)| *v),
            transition.clone(),
            also,
        )
        .await?
    {
        // Another evaluator recorded this round (or the rule is gone): it notifies.
        return Ok(());
    }
    let Some(t) = transition else {
        return Ok(());
    };
    tracing::info!(%tenant, alert = %r.id, status = ?t.status, value = t.value, threshold = t.threshold, "alert transition");
    if let Some(e) = queued {
        crate::async_invoke::count(node, "accepted");
        crate::async_invoke::dispatch(node, e, 1);
    }
    if let (Some(url), Some(sealed)) = (&r.spec.notify.webhook, &r.sealed_secret) {
        let secret = match node
            .auth
            .secrets
            .open(sealed, &secret_context(tenant, &r.id))
        {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(%tenant, alert = %r.id, error = %e, "cannot open the webhook secret (secrets key mismatch?)");
                let outcome = NotificationOutcome {
                    transition: t.id.clone(),
                    channel: "webhook".into(),
                    delivered: false,
                    attempts: 0,
                    at: now,
                    error: Some("this node cannot open the rule's webhook secret".into()),
                };
                node.registry
                    .set_alert_notification(tenant, &r.id, outcome)
                    .await?;
                return Ok(());
            }
        };
        let node = node.clone();
        let sender = sender.clone();
        let deliveries = deliveries.clone();
        let (tenant, id, url) = (tenant.to_string(), r.id.clone(), url.clone());
        tokio::spawn(async move {
            let Ok(_permit) = deliveries.acquire_owned().await else {
                return;
            };
            let outcome = deliver(&node, sender.as_ref(), &url, &secret, body, &t.id).await;
            if outcome.delivered {
                tracing::info!(%tenant, alert = %id, attempts = outcome.attempts, "alert webhook delivered");
            } else {
                tracing::warn!(%tenant, alert = %id, attempts = outcome.attempts, error = outcome.error.as_deref().unwrap_or(""), "alert webhook not delivered");
            }
            if let Err(e) = node
                .registry
                .set_alert_notification(&tenant, &id, outcome)
                .await
            {
                tracing::warn!(%tenant, alert = %id, error = %e, "could not record the webhook outcome");
            }
        });
    }
    Ok(())
}

/// Delivers one notification: signed afresh for each attempt (a new timestamp), retried
/// after failures with exponential backoff, at most `webhook_max_attempts` attempts.
async fn deliver(
    node: &Node,
    sender: &dyn WebhookSender,
    url: &str,
    secret: &str,
    body: Vec<u8>,
    delivery_id: &str,
) -> NotificationOutcome {
    let s = &node.settings.alerts;
    let mut delay = s.webhook_retry_initial;
    let mut attempts = 0;
    let error = loop {
        attempts += 1;
        let timestamp = helixflow_store::now_unix();
        let request = WebhookRequest {
            url: url.to_string(),
            signature: sign(secret, timestamp, &body),
            body: body.clone(),
            timestamp,
            delivery_id: delivery_id.to_string(),
            timeout: s.webhook_timeout,
        };
        // The transport applies the timeout; this bounds a transport that does not.
        let result = tokio::time::timeout(
            s.webhook_timeout + Duration::from_secs(1),
            sender.post(&request),
        )
        .await
        .unwrap_or_else(|_| Err(DeliveryError::Failed("timed out".into())));
        match result {
            Ok(()) => break None,
            Err(e @ DeliveryError::Refused(_)) => break Some(e.to_string()),
            Err(DeliveryError::Failed(m)) if attempts >= s.webhook_max_attempts.max(1) => {
                break Some(m);
            }
            Err(DeliveryError::Failed(m)) => {
                tracing::debug!(attempt = attempts, error = %m, "alert webhook attempt failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_BACKOFF);
            }
        }
    };
    NotificationOutcome {
        transition: delivery_id.to_string(),
        channel: "webhook".into(),
        delivered: error.is_none(),
        attempts,
        at: helixflow_store::now_unix(),
        error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The signature is HMAC-SHA256 of `{timestamp}.{body}` (checked against a one-shot
    /// HMAC of the joined message); RFC 4231 test case 2 pins the primitive itself.
    #[test]
    fn signatures_are_hmac_sha256_of_timestamp_dot_body() {
        let sig = sign("whsec_test", 1_700_000_000, br#"{"a":1}"#);
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, b"whsec_test");
        let tag = aws_lc_rs::hmac::sign(&key, br#"1700000000.{"a":1}"#);
        let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(sig, format!("sha256={hex}"));
        assert_ne!(
            sig,
            sign("whsec_test", 1_700_000_001, br#"{"a":1}"#),
            "the timestamp is signed"
        );
        assert_ne!(sig, sign("whsec_other", 1_700_000_000, br#"{"a":1}"#));
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, b"Jefe");
        let tag = aws_lc_rs::hmac::sign(&key, b"what do ya want for nothing?");
        let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn rule_ids_are_hex_uuids() {
        assert!(valid_id(&uuid::Uuid::now_v7().simple().to_string()));
        assert!(!valid_id("../x"));
        assert!(!valid_id(""));
    }
}
