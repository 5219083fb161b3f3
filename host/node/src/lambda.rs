//! Lambda naming: the account id and ARNs HelixFlow shows for a tenant's functions, and
//! the Lambda `errorType` of a function's failure.

use sha2::Digest;

/// The 12-digit account id HelixFlow shows for a tenant in ARNs.
pub fn account_id(tenant: &str) -> String {
    let d = sha2::Sha256::digest(tenant.as_bytes());
    let n =
        u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]) % 1_000_000_000_000;
    format!("{n:012}")
}

/// `arn:aws:lambda:{region}:{account}:function:{name}[:{qualifier}]`.
pub fn function_arn(region: &str, tenant: &str, function: &str, qualifier: Option<&str>) -> String {
    let base = format!(
        "arn:aws:lambda:{region}:{}:function:{function}",
        account_id(tenant)
    );
    match qualifier {
        Some(q) => format!("{base}:{q}"),
        None => base,
    }
}

/// The Lambda `errorType` of a failure that is the function's fault (AWS reports those
/// as function errors, 200 + `X-Amz-Function-Error`); `None`: the platform's fault.
pub fn runtime_error_type(e: &helixflow_runtime::InvokeError) -> Option<&'static str> {
    use helixflow_runtime::InvokeError as E;
    match e {
        E::Timeout(_) => Some("Sandbox.Timedout"),
        E::Trap(_) => Some("Runtime.Trap"),
        E::StackOverflow => Some("Runtime.StackOverflow"),
        E::MemoryLimit(_) => Some("Runtime.OutOfMemory"),
        E::BadResponse(_) => Some("Runtime.InvalidResponse"),
        E::NoResponse
        | E::WrongTrigger(_)
        | E::Internal(_)
        | E::Capacity(_)
        | E::RequestTooLarge(_)
        | E::RequestBody(_) => None,
    }
}
