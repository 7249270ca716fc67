//! `POST /v1/sessions/{sessionId}/events`: game-server reports, signed with the session's secret.

use super::routes::problem;
use super::DevState;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use queuematch_core::ids::SessionId;
use queuematch_core::time::Timestamp;
use queuematch_core::usecases::reports::{ReportError, Reports, SignedReport};
use queuematch_handlers::problem::Problem;

pub const TIMESTAMP_HEADER: &str = "x-queuematch-timestamp";
pub const NONCE_HEADER: &str = "x-queuematch-nonce";
pub const SIGNATURE_HEADER: &str = "x-queuematch-signature";

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, Box<Problem>> {
    headers.get(name).and_then(|v| v.to_str().ok()).ok_or_else(|| {
        Box::new(Problem::unauthorized(format!(
            "a report is signed: the `{name}` header is missing"
        )))
    })
}

pub async fn report(
    State(state): State<DevState>,
    Path(session_id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) if body.len() <= super::MAX_BODY_BYTES => body,
        Ok(_) => return problem(Problem::too_large(super::MAX_BODY_BYTES)),
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return problem(Problem::too_large(super::MAX_BODY_BYTES))
        }
        Err(rejection) => return problem(Problem::bad_request(rejection.body_text(), Vec::new())),
    };
    let signed = (|| {
        let timestamp = header(&headers, TIMESTAMP_HEADER)?;
        let timestamp: u64 = timestamp.parse().map_err(|_| {
            Box::new(Problem::unauthorized(format!(
                "`{TIMESTAMP_HEADER}` is epoch milliseconds, not {timestamp:?}"
            )))
        })?;
        Ok::<_, Box<Problem>>((
            Timestamp(timestamp),
            header(&headers, NONCE_HEADER)?,
            header(&headers, SIGNATURE_HEADER)?,
        ))
    })();
    let (timestamp, nonce, signature) = match signed {
        Ok(parts) => parts,
        Err(unauthorized) => return problem(*unauthorized),
    };
    let service = &state.service;
    let reports = Reports {
        store: &service.store,
        fleet: &state.fleet,
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
        Ok(recorded) => (StatusCode::ACCEPTED, Json(recorded)).into_response(),
        Err(e) => problem(match &e {
            ReportError::NotFound(_) => Problem::not_found(e.to_string()),
            ReportError::Unauthorized(_) => Problem::unauthorized(e.to_string()),
            ReportError::Replayed(_) | ReportError::Conflict(_) => Problem::conflict(e.to_string()),
            ReportError::Invalid(_) => Problem::bad_request(e.to_string(), Vec::new()),
            ReportError::Port(port) => Problem::unavailable(port),
        }),
    }
}
