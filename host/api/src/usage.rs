//! Usage routes: `GET /api/v1/tenants/{t}/usage?from&to&step&group_by&metrics` and
//! `GET .../prices` (viewer and up in the tenant), `PUT /api/v1/admin/tenants/{t}/prices`
//! (platform admin).

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
    let (prices, _) = helixflow_node::usage::prices(&state.node, tenant).await?;
    let mut out = q.run(&rows, &prices);
    out["tenant"] = tenant.into();
    Ok(json_response(StatusCode::OK, &out))
}

/// `GET /api/v1/tenants/{t}/prices`: the price table that applies to the tenant.
pub async fn prices(state: &AppState, tenant: &str) -> Result<Response<Body>, ApiError> {
    state.node.registry.tenant(tenant).await?;
    let (book, source) = helixflow_node::usage::prices(&state.node, tenant).await?;
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({"tenant": tenant, "source": source, "prices": book.0}),
    ))
}

/// `PUT /api/v1/admin/tenants/{t}/prices` (platform admin): the tenant's own table;
/// `{"prices": []}` removes it.
pub async fn set_prices(
    state: &AppState,
    req: http::Request<TrackedBody>,
    tenant: &str,
) -> Result<Response<Body>, ApiError> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        prices: Vec<helixflow_usage::Price>,
    }
    let body: Body = crate::request::read_json(req).await?;
    helixflow_node::usage::set_prices(&state.node, tenant, body.prices).await?;
    prices(state, tenant).await
}
