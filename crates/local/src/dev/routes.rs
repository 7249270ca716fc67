//! The HTTP routes of the dev server.

use super::{console, ops, push, reports, ticket_checks, traffic, DevState};
use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use aws_lambda_events::encodings::Body as LambdaBody;
use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use queuematch_core::identity::jwt::{Audience, Claims};
use queuematch_core::ports::Clock;
use queuematch_core::ticket_request::{FieldError, TicketRequest};
use queuematch_core::usecases::messages::{Message, TicketMessage};
use queuematch_handlers::problem::Problem;
use queuematch_handlers::{ops_api, players_api, tickets_api};
use serde_json::{json, Value};
use std::time::Duration;

pub fn router(state: DevState) -> Router {
    let tap = traffic::Tap::new(&state);
    Router::new()
        .route("/health", get(health).fallback(method_not_allowed))
        .route("/openapi.yaml", get(openapi).fallback(method_not_allowed))
        .route("/v1/tickets", post(create_ticket).fallback(method_not_allowed))
        .route(
            "/v1/tickets/{ticket_id}",
            get(ticket).delete(ticket).fallback(method_not_allowed),
        )
        .route(
            "/v1/tickets/{ticket_id}/acceptance",
            post(acceptance).fallback(method_not_allowed),
        )
        .route(
            "/v1/players/{player_id}/ratings",
            get(player_ratings).fallback(method_not_allowed),
        )
        .route("/v1/events", get(push::events).fallback(method_not_allowed))
        .route(
            "/v1/sessions/{session_id}/events",
            post(reports::report).fallback(method_not_allowed),
        )
        .route("/console", get(console::page).fallback(method_not_allowed))
        .route("/console/{asset}", get(console::asset).fallback(method_not_allowed))
        .route(
            "/v1/ops/stream",
            get(console::stream::stream).fallback(method_not_allowed),
        )
        .route(
            ops_api::TICKETS_RESOURCE,
            get(|s, m, h, q| ops::route(s, m, h, q, ops_api::TICKETS_RESOURCE)).fallback(method_not_allowed),
        )
        .route(
            ops_api::MATCHES_RESOURCE,
            get(|s, m, h, q| ops::route(s, m, h, q, ops_api::MATCHES_RESOURCE)).fallback(method_not_allowed),
        )
        .route(
            ops_api::SESSIONS_RESOURCE,
            get(|s, m, h, q| ops::route(s, m, h, q, ops_api::SESSIONS_RESOURCE)).fallback(method_not_allowed),
        )
        .route(
            "/v1/ops/sessions/{session_id}",
            get(ops::session).fallback(method_not_allowed),
        )
        .route(
            ops_api::QUEUES_RESOURCE,
            get(|s, m, h, q| ops::route(s, m, h, q, ops_api::QUEUES_RESOURCE)).fallback(method_not_allowed),
        )
        .route(
            ops_api::DLQ_RESOURCE,
            get(|s, m, h, q| ops::route(s, m, h, q, ops_api::DLQ_RESOURCE)).fallback(method_not_allowed),
        )
        .route(
            ops_api::REDRIVE_RESOURCE,
            post(|s, m, h, q| ops::route(s, m, h, q, ops_api::REDRIVE_RESOURCE)).fallback(method_not_allowed),
        )
        .route(
            ops_api::METRICS_RESOURCE,
            get(|s, m, h, q| ops::route(s, m, h, q, ops_api::METRICS_RESOURCE)).fallback(method_not_allowed),
        )
        .route(
            "/v1/ops/traffic",
            get(traffic::stream)
                .fallback(method_not_allowed)
                .with_state(tap.clone()),
        )
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(tap, traffic::observe))
        .layer(axum::middleware::from_fn(whole_body))
        .with_state(state)
}

