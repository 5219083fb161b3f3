//! Alert routes: `/api/v1/tenants/{t}/alerts[/{id}[/history]]` (read: viewer and up;
//! create, replace, delete: developer and up, by `access::requirement`'s generic
//! tenant rules). Rules, evaluation and notifications: `helixflow_node::alerts`.
//!
//! * `POST .../alerts`: a rule (`helixflow_usage::alert::AlertSpec`) -> 201 with its id,
//!   state and, when it notifies a webhook, `webhook_secret` (shown once).
//! * `GET .../alerts`: every rule with its state; `GET .../alerts/{id}`: one.
//! * `PUT .../alerts/{id}`: a new definition (state and history stay).
//! * `DELETE .../alerts/{id}`: the rule, its state and history.
//! * `GET .../alerts/{id}/history`: its firing/resolved transitions, newest first.

use crate::AppState;
use crate::body::{Body, json_response};
use crate::error::ApiError;
use crate::tracked::TrackedBody;
use http::{Method, Response, StatusCode};

pub async fn route(
    state: &AppState,
    req: http::Request<TrackedBody>,
    tenant: &str,
    rest: &[&str],
) -> Result<Response<Body>, ApiError> {
    use helixflow_node::alerts;
    let node = &state.node;
    match (req.method().clone(), rest) {
        (Method::POST, []) => {
            let body: serde_json::Value = crate::request::read_json(req).await?;
            let created = alerts::create(node, tenant, body).await?;
            Ok(json_response(StatusCode::CREATED, &created))
        }
        (Method::GET, []) => Ok(json_response(
            StatusCode::OK,
            &alerts::list(node, tenant).await?,
        )),
        (Method::GET, [id]) => Ok(json_response(
            StatusCode::OK,
            &alerts::get(node, tenant, id).await?,
        )),
        (Method::PUT, [id]) => {
            let id = id.to_string();
            let body: serde_json::Value = crate::request::read_json(req).await?;
            Ok(json_response(
                StatusCode::OK,
                &alerts::replace(node, tenant, &id, body).await?,
            ))
        }
        (Method::DELETE, [id]) => {
            alerts::delete(node, tenant, id).await?;
            Ok(json_response(
                StatusCode::OK,
                &serde_json::json!({"deleted": id}),
            ))
        }
        (Method::GET, [id, "history"]) => Ok(json_response(
            StatusCode::OK,
            &alerts::history(node, tenant, id).await?,
        )),
        (Method::POST | Method::GET | Method::PUT | Method::DELETE, _) => {
            Err(ApiError::not_found("no such alerts route"))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}
