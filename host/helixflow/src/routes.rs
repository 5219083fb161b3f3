//! Every path the CLI calls on a node, in one place: the control plane under
//! `/api/v1` and the data plane's `/invoke`.
//!
//! Names (tenants, functions, models, aliases, key prefixes, access key ids) go into
//! the path as given: the node validates them and reads path segments raw, so a valid
//! name needs no escaping. Event ids and query values are percent-encoded with
//! [`SEGMENT`] (keeping `-`, `_` and `.`); a deploy's or push's description with
//! [`NON_ALPHANUMERIC`](percent_encoding::NON_ALPHANUMERIC).

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Path-safe: ids and names keep their '-', '_' and '.' (the API reads path segments raw).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.');

const API: &str = "/api/v1";

fn enc(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// `path?k=v&...` with each value percent-encoded; `path` alone when there is none.
fn with_query(path: String, query: &[(&str, &str)]) -> String {
    if query.is_empty() {
        return path;
    }
    let q: Vec<String> = query
        .iter()
        .map(|(k, v)| format!("{k}={}", enc(v)))
        .collect();
    format!("{path}?{}", q.join("&"))
}

/// Who the presented credentials are.
pub fn whoami() -> String {
    format!("{API}/whoami")
}

/// `POST` creates a tenant, `GET` lists them.
pub fn tenants() -> String {
    format!("{API}/tenants")
}

fn tenant(tenant: &str) -> String {
    format!("{API}/tenants/{tenant}")
}

pub fn audit(t: &str, limit: usize) -> String {
    with_query(
        format!("{}/audit", tenant(t)),
        &[("limit", limit.to_string().as_str())],
    )
}

/// `GET` a tenant's usage; `query`: `from`, `to`, `step`, `group_by`, `metrics` as given.
pub fn usage(t: &str, query: &[(&str, &str)]) -> String {
    with_query(format!("{}/usage", tenant(t)), query)
}

pub fn budget(t: &str) -> String {
    format!("{}/budget", tenant(t))
}

pub fn functions(t: &str) -> String {
    format!("{}/functions", tenant(t))
}

pub fn function(t: &str, function: &str) -> String {
    format!("{}/{function}", functions(t))
}

pub fn function_config(t: &str, f: &str) -> String {
    format!("{}/config", function(t, f))
}

pub fn function_logs(t: &str, f: &str, limit: usize) -> String {
    with_query(
        format!("{}/logs", function(t, f)),
        &[("limit", limit.to_string().as_str())],
    )
}

/// Uploading a new version; `alias` (as given) and `description` (percent-encoded) go
/// into the query when present.
pub fn versions(t: &str, f: &str, alias: Option<&str>, description: &str) -> String {
    let mut query = vec![];
    if let Some(a) = alias {
        query.push(format!("alias={a}"));
    }
    if !description.is_empty() {
        query.push(format!("description={}", enc_description(description)));
    }
    format!("{}/versions{}", function(t, f), qs(&query))
}

pub fn alias(t: &str, f: &str, alias: &str) -> String {
    format!("{}/aliases/{alias}", function(t, f))
}

pub fn alias_rollback(t: &str, f: &str, a: &str) -> String {
    format!("{}/rollback", alias(t, f, a))
}

pub fn models(t: &str) -> String {
    format!("{}/models", tenant(t))
}

pub fn model(t: &str, model: &str) -> String {
    format!("{}/{model}", models(t))
}

/// Uploading a new model version; `description` (percent-encoded) goes into the query
/// when present.
pub fn model_versions(t: &str, m: &str, description: &str) -> String {
    let mut query = vec![];
    if !description.is_empty() {
        query.push(format!("description={}", enc_description(description)));
    }
    format!("{}/versions{}", model(t, m), qs(&query))
}

pub fn keys(t: &str) -> String {
    format!("{}/keys", tenant(t))
}

pub fn key(t: &str, prefix: &str) -> String {
    format!("{}/{prefix}", keys(t))
}

pub fn access_keys(t: &str) -> String {
    format!("{}/access-keys", tenant(t))
}

pub fn access_key(t: &str, access_key_id: &str) -> String {
    format!("{}/{access_key_id}", access_keys(t))
}

/// Listing events, the query's pairs in the order given.
pub fn events(t: &str, query: &[(&str, &str)]) -> String {
    with_query(format!("{}/events", tenant(t)), query)
}

pub fn event(t: &str, id: &str) -> String {
    format!("{}/events/{}", tenant(t), enc(id))
}

pub fn event_replay(t: &str, id: &str) -> String {
    format!("{}/replay", event(t, id))
}

pub fn admin_gc(grace_secs: u64, dry_run: bool) -> String {
    with_query(
        format!("{API}/admin/gc"),
        &[
            ("grace_secs", grace_secs.to_string().as_str()),
            ("dry_run", dry_run.to_string().as_str()),
        ],
    )
}

/// The data plane: a function's event handler, at a version or alias when given.
pub fn invoke(t: &str, function: &str, qualifier: Option<&str>) -> String {
    match qualifier {
        Some(q) => format!("/invoke/{t}/{function}@{q}"),
        None => format!("/invoke/{t}/{function}"),
    }
}

fn enc_description(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

fn qs(q: &[String]) -> String {
    if q.is_empty() {
        String::new()
    } else {
        format!("?{}", q.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_control_plane_paths() {
        assert_eq!(tenants(), "/api/v1/tenants");
        assert_eq!(functions("acme"), "/api/v1/tenants/acme/functions");
        assert_eq!(
            alias_rollback("acme", "echo", "live"),
            "/api/v1/tenants/acme/functions/echo/aliases/live/rollback"
        );
        assert_eq!(
            model_versions("public", "mm", ""),
            "/api/v1/tenants/public/models/mm/versions"
        );
        assert_eq!(
            admin_gc(3600, false),
            "/api/v1/admin/gc?grace_secs=3600&dry_run=false"
        );
        assert_eq!(invoke("acme", "echo", Some("2")), "/invoke/acme/echo@2");
    }

    #[test]
    fn percent_encodes_ids_and_query_values() {
        assert_eq!(
            event_replay("acme", "a b/c.d-e_f?"),
            "/api/v1/tenants/acme/events/a%20b%2Fc.d-e_f%3F/replay"
        );
        assert_eq!(
            events(
                "acme",
                &[("limit", "100"), ("status", "failed"), ("function", "x&y")]
            ),
            "/api/v1/tenants/acme/events?limit=100&status=failed&function=x%26y"
        );
        assert_eq!(
            versions("acme", "echo", Some("live"), "v1.2 fix-it"),
            "/api/v1/tenants/acme/functions/echo/versions?alias=live&description=v1%2E2%20fix%2Dit"
        );
    }
}
