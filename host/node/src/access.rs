//! Authorization: what an operation needs, and whether a caller has it.

use crate::error::{ErrorKind, NodeError};
use crate::invoke::Who;
use helixflow_auth::{Action, AuthError, Principal};

/// What an operation needs.
#[derive(Debug, Clone, PartialEq)]
pub enum Need {
    Nothing,
    PlatformAdmin,
    Tenant(String, Action),
    /// Any authenticated caller (the operation scopes itself, e.g. OpenAI routes).
    Authenticated,
}

/// Checks `need` for `who`: `Err` is the refusal (unauthenticated or forbidden).
pub fn check(who: &Who, need: &Need) -> Result<Option<Principal>, NodeError> {
    if *need == Need::Nothing {
        return Ok(who.clone().ok().flatten());
    }
    let p = match who {
        Ok(Some(p)) => p,
        Ok(None) => return Err(unauthenticated(&AuthError::Missing)),
        Err(e) => return Err(unauthenticated(e)),
    };
    let ok = match need {
        Need::Nothing | Need::Authenticated => true,
        Need::PlatformAdmin => p.is_platform_admin(),
        Need::Tenant(t, a) => p.allows(t, *a),
    };
    if ok {
        Ok(Some(p.clone()))
    } else {
        Err(forbidden())
    }
}

/// The refusal of a caller whose credentials are missing or do not verify.
pub fn unauthenticated(e: &AuthError) -> NodeError {
    NodeError::new(
        ErrorKind::Unauthenticated,
        e.code(),
        format!("{e}: send `Authorization: Bearer <API key or JWT>`"),
    )
}

/// The refusal of a caller whose credentials do not allow the operation.
pub fn forbidden() -> NodeError {
    NodeError::new(
        ErrorKind::Forbidden,
        "forbidden",
        "these credentials do not allow this request",
    )
}

/// Whether a refusal is an authentication or authorization failure (audited).
pub fn is_refusal(e: &NodeError) -> bool {
    matches!(e.kind, ErrorKind::Unauthenticated | ErrorKind::Forbidden)
}