/// Whether JSON pointer `inner` is `outer` or points inside it.
fn is_within(inner: &str, outer: &str) -> bool {
    inner
        .strip_prefix(outer)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// How long a client has to send a request's whole body once its headers have arrived. Without it, a
/// request whose body never completed held its connection and its handler for ever.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The middleware every request passes first: reads its body whole, within [`BODY_READ_TIMEOUT`] and
/// up to [`super::MAX_BODY_BYTES`], and hands it on. A body that does not arrive in time is answered
/// 408, one over the limit 413, one that breaks off 400, before any route sees it: the one place the
/// limit is kept, as problem+json.
async fn whole_body(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let (parts, body) = request.into_parts();
    let read = axum::body::to_bytes(body, super::MAX_BODY_BYTES);
    let body = match tokio::time::timeout(BODY_READ_TIMEOUT, read).await {
        Ok(Ok(body)) => body,
        Ok(Err(e)) if is_over_limit(&e) => return problem(Problem::too_large(super::MAX_BODY_BYTES)),
        Ok(Err(e)) => {
            return problem(Problem::bad_request(
                format!("the request's body could not be read: {e}"),
                Vec::new(),
            ))
        }
        Err(_) => {
            let mut answer = problem(Problem::new(
                408,
                "Request Timeout",
                format!(
                    "the request's body did not arrive within {} s of its headers",
                    BODY_READ_TIMEOUT.as_secs()
                ),
            ));
            answer.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
            return answer;
        }
    };
    next.run(axum::extract::Request::from_parts(parts, Body::from(body)))
        .await
}

/// Whether reading a body failed on the length limit rather than on the connection.
fn is_over_limit(error: &axum::Error) -> bool {
    std::iter::successors(Some(error as &(dyn std::error::Error + 'static)), |e| e.source())
        .any(|e| e.is::<http_body_util::LengthLimitError>())
}

async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// The API this server serves, as documented.
const OPENAPI: &str = include_str!("../../../../infra/openapi.yaml");

async fn openapi() -> Response {
    ([(axum::http::header::CONTENT_TYPE, "application/yaml")], OPENAPI).into_response()
}

async fn not_found() -> Response {
    problem(Problem::not_found("no such route; see infra/openapi.yaml"))
}

async fn method_not_allowed(method: Method) -> Response {
    problem(Problem::method_not_allowed(
        format!("{method} is not allowed on this route"),
        &[],
    ))
}

/// An API Gateway proxy response as an axum response.
pub(super) fn lambda_response(response: ApiGatewayProxyResponse) -> Response {
    let status = u16::try_from(response.status_code)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = match response.body {
        Some(LambdaBody::Text(text)) => Body::from(text),
        Some(LambdaBody::Binary(bytes)) => Body::from(bytes),
        _ => Body::empty(),
    };
    let mut out = Response::new(body);
    *out.status_mut() = status;
    *out.headers_mut() = response.headers;
    out
}

pub(super) fn problem(problem: Problem) -> Response {
    lambda_response(problem.into_response())
}

/// A path segment axum could not read (percent-encoding that is not UTF-8): nothing by that name
/// exists, so it is a 404, as for any other id that cannot be one.
pub(super) fn unreadable_path(what: &str, rejection: &PathRejection) -> Response {
    problem(Problem::not_found(format!(
        "no such {what}: its id cannot be read ({})",
        rejection.body_text()
    )))
}

/// The caller of a request with `Authorization: Bearer <dev token>`; the 401 to answer if none.
pub(super) fn authenticate(state: &DevState, headers: &HeaderMap) -> Result<Claims, Box<Problem>> {
    verify(state, bearer_token(headers)?)
}

/// The token of the request's one `Authorization` header, whose scheme is `Bearer` in any case
/// (RFC 9110 §11.1); the 401 to answer without one, or with two, which would leave open which
/// caller the request is.
pub(super) fn bearer_token(headers: &HeaderMap) -> Result<&str, Box<Problem>> {
    let mut given = headers.get_all(axum::http::header::AUTHORIZATION).iter();
    let (first, second) = (given.next(), given.next());
    if second.is_some() {
        return Err(Box::new(Problem::unauthorized(
            "`Authorization` is given more than once; send one `Authorization: Bearer <token>`",
        )));
    }
    first
        .and_then(|v| v.to_str().ok())
        .and_then(|h| h.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or_else(|| {
            Box::new(Problem::unauthorized(
                "send `Authorization: Bearer <token>`; `queuematch token --player ID` mints one",
            ))
        })
}

pub(super) fn verify(state: &DevState, token: &str) -> Result<Claims, Box<Problem>> {
    state
        .tokens
        .verify(token, Audience::Api, state.service.clock.now())
        .map_err(|e| Box::new(Problem::unauthorized(e.to_string())))
}

/// Whether a request's body is JSON as API Gateway tells: `Content-Type: application/json` (any
/// parameters, any case), or none, which it takes for JSON. The queue's integration maps only
/// JSON and passes nothing else through, answering 415.
pub(super) fn sent_as_json(headers: &HeaderMap) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or_default())
        .is_none_or(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .eq_ignore_ascii_case("application/json")
        })
}

/// The body of a request (read whole and held to the limit by [`whole_body`]), or the problem+json
/// to answer when it could not be taken.
pub(super) fn read_body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, Box<Problem>> {
    body.map_err(|rejection| Box::new(Problem::bad_request(rejection.body_text(), Vec::new())))
}

async fn create_ticket(
    State(state): State<DevState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let claims = match authenticate(&state, &headers) {
        Ok(claims) => claims,
        Err(unauthorized) => return problem(*unauthorized),
    };
    if !sent_as_json(&headers) {
        return problem(Problem::unsupported_media_type());
    }
    let body = match read_body(body) {
        Ok(body) => body,
        Err(rejected) => return problem(*rejected),
    };
    let json: Value = match queuematch_core::json::from_slice_unique(&body) {
        Ok(json) => json,
        Err(e) => {
            let error = FieldError {
                pointer: String::new(),
                message: format!("not valid JSON: {e}"),
            };
            return problem(Problem::bad_request("the body is not JSON", vec![error]));
        }
    };
    let service = &state.service;
    let queues = service.queues.names();
    // The reader names every problem at its pointer; the schema is what API Gateway checks, so
    // both must pass, and a body either refuses is a 400.
    let parsed = TicketRequest::parse(&json, &queues, service.settings.max_players_per_ticket);
    let schema_errors: Vec<FieldError> = state
        .ticket_schema
        .iter_errors(&json)
        .map(|e| FieldError {
            pointer: e.instance_path().to_string(),
            message: e.to_string(),
        })
        .collect();
    match parsed {
        Err(errors) => {
            return problem(Problem::bad_request(
                "the body breaks the ticket-request schema",
                errors,
            ))
        }
        Ok(request) if !schema_errors.is_empty() => {
            // The schema takes any queue's attribute types, so `"skill": [1]` breaks it as a list
            // whose items are not strings; the queue's own types say what is wrong ("expected a
            // number"). Those first, then what the schema finds elsewhere.
            let typed = service
                .queues
                .get(&request.queue)
                .and_then(|rule_set| request.players_for(rule_set).err())
                .unwrap_or_default();
            let elsewhere = schema_errors
                .into_iter()
                .filter(|e| !typed.iter().any(|t| is_within(&e.pointer, &t.pointer)));
            let errors: Vec<FieldError> = typed.iter().cloned().chain(elsewhere).collect();
            return problem(Problem::bad_request(
                "the body breaks the ticket-request schema",
                errors,
            ));
        }
        Ok(request) => {
            if let Some(refused) = ticket_checks::refuse(&state, &claims, &request).await {
                return problem(refused);
            }
        }
    }
    let ticket_id = uuid::Uuid::new_v4().to_string();
    let message = Message::Ticket(TicketMessage {
        ticket_id: ticket_id.as_str().into(),
        player_id: claims.player_id(),
        received_at: service.clock.now(),
        request: json,
    });
    // The 202 goes out only once the queue has the message: what is accepted is never lost.
    match service.queue.send(message.to_body(), Duration::ZERO).await {
        Ok(_) => (StatusCode::ACCEPTED, Json(json!({"ticketId": ticket_id}))).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "queueing a ticket failed");
            problem(Problem::unavailable(&e))
        }
    }
}

