//! The audit log: every control-plane write and every refusal, per tenant.

use crate::Node;
use crate::invoke::Who;
use helixflow_store::access::{AuditRecord, PLATFORM_AUDIT};

/// One audited request: who asked for what, and how it ended.
pub struct Entry<'a> {
    /// The tenant whose log gets the record (`None`, or a name that is not a valid
    /// tenant name: the platform log).
    pub tenant: Option<&'a str>,
    pub who: &'a Who,
    pub action: &'a str,
    pub target: &'a str,
    pub outcome: &'a str,
    /// The status the caller was answered.
    pub status: u16,
    pub source: std::net::SocketAddr,
    pub request_id: &'a str,
}

/// Appends an audit record (failures to write are logged, never shown to the caller).
pub async fn record(node: &Node, e: Entry<'_>) {
    let actor = match e.who {
        Ok(Some(p)) => p.subject.clone(),
        Ok(None) => "anonymous".into(),
        Err(err) => format!("invalid ({})", err.code()),
    };
    let tenant = e
        .tenant
        .filter(|t| helixflow_store::registry::validate_name("tenant", t).is_ok())
        .unwrap_or(PLATFORM_AUDIT)
        .to_string();
    let rec = AuditRecord {
        at: time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        tenant,
        actor,
        action: e.action.into(),
        target: e.target.chars().take(512).collect(),
        outcome: e.outcome.into(),
        status: e.status,
        source: e.source.to_string(),
        request_id: e.request_id.into(),
    };
    if let Err(err) = node.registry.audit(&rec).await {
        tracing::error!(error = %err, action = e.action, "audit record not written");
    }
}

/// Records a refused request (`plane`: where it was refused; `code`: the refusal's
/// code) in the audit log of the tenant it named, if that tenant exists.
///
/// Refusals cost the caller nothing, so their records are rate-limited per log (50/s):
/// a flood of bad requests cannot flood the metadata store. A refusal goes to a
/// tenant's log only when that tenant exists (known from memory, or a store lookup
/// itself rate-limited); every other name shares the platform log and its one budget,
/// so made-up names create no buckets and no records beyond it.
pub async fn refusal(node: &Node, plane: &str, code: &str, e: Entry<'_>) {
    let tenant = match e.tenant {
        Some(t) => crate::resolve::tenant_exists(node, t).await.then_some(t),
        None => None,
    };
    let log = tenant.unwrap_or(PLATFORM_AUDIT);
    if node
        .quotas
        .rate(&format!("audit-denials/{log}"), 50)
        .is_err()
    {
        tracing::warn!(
            tenant = log,
            path = e.target,
            code,
            "refusal not audited: over 50 refusal records/s"
        );
        return;
    }
    let action = format!("auth.denied {plane}");
    record(
        node,
        Entry {
            tenant,
            action: &action,
            outcome: code,
            ..e
        },
    )
    .await;
}
