//! The `session-reports` function: `POST /v1/sessions/{sessionId}/events` behind API Gateway, where
//! game servers report `ready`, `heartbeat`, `result` and `end`.
//!
//! The caller is no player, so there is no JWT: the report is signed with the session's secret over
//! `X-Queuematch-Timestamp`, `X-Queuematch-Nonce` and the body, and checked by the use case.

use crate::problem::{json_response, request_body, Problem};
use crate::Service;
use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use http::Method;
use queuematch_core::ids::SessionId;
use queuematch_core::ports::{Clock, Events, Fleet, Store, TicketQueue, Workflows};
use queuematch_core::time::Timestamp;
use queuematch_core::usecases::reports::{ReportError, Reports, SignedReport};

pub const TIMESTAMP_HEADER: &str = "x-queuematch-timestamp";
pub const NONCE_HEADER: &str = "x-queuematch-nonce";
pub const SIGNATURE_HEADER: &str = "x-queuematch-signature";

/// The largest report accepted (DESIGN.md: bodies of at most 64 KiB).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

fn header<'a>(request: &'a ApiGatewayProxyRequest, name: &str) -> Result<&'a str, Box<Problem>> {
    let Some(value) = request.headers.get(name) else {
        return Err(Box::new(Problem::unauthorized(format!(
            "a report is signed: the `{name}` header is missing"
        ))));
    };
    value.to_str().map_err(|_| {
        Box::new(Problem::unauthorized(format!(
            "the `{name}` header is not visible ASCII, which every signed header is"
        )))
    })
}

/// The signed parts of the request: timestamp, nonce, signature and the raw body.
fn signed(request: &ApiGatewayProxyRequest) -> Result<(Timestamp, &str, &str, Vec<u8>), Box<Problem>> {
    let timestamp = header(request, TIMESTAMP_HEADER)?;
    let timestamp: u64 = timestamp.parse().map_err(|_| {
        Box::new(Problem::unauthorized(format!(
            "`{TIMESTAMP_HEADER}` is epoch milliseconds, not {timestamp:?}"
        )))
    })?;
    let body = request_body(request)?.into_owned();
    if body.len() > MAX_BODY_BYTES {
        return Err(Box::new(Problem::too_large(MAX_BODY_BYTES)));
    }
    Ok((
        Timestamp(timestamp),
        header(request, NONCE_HEADER)?,
        header(request, SIGNATURE_HEADER)?,
        body,
    ))
}

/// Handles one report.
pub async fn handle<S, Q, W, E, C, P, F>(
    service: &Service<S, Q, W, E, C, P>,
    fleet: &F,
    request: ApiGatewayProxyRequest,
) -> ApiGatewayProxyResponse
where
    S: Store,
    Q: TicketQueue,
    W: Workflows,
    E: Events,
    C: Clock,
    F: Fleet,
{
    if request.http_method != Method::POST {
        return Problem::method_not_allowed(
            format!(
                "{} is not allowed here; game servers POST their reports",
                request.http_method
            ),
            &["POST"],
        )
        .into_response();
    }
    let Some(session_id) = request.path_parameters.get("sessionId").cloned() else {
        return Problem::not_found("no such route").into_response();
    };
    let (timestamp, nonce, signature, body) = match signed(&request) {
        Ok(parts) => parts,
        Err(problem) => return problem.into_response(),
    };
    let reports = Reports {
        store: &service.store,
        queue: &service.queue,
        queues: &service.queues,
        fleet,
        workflows: &service.workflows,
        events: &service.events,
        clock: &service.clock,
        settings: &service.settings,
    };
    let session_id = SessionId::new(session_id);
    match reports
        .record(
            &session_id,
            SignedReport {
                timestamp,
                nonce,
                signature,
                body: &body,
            },
        )
        .await
    {
        Ok(recorded) => json_response(202, &recorded),
        Err(e) => match &e {
            ReportError::NotFound(_) => Problem::not_found(e.to_string()),
            ReportError::Unauthorized(_) => Problem::unauthorized(e.to_string()),
            ReportError::Replayed(_) | ReportError::Conflict(_) => Problem::conflict(e.to_string()),
            ReportError::Invalid(field) => Problem::bad_request(e.to_string(), vec![field.clone()]),
            ReportError::Port(port) => Problem::unavailable(port),
        }
        .into_response(),
    }
}
