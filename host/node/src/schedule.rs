//! Scheduled triggers: every cron tick of every scheduled function fires one
//! asynchronous invocation. The tick marker and the queued invocation are one
//! conditional transaction, so each tick fires at most once across every node sharing
//! the metadata store.

use crate::Node;
use crate::async_invoke::{count, dispatch, new_event, now_ms};
use crate::error::NodeError;
use crate::resolve::resolve;
use base64::Engine as _;
use helixflow_store::events::Schedule;
use serde_json::json;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

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
pub fn check_schedules(schedules: &[Schedule]) -> Result<(), NodeError> {
    if schedules.len() > 10 {
        return Err(NodeError::invalid(
            "invalid_config",
            "at most 10 schedules per function",
        ));
    }
    let mut names = std::collections::HashSet::new();
    for s in schedules {
        helixflow_store::registry::validate_name("schedule", &s.name)
            .map_err(|e| NodeError::invalid("invalid_config", e.to_string()))?;
        if !names.insert(&s.name) {
            return Err(NodeError::invalid(
                "invalid_config",
                format!("two schedules named {:?}", s.name),
            ));
        }
        parse_cron(&s.cron).map_err(|m| NodeError::invalid("invalid_config", m))?;
        if serde_json::to_vec(&s.payload).map(|v| v.len()).unwrap_or(0) > 64 * 1024 {
            return Err(NodeError::invalid(
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

async fn load_schedules(node: &Node) -> Result<Vec<Scheduled>, NodeError> {
    let mut out = Vec::new();
    for (tenant, function) in node.registry.scheduled_functions().await? {
        if !node.settings.serves(&tenant) {
            continue;
        }
        let Ok(f) = node.registry.function(&tenant, &function).await else {
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

/// Fires due ticks, once a second, until the process ends.
pub(crate) async fn run(node: Arc<Node>) {
    let mut schedules: Vec<Scheduled> = Vec::new();
    let mut loaded_at: Option<std::time::Instant> = None;
    let mut last = chrono::Utc::now();
    loop {
        // Wake just after the next whole second.
        let ms = 1000 - (now_ms() % 1000) + 5;
        tokio::time::sleep(Duration::from_millis(ms)).await;
        if loaded_at.is_none_or(|t| {
            t.elapsed() > node.settings.resolve_cache_ttl.max(Duration::from_secs(1)) * 5
        }) {
            match load_schedules(&node).await {
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
                fire(&node, s, tick).await;
            }
        }
        last = now;
    }
}

async fn fire(node: &Arc<Node>, s: &Scheduled, tick: chrono::DateTime<chrono::Utc>) {
    let target = match resolve(node, &s.tenant, &s.function, None).await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(tenant = %s.tenant, function = %s.function, error = %e.message, "scheduled function unavailable; tick skipped");
            return;
        }
    };
    let tick_unix = tick.timestamp().max(0) as u64;
    let mut ev = new_event(
        node,
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
        "region": node.settings.node_id,
        "resources": [format!("{}/{}/{}", s.tenant, s.function, s.schedule.name)],
        "detail": s.schedule.payload,
    });
    ev.payload_b64 = base64::engine::general_purpose::STANDARD
        .encode(serde_json::to_vec(&payload).unwrap_or_default());
    match node
        .registry
        .fire_tick(&s.tenant, &s.function, &s.schedule.name, tick_unix, &ev)
        .await
    {
        Ok(true) => {
            node.metrics.schedule_ticks.inc();
            count(node, "accepted");
            dispatch(node, ev, 1);
        }
        Ok(false) => {} // another node fired this tick
        Err(e) => {
            tracing::warn!(tenant = %s.tenant, function = %s.function, error = %e, "could not fire a schedule tick")
        }
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
