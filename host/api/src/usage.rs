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
    let (prices, _) = helixflow_node::usage::prices(&state.node, tenant).await?;
    let rows =
        helixflow_node::usage::query_rows(&state.node, tenant, q.from, q.to, q.step, &prices)
            .await?;
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
    let body: crate::wire::SetPrices = crate::request::read_json(req).await?;
    helixflow_node::usage::set_prices(&state.node, tenant, body.prices).await?;
    prices(state, tenant).await
}

/// `/api/v1/tenants/{t}/budget`: `GET` (viewer and up) the budget and the month's spend;
/// `PUT` (tenant admin) sets it, `DELETE` removes it.
pub async fn budget(
    state: &AppState,
    req: http::Request<TrackedBody>,
    tenant: &str,
) -> Result<Response<Body>, ApiError> {
    use http::Method;
    let node = &state.node;
    match req.method().clone() {
        Method::GET => {}
        Method::PUT => {
            let b: helixflow_usage::budget::Budget = crate::request::read_json(req).await?;
            helixflow_node::budget::set_budget(node, tenant, Some(b)).await?;
        }
        Method::DELETE => helixflow_node::budget::set_budget(node, tenant, None).await?,
        _ => return Err(ApiError::method_not_allowed()),
    }
    state.node.registry.tenant(tenant).await?;
    Ok(json_response(
        StatusCode::OK,
        &helixflow_node::budget::status(node, tenant).await?,
    ))
}

/// `/api/v1/tenants/{t}/dashboards[/{id}[/data]]`: stored dashboards (create: developer
/// and up; read: viewer and up).
pub async fn dashboards(
    state: &AppState,
    req: http::Request<TrackedBody>,
    tenant: &str,
    rest: &[&str],
) -> Result<Response<Body>, ApiError> {
    use http::Method;
    let node = &state.node;
    match (req.method().clone(), rest) {
        (Method::POST, []) => {
            let spec: helixflow_usage::dashboard::DashboardSpec =
                crate::request::read_json(req).await?;
            let d = helixflow_node::usage::create_dashboard(node, tenant, spec).await?;
            Ok(json_response(StatusCode::CREATED, &d))
        }
        (Method::GET, []) => {
            state.node.registry.tenant(tenant).await?;
            let list = node.registry.dashboards(tenant).await?;
            Ok(json_response(
                StatusCode::OK,
                &serde_json::json!({"dashboards": list}),
            ))
        }
        (Method::GET, [id]) => Ok(json_response(
            StatusCode::OK,
            &helixflow_node::usage::dashboard(node, tenant, id).await?,
        )),
        (Method::DELETE, [id]) => {
            helixflow_node::usage::delete_dashboard(node, tenant, id).await?;
            Ok(json_response(
                StatusCode::OK,
                &serde_json::json!({"deleted": id}),
            ))
        }
        (Method::GET, [id, "data"]) => {
            let params = crate::request::query(&req);
            Ok(json_response(
                StatusCode::OK,
                &helixflow_node::usage::dashboard_data(node, tenant, id, &params).await?,
            ))
        }
        (Method::POST | Method::GET | Method::DELETE, _) => {
            Err(ApiError::not_found("no such dashboards route"))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}
