//! `POST /v1/sessions/{sessionId}/events`: game-server reports, as API Gateway proxy events for the
//! `session-reports` handler.

use super::routes::lambda_response;
use super::DevState;
use aws_lambda_events::apigw::ApiGatewayProxyRequest;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use queuematch_handlers::session_reports;

pub async fn report(
    State(state): State<DevState>,
    session_id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Path(session_id) = match session_id {
        Ok(id) => id,
        Err(rejection) => return super::routes::unreadable_path("session", &rejection),
    };
    let body = match super::routes::read_body(body) {
        Ok(body) => body,
        Err(rejected) => return super::routes::problem(*rejected),
    };
    let mut request = ApiGatewayProxyRequest::default();
    request.http_method = Method::POST;
    request.resource = Some("/v1/sessions/{sessionId}/events".into());
    request.path = Some(format!("/v1/sessions/{session_id}/events"));
    request.path_parameters.insert("sessionId".into(), session_id);
    request.headers = headers;
    // A report is JSON text; anything else is passed on as base64, as API Gateway does with binary.
    match String::from_utf8(body.to_vec()) {
        Ok(text) => request.body = Some(text),
        Err(_) => {
            use base64::Engine;
            request.body = Some(base64::engine::general_purpose::STANDARD.encode(&body));
            request.is_base64_encoded = true;
        }
    }
    lambda_response(session_reports::handle(&state.service, &state.fleet, request).await)
}