async fn ticket(
    State(state): State<DevState>,
    method: Method,
    headers: HeaderMap,
    ticket_id: Result<Path<String>, PathRejection>,
) -> Response {
    let claims = match authenticate(&state, &headers) {
        Ok(claims) => claims,
        Err(unauthorized) => return problem(*unauthorized),
    };
    let Path(ticket_id) = match ticket_id {
        Ok(id) => id,
        Err(rejection) => return unreadable_path("ticket", &rejection),
    };
    let request = proxy_request(method, "/v1/tickets/{ticketId}", &ticket_id, &claims, None);
    lambda_response(tickets_api::handle(&state.service, request).await)
}

async fn acceptance(
    State(state): State<DevState>,
    headers: HeaderMap,
    ticket_id: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let claims = match authenticate(&state, &headers) {
        Ok(claims) => claims,
        Err(unauthorized) => return problem(*unauthorized),
    };
    let Path(ticket_id) = match ticket_id {
        Ok(id) => id,
        Err(rejection) => return unreadable_path("ticket", &rejection),
    };
    let body = match read_body(body) {
        Ok(body) => body,
        Err(rejected) => return problem(*rejected),
    };
    let Ok(body) = String::from_utf8(body.to_vec()) else {
        let error = FieldError {
            pointer: String::new(),
            message: "not UTF-8 text".into(),
        };
        return problem(Problem::bad_request("the body is not JSON", vec![error]));
    };
    let request = proxy_request(
        Method::POST,
        tickets_api::ACCEPTANCE_RESOURCE,
        &ticket_id,
        &claims,
        Some(body),
    );
    lambda_response(tickets_api::handle(&state.service, request).await)
}

