//! Function `env` values at rest: sealed with the node's secrets key before they are
//! stored, opened only to build an invocation (or for a caller who may deploy).
//!
//! Invariant: function `env` values reach the metadata store only sealed.

use crate::Node;
use crate::error::{ErrorKind, NodeError};
use helixflow_store::registry::FunctionConfig;

/// What viewers see instead of an `env` value.
pub const REDACTED_ENV_VALUE: &str = "***";

/// The associated data a function's `env` value is sealed with: the tenant, function and
/// variable it belongs to (tenant and function names cannot contain `/`), so a sealed
/// value copied to another variable or function does not open.
fn env_context(tenant: &str, function: &str, name: &str) -> String {
    format!("env:{tenant}/{function}/{name}")
}

/// Seals every `env` value of a config about to be stored.
pub fn seal_env(
    node: &Node,
    tenant: &str,
    function: &str,
    cfg: &mut FunctionConfig,
) -> Result<(), NodeError> {
    for (name, value) in cfg.env.iter_mut() {
        *value = node
            .auth
            .secrets
            .seal(value, &env_context(tenant, function, name))
            .map_err(|e| {
                NodeError::internal(
                    "internal",
                    format!("sealing environment variable {name:?}: {e}"),
                )
            })?;
    }
    Ok(())
}

/// A function's `env` in the clear, for an invocation. Values stored before sealing
/// existed (plain text) are used as they are; they are sealed at the next config write.
pub fn open_env(
    node: &Node,
    tenant: &str,
    function: &str,
    env: &std::collections::BTreeMap<String, String>,
) -> Result<Vec<(String, String)>, NodeError> {
    env.iter()
        .map(|(name, stored)| {
            let value = node.auth.secrets.open(stored, &env_context(tenant, function, name)).map_err(|e| {
                tracing::error!(%tenant, %function, variable = %name, error = %e, "cannot open a sealed environment value");
                NodeError::new(
                    ErrorKind::Internal,
                    "secrets_unavailable",
                    "this node cannot open the function's sealed environment (secrets key mismatch); see its log",
                )
            })?;
            Ok((name.clone(), value))
        })
        .collect()
}

/// What a caller is shown of a function's `env`: callers who may deploy in the tenant
/// (developer, admin, the platform admin) see the values; everyone else (viewers) sees
/// only the names, each value replaced by [`REDACTED_ENV_VALUE`].
pub fn present_env(
    node: &Node,
    principal: Option<&helixflow_auth::Principal>,
    tenant: &str,
    function: &str,
    cfg: &mut FunctionConfig,
) -> Result<(), NodeError> {
    if principal.is_some_and(|p| p.allows(tenant, helixflow_auth::Action::Deploy)) {
        let opened = open_env(node, tenant, function, &cfg.env)?;
        cfg.env = opened.into_iter().collect();
    } else {
        for value in cfg.env.values_mut() {
            *value = REDACTED_ENV_VALUE.to_string();
        }
    }
    Ok(())
}
