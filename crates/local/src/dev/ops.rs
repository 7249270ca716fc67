//! `/v1/ops/…`: the operators' API on the dev server, each request handed to the `ops-api` handler
//! as the API Gateway proxy event Lambda would get, with the embedded engine's record of each
//! workflow execution added to a session's detail.

use super::routes::{authenticate, lambda_response, problem};
use super::DevState;
use crate::workflows::LocalWorkflows;
use aws_lambda_events::apigw::ApiGatewayProxyRequest;
use aws_lambda_events::query_map::QueryMap;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use queuematch_core::ports::workflows::ExecutionId;
use queuematch_handlers::ops_api::{self, ExecutionHistories};
use queuematch_handlers::problem::Problem;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// The embedded engine keeps every execution's history, which Express on AWS does not.
struct EngineHistories(Option<Arc<LocalWorkflows>>);

impl ExecutionHistories for EngineHistories {
    fn history(&self, id: &str) -> Option<Value> {
        let record = self.0.as_ref()?.execution(&ExecutionId(id.to_owned()))?;
        Some(json!({
            "status": record.status.name(),
            "path": record.path(),
            "current": record.current_state(),
            "events": record.history_json()["events"],
        }))
    }
}

type Params = Result<Query<Vec<(String, String)>>, QueryRejection>;

/// Every `/v1/ops/` route but the session's, by its resource.
pub(super) async fn route(
    State(state): State<DevState>,
    method: Method,
    headers: HeaderMap,
    params: Params,
    resource: &'static str,
) -> Response {
    respond(&state, method, &headers, params, resource, None).await
}

/// `GET /v1/ops/sessions/{sessionId}`.
pub(super) async fn session(
    State(state): State<DevState>,
    method: Method,
    headers: HeaderMap,
    params: Params,
    session_id: Result<Path<String>, PathRejection>,
) -> Response {
    // Who asks comes first, as API Gateway's authorizer runs before the route: without a token
    // the answer is 401, whatever the id.
    if let Err(unauthorized) = authenticate(&state, &headers) {
        return problem(*unauthorized);
    }
    let Path(id) = match session_id {
        Ok(id) => id,
        Err(rejection) => return super::routes::unreadable_path("session", &rejection),
    };
    respond(&state, method, &headers, params, ops_api::SESSION_RESOURCE, Some(id)).await
}

async fn respond(
    state: &DevState,
    method: Method,
    headers: &HeaderMap,
    params: Params,
    resource: &'static str,
    session_id: Option<String>,
) -> Response {
    let claims = match authenticate(state, headers) {
        Ok(claims) => claims,
        Err(unauthorized) => return problem(*unauthorized),
    };
    let Query(params) = match params {
        Ok(params) => params,
        Err(rejection) => return problem(Problem::bad_request(rejection.body_text(), Vec::new())),
    };
    let mut query: HashMap<String, Vec<String>> = HashMap::new();
    for (name, value) in params {
        query.entry(name).or_default().push(value);
    }
    let mut request = ApiGatewayProxyRequest::default();
    request.http_method = super::routes::as_handled(method);
    request.resource = Some(resource.into());
    request.path = Some(match &session_id {
        Some(id) => resource.replace("{sessionId}", id),
        None => resource.to_owned(),
    });
    if let Some(id) = session_id {
        request.path_parameters.insert("sessionId".into(), id);
    }
    request.query_string_parameters = QueryMap::from(query);
    request
        .request_context
        .authorizer
        .fields
        .insert("claims".into(), json!({"sub": claims.sub, "role": claims.role}));
    let histories = EngineHistories(state.workflows.clone());
    lambda_response(ops_api::handle(&state.service, &histories, request).await)
}
