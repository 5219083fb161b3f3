//! The usage route: `GET /api/v1/tenants/{t}/usage?from&to&step&group_by&metrics`
//! (viewer and up in the tenant; the platform admin for any tenant).

use crate::AppState;
use crate::body::{Body, json_response};
use crate::error::ApiError;
use crate::tracked::TrackedBody;
use helixflow_usage::query::Query;
use http::{Response, StatusCode};

pub async fn route(
    state: &AppState,
    req: &http::Request<TrackedBody>,
    tenant: &str,
) -> Result<Response<Body>, ApiError> {
    state.node.registry.tenant(tenant).await?;
    let now = helixflow_store::now_unix();
    let q = Query::parse(&crate::request::query(req), now)
        .map_err(|e| ApiError::bad_request(e.code, e.message))?;
    let rows = helixflow_node::usage::rows(&state.node, tenant, q.from, q.to).await?;
    let mut out = q.run(&rows);
    out["tenant"] = tenant.into();
    Ok(json_response(StatusCode::OK, &out))
}