async fn player_ratings(
    State(state): State<DevState>,
    headers: HeaderMap,
    player_id: Result<Path<String>, PathRejection>,
) -> Response {
    let claims = match authenticate(&state, &headers) {
        Ok(claims) => claims,
        Err(unauthorized) => return problem(*unauthorized),
    };
    let Path(player_id) = match player_id {
        Ok(id) => id,
        Err(rejection) => return unreadable_path("player", &rejection),
    };
    let mut request = ApiGatewayProxyRequest::default();
    request.http_method = Method::GET;
    request.resource = Some(players_api::RATINGS_RESOURCE.into());
    request.path = Some(players_api::RATINGS_RESOURCE.replace("{playerId}", &player_id));
    request.path_parameters.insert("playerId".into(), player_id);
    request
        .request_context
        .authorizer
        .fields
        .insert("claims".into(), json!({"sub": claims.sub, "role": claims.role}));
    lambda_response(players_api::handle(&state.service, request).await)
}

/// The method a handler is given: HEAD is GET without the body, which the server leaves out, so
/// that a GET route's 405, which advertises both, tells the truth.
pub(super) fn as_handled(method: Method) -> Method {
    if method == Method::HEAD {
        Method::GET
    } else {
        method
    }
}

/// The API Gateway proxy event of a ticket route, with the caller's claims as the authorizer puts
/// them.
fn proxy_request(
    method: Method,
    resource: &str,
    ticket_id: &str,
    claims: &Claims,
    body: Option<String>,
) -> ApiGatewayProxyRequest {
    let mut request = ApiGatewayProxyRequest::default();
    request.http_method = as_handled(method);
    request.resource = Some(resource.into());
    request.path = Some(resource.replace("{ticketId}", ticket_id));
    request.path_parameters.insert("ticketId".into(), ticket_id.to_owned());
    request.body = body;
    request
        .request_context
        .authorizer
        .fields
        .insert("claims".into(), json!({"sub": claims.sub, "role": claims.role}));
    request
}
